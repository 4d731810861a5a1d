// The records to publish and the live check, against a zone in memory (FakeResolver): correct,
// missing, mismatched, malformed and over-limit records, SPF merging, the DMARC stages.

#include "dkim/provisioning/dns_check.hpp"

#include <gtest/gtest.h>

#include "dkim/crypto/base64.hpp"

namespace dkim::provisioning {
namespace {

using dns::FakeResolver;
using dns::RecordType;

std::string ed_record(char fill) {
    return "v=DKIM1; k=ed25519; p=" + crypto::base64_encode(std::string(32, fill));
}

std::vector<OutboundAddress> addresses(std::initializer_list<const char*> texts) {
    std::vector<OutboundAddress> out;
    for (const char* t : texts) {
        auto a = OutboundAddress::parse(t);
        EXPECT_TRUE(a) << t;
        out.push_back(*a);
    }
    return out;
}

class DnsCheckTest : public ::testing::Test {
  protected:
    void SetUp() override {
        zone.set_txt("s1._domainkey.example.com", {ed_record('a')});
        zone.set_txt("example.com", {"v=spf1 ip4:192.0.2.0/24 -all"});
        zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=none; rua=mailto:d@example.com"});
        input.domain = "example.com";
        input.keys = {{"s1", "ed25519", "active", ed_record('a')}};
        input.addresses = addresses({"192.0.2.25"});
    }
    std::vector<Finding> check() { return check_domain(zone, input, 1'795'694'400); }
    Finding finding(const std::string& record) {
        for (const auto& f : check()) {
            if (f.record == record) {
                return f;
            }
        }
        ADD_FAILURE() << "no finding for " << record;
        return {};
    }

    FakeResolver zone;
    CheckInput input;
};

TEST_F(DnsCheckTest, ACorrectDomainHasNoProblems) {
    const auto findings = check();
    EXPECT_FALSE(has_problems(findings));
    ASSERT_EQ(findings.size(), 3U);
    EXPECT_EQ(findings[0].record, "DKIM s1");
    EXPECT_EQ(findings[0].status, Status::ok) << findings[0].message;
    EXPECT_EQ(findings[1].status, Status::ok) << findings[1].message;
    EXPECT_NE(findings[1].message.find("0 of 10 DNS lookups"), std::string::npos);
    EXPECT_EQ(findings[2].status, Status::ok) << findings[2].message;
    EXPECT_NE(findings[2].message.find("monitor mode"), std::string::npos);
}

TEST_F(DnsCheckTest, DkimMissingMismatchedMalformedRevokedDuplicated) {
    input.keys.push_back({"s2", "ed25519", "pending-publish", ed_record('b')});
    auto f = finding("DKIM s2");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_EQ(f.message, "not published yet");
    EXPECT_NE(f.fix.find("s2._domainkey.example.com. IN TXT ( \"v=DKIM1; k=ed25519; p="),
              std::string::npos)
        << f.fix;

    zone.set_txt("s2._domainkey.example.com", {ed_record('c')});
    f = finding("DKIM s2");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_EQ(f.message, "the published key is not the token's key");

    zone.set_txt("s2._domainkey.example.com", {"v=DKIM1; k=ed25519; p=@@@"});
    f = finding("DKIM s2");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_NE(f.message.find("invalid"), std::string::npos) << f.message;

    zone.set_txt("s2._domainkey.example.com", {"v=DKIM1; k=ed25519; p="});
    EXPECT_EQ(finding("DKIM s2").message, "published as revoked (empty p=)");

    zone.set_txt("s2._domainkey.example.com", {ed_record('b'), ed_record('b')});
    EXPECT_NE(finding("DKIM s2").message.find("2 TXT records"), std::string::npos);

    zone.set_txt("s2._domainkey.example.com",
                 {"v=DKIM1; k=rsa; p=" + crypto::base64_encode(std::string(32, 'b'))});
    EXPECT_EQ(finding("DKIM s2").message, "the published record is of another key type");

    zone.set_txt("s2._domainkey.example.com",
                 {"v=DKIM1; t=y; k=ed25519; p=" + crypto::base64_encode(std::string(32, 'b'))});
    EXPECT_EQ(finding("DKIM s2").status, Status::warning);

    zone.set_txt("s2._domainkey.example.com", {ed_record('b')});
    f = finding("DKIM s2");
    EXPECT_EQ(f.status, Status::ok) << f.message;
    EXPECT_FALSE(has_problems(check()));

    zone.set_status("s2._domainkey.example.com", dns::LookupStatus::temporary_failure);
    EXPECT_EQ(finding("DKIM s2").status, Status::problem);
}

TEST_F(DnsCheckTest, RetiredKeysShouldDisappearAndRetiringOnesStay) {
    input.keys.push_back({"old", "ed25519", "retiring", ed_record('o')});
    EXPECT_EQ(finding("DKIM old").status, Status::problem) << "still needed while retiring";
    input.keys.back().state = "retired";
    EXPECT_EQ(finding("DKIM old").status, Status::ok) << "gone, as it should be";
    zone.set_txt("old._domainkey.example.com", {ed_record('o')});
    EXPECT_EQ(finding("DKIM old").status, Status::warning);
    zone.set_txt("old._domainkey.example.com", {"v=DKIM1; p="});
    EXPECT_EQ(finding("DKIM old").status, Status::ok);
}

TEST_F(DnsCheckTest, SpfMissingMalformedDuplicatedUnauthorizedAndOverTheLimit) {
    zone.set_txt("example.com", {});
    auto f = finding("SPF");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_EQ(f.message, "no SPF record");
    EXPECT_NE(f.fix.find("v=spf1 ip4:192.0.2.25 -all"), std::string::npos);

    zone.set_txt("example.com", {"v=spf1 ip4:192.0.2.0/33 -all"});
    EXPECT_NE(finding("SPF").message.find("invalid"), std::string::npos);

    zone.set_txt("example.com", {"v=spf1 -all", "v=spf1 ip4:192.0.2.25 -all"});
    EXPECT_NE(finding("SPF").message.find("2 SPF records"), std::string::npos);

    zone.set_txt("example.com", {"v=spf1 ip4:198.51.100.1 -all"});
    f = finding("SPF");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_NE(f.message.find("does not authorize 192.0.2.25 (fail)"), std::string::npos)
        << f.message;
    EXPECT_NE(f.fix.find("v=spf1 ip4:192.0.2.25 ip4:198.51.100.1 -all"), std::string::npos)
        << "merged, ours first: " << f.fix;

    // Eleven includes, each a record of its own: one lookup too many.
    std::string record = "v=spf1 ip4:192.0.2.25";
    for (int i = 0; i < 11; ++i) {
        const std::string name = "i" + std::to_string(i) + ".example.net";
        zone.set_txt(name, {"v=spf1 ip4:203.0.113." + std::to_string(i) + " -all"});
        record += " include:" + name;
    }
    zone.set_txt("example.com", {record + " -all"});
    f = finding("SPF");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_NE(f.message.find("11 DNS-querying terms"), std::string::npos) << f.message;

    // An include without a record, and a loop.
    zone.set_txt("example.com", {"v=spf1 ip4:192.0.2.25 include:gone.example -all"});
    EXPECT_NE(finding("SPF").message.find("include:gone.example has no SPF record"),
              std::string::npos);
    zone.set_txt("example.com", {"v=spf1 ip4:192.0.2.25 include:loop.example -all"});
    zone.set_txt("loop.example", {"v=spf1 include:loop.example -all"});
    EXPECT_NE(finding("SPF").message.find("loops back"), std::string::npos);
}

TEST_F(DnsCheckTest, SpfCostCountsNestedIncludesRedirectsAndVoidLookups) {
    zone.set_txt("example.com", {"v=spf1 a mx include:a.example redirect=r.example"});
    zone.set_txt("a.example", {"v=spf1 include:b.example ~all"});
    zone.set_txt("b.example", {"v=spf1 ip4:192.0.2.1 ptr -all"});
    zone.set_txt("r.example", {"v=spf1 exists:%{i}.x.example -all"});
    const SpfCost cost = spf_cost(zone, "example.com");
    // a, mx, include:a, include:b, ptr, redirect, exists
    EXPECT_EQ(cost.lookups, 7U);
    EXPECT_EQ(cost.void_lookups, 2U) << "example.com has no A/AAAA and no MX";
    EXPECT_TRUE(cost.problems.empty());
}

TEST_F(DnsCheckTest, SpfAdviceMergesWithThePublishedRecordOnlyWhatIsMissing) {
    zone.set_txt("example.com", {"v=spf1 include:_spf.provider.example ~all"});
    zone.set_txt("_spf.provider.example", {"v=spf1 ip4:198.51.100.0/24 -all"});
    const auto advice =
        advise_spf(&zone, "example.com", addresses({"198.51.100.7", "2001:db8::25"}));
    EXPECT_TRUE(advice.ok) << advice.note;
    EXPECT_EQ(advice.added, std::vector<std::string>{"ip6:2001:db8::25"})
        << "198.51.100.7 passes already, through the include";
    EXPECT_EQ(advice.record, "v=spf1 ip6:2001:db8::25 include:_spf.provider.example ~all");
    EXPECT_EQ(advice.lookups, 1U);

    const auto fresh = advise_spf(nullptr, "example.com", addresses({"192.0.2.0/28"}));
    EXPECT_EQ(fresh.record, "v=spf1 ip4:192.0.2.0/28 -all");
}

TEST_F(DnsCheckTest, DmarcStagesInheritanceAndProblems) {
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=quarantine; pct=25; rua=mailto:d@x"});
    auto f = finding("DMARC");
    EXPECT_EQ(f.status, Status::ok);
    EXPECT_NE(f.message.find("quarantine at pct=25; next: pct=100"), std::string::npos);
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject; rua=mailto:d@x"});
    EXPECT_EQ(finding("DMARC").message, "enforcing (p=reject)");
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=none"});
    EXPECT_EQ(finding("DMARC").status, Status::warning) << "no rua: no reports to ramp up by";
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=bogus; rua=mailto:d@x"});
    EXPECT_EQ(finding("DMARC").status, Status::problem);
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=none", "v=DMARC1; p=reject"});
    EXPECT_NE(finding("DMARC").message.find("2 DMARC records"), std::string::npos);
    zone.clear("_dmarc.example.com");
    f = finding("DMARC");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_EQ(f.message, "no DMARC record");

    input.domain = "mail.example.com";
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject; sp=none; rua=mailto:d@x"});
    f = finding("DMARC");
    EXPECT_EQ(f.name, "_dmarc.example.com");
    EXPECT_NE(f.message.find("monitor mode (p=none) (inherited from example.com)"),
              std::string::npos)
        << "sp= applies below the organizational domain: " << f.message;
}

TEST_F(DnsCheckTest, RecordsToPublishCoverTheLifecycleStates) {
    RecordsInput in;
    in.domain = "example.com";
    in.keys = {{"s1", "ed25519", "active", ed_record('a')},
               {"s2", "rsa-2048", "pending-publish", "v=DKIM1; k=rsa; p=" + std::string(400, 'A')},
               {"s0", "ed25519", "retiring", ed_record('z')},
               {"gone", "ed25519", "retired", ed_record('g')}};
    in.addresses = addresses({"192.0.2.25"});
    in.dmarc_rua = "mailto:dmarc@example.com";
    const auto records = records_for(in, nullptr);
    ASSERT_EQ(records.size(), 5U) << "three keys, SPF, DMARC; not the retired key";
    EXPECT_EQ(records[1].name, "s2._domainkey.example.com");
    EXPECT_NE(records[1].zone_line.find("\" \""), std::string::npos) << "split in 255-byte strings";
    EXPECT_EQ(records[3].value, "v=spf1 ip4:192.0.2.25 -all");
    EXPECT_EQ(records[4].value, "v=DMARC1; p=none; rua=mailto:dmarc@example.com");
    EXPECT_NE(records[4].note.find("p=quarantine; pct=25"), std::string::npos);
    EXPECT_NE(records[4].note.find("p=reject"), std::string::npos);
}

TEST(OutboundAddressTest, ParsesAddressesAndNetworks) {
    EXPECT_EQ(OutboundAddress::parse("192.0.2.25")->spf_term(), "ip4:192.0.2.25");
    EXPECT_EQ(OutboundAddress::parse("2001:DB8::25")->spf_term(), "ip6:2001:db8::25");
    EXPECT_EQ(OutboundAddress::parse("198.51.100.0/28")->spf_term(), "ip4:198.51.100.0/28");
    EXPECT_FALSE(OutboundAddress::parse("192.0.2.0/33"));
    EXPECT_FALSE(OutboundAddress::parse("mail.example.com"));
    EXPECT_FALSE(OutboundAddress::parse("192.0.2.1/"));
}

}  // namespace
}  // namespace dkim::provisioning

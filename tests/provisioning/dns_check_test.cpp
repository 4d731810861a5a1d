// The records to publish and the live check, against a zone in memory (FakeResolver): correct,
// missing, mismatched, malformed and over-limit records, SPF merging, the DMARC stages, where
// reports go (rua=, ruf=, TLS-RPT, external report domains).

#include "dkim/provisioning/dns_check.hpp"

#include <gtest/gtest.h>

#include "dkim/crypto/base64.hpp"
#include "dkim/dmarc/policy.hpp"

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
    in.reports.dmarc_rua = "mailto:dmarc@example.com";
    const auto records = records_for(in, nullptr);
    ASSERT_EQ(records.size(), 5U) << "three keys, SPF, DMARC; not the retired key";
    EXPECT_EQ(records[1].name, "s2._domainkey.example.com");
    EXPECT_NE(records[1].zone_line.find("\" \""), std::string::npos) << "split in 255-byte strings";
    EXPECT_EQ(records[3].value, "v=spf1 ip4:192.0.2.25 -all");
    EXPECT_EQ(records[4].value, "v=DMARC1; p=none; rua=mailto:dmarc@example.com");
    EXPECT_NE(records[4].note.find("p=quarantine; pct=25"), std::string::npos);
    EXPECT_NE(records[4].note.find("p=reject"), std::string::npos);
}

std::shared_ptr<const dmarc::PublicSuffixList> suffix_list() {
    static const auto list = dmarc::PublicSuffixList::load();
    EXPECT_TRUE(list) << list.error();
    return list ? *list : nullptr;
}

// RFC 8460 §3 and RFC 7489 §7.1: the records that send reports to the appliance's addresses.
TEST_F(DnsCheckTest, RecordsToPublishNameTheReportAddresses) {
    RecordsInput in;
    in.domain = "example.com";
    in.addresses = addresses({"192.0.2.25"});
    in.reports = {"mailto:dmarc@example.com,mailto:agg@reports.example.net",
                  "mailto:fail@reports.example.net", "mailto:tls@example.com", suffix_list()};
    const auto records = records_for(in, nullptr);
    ASSERT_EQ(records.size(), 4U) << "SPF, DMARC, TLS-RPT, one authorization";
    EXPECT_EQ(records[1].value,
              "v=DMARC1; p=none; rua=mailto:dmarc@example.com,mailto:agg@reports.example.net; "
              "ruf=mailto:fail@reports.example.net");
    EXPECT_NE(records[1].note.find("p=quarantine; pct=25; rua=mailto:dmarc@example.com,"
                                   "mailto:agg@reports.example.net; ruf="),
              std::string::npos)
        << "every stage keeps the addresses: " << records[1].note;
    EXPECT_EQ(records[2].kind, "tlsrpt");
    EXPECT_EQ(records[2].name, "_smtp._tls.example.com");
    EXPECT_EQ(records[2].value, "v=TLSRPTv1; rua=mailto:tls@example.com");
    EXPECT_EQ(records[2].zone_line,
              "_smtp._tls.example.com. IN TXT ( \"v=TLSRPTv1; rua=mailto:tls@example.com\" )");
    EXPECT_EQ(records[3].kind, "dmarc-report");
    EXPECT_EQ(records[3].name, "example.com._report._dmarc.reports.example.net");
    EXPECT_EQ(records[3].value, "v=DMARC1");
    EXPECT_NE(records[3].note.find("reports.example.net's zone"), std::string::npos);

    in.reports = {"mailto:dmarc@reports.example.com", "", "", suffix_list()};
    EXPECT_EQ(records_for(in, nullptr).size(), 2U)
        << "no TLS-RPT address, and a report domain in the same organizational domain";
}

TEST_F(DnsCheckTest, DmarcNamesTheConfiguredReportAddresses) {
    input.reports.dmarc_rua = "mailto:d@example.com";
    EXPECT_EQ(finding("DMARC").status, Status::ok) << "the published record names it";
    input.reports.dmarc_rua = "mailto:agg@example.com";
    input.reports.dmarc_ruf = "mailto:fail@example.com";
    auto f = finding("DMARC");
    EXPECT_EQ(f.status, Status::problem);
    EXPECT_NE(f.message.find("rua= does not name mailto:agg@example.com; ruf= does not name "
                             "mailto:fail@example.com (the configured report address)"),
              std::string::npos)
        << f.message;
    EXPECT_EQ(f.fix,
              "publish: _dmarc.example.com. IN TXT ( \"v=DMARC1; p=none; "
              "rua=mailto:d@example.com,mailto:agg@example.com; ruf=mailto:fail@example.com\" )");
    zone.clear("_dmarc.example.com");
    f = finding("DMARC");
    EXPECT_NE(f.fix.find("\"v=DMARC1; p=none; rua=mailto:agg@example.com; "
                         "ruf=mailto:fail@example.com\""),
              std::string::npos)
        << "the record to publish names them: " << f.fix;
}

TEST_F(DnsCheckTest, TlsRptMissingWrongDuplicatedOrInvalid) {
    EXPECT_FALSE(check_tlsrpt(zone, input)) << "nothing configured, nothing published";
    input.reports.tlsrpt_rua = "mailto:tls@example.com";
    auto f = check_tlsrpt(zone, input);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->record, "TLS-RPT");
    EXPECT_EQ(f->name, "_smtp._tls.example.com");
    EXPECT_EQ(f->status, Status::problem);
    EXPECT_EQ(
        f->fix,
        "publish: _smtp._tls.example.com. IN TXT ( \"v=TLSRPTv1; rua=mailto:tls@example.com\" )");
    EXPECT_EQ(finding("TLS-RPT").status, Status::problem) << "part of the domain's check";

    zone.set_txt("_smtp._tls.example.com", {"v=TLSRPTv1; rua=mailto:tls@example.com"});
    f = check_tlsrpt(zone, input);
    EXPECT_EQ(f->status, Status::ok);
    EXPECT_EQ(f->message, "reports go to mailto:tls@example.com");

    zone.set_txt("_smtp._tls.example.com", {"v=TLSRPTv1; rua=https://reports.example.net/x"});
    f = check_tlsrpt(zone, input);
    EXPECT_EQ(f->status, Status::problem);
    EXPECT_NE(f->fix.find("rua=https://reports.example.net/x,mailto:tls@example.com"),
              std::string::npos)
        << f->fix;

    zone.set_txt("_smtp._tls.example.com",
                 {"v=TLSRPTv1; rua=mailto:tls@example.com", "v=TLSRPTv1; rua=mailto:b@x.test"});
    EXPECT_NE(check_tlsrpt(zone, input)->message.find("2 TLS-RPT records"), std::string::npos);
    zone.set_txt("_smtp._tls.example.com", {"v=TLSRPTv1; ruf=mailto:tls@example.com"});
    EXPECT_EQ(check_tlsrpt(zone, input)->message, "invalid: rua= is missing (it is required)");

    input.reports.tlsrpt_rua.clear();
    zone.set_txt("_smtp._tls.example.com", {"v=TLSRPTv1; rua=mailto:tls@example.com"});
    EXPECT_EQ(check_tlsrpt(zone, input)->status, Status::ok) << "a published record is checked";
    zone.set_status("_smtp._tls.example.com", RecordType::txt,
                    dns::LookupStatus::temporary_failure);
    EXPECT_EQ(check_tlsrpt(zone, input)->status, Status::problem);
}

TEST_F(DnsCheckTest, ExternalReportDomainsMustAuthorizeTheReports) {
    input.reports.psl = suffix_list();
    zone.set_txt("_dmarc.example.com",
                 {"v=DMARC1; p=none; rua=mailto:d@example.com,mailto:x@thirdparty.example.net"});
    auto f = finding("DMARC report");
    EXPECT_EQ(f.name, "example.com._report._dmarc.thirdparty.example.net");
    EXPECT_EQ(f.status, Status::warning) << "not the configured address: a warning";
    EXPECT_EQ(f.fix,
              "publish in thirdparty.example.net's zone: "
              "example.com._report._dmarc.thirdparty.example.net. IN TXT ( \"v=DMARC1\" )");
    EXPECT_FALSE(has_problems(check()));

    input.reports.dmarc_ruf = "mailto:f@thirdparty.example.net";
    f = finding("DMARC report");
    EXPECT_EQ(f.status, Status::problem) << "the configured address's domain: a problem";

    zone.set_txt("example.com._report._dmarc.thirdparty.example.net", {"v=DMARC1"});
    f = finding("DMARC report");
    EXPECT_EQ(f.status, Status::ok);
    EXPECT_EQ(f.message, "thirdparty.example.net accepts DMARC reports for example.com");

    // An inherited record: the authorization names the domain whose record applies.
    input.domain = "mail.example.com";
    input.reports.dmarc_ruf.clear();
    zone.clear("example.com._report._dmarc.thirdparty.example.net");
    EXPECT_EQ(finding("DMARC report").name, "example.com._report._dmarc.thirdparty.example.net");
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

// DMARC, rule by rule (RFC 7489 §6, DMARCbis): record parsing, policy discovery, the
// organizational domain by the Public Suffix List and by the tree walk, alignment, p/sp/np,
// pct and t=y, DNS failures. DNS is the fake resolver; the PSL is Debian's.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dkim/dmarc/policy.hpp"
#include "dkim/dmarc/record.hpp"
#include "dkim/dns/resolver.hpp"

namespace dkim::dmarc {
namespace {

TEST(DmarcRecord, ParsesEveryTag) {
    auto r = parse_record(
        "v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=s; aspf=r; pct=30; t=y; psd=n; "
        "rua=mailto:agg@example.com,mailto:b@example.net!10m, bad uri; ruf=mailto:f@example.com; "
        "fo=1; future=whatever;");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->p, Policy::reject);
    EXPECT_TRUE(r->p_valid);
    EXPECT_EQ(r->sp, Policy::quarantine);
    EXPECT_EQ(r->np, Policy::reject);
    EXPECT_EQ(r->adkim, Alignment::strict);
    EXPECT_EQ(r->aspf, Alignment::relaxed);
    EXPECT_EQ(r->pct, 30U);
    EXPECT_TRUE(r->testing);
    EXPECT_EQ(r->psd, PsdFlag::no);
    EXPECT_EQ(r->rua,
              (std::vector<std::string>{"mailto:agg@example.com", "mailto:b@example.net!10m"}));
    EXPECT_EQ(r->ruf.size(), 1U);
}

struct RecordCase {
    const char* text;
    bool is_record;
    bool p_valid;
    Policy p;
};

TEST(DmarcRecord, VersionAndPolicyRules) {
    for (const RecordCase& c : std::initializer_list<RecordCase>{
             {"v=DMARC1; p=none", true, true, Policy::none},
             {"v = DMARC1 ; p = Quarantine ;", true, true, Policy::quarantine},
             {"v=DMARC1", true, false, Policy::none},
             {"v=DMARC1; p=block", true, false, Policy::none},
             {"p=reject; v=DMARC1", false, false, Policy::none},  // v must come first
             {"v=dmarc1; p=reject", false, false, Policy::none},  // precisely DMARC1
             {"v=DMARC10; p=reject", false, false, Policy::none},
             {"v=spf1 -all", false, false, Policy::none},
             {"v=DMARC1; p=reject; p=none", true, true, Policy::reject},  // first one counts
         }) {
        EXPECT_EQ(is_dmarc_record(c.text), c.is_record) << c.text;
        auto r = parse_record(c.text);
        ASSERT_EQ(r.has_value(), c.is_record) << c.text;
        if (r) {
            EXPECT_EQ(r->p_valid, c.p_valid) << c.text;
            EXPECT_EQ(r->p, c.p) << c.text;
        }
    }
    EXPECT_FALSE(parse_record("v=DMARC1; p=reject; garbage"));
}

TEST(DmarcRecord, BadOptionalValuesFallBackToDefaults) {
    auto r = parse_record("v=DMARC1; p=reject; adkim=x; aspf=; pct=101; psd=maybe");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->adkim, Alignment::relaxed);
    EXPECT_EQ(r->aspf, Alignment::relaxed);
    EXPECT_EQ(r->pct, 100U);
    EXPECT_EQ(r->psd, PsdFlag::unset);
}

TEST(DmarcTreeWalk, NamesToQuery) {
    EXPECT_EQ(
        tree_walk_names("a.mail.example.com"),
        (std::vector<std::string>{"a.mail.example.com", "mail.example.com", "example.com", "com"}));
    // 8 labels or more: the domain, then straight to its last 7 labels.
    EXPECT_EQ(tree_walk_names("a.b.c.d.e.f.g.h.example.com").size(), 8U);
    EXPECT_EQ(tree_walk_names("a.b.c.d.e.f.g.h.example.com")[1], "d.e.f.g.h.example.com");
    EXPECT_EQ(tree_walk_names("Example.COM."), (std::vector<std::string>{"example.com", "com"}));
}

std::shared_ptr<const PublicSuffixList> psl() {
    static auto list = PublicSuffixList::load();
    EXPECT_TRUE(list) << (list ? "" : list.error());
    return list ? *list : nullptr;
}

TEST(DmarcPsl, OrganizationalDomains) {
    ASSERT_TRUE(psl());
    EXPECT_EQ(psl()->organizational_domain("a.b.example.com"), "example.com");
    EXPECT_EQ(psl()->organizational_domain("mail.example.co.uk"), "example.co.uk");
    EXPECT_EQ(psl()->organizational_domain("EXAMPLE.COM."), "example.com");
    EXPECT_EQ(psl()->organizational_domain("co.uk"), "co.uk");  // a public suffix: itself
}

class DmarcEval : public ::testing::TestWithParam<OrgDomainMethod> {
  protected:
    Evaluation run(Identifiers ids, unsigned roll = 0) {
        Options options;
        options.method = GetParam();
        options.psl = psl();
        const Evaluator evaluator(dns_, options, [roll] { return roll; });
        return evaluator.evaluate(ids);
    }
    static Identifiers from(const char* domain) {
        Identifiers ids;
        ids.from_domain = domain;
        return ids;
    }
    dns::FakeResolver dns_;
};

TEST_P(DmarcEval, NoRecordIsNone) {
    EXPECT_EQ(run(from("example.com")).result, Result::none);
    dns_.set_txt("_dmarc.example.com", {"v=spf1 -all", "hello"});
    EXPECT_EQ(run(from("example.com")).result, Result::none);
    // Two DMARC records: no policy (§6.6.3 step 3).
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject", "v=DMARC1; p=none"});
    EXPECT_EQ(run(from("example.com")).result, Result::none);
}

TEST_P(DmarcEval, AlignedSpfOrDkimPasses) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject"});
    Identifiers ids = from("example.com");
    ids.spf_pass = true;
    ids.spf_domain = "bounces.example.com";  // relaxed: same organizational domain
    Evaluation e = run(ids);
    EXPECT_EQ(e.result, Result::pass);
    EXPECT_TRUE(e.spf_aligned);
    EXPECT_EQ(e.disposition, Policy::none);

    ids.spf_pass = false;  // SPF pass is required, not just the domain
    EXPECT_EQ(run(ids).result, Result::fail);

    ids.dkim_pass_domains = {"other.example", "mail.example.com"};
    e = run(ids);
    EXPECT_EQ(e.result, Result::pass);
    EXPECT_TRUE(e.dkim_aligned);
    EXPECT_EQ(e.aligned_dkim_domain, "mail.example.com");
}

TEST_P(DmarcEval, StrictAlignmentNeedsTheExactDomain) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject; adkim=s; aspf=s"});
    Identifiers ids = from("example.com");
    ids.spf_pass = true;
    ids.spf_domain = "bounces.example.com";
    ids.dkim_pass_domains = {"mail.example.com"};
    const Evaluation e = run(ids);
    EXPECT_EQ(e.result, Result::fail);
    EXPECT_EQ(e.disposition, Policy::reject);
    ids.dkim_pass_domains = {"EXAMPLE.com"};
    EXPECT_EQ(run(ids).result, Result::pass);
}

TEST_P(DmarcEval, UnrelatedDomainsNeverAlign) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=quarantine"});
    Identifiers ids = from("example.com");
    ids.spf_pass = true;
    ids.spf_domain = "example.com.evil.example";
    ids.dkim_pass_domains = {"com", "evil-example.com"};
    const Evaluation e = run(ids);
    EXPECT_EQ(e.result, Result::fail);
    EXPECT_EQ(e.disposition, Policy::quarantine);
}

TEST_P(DmarcEval, SubdomainsUseSpAndNonExistentOnesNp) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject; sp=quarantine; np=reject"});
    dns_.add("mail.example.com", dns::RecordType::a, "192.0.2.1");
    Evaluation e = run(from("mail.example.com"));
    EXPECT_EQ(e.result, Result::fail);
    EXPECT_EQ(e.policy_domain, "example.com");
    EXPECT_EQ(e.requested, Policy::quarantine);
    e = run(from("ghost.example.com"));  // NXDOMAIN for A, AAAA and MX
    EXPECT_EQ(e.requested, Policy::reject);
    // A domain's own record uses p, whatever sp says.
    dns_.set_txt("_dmarc.mail.example.com", {"v=DMARC1; p=none; sp=reject"});
    EXPECT_EQ(run(from("mail.example.com")).requested, Policy::none);
}

TEST_P(DmarcEval, PctAndTestingLowerTheDisposition) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject; pct=25"});
    Evaluation e = run(from("example.com"), 24);  // within the 25 %
    EXPECT_EQ(e.disposition, Policy::reject);
    EXPECT_FALSE(e.sampled_out);
    e = run(from("example.com"), 25);
    EXPECT_EQ(e.requested, Policy::reject);
    EXPECT_EQ(e.disposition, Policy::quarantine);
    EXPECT_TRUE(e.sampled_out);
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=quarantine; t=y"});
    EXPECT_EQ(run(from("example.com")).disposition, Policy::none);
}

TEST_P(DmarcEval, InvalidPolicyIsNoneWithRuaAndIgnoredWithout) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=bogus; rua=mailto:d@example.com"});
    Evaluation e = run(from("example.com"));
    EXPECT_EQ(e.result, Result::fail);
    EXPECT_EQ(e.requested, Policy::none);
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=bogus"});
    EXPECT_EQ(run(from("example.com")).result, Result::none);
}

TEST_P(DmarcEval, DnsFailureIsTemperror) {
    dns_.set_status("_dmarc.example.com", dns::LookupStatus::temporary_failure);
    EXPECT_EQ(run(from("example.com")).result, Result::temperror);
}

TEST_P(DmarcEval, AnAlignedIdentifierLostToDnsIsTemperrorNotFail) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject"});
    Identifiers ids = from("example.com");
    ids.spf_domain = "example.com";
    ids.spf_temperror = true;
    EXPECT_EQ(run(ids).result, Result::temperror);
    ids.spf_temperror = false;
    ids.dkim_temperror_domains = {"mail.example.com"};
    EXPECT_EQ(run(ids).result, Result::temperror);
    // A DNS failure of an unrelated domain changes nothing.
    ids.dkim_temperror_domains = {"other.example"};
    const Evaluation e = run(ids);
    EXPECT_EQ(e.result, Result::fail);
    EXPECT_EQ(e.disposition, Policy::reject);
}

TEST_P(DmarcEval, NoFromDomainIsPermerror) {
    EXPECT_EQ(run(from("")).result, Result::permerror);
    EXPECT_EQ(run(from("localhost")).result, Result::permerror);
}

INSTANTIATE_TEST_SUITE_P(Methods, DmarcEval,
                         ::testing::Values(OrgDomainMethod::public_suffix_list,
                                           OrgDomainMethod::tree_walk),
                         [](const auto& method) {
                             return method.param == OrgDomainMethod::tree_walk ? "TreeWalk" : "Psl";
                         });

// Where the two methods differ.
class DmarcTreeWalkEval : public ::testing::Test {
  protected:
    Evaluator evaluator(OrgDomainMethod method) {
        Options options;
        options.method = method;
        options.psl = psl();
        return Evaluator(dns_, options, [] { return 0U; });
    }
    dns::FakeResolver dns_;
};

TEST_F(DmarcTreeWalkEval, FindsTheNearestRecordUpTheTree) {
    dns_.set_txt("_dmarc.mail.example.com", {"v=DMARC1; p=quarantine"});
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=none"});
    Identifiers ids;
    ids.from_domain = "a.b.mail.example.com";
    const Evaluation walk = evaluator(OrgDomainMethod::tree_walk).evaluate(ids);
    EXPECT_EQ(walk.policy_domain, "mail.example.com");
    EXPECT_EQ(walk.requested, Policy::quarantine);
    // RFC 7489 asks only the domain and its organizational domain.
    const Evaluation list = evaluator(OrgDomainMethod::public_suffix_list).evaluate(ids);
    EXPECT_EQ(list.policy_domain, "example.com");
    EXPECT_EQ(list.requested, Policy::none);
}

TEST_F(DmarcTreeWalkEval, PsdFlagsMarkTheOrganizationalDomain) {
    const Evaluator walk = evaluator(OrgDomainMethod::tree_walk);
    // No record anywhere: a domain is its own organizational domain.
    EXPECT_EQ(*walk.organizational_domain("a.b.example.com"), "a.b.example.com");
    // The highest record found, without psd flags.
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=none"});
    dns_.set_txt("_dmarc.b.example.com", {"v=DMARC1; p=none"});
    EXPECT_EQ(*walk.organizational_domain("a.b.example.com"), "example.com");
    // psd=n stops the walk there.
    dns_.set_txt("_dmarc.b.example.com", {"v=DMARC1; p=none; psd=n"});
    EXPECT_EQ(*walk.organizational_domain("a.b.example.com"), "b.example.com");
    // psd=y: the organizational domain is the label below the public suffix.
    dns_.clear("_dmarc.b.example.com");
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject; psd=y"});
    EXPECT_EQ(*walk.organizational_domain("a.b.example.com"), "b.example.com");
    EXPECT_EQ(*walk.organizational_domain("example.com"), "example.com");
    // A DNS failure mid-walk is an error, not a guess.
    dns_.set_status("_dmarc.b.example.com", dns::LookupStatus::temporary_failure);
    EXPECT_FALSE(walk.organizational_domain("a.b.example.com"));
}

TEST_F(DmarcTreeWalkEval, AlignmentFailureByDnsIsTemperror) {
    dns_.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject"});
    dns_.set_status("_dmarc.com", dns::LookupStatus::temporary_failure);
    Identifiers ids;
    ids.from_domain = "example.com";
    ids.dkim_pass_domains = {"mail.example.com"};
    EXPECT_EQ(evaluator(OrgDomainMethod::tree_walk).evaluate(ids).result, Result::temperror);
    // An exact match needs no walk.
    ids.dkim_pass_domains = {"example.com"};
    EXPECT_EQ(evaluator(OrgDomainMethod::tree_walk).evaluate(ids).result, Result::pass);
}

}  // namespace
}  // namespace dkim::dmarc

// SPF beyond the RFC 7208 suite: the macro examples of RFC 7208 §7.4, parser refusals, the
// processing limits at and over their values, DNS failures as temperror, identities.

#include <gtest/gtest.h>

#include <string>

#include "dkim/dns/resolver.hpp"
#include "dkim/net/ip_address.hpp"
#include "dkim/spf/check.hpp"
#include "dkim/spf/macro.hpp"
#include "dkim/spf/record.hpp"

namespace dkim::spf {
namespace {

net::IpAddress ip(const char* text) {
    auto parsed = net::IpAddress::parse(text);
    EXPECT_TRUE(parsed) << text;
    return parsed.value_or(net::IpAddress());
}

struct MacroCase {
    const char* macro;
    const char* expansion;
};

// RFC 7208 §7.4, with <sender> strong-bad@email.example.com and <ip> 192.0.2.3.
TEST(SpfMacro, Rfc7208Examples) {
    MacroContext c;
    c.sender = "strong-bad@email.example.com";
    c.local_part = "strong-bad";
    c.sender_domain = "email.example.com";
    c.domain = "email.example.com";
    c.ip = ip("192.0.2.3");
    for (const MacroCase& m : std::initializer_list<MacroCase>{
             {"%{s}", "strong-bad@email.example.com"},
             {"%{o}", "email.example.com"},
             {"%{d}", "email.example.com"},
             {"%{d4}", "email.example.com"},
             {"%{d3}", "email.example.com"},
             {"%{d2}", "example.com"},
             {"%{d1}", "com"},
             {"%{dr}", "com.example.email"},
             {"%{d2r}", "example.email"},
             {"%{l}", "strong-bad"},
             {"%{l-}", "strong.bad"},
             {"%{lr}", "strong-bad"},
             {"%{lr-}", "bad.strong"},
             {"%{l1r-}", "strong"},
             {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
             {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
             {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
              "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
             {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
             {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
             {"%%%_%-", "% %20"},
         }) {
        auto out = expand_macros(m.macro, c, MacroUse::domain_spec);
        ASSERT_TRUE(out) << m.macro << ": " << out.error();
        EXPECT_EQ(*out, m.expansion) << m.macro;
    }
    c.ip = ip("2001:db8::cb01");
    auto v6 = expand_macros("%{ir}.%{v}._spf.%{d2}", c, MacroUse::domain_spec);
    ASSERT_TRUE(v6);
    EXPECT_EQ(
        *v6,
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(SpfMacro, UppercaseLettersAreUrlEscaped) {
    MacroContext c;
    c.local_part = "jack&jill=up";
    c.ip = ip("192.0.2.3");
    auto out = expand_macros("%{L}", c, MacroUse::domain_spec);
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "jack%26jill%3Dup");
}

TEST(SpfMacro, RefusesWhatTheGrammarDoesNot) {
    for (const char* bad : {"%", "%x", "%{", "%{x}", "%{d0}", "%{d2r*}", "a b", "%{c}", "%{t}"}) {
        EXPECT_TRUE(macro_string_error(bad, MacroUse::domain_spec)) << bad;
    }
    // c, r and t belong to explanations (§7.3).
    EXPECT_FALSE(macro_string_error("%{c} %{r} %{t}", MacroUse::explanation));
}

TEST(SpfMacro, DomainSpecEndsInAToplabelOrAMacro) {
    for (const char* good :
         {"example.com", "example.com.", "%{d}", "foo.%{d2}", "a-1.x-2", "x.1-2"}) {
        EXPECT_FALSE(domain_spec_error(good)) << good;
    }
    for (const char* bad : {"com", "com.", "example.123", "example.com-", "", "foo.-com"}) {
        EXPECT_TRUE(domain_spec_error(bad)) << bad;
    }
}

TEST(SpfRecord, Parses) {
    auto r = parse_record(
        "v=spf1 +a mx/24//64 -ip4:192.0.2.0/24 ~ip6:2001:db8::/32 "
        "?include:_spf.example.com exists:%{i}.x.example ptr:example.org "
        "redirect=_spf.example.net exp=why.%{d} x-future=%{d}  ");
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->directives.size(), 7U);
    EXPECT_EQ(r->directives[1].mechanism, Mechanism::mx);
    EXPECT_EQ(r->directives[1].cidr4, 24U);
    EXPECT_EQ(r->directives[1].cidr6, 64U);
    EXPECT_EQ(r->directives[2].qualifier, Qualifier::fail);
    EXPECT_EQ(r->directives[3].cidr6, 32U);
    EXPECT_EQ(*r->redirect, "_spf.example.net");
    EXPECT_EQ(*r->explanation, "why.%{d}");
    EXPECT_EQ(r->dns_terms(), 6U);  // a, mx, include, exists, ptr, redirect
}

TEST(SpfRecord, RefusesWholeRecordOnAnySyntaxError) {
    for (const char* bad :
         {"v=spf1 a:", "v=spf1 ip4:192.0.2.1/33", "v=spf1 ip4:2001:db8::1", "v=spf1 ip6:1.2.3.4",
          "v=spf1 a/024", "v=spf1 mx//129", "v=spf1 foo", "v=spf1 all:x", "v=spf1 ptr/24",
          "v=spf1 redirect=a.example redirect=b.example", "v=spf1 exp=a.example exp=b.example",
          "v=spf1 include", "v=spf1 -all\x01", "v=spf1 a:\xc3\xa9.example", "v=spf1 1x=y",
          "v=spf1 x=%{z}", "v=spf1\ta", "v=spf1 ip4:192.0.2.1/"}) {
        auto r = parse_record(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_FALSE(r.error().empty());
        }
    }
}

TEST(SpfRecord, Selection) {
    EXPECT_TRUE(is_spf_record("v=spf1"));
    EXPECT_TRUE(is_spf_record("V=SPF1 -all"));
    EXPECT_FALSE(is_spf_record("v=spf10"));
    EXPECT_FALSE(is_spf_record("v=spf1\t-all"));
    EXPECT_FALSE(is_spf_record("spf2.0/pra -all"));
}

class SpfCheck : public ::testing::Test {
  protected:
    Outcome check(const char* client, const char* domain = "example.com") {
        const Checker checker(dns_, "mx.example.net");
        return checker.check_host(ip(client), domain, std::string("user@") + domain, "helo.example",
                                  1'700'000'000);
    }
    dns::FakeResolver dns_;
};

TEST_F(SpfCheck, ResultsFollowTheQualifierOfTheFirstMatch) {
    dns_.set_txt("example.com", {"v=spf1 ip4:192.0.2.0/24 ~ip6:2001:db8::/32 ?a -all"});
    dns_.add("example.com", dns::RecordType::a, "198.51.100.7");
    EXPECT_EQ(check("192.0.2.44").result, Result::pass);
    EXPECT_EQ(check("2001:db8::5").result, Result::softfail);
    EXPECT_EQ(check("198.51.100.7").result, Result::neutral);
    EXPECT_EQ(check("203.0.113.1").result, Result::fail);
    EXPECT_EQ(check("203.0.113.1").mechanism, "-all");
    // An IPv4-mapped IPv6 client is its IPv4 address.
    EXPECT_EQ(check("::ffff:192.0.2.44").result, Result::pass);
}

TEST_F(SpfCheck, NoRecordIsNoneAndTwoArePermerror) {
    EXPECT_EQ(check("192.0.2.1").result, Result::none);  // NXDOMAIN
    dns_.set_txt("example.com", {"google-site-verification=x"});
    EXPECT_EQ(check("192.0.2.1").result, Result::none);
    dns_.set_txt("example.com", {"v=spf1 -all", "v=spf1 +all"});
    EXPECT_EQ(check("192.0.2.1").result, Result::permerror);
    dns_.set_txt("example.com", {"v=spf1 ip4:192.0.2.1"});
    EXPECT_EQ(check("192.0.2.2").result, Result::neutral);
}

TEST_F(SpfCheck, DnsFailuresAreTemperrorNeverPassOrFail) {
    dns_.set_status("example.com", dns::LookupStatus::temporary_failure);
    EXPECT_EQ(check("192.0.2.1").result, Result::temperror);

    dns_.set_txt("example.com", {"v=spf1 a:broken.example.com +all"});
    dns_.set_status("broken.example.com", dns::LookupStatus::temporary_failure);
    EXPECT_EQ(check("192.0.2.1").result, Result::temperror);

    dns_.set_txt("example.com", {"v=spf1 include:broken.example.com +all"});
    EXPECT_EQ(check("192.0.2.1").result, Result::temperror);

    dns_.set_txt("example.com", {"v=spf1 mx -all"});
    dns_.set_status("example.com", dns::RecordType::mx, dns::LookupStatus::temporary_failure);
    EXPECT_EQ(check("192.0.2.1").result, Result::temperror);
}

TEST_F(SpfCheck, TenDnsTermsPassElevenArePermerror) {
    std::string ten = "v=spf1";
    for (int i = 0; i < 10; ++i) {
        const std::string name = "h" + std::to_string(i) + ".example.com";
        dns_.add(name, dns::RecordType::a, "198.51.100.1");
        ten += " a:" + name;
    }
    dns_.set_txt("example.com", {ten + " +all"});
    EXPECT_EQ(check("192.0.2.1").result, Result::pass);
    dns_.set_txt("example.com", {ten + " exists:h0.example.com +all"});
    const Outcome over = check("192.0.2.1");
    EXPECT_EQ(over.result, Result::permerror);
    EXPECT_NE(over.problem.find("DNS-querying terms"), std::string::npos) << over.problem;
}

TEST_F(SpfCheck, TwoVoidLookupsPassThreeArePermerror) {
    dns_.set_txt("example.com", {"v=spf1 a:n1.example.com mx:n2.example.com +all"});
    EXPECT_EQ(check("192.0.2.1").result, Result::pass);
    dns_.set_txt("example.com",
                 {"v=spf1 a:n1.example.com mx:n2.example.com exists:n3.example.com +all"});
    EXPECT_EQ(check("192.0.2.1").result, Result::permerror);
}

TEST_F(SpfCheck, MoreThanTenMxNamesArePermerror) {
    dns_.set_txt("example.com", {"v=spf1 mx -all"});
    for (int i = 0; i < 11; ++i) {
        dns_.add("example.com", dns::RecordType::mx, "mx" + std::to_string(i) + ".example.com");
    }
    EXPECT_EQ(check("192.0.2.1").result, Result::permerror);
}

TEST_F(SpfCheck, PtrValidatesTheNameForward) {
    dns_.set_txt("example.com", {"v=spf1 ptr -all"});
    dns_.add("1.2.0.192.in-addr.arpa", dns::RecordType::ptr, "mail.example.com");
    dns_.add("mail.example.com", dns::RecordType::a, "192.0.2.1");
    dns_.add("2.2.0.192.in-addr.arpa", dns::RecordType::ptr, "liar.example.com");
    dns_.add("liar.example.com", dns::RecordType::a, "198.51.100.9");
    EXPECT_EQ(check("192.0.2.1").result, Result::pass);
    EXPECT_EQ(check("192.0.2.2").result, Result::fail);
}

TEST_F(SpfCheck, ExplanationIsExpandedOnlyOnFail) {
    dns_.set_txt("example.com", {"v=spf1 ip4:192.0.2.1 -all exp=why.example.com"});
    dns_.set_txt("why.example.com", {"%{c} is not one of %{d}'s senders (%{r})"});
    const Outcome fail = check("192.0.2.9");
    EXPECT_EQ(fail.result, Result::fail);
    EXPECT_EQ(fail.explanation, "192.0.2.9 is not one of example.com's senders (mx.example.net)");
    EXPECT_TRUE(check("192.0.2.1").explanation.empty());
    // A broken explanation record falls back to the default (empty), the result stays fail.
    dns_.set_txt("why.example.com", {"%{z}"});
    EXPECT_EQ(check("192.0.2.9").result, Result::fail);
    EXPECT_TRUE(check("192.0.2.9").explanation.empty());
}

TEST_F(SpfCheck, RedirectAndIncludeLoopsEndInPermerror) {
    dns_.set_txt("example.com", {"v=spf1 redirect=example.com"});
    EXPECT_EQ(check("192.0.2.1").result, Result::permerror);
    dns_.set_txt("example.com", {"v=spf1 include:example.com -all"});
    EXPECT_EQ(check("192.0.2.1").result, Result::permerror);
}

// A resolver whose every answer takes `delay` on a fake clock.
class SlowResolver final : public dns::Resolver {
  public:
    SlowResolver(dns::Resolver& inner, std::chrono::steady_clock::time_point& clock,
                 std::chrono::milliseconds delay)
        : inner_(inner), clock_(clock), delay_(delay) {}
    dns::Answer lookup(std::string_view name, dns::RecordType type) override {
        clock_ += delay_;
        return inner_.lookup(name, type);
    }

  private:
    dns::Resolver& inner_;
    std::chrono::steady_clock::time_point& clock_;
    std::chrono::milliseconds delay_;
};

TEST(SpfTimeBudget, SlowServersEndInTemperror) {
    dns::FakeResolver dns;
    std::string record = "v=spf1";
    for (int i = 0; i < 9; ++i) {
        const std::string name = "h" + std::to_string(i) + ".example.com";
        dns.add(name, dns::RecordType::a, "198.51.100.1");
        record += " a:" + name;
    }
    dns.set_txt("example.com", {record + " +all"});
    auto clock = std::chrono::steady_clock::time_point();
    // Each answer takes 4.9 s, just inside a 5 s lookup deadline: 10 lookups are 49 s.
    SlowResolver slow(dns, clock, std::chrono::milliseconds(4900));
    const Checker checker(slow, "mx.example.net", Limits{}, [&clock] { return clock; });
    const Outcome out = checker.check_host(ip("192.0.2.1"), "example.com", "a@example.com", "h", 0);
    EXPECT_EQ(out.result, Result::temperror);
    EXPECT_NE(out.problem.find("time budget"), std::string::npos) << out.problem;
    EXPECT_LE(clock - std::chrono::steady_clock::time_point(), std::chrono::milliseconds(24500));
    // Fast answers: the same record passes.
    SlowResolver fast(dns, clock, std::chrono::milliseconds(10));
    const Checker quick(fast, "mx.example.net", Limits{}, [&clock] { return clock; });
    EXPECT_EQ(quick.check_host(ip("192.0.2.1"), "example.com", "a@example.com", "h", 0).result,
              Result::pass);
}

TEST(SpfIdentity, MailFromAndHelo) {
    dns::FakeResolver dns;
    dns.set_txt("example.com", {"v=spf1 ip4:192.0.2.1 -all"});
    dns.set_txt("helo.example.org", {"v=spf1 ip4:192.0.2.2 -all"});
    const Checker checker(dns, "mx.example.net");
    Identity id{ip("192.0.2.1"), "helo.example.org", "someone@example.com"};
    EXPECT_EQ(checker.check_mail_from(id, 0).result, Result::pass);
    EXPECT_EQ(checker.check_helo(id, 0).result, Result::fail);
    id.mail_from.clear();  // the null reverse-path: postmaster@<helo>
    id.ip = ip("192.0.2.2");
    const Outcome bounce = checker.check_mail_from(id, 0);
    EXPECT_EQ(bounce.result, Result::pass);
    EXPECT_EQ(bounce.domain, "helo.example.org");
    id.helo = "[192.0.2.2]";  // an address literal is no domain: none
    EXPECT_EQ(checker.check_helo(id, 0).result, Result::none);
}

TEST(IpAddress, ParsesComparesAndReverses) {
    const auto v4 = ip("192.0.2.130");
    EXPECT_TRUE(v4.in_network(ip("192.0.2.128"), 25));
    EXPECT_FALSE(v4.in_network(ip("192.0.2.0"), 25));
    EXPECT_TRUE(v4.in_network(ip("10.0.0.0"), 0));
    EXPECT_FALSE(v4.in_network(ip("2001:db8::"), 0));
    EXPECT_EQ(v4.reverse_name(), "130.2.0.192.in-addr.arpa");
    const auto v6 = ip("2001:db8::1");
    EXPECT_TRUE(v6.in_network(ip("2001:db8::"), 32));
    EXPECT_FALSE(v6.in_network(ip("2001:db9::"), 32));
    EXPECT_EQ(v6.reverse_name(),
              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    EXPECT_EQ(ip("::ffff:192.0.2.1").unmapped(), ip("192.0.2.1"));
    EXPECT_FALSE(net::IpAddress::parse("192.0.2.256"));
    EXPECT_FALSE(net::IpAddress::parse("[::1]"));
    EXPECT_FALSE(net::IpAddress::parse(""));
}

}  // namespace
}  // namespace dkim::spf

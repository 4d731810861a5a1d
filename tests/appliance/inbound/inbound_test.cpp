// The inbound checks end to end over the fake resolver: SPF, DKIM (a message signed by
// dkimpy, an independent signer), DMARC, the Authentication-Results field and the action;
// forged Authentication-Results fields stripped.

#include <gtest/gtest.h>

#include <string>

#include "dkim/dkim/body_hash.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/inbound/verifier.hpp"
#include "dkim/mail/authentication_results.hpp"
#include "software_signer.hpp"

namespace dkim::inbound {
namespace {

using namespace std::chrono_literals;

// After the signatures' t= (dkimpy signed in 2018); they carry no x=.
const auto kReceived = std::chrono::system_clock::time_point(std::chrono::seconds(1764115200));

// RFC 8463 §A.2: the Ed25519 key record for brisbane._domainkey.football.example.com.
constexpr const char* kBrisbaneRecord =
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

std::string signed_message() {
    return test::to_crlf(test::read_test_file("dkimpy/rfc6376.signed.msg"));
}

// The signed message with the Ed25519 signature only (the RSA one's key is not published
// here, so it would add a permerror to every verdict).
std::string ed25519_only() {
    std::string m = signed_message();
    const std::size_t second = m.find("DKIM-Signature", 10);
    const std::size_t from = m.find("\r\nFrom:");
    return m.substr(0, second) + m.substr(from + 2);
}

class InboundTest : public ::testing::Test {
  protected:
    InboundTest() {
        dns_.set_txt("brisbane._domainkey.football.example.com", {kBrisbaneRecord});
        dns_.set_txt("football.example.com", {"v=spf1 ip4:192.0.2.0/24 -all"});
        dns_.set_txt("_dmarc.football.example.com", {"v=DMARC1; p=reject"});
        settings_.authserv_id = "mx.example.net";
        settings_.dmarc.method = dmarc::OrgDomainMethod::tree_walk;
    }
    Verdict run(const std::string& message, const char* client = "198.51.100.1",
                const char* mail_from = "joe@football.example.com") {
        KeyFetcher keys(dns_);
        const Verifier verifier(dns_, keys, settings_, [] { return 0U; });
        const Envelope envelope{*net::IpAddress::parse(client), "mail.football.example.com",
                                mail_from};
        return verifier.finish(verifier.check_spf(envelope, 1'764'115'200), message, kReceived);
    }
    dns::FakeResolver dns_;
    Settings settings_;
};

TEST_F(InboundTest, AlignedDkimPassesDmarcDespiteSpfFail) {
    const Verdict v = run(ed25519_only());
    ASSERT_EQ(v.dkim.size(), 1U);
    EXPECT_EQ(v.dkim[0].result, mail::AuthResult::pass) << v.dkim[0].reason;
    EXPECT_EQ(v.spf.mail_from.result, spf::Result::fail);
    EXPECT_EQ(v.dmarc.result, dmarc::Result::pass);
    EXPECT_TRUE(v.dmarc.dkim_aligned);
    EXPECT_EQ(v.action, Action::deliver);
    const std::string& ar = v.authentication_results;
    EXPECT_TRUE(ar.starts_with("Authentication-Results: mx.example.net;\r\n")) << ar;
    EXPECT_NE(ar.find("dkim=pass header.d=football.example.com"), std::string::npos) << ar;
    EXPECT_NE(ar.find("header.s=brisbane"), std::string::npos) << ar;
    EXPECT_NE(ar.find("header.b="), std::string::npos) << ar;
    EXPECT_NE(ar.find("spf=fail (matched -all) smtp.mailfrom=football.example.com"),
              std::string::npos)
        << ar;
    EXPECT_NE(ar.find("spf=none smtp.helo=mail.football.example.com"), std::string::npos) << ar;
    EXPECT_NE(ar.find("dmarc=pass (p=reject dis=none) header.from=football.example.com"),
              std::string::npos)
        << ar;
    EXPECT_TRUE(ar.ends_with("\r\n"));
}

TEST_F(InboundTest, AlignedSpfPassIsEnough) {
    std::string tampered = ed25519_only();
    tampered.replace(tampered.find("We lost"), 7, "We won!");
    const Verdict v = run(tampered, "192.0.2.77");
    EXPECT_EQ(v.dkim[0].result, mail::AuthResult::fail);
    EXPECT_EQ(v.spf.mail_from.result, spf::Result::pass);
    EXPECT_EQ(v.dmarc.result, dmarc::Result::pass);
    EXPECT_TRUE(v.dmarc.spf_aligned);
    EXPECT_EQ(v.action, Action::deliver);
}

TEST_F(InboundTest, DmarcFailuresFollowThePolicyAndTheSettings) {
    std::string tampered = ed25519_only();
    tampered.replace(tampered.find("We lost"), 7, "We won!");
    Verdict v = run(tampered);
    EXPECT_EQ(v.dmarc.result, dmarc::Result::fail);
    EXPECT_EQ(v.action, Action::reject);
    EXPECT_NE(v.why.find("football.example.com"), std::string::npos) << v.why;
    EXPECT_NE(v.authentication_results.find("dmarc=fail (p=reject dis=reject)"), std::string::npos)
        << v.authentication_results;

    settings_.reject_dmarc = false;  // then a reject policy is quarantined
    EXPECT_EQ(run(tampered).action, Action::quarantine);
    settings_.quarantine_dmarc = false;
    EXPECT_EQ(run(tampered).action, Action::deliver);

    settings_.reject_dmarc = true;
    settings_.quarantine_dmarc = true;
    dns_.set_txt("_dmarc.football.example.com", {"v=DMARC1; p=quarantine"});
    EXPECT_EQ(run(tampered).action, Action::quarantine);
    dns_.set_txt("_dmarc.football.example.com", {"v=DMARC1; p=none"});
    v = run(tampered);
    EXPECT_EQ(v.dmarc.result, dmarc::Result::fail);
    EXPECT_EQ(v.action, Action::deliver);
}

TEST_F(InboundTest, DnsFailureIsTemperrorAndDelivers) {
    dns_.set_status("_dmarc.football.example.com", dns::LookupStatus::temporary_failure);
    dns_.set_status("football.example.com", dns::LookupStatus::temporary_failure);
    std::string tampered = ed25519_only();
    tampered.replace(tampered.find("We lost"), 7, "We won!");
    const Verdict v = run(tampered);
    EXPECT_EQ(v.spf.mail_from.result, spf::Result::temperror);
    EXPECT_EQ(v.dmarc.result, dmarc::Result::temperror);
    EXPECT_EQ(v.action, Action::deliver);
    EXPECT_NE(v.authentication_results.find("dmarc=temperror"), std::string::npos);
}

TEST_F(InboundTest, AmbiguousFromIsPermerrorAndRefused) {
    std::string twice = ed25519_only();
    twice.insert(twice.find("\r\n\r\n") + 2, "From: eve@attacker.example\r\n");
    Verdict v = run(twice);
    EXPECT_EQ(v.dmarc.result, dmarc::Result::permerror);
    EXPECT_EQ(v.action, Action::reject);
    EXPECT_NE(v.authentication_results.find("dmarc=permerror"), std::string::npos);
}

TEST_F(InboundTest, EveryFromDomainIsEvaluated) {
    // A second mailbox of a domain with a reject policy must not ride on the first one's pass.
    dns_.set_txt("_dmarc.bank.example", {"v=DMARC1; p=reject"});
    std::string m = ed25519_only();
    const std::size_t from = m.find("From: Joe SixPack <joe@football.example.com>");
    m.replace(from, 44, "From: Joe SixPack <joe@football.example.com>, <ceo@bank.example>");
    const Verdict v = run(m);
    // The signature covers From, which changed: DKIM fails too; both domains fail DMARC, and
    // the strictest disposition decides.
    EXPECT_EQ(v.dmarc.result, dmarc::Result::fail);
    EXPECT_EQ(v.action, Action::reject);
    EXPECT_NE(v.authentication_results.find("header.from=bank.example"), std::string::npos);
}

// --- the authenticated author of report mail --------------------------------------------------

class AuthorTest : public ::testing::Test {
  protected:
    AuthorTest() {
        dns_.set_txt("sel._domainkey.example.net", {key_->key_record()});
        dns_.set_txt("sel._domainkey.other.example", {key_->key_record()});
        // The tree walk finds example.net's record above sub.example.net: one organization.
        dns_.set_txt("_dmarc.example.net", {"v=DMARC1; p=none"});
        settings_.authserv_id = "mx.example.net";
        settings_.dmarc.method = dmarc::OrgDomainMethod::tree_walk;
    }
    // `from_field` signed with d=`domain` (nothing signed when `domain` is empty).
    std::string report(const std::string& from_field, const std::string& domain) const {
        const std::string text = "From: " + from_field +
                                 "\r\nTo: dmarc-reports@example.org\r\n"
                                 "Subject: Report domain: example.org\r\n"
                                 "Date: Thu, 26 Nov 2025 00:00:00 +0000\r\n\r\n"
                                 "<feedback/>\r\n";
        if (domain.empty()) {
            return text;
        }
        auto signed_text =
            sign_message(text, {SigningKey{domain, "sel", key_.get(), {}}}, kReceived);
        EXPECT_TRUE(signed_text) << signed_text.error().message;
        return signed_text ? *signed_text : text;
    }
    std::string author(const std::string& message) {
        KeyFetcher keys(dns_);
        const Verifier verifier(dns_, keys, settings_, [] { return 0U; });
        return verifier.authenticated_author(message, kReceived);
    }
    std::unique_ptr<test::SoftwareSigner> key_ = test::SoftwareSigner::generate(0);
    dns::FakeResolver dns_;
    Settings settings_;
};

TEST_F(AuthorTest, AnAlignedPassingSignatureNamesTheFromDomain) {
    EXPECT_EQ(author(report("<noreply@Sub.Example.NET>", "example.net")), "sub.example.net");
    EXPECT_EQ(author(report("noreply@example.net", "Example.Net")), "example.net");
    // Without _dmarc.example.net the tree walk makes sub.example.net its own organization:
    // d=example.net is not aligned with it any more; an exact match still is.
    dns_.set_status("_dmarc.example.net", dns::LookupStatus::no_such_name);
    EXPECT_EQ(author(report("<noreply@sub.example.net>", "example.net")), "");
    EXPECT_EQ(author(report("noreply@example.net", "example.net")), "example.net");
}

TEST_F(AuthorTest, APassingSignatureOfAnotherDomainIsNoAuthor) {
    const std::string m = report("noreply@example.net", "other.example");
    EXPECT_EQ(author(m), "");
    // The signature itself verified: only alignment is missing.
    KeyFetcher keys(dns_);
    auto verdicts = verify_message(m, keys, kReceived);
    ASSERT_TRUE(verdicts);
    ASSERT_EQ(verdicts->size(), 1U);
    EXPECT_EQ((*verdicts)[0].result, mail::AuthResult::pass) << (*verdicts)[0].reason;
}

TEST_F(AuthorTest, AFailedOrMissingSignatureIsNoAuthor) {
    std::string forged = report("noreply@example.net", "example.net");
    forged.replace(forged.find("<feedback/>"), 11, "<feedback>!");
    EXPECT_EQ(author(forged), "");
    EXPECT_EQ(author(report("noreply@example.net", "")), "");
    // The key is gone, or DNS fails: not authenticated, and nothing thrown.
    const std::string good = report("noreply@example.net", "example.net");
    dns_.set_status("sel._domainkey.example.net", dns::LookupStatus::temporary_failure);
    EXPECT_EQ(author(good), "");
    dns_.set_status("sel._domainkey.example.net", dns::LookupStatus::no_such_name);
    EXPECT_EQ(author(good), "");
}

TEST_F(AuthorTest, TwoFromDomainsOrTwoFromFieldsAreNoAuthor) {
    // Signed as they are: the signature passes, but whose report is it?
    EXPECT_EQ(author(report("a@example.net, b@other.example", "example.net")), "");
    const std::string once = report("a@example.net", "example.net");
    ASSERT_EQ(author(once), "example.net");
    std::string twice = once;
    twice.insert(twice.find("\r\n\r\n") + 2, "From: eve@attacker.example\r\n");
    const std::size_t lookups = dns_.lookups();
    EXPECT_EQ(author(twice), "");
    EXPECT_EQ(dns_.lookups(), lookups) << "no key looked up for a message without one author";
    // Two mailboxes of the same domain are one author.
    EXPECT_EQ(author(report("a@example.net, b@Example.net", "example.net")), "example.net");
}

TEST_F(AuthorTest, ASignatureWithABodyLengthVouchesForNoReport) {
    // l= signs the first bytes of the body only (RFC 6376 §8.2): anyone holding such a message
    // of the reporter's may add a Content-Type (not signed here, or prepended above the signed
    // one) and append a report of their own, and the signature still passes. Such a signature
    // cannot say who wrote the report, so it names no reporter.
    const std::string body = "Hello, this is a note from example.net.\r\n";
    auto header = mail::HeaderBlock::parse(
        "From: noreply@example.net\r\nTo: dmarc-reports@example.org\r\n"
        "Subject: Report domain: example.org\r\nDate: Thu, 26 Nov 2025 00:00:00 +0000\r\n");
    ASSERT_TRUE(header);
    BodyHasher hasher(Canon::relaxed);
    hasher.update(body);
    const auto digest = hasher.finish();
    SignatureTemplate t;
    t.algorithm = key_->algorithm();
    t.domain = "example.net";
    t.selector = "sel";
    t.signed_headers = {"from", "to", "subject", "date"};
    t.body_hash.assign(reinterpret_cast<const char*>(digest.data()), digest.size());
    t.body_length = hasher.canonical_length();
    t.timestamp = 1764115200;
    const std::string rendered = render_signature_field(t);
    auto sig = key_->sign(signing_input(*header, t, rendered));
    ASSERT_TRUE(sig) << sig.error();
    const std::string genuine =
        complete_signature_field(rendered, *sig) + std::string(header->text()) + "\r\n" + body;
    std::string forged = genuine;
    forged.insert(forged.find("From:"), "Content-Type: multipart/mixed; boundary=\"x\"\r\n");
    forged +=
        "--x\r\nContent-Type: text/xml\r\n\r\n<feedback><report_metadata><org_name>"
        "google.com</org_name></report_metadata></feedback>\r\n--x--\r\n";
    KeyFetcher keys(dns_);
    auto verdicts = verify_message(forged, keys, kReceived);
    ASSERT_TRUE(verdicts);
    ASSERT_EQ(verdicts->size(), 1U);
    ASSERT_EQ((*verdicts)[0].result, mail::AuthResult::pass) << "what l= allows, by design";
    EXPECT_EQ(author(forged), "");
    EXPECT_EQ(author(genuine), "");
}

TEST(AuthenticationResults, StripsOnlyFieldsClaimingOurId) {
    const std::string header =
        "Authentication-Results: mx.example.net; dkim=pass header.d=bank.example\r\n"
        "authentication-results:   (forged)\r\n MX.Example.NET.; spf=pass\r\n"
        "Authentication-Results: \"mx.example.net\"; dmarc=pass\r\n"
        "Authentication-Results: mx.example.net.evil.example; dkim=pass\r\n"
        "Authentication-Results: upstream.example.org; spf=fail\r\n"
        "ARC-Authentication-Results: i=1; mx.example.net; dkim=pass\r\n"
        "Subject: hi\r\n";
    auto block = mail::HeaderBlock::parse(header);
    ASSERT_TRUE(block);
    std::size_t removed = 0;
    const std::string kept = mail::strip_authentication_results(*block, "mx.example.net", removed);
    EXPECT_EQ(removed, 3U);
    EXPECT_EQ(kept,
              "Authentication-Results: mx.example.net.evil.example; dkim=pass\r\n"
              "Authentication-Results: upstream.example.org; spf=fail\r\n"
              "ARC-Authentication-Results: i=1; mx.example.net; dkim=pass\r\n"
              "Subject: hi\r\n");
}

TEST(AuthenticationResults, AuthservIdParsing) {
    EXPECT_EQ(mail::authserv_id_of(" example.net; none"), "example.net");
    EXPECT_EQ(mail::authserv_id_of("(a (nested) comment)\r\n\texample.net 1; spf=pass"),
              "example.net");
    EXPECT_EQ(mail::authserv_id_of("\"Ex\\\"ample\"; none"), "ex\"ample");
    EXPECT_FALSE(mail::authserv_id_of("   "));
    EXPECT_FALSE(mail::authserv_id_of("(unterminated comment"));
    EXPECT_FALSE(mail::authserv_id_of("\"unterminated"));
}

TEST(AuthenticationResults, RendersSoftfailAndEscapedComments) {
    mail::MethodResult spf;
    spf.method = "spf";
    spf.result = mail::AuthResult::softfail;
    spf.comment = "matched ~all (really)";
    spf.properties.push_back({"smtp.mailfrom", "example.com"});
    EXPECT_EQ(mail::render_authentication_results("mx", {spf}),
              "Authentication-Results: mx;\r\n\tspf=softfail (matched ~all \\(really\\)) "
              "smtp.mailfrom=example.com\r\n");
}

}  // namespace
}  // namespace dkim::inbound

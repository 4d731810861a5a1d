#include "dkim/dkim/verifier.hpp"

#include <gtest/gtest.h>

#include "dkim/crypto/base64.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/dns/resolver.hpp"
#include "software_signer.hpp"

namespace dkim {
namespace {

using mail::AuthResult;
using namespace std::chrono_literals;

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1764115200));

// RFC 8463 §A.2: the Ed25519 key record for brisbane._domainkey.football.example.com.
constexpr const char* kBrisbaneRecord =
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

// A DNS record stored in a test data file, without the file's final newline.
std::string record_file(const char* path) {
    std::string text = test::read_test_file(path);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.pop_back();
    }
    return text;
}

std::vector<SignatureVerdict> verify(std::string_view message, dns::Resolver& resolver,
                                     std::chrono::system_clock::time_point now = kNow,
                                     VerifyOptions options = {}) {
    KeyFetcher keys(resolver);
    auto v = verify_message(message, keys, now, options);
    if (!v) {
        ADD_FAILURE() << v.error().to_string();
        return {};
    }
    return *v;
}

// Third-party vectors: the RFC 8463 Appendix A message as signed by dkimpy's test suite
// (Ed25519 with the RFC's key, and RSA with the RFC's 1024-bit test key), simple/simple.
TEST(VerifierVectorsTest, Rfc8463MessageSignedByDkimpy) {
    dns::FakeResolver resolver;
    resolver.set_txt("brisbane._domainkey.football.example.com", {kBrisbaneRecord});
    resolver.set_txt("test._domainkey.football.example.com", {record_file("dkimpy/test.txt")});
    const auto verdicts =
        verify(test::to_crlf(test::read_test_file("dkimpy/rfc6376.signed.msg")), resolver);
    ASSERT_EQ(verdicts.size(), 2U);
    EXPECT_EQ(verdicts[0].result, AuthResult::pass) << verdicts[0].reason;
    EXPECT_EQ(verdicts[0].algorithm, "ed25519-sha256");
    EXPECT_EQ(verdicts[0].identity, "@football.example.com");
    EXPECT_EQ(verdicts[1].result, AuthResult::pass) << verdicts[1].reason;
    EXPECT_EQ(verdicts[1].key_bits, 1024U);
}

// Exim's Ed25519 relaxed/relaxed signature, from dkimpy's test data.
TEST(VerifierVectorsTest, EximEd25519Relaxed) {
    dns::FakeResolver resolver;
    resolver.set_txt("sed._domainkey.test.ex", {record_file("dkimpy/eximtest.dns")});
    const auto verdicts = verify(test::read_test_file("dkimpy/ed25519test2.msg"), resolver);
    ASSERT_EQ(verdicts.size(), 1U);
    EXPECT_EQ(verdicts[0].result, AuthResult::pass) << verdicts[0].reason;
}

// Signing is deterministic for both algorithms (PKCS#1 v1.5 and EdDSA), so the signing input
// we build from a third party's DKIM-Signature field, signed with the same published key,
// must give exactly the third party's b=.
TEST(VerifierVectorsTest, OurSigningInputReproducesDkimpysSignatures) {
    const std::string message = test::to_crlf(test::read_test_file("dkimpy/rfc6376.signed.msg"));
    auto header = mail::HeaderBlock::parse(message.substr(0, message.find("\r\n\r\n") + 2));
    ASSERT_TRUE(header);
    const auto seed = crypto::base64_decode(test::read_test_file("dkimpy/rfc8032_7_1.key"));
    ASSERT_TRUE(seed);
    auto ed = test::SoftwareSigner::ed25519_from_seed(*seed);
    auto rsa = test::SoftwareSigner::from_pem(test::read_test_file("dkimpy/test.private"));
    const auto fields = header->find_all("DKIM-Signature");
    ASSERT_EQ(fields.size(), 2U);
    for (std::size_t k = 0; k < fields.size(); ++k) {
        auto sig = parse_signature(header->value(fields[k]));
        ASSERT_TRUE(sig);
        std::string input;
        canonicalize_signed_headers(*header, sig->signed_headers, sig->canonicalization.header,
                                    fields[k], input);
        canonicalize_signature_header(sig->canonicalization.header, header->raw(fields[k]), input);
        Signer& signer = k == 0 ? static_cast<Signer&>(*ed) : static_cast<Signer&>(*rsa);
        auto made = signer.sign(input);
        ASSERT_TRUE(made);
        EXPECT_EQ(crypto::base64_encode(*made), sig->signature_text) << "signature " << k;
    }
}

class VerifierTest : public testing::Test {
  protected:
    void SetUp() override {
        rsa_ = test::SoftwareSigner::generate(2048);
        ed_ = test::SoftwareSigner::generate(0);
        resolver_.set_txt("rsa._domainkey.example.com", {rsa_->key_record()});
        resolver_.set_txt("ed._domainkey.example.com", {ed_->key_record()});
    }

    std::string sign(std::string_view message, SignOptions options = {},
                     std::chrono::system_clock::time_point at = kNow) {
        auto signed_message = sign_message(message,
                                           {SigningKey{"example.com", "rsa", rsa_.get(), {}},
                                            SigningKey{"example.com", "ed", ed_.get(), {}}},
                                           at, options);
        EXPECT_TRUE(signed_message) << signed_message.error().message;
        return signed_message ? *signed_message : std::string{};
    }

    static std::string message() {
        return "From: Joe <joe@example.com>\r\n"
               "To: Suzie <suzie@example.net>\r\n"
               "Subject: Is dinner ready?\r\n"
               "Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n"
               "Message-ID: <1@example.com>\r\n"
               "\r\n"
               "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n";
    }

    void expect_all(const std::vector<SignatureVerdict>& verdicts, AuthResult result,
                    std::string_view reason) {
        ASSERT_EQ(verdicts.size(), 2U);
        for (const auto& v : verdicts) {
            EXPECT_EQ(v.result, result) << v.reason;
            EXPECT_NE(v.reason.find(reason), std::string::npos) << v.reason;
        }
    }

    dns::FakeResolver resolver_;
    std::unique_ptr<test::SoftwareSigner> rsa_;
    std::unique_ptr<test::SoftwareSigner> ed_;
};

TEST_F(VerifierTest, DualSignaturePasses) {
    const auto verdicts = verify(sign(message()), resolver_);
    expect_all(verdicts, AuthResult::pass, "");
    EXPECT_EQ(verdicts[0].algorithm, "rsa-sha256");
    EXPECT_EQ(verdicts[1].algorithm, "ed25519-sha256");
}

TEST_F(VerifierTest, BodyChangedFails) {
    std::string m = sign(message());
    m.append("P.S. added in transit\r\n");
    expect_all(verify(m, resolver_), AuthResult::fail, "body hash did not verify");
}

TEST_F(VerifierTest, SignedHeaderChangedFails) {
    std::string m = sign(message());
    m.replace(m.find("Is dinner ready?"), 16, "Is lunch ready??");
    expect_all(verify(m, resolver_), AuthResult::fail, "signature did not verify");
}

TEST_F(VerifierTest, AddedCopyOfAnOversignedHeaderFails) {
    std::string m = sign(message());
    // A second Subject above the signed one: the oversigned h= entry now selects it.
    m.insert(0, "Subject: You won a prize\r\n");
    expect_all(verify(m, resolver_), AuthResult::fail, "signature did not verify");
}

TEST_F(VerifierTest, AddedUnsignedHeaderStillPasses) {
    std::string m = sign(message());
    m.insert(0, "Received: from relay.example.net\r\n");
    expect_all(verify(m, resolver_), AuthResult::pass, "");
}

TEST_F(VerifierTest, RelaxedSurvivesWhitespaceChangesSimpleDoesNot) {
    std::string relaxed = sign(message());
    relaxed.replace(relaxed.find("Subject: Is"), 11, "subject:   Is");
    relaxed.replace(relaxed.find("hungry yet?"), 11, "hungry   yet?  ");
    expect_all(verify(relaxed, resolver_), AuthResult::pass, "");

    SignOptions simple;
    simple.canonicalization = {Canon::simple, Canon::simple};
    std::string s = sign(message(), simple);
    s.replace(s.find("hungry yet?"), 11, "hungry  yet?");
    expect_all(verify(s, resolver_), AuthResult::fail, "body hash");
}

TEST_F(VerifierTest, RevokedKeyIsPermerror) {
    const std::string m = sign(message());
    resolver_.set_txt("rsa._domainkey.example.com", {"v=DKIM1; k=rsa; p="});
    resolver_.set_txt("ed._domainkey.example.com", {"v=DKIM1; k=ed25519; p="});
    expect_all(verify(m, resolver_), AuthResult::permerror, "key revoked");
}

TEST_F(VerifierTest, MissingKeyIsPermerrorDnsFailureIsTemperror) {
    const std::string m = sign(message());
    resolver_.clear("rsa._domainkey.example.com");
    resolver_.set_status("ed._domainkey.example.com", dns::LookupStatus::temporary_failure);
    const auto v = verify(m, resolver_);
    ASSERT_EQ(v.size(), 2U);
    EXPECT_EQ(v[0].result, AuthResult::permerror);
    EXPECT_NE(v[0].reason.find("no key record"), std::string::npos);
    EXPECT_EQ(v[1].result, AuthResult::temperror);
}

TEST_F(VerifierTest, ExpiredAndFutureSignaturesArePolicy) {
    SignOptions expiring;
    expiring.expire_after = std::chrono::seconds(3600);
    const std::string m = sign(message(), expiring);
    expect_all(verify(m, resolver_, kNow + 30min), AuthResult::pass, "");
    expect_all(verify(m, resolver_, kNow + 2h), AuthResult::policy, "expired");
    expect_all(verify(m, resolver_, kNow - 1h), AuthResult::policy, "in the future");
    expect_all(verify(m, resolver_, kNow - 4min), AuthResult::pass, "");  // within clock skew
}

TEST_F(VerifierTest, KeyTypeMismatchAndDisallowedHash) {
    const std::string m = sign(message());
    resolver_.set_txt("rsa._domainkey.example.com", {ed_->key_record()});
    resolver_.set_txt("ed._domainkey.example.com",
                      {"v=DKIM1; k=ed25519; h=sha1; p=" +
                       ed_->key_record().substr(ed_->key_record().find("p=") + 2)});
    const auto v = verify(m, resolver_);
    EXPECT_EQ(v[0].result, AuthResult::permerror);
    EXPECT_NE(v[0].reason.find("does not match"), std::string::npos);
    EXPECT_EQ(v[1].result, AuthResult::permerror);
    EXPECT_NE(v[1].reason.find("h= does not allow"), std::string::npos);
}

TEST(VerifierRulesTest, ShortRsaKeyAndRsaSha1ArePermerror) {
    auto weak = test::SoftwareSigner::generate(512);
    dns::FakeResolver resolver;
    resolver.set_txt("weak._domainkey.example.com", {weak->key_record()});
    auto m = sign_message("From: a@example.com\r\n\r\nbody\r\n",
                          {SigningKey{"example.com", "weak", weak.get(), {}}}, kNow);
    ASSERT_TRUE(m);
    auto v = verify(*m, resolver);
    ASSERT_EQ(v.size(), 1U);
    EXPECT_EQ(v[0].result, AuthResult::permerror);
    EXPECT_NE(v[0].reason.find("512 bits is too short"), std::string::npos) << v[0].reason;

    std::string sha1 = *m;
    sha1.replace(sha1.find("a=rsa-sha256"), 12, "a=rsa-sha1");
    v = verify(sha1, resolver);
    EXPECT_EQ(v[0].result, AuthResult::permerror);
    EXPECT_NE(v[0].reason.find("rsa-sha1"), std::string::npos);
}

TEST_F(VerifierTest, UnsignedMessageIsNone) {
    const auto v = verify(message(), resolver_);
    ASSERT_EQ(v.size(), 1U);
    EXPECT_EQ(v[0].result, AuthResult::none);
}

TEST_F(VerifierTest, MalformedSignatureIsNeutral) {
    const auto v =
        verify("DKIM-Signature: v=1; a=rsa-sha256; d=example.com\r\n" + message(), resolver_);
    ASSERT_EQ(v.size(), 1U);
    EXPECT_EQ(v[0].result, AuthResult::neutral);
}

TEST_F(VerifierTest, SignaturesBeyondTheLimitArePolicy) {
    std::string m = sign(message());
    VerifyOptions options;
    options.max_signatures = 1;
    const auto v = verify(m, resolver_, kNow, options);
    ASSERT_EQ(v.size(), 2U);
    EXPECT_EQ(v[0].result, AuthResult::pass);
    EXPECT_EQ(v[1].result, AuthResult::policy);
}

TEST_F(VerifierTest, BodyLengthTag) {
    // l= is not something we sign with, so build a signature with it by hand.
    SignatureTemplate t;
    auto header = mail::HeaderBlock::parse("From: joe@example.com\r\nSubject: x\r\n");
    ASSERT_TRUE(header);
    const std::string body = "first line\r\n";
    BodyHasher hasher(Canon::relaxed);
    hasher.update(body);
    const auto digest = hasher.finish();
    t.domain = "example.com";
    t.selector = "rsa";
    t.signed_headers = {"from", "subject"};
    t.body_hash.assign(reinterpret_cast<const char*>(digest.data()), digest.size());
    t.body_length = hasher.canonical_length();
    t.timestamp = 1764115200;
    const std::string rendered = render_signature_field(t);
    auto sig = rsa_->sign(signing_input(*header, t, rendered));
    ASSERT_TRUE(sig);
    const std::string m =
        complete_signature_field(rendered, *sig) + std::string(header->text()) + "\r\n" + body;

    auto v = verify(m + "appended after signing\r\n", resolver_);
    EXPECT_EQ(v[0].result, AuthResult::pass) << v[0].reason;  // what l= allows, by design
    VerifyOptions strict;
    strict.allow_body_length = false;
    v = verify(m, resolver_, kNow, strict);
    EXPECT_EQ(v[0].result, AuthResult::policy);
    std::string shorter = m;
    shorter.replace(shorter.find("first line"), 10, "first");
    v = verify(shorter, resolver_);
    EXPECT_EQ(v[0].result, AuthResult::fail);
    EXPECT_NE(v[0].reason.find("shorter than l="), std::string::npos);
}

TEST_F(VerifierTest, StreamedBodyInTinyChunks) {
    const std::string m = sign(message());
    const std::size_t split = m.find("\r\n\r\n") + 4;
    auto header = mail::HeaderBlock::parse(m.substr(0, split - 2));
    ASSERT_TRUE(header);
    KeyFetcher keys(resolver_);
    MessageVerifier verifier(keys);
    verifier.start(std::move(*header));
    for (std::size_t i = split; i < m.size(); ++i) {
        verifier.update_body(std::string_view(m).substr(i, 1));
    }
    expect_all(verifier.finish(kNow), AuthResult::pass, "");
}

TEST_F(VerifierTest, KeysAreCachedBetweenMessages) {
    dns::FakeResolver counting;
    counting.set_txt("rsa._domainkey.example.com", {rsa_->key_record()}, 600s);
    counting.set_txt("ed._domainkey.example.com", {ed_->key_record()}, 600s);
    KeyFetcher keys(counting);
    const std::string m = sign(message());
    for (int i = 0; i < 3; ++i) {
        auto v = verify_message(m, keys, kNow + std::chrono::seconds(i));
        ASSERT_TRUE(v);
        EXPECT_EQ((*v)[0].result, AuthResult::pass);
    }
    EXPECT_EQ(counting.lookups(), 2U);
    auto v = verify_message(m, keys, kNow + 11min);  // past the TTL: looked up again
    ASSERT_TRUE(v);
    EXPECT_EQ(counting.lookups(), 4U);
}

TEST(AuthenticationResultsTest, RendersVerdicts) {
    SignatureVerdict pass;
    pass.result = AuthResult::pass;
    pass.domain = "example.com";
    pass.identity = "@example.com";
    pass.selector = "rsa";
    pass.algorithm = "rsa-sha256";
    pass.signature_prefix = "dGVz/+ab";
    SignatureVerdict fail = pass;
    fail.result = AuthResult::fail;
    fail.reason = "body hash did not verify";
    EXPECT_EQ(
        mail::render_authentication_results("mx.example.net", to_method_results({pass, fail})),
        "Authentication-Results: mx.example.net;\r\n"
        "\tdkim=pass header.d=example.com header.i=@example.com header.s=rsa"
        " header.a=rsa-sha256 header.b=\"dGVz/+ab\";\r\n"
        "\tdkim=fail reason=\"body hash did not verify\" header.d=example.com"
        " header.i=@example.com header.s=rsa header.a=rsa-sha256 header.b=\"dGVz/+ab\"\r\n");
    SignatureVerdict none;
    none.reason = "message not signed";
    EXPECT_EQ(mail::render_authentication_results("mx", to_method_results({none})),
              "Authentication-Results: mx;\r\n\tdkim=none reason=\"message not signed\"\r\n");
    EXPECT_EQ(mail::quote_if_needed("a \"b\"\r\n"), "\"a \\\"b\\\"  \"");
}

}  // namespace
}  // namespace dkim

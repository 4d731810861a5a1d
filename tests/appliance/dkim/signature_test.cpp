#include "dkim/dkim/signature.hpp"

#include <gtest/gtest.h>

#include "dkim/dkim/key_record.hpp"
#include "dkim/dkim/tag_list.hpp"

namespace dkim {
namespace {

constexpr std::string_view kGood =
    "v=1; a=rsa-sha256; c=relaxed/simple; d=Example.COM; s=Sel; i=joe@mail.example.com;"
    " t=1700000000; x=1700086400; l=42; q=dns/txt; h=From : To:subject;"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=dGVzdA==";

TEST(SignatureTest, ParsesEveryTag) {
    auto sig = parse_signature(kGood);
    ASSERT_TRUE(sig) << sig.error().message;
    EXPECT_EQ(sig->algorithm, SigningAlgorithm::rsa_sha256);
    EXPECT_EQ(sig->canonicalization.to_string(), "relaxed/simple");
    EXPECT_EQ(sig->domain, "example.com");
    EXPECT_EQ(sig->selector, "sel");
    EXPECT_EQ(sig->identity, "joe@mail.example.com");
    EXPECT_EQ(sig->timestamp, 1700000000);
    EXPECT_EQ(sig->expiration, 1700086400);
    EXPECT_EQ(sig->body_length, 42U);
    EXPECT_EQ(sig->signed_headers, (std::vector<std::string>{"From", "To", "subject"}));
    EXPECT_EQ(sig->body_hash.size(), 32U);
    EXPECT_EQ(sig->signature, "test");
    EXPECT_EQ(sig->signature_text, "dGVzdA==");
}

TEST(SignatureTest, DefaultsWhenOptionalTagsAreAbsent) {
    auto sig =
        parse_signature("v=1; a=ed25519-sha256; d=example.com; s=s; h=from; bh=AAAA; b=AAAA");
    ASSERT_TRUE(sig) << sig.error().message;
    EXPECT_EQ(sig->canonicalization.to_string(), "simple/simple");
    EXPECT_EQ(sig->identity, "@example.com");
    EXPECT_FALSE(sig->body_length);
    EXPECT_FALSE(sig->timestamp);
}

struct BadSignature {
    std::string value;
    SignatureError::Kind kind;
    const char* message;
};
// What ctest's test name shows of a case (CMake 3.25's gtest_discover_tests keeps gtest's
// "# GetParam() = ..." in the name): its text, not the struct's bytes, which hold pointers.
inline void PrintTo(const BadSignature& c, std::ostream* os) {
    *os << ::testing::PrintToString(std::string(c.value));
}

class SignatureRejectTest : public testing::TestWithParam<BadSignature> {};

TEST_P(SignatureRejectTest, KindAndReason) {
    auto sig = parse_signature(GetParam().value);
    ASSERT_FALSE(sig);
    EXPECT_EQ(sig.error().kind, GetParam().kind);
    EXPECT_NE(sig.error().message.find(GetParam().message), std::string::npos)
        << sig.error().message;
}

const std::string kBase = "a=rsa-sha256; d=example.com; s=s; bh=AAAA; b=AAAA; ";
using K = SignatureError::Kind;

INSTANTIATE_TEST_SUITE_P(
    Errors, SignatureRejectTest,
    testing::Values(
        BadSignature{"v=1; " + kBase, K::syntax, "required tag h="},
        BadSignature{"v=2; h=from; " + kBase, K::unacceptable, "unsupported DKIM version"},
        BadSignature{"v=1; h=to:subject; " + kBase, K::unacceptable, "does not include From"},
        BadSignature{"v=1; h=from; c=weird; " + kBase, K::unacceptable, "canonicalization"},
        BadSignature{"v=1; h=from; q=http/well-known; " + kBase, K::unacceptable, "dns/txt"},
        BadSignature{"v=1; h=from; i=joe@other.example; " + kBase, K::unacceptable, "i= domain"},
        BadSignature{"v=1; h=from; i=joe@badexample.com; " + kBase, K::unacceptable, "i= domain"},
        BadSignature{"v=1; h=from; t=200; x=100; " + kBase, K::syntax, "x= is not after t="},
        BadSignature{"v=1; h=from; l=-1; " + kBase, K::syntax, "l= is not a number"},
        BadSignature{"v=1; h=from; t=12x; " + kBase, K::syntax, "t= is not a timestamp"},
        BadSignature{"v=1; h=from; a=dsa-sha256; d=example.com; s=s; bh=AAAA; b=AAAA",
                     K::unacceptable, "unsupported signing algorithm"},
        BadSignature{"v=1; h=from; a=rsa-sha256; d=example..com; s=s; bh=AAAA; b=AAAA", K::syntax,
                     "d= is not a domain"},
        BadSignature{"v=1; h=from; a=rsa-sha256; d=example.com; s=s; bh=AAAA; b=A*AA", K::syntax,
                     "b= is not valid base64"},
        BadSignature{"v=1; h=from; h=to; " + kBase, K::syntax, "duplicate tag 'h'"},
        // RFC 6376 §3.5: t= and x= are 1*12DIGIT (fuzz_dkim_tag_list found t=-100 accepted).
        BadSignature{"v=1; h=from; t=-100; " + kBase, K::syntax, "t= is not a timestamp"},
        BadSignature{"v=1; h=from; x=-1; " + kBase, K::syntax, "x= is not a timestamp"}),
    [](const auto& param_info) { return "Case" + std::to_string(param_info.index); });

TEST(SignatureTest, RenderedFieldIsFoldedAndParsesBack) {
    SignatureTemplate t;
    t.algorithm = SigningAlgorithm::ed25519_sha256;
    t.domain = "example.com";
    t.selector = "ed25519";
    t.signed_headers = {"from",         "from",         "to",         "subject",    "subject",
                        "date",         "date",         "message-id", "message-id", "mime-version",
                        "content-type", "content-type", "list-id"};
    t.body_hash = std::string(32, '\x01');
    t.timestamp = 1764115200;
    t.expiration = 1764720000;
    const std::string rendered = render_signature_field(t);
    EXPECT_EQ(rendered.substr(rendered.size() - 2), "b=");
    const std::string field = complete_signature_field(rendered, std::string(64, '\x02'));
    std::size_t line_start = 0;
    for (std::size_t nl = field.find("\r\n"); nl != std::string::npos;
         nl = field.find("\r\n", line_start)) {
        const std::string_view line(field.data() + line_start, nl - line_start);
        const std::size_t width = line.front() == '\t' ? 8 + line.size() - 1 : line.size();
        EXPECT_LE(width, 78U) << line;  // a TAB counts as 8 columns
        line_start = nl + 2;
    }
    auto h = mail::HeaderBlock::parse(field);
    ASSERT_TRUE(h) << h.error().to_string();
    auto sig = parse_signature(h->value(0));
    ASSERT_TRUE(sig) << sig.error().message;
    EXPECT_EQ(sig->signed_headers, t.signed_headers);
    EXPECT_EQ(sig->signature, std::string(64, '\x02'));
    EXPECT_EQ(sig->body_hash, t.body_hash);
    EXPECT_EQ(sig->expiration, t.expiration);
}

TEST(KeyRecordTest, ParsesTagsAndDefaults) {
    auto k = parse_key_record(
        "v=DKIM1; k=ed25519; t=y:s; s=email; h=sha256; n=note; "
        "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    ASSERT_TRUE(k) << k.error();
    EXPECT_EQ(k->type, KeyType::ed25519);
    EXPECT_TRUE(k->testing);
    EXPECT_TRUE(k->strict_identity);
    EXPECT_TRUE(k->allows_sha256);
    EXPECT_EQ(k->public_key.size(), 32U);
    auto d = parse_key_record("p=MIGf");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->type, KeyType::rsa);
    EXPECT_FALSE(d->revoked);
}

TEST(KeyRecordTest, EmptyPMeansRevoked) {
    auto k = parse_key_record("v=DKIM1; k=rsa; p=");
    ASSERT_TRUE(k);
    EXPECT_TRUE(k->revoked);
}

TEST(KeyRecordTest, Rejects) {
    EXPECT_NE(parse_key_record("k=rsa; v=DKIM1; p=AAAA").error().find("first tag"),
              std::string::npos);
    EXPECT_NE(parse_key_record("v=DKIM2; p=AAAA").error().find("not DKIM1"), std::string::npos);
    EXPECT_NE(parse_key_record("k=dsa; p=AAAA").error().find("unknown key type"),
              std::string::npos);
    EXPECT_NE(parse_key_record("s=tls; p=AAAA").error().find("not for email"), std::string::npos);
    EXPECT_NE(parse_key_record("k=rsa").error().find("without p="), std::string::npos);
    EXPECT_NE(parse_key_record("p=A*A").error().find("base64"), std::string::npos);
    EXPECT_FALSE(parse_key_record("h=sha1; p=AAAA")->allows_sha256);
}

}  // namespace
}  // namespace dkim

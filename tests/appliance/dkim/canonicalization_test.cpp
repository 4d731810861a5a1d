#include "dkim/dkim/canonicalization.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace dkim {
namespace {

class StringSink final : public BodySink {
  public:
    void write(const char* data, std::size_t size) override { out.append(data, size); }
    std::string out;
};

std::string stream(Canon canon, std::string_view body, std::vector<std::size_t> cuts = {}) {
    StringSink sink;
    BodyCanonicalizer c(canon, sink);
    std::size_t pos = 0;
    for (const std::size_t cut : cuts) {
        c.update(body.substr(pos, cut - pos));
        pos = cut;
    }
    c.update(body.substr(pos));
    c.finish();
    return sink.out;
}

// RFC 6376 §3.4.5, "Canonicalization Examples (INFORMATIVE)".
constexpr std::string_view kExampleHeader = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
constexpr std::string_view kExampleBody = " C \r\nD \t E\r\n\r\n\r\n";

TEST(CanonicalizationTest, Rfc6376ExampleRelaxed) {
    auto h = mail::HeaderBlock::parse(std::string(kExampleHeader));
    ASSERT_TRUE(h);
    std::string out;
    canonicalize_header_relaxed(h->raw(0), out);
    canonicalize_header_relaxed(h->raw(1), out);
    EXPECT_EQ(out, "a:X\r\nb:Y Z\r\n");
    EXPECT_EQ(stream(Canon::relaxed, kExampleBody), " C\r\nD E\r\n");
}

TEST(CanonicalizationTest, Rfc6376ExampleSimple) {
    auto h = mail::HeaderBlock::parse(std::string(kExampleHeader));
    ASSERT_TRUE(h);
    std::string out;
    canonicalize_header_simple(h->raw(0), out);
    canonicalize_header_simple(h->raw(1), out);
    EXPECT_EQ(out, kExampleHeader);
    EXPECT_EQ(stream(Canon::simple, kExampleBody), " C \r\nD \t E\r\n");
}

struct BodyCase {
    const char* body;
    const char* simple;
    const char* relaxed;
};
// What ctest's test name shows of a case (CMake 3.25's gtest_discover_tests keeps gtest's
// "# GetParam() = ..." in the name): its text, not the struct's bytes, which hold pointers.
inline void PrintTo(const BodyCase& c, std::ostream* os) {
    *os << ::testing::PrintToString(std::string(c.body));
}

class BodyTableTest : public testing::TestWithParam<BodyCase> {};

TEST_P(BodyTableTest, StreamingAndReferenceAgree) {
    const BodyCase& c = GetParam();
    EXPECT_EQ(stream(Canon::simple, c.body), c.simple);
    EXPECT_EQ(stream(Canon::relaxed, c.body), c.relaxed);
    EXPECT_EQ(canonicalize_body_reference(Canon::simple, c.body), c.simple);
    EXPECT_EQ(canonicalize_body_reference(Canon::relaxed, c.body), c.relaxed);
}

// §3.4.3: "If there is no body or no trailing CRLF on the message body, a CRLF is added."
// §3.4.4: relaxed "If the body is non-empty but does not end with a CRLF, a CRLF is added"
// and an empty body stays empty (RFC 6376 erratum 1384 / dkimpy).
INSTANTIATE_TEST_SUITE_P(
    Rules, BodyTableTest,
    testing::Values(
        BodyCase{"", "\r\n", ""}, BodyCase{"\r\n", "\r\n", ""},
        BodyCase{"\r\n\r\n\r\n", "\r\n", ""}, BodyCase{"abc", "abc\r\n", "abc\r\n"},
        BodyCase{"abc\r\n", "abc\r\n", "abc\r\n"}, BodyCase{"abc\r\n\r\n", "abc\r\n", "abc\r\n"},
        BodyCase{"a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
        BodyCase{"a  b\t\tc \r\n", "a  b\t\tc \r\n", "a b c\r\n"},
        BodyCase{"  \r\n \t \r\n", "  \r\n \t \r\n", ""},
        BodyCase{"x\r\n \r\n\t\r\n", "x\r\n \r\n\t\r\n", "x\r\n"},
        BodyCase{"abc  ", "abc  \r\n", "abc \r\n"}, BodyCase{"a \rb\r\n", "a \rb\r\n", "a \rb\r\n"},
        BodyCase{"a\nb\n", "a\nb\n\r\n", "a\nb\n\r\n"}, BodyCase{"a\r", "a\r\r\n", "a\r\r\n"},
        BodyCase{"a \r\r\n", "a \r\r\n", "a \r\r\n"},
        BodyCase{"\tlead\r\n", "\tlead\r\n", " lead\r\n"}),
    [](const auto& param_info) { return "Case" + std::to_string(param_info.index); });

// Every way of cutting bodies into chunks gives the reference result.
TEST(CanonicalizationTest, StreamingMatchesReferenceForRandomBodiesAndCuts) {
    std::mt19937 rng(20261126);  // fixed seed: reproducible
    const std::string alphabet = "ab  \t\r\n\r\n";
    for (int iteration = 0; iteration < 4000; ++iteration) {
        std::string body(rng() % 80, 'x');
        for (char& c : body) {
            c = alphabet[rng() % alphabet.size()];
        }
        std::vector<std::size_t> cuts;
        for (std::size_t p = 0; p < body.size(); p += 1 + rng() % 7) {
            cuts.push_back(p);
        }
        for (const Canon canon : {Canon::simple, Canon::relaxed}) {
            ASSERT_EQ(stream(canon, body, cuts), canonicalize_body_reference(canon, body))
                << "canon " << to_string(canon) << " body '" << body << "'";
        }
    }
}

// Long runs exercise the vectorised scanner across its 16/32-byte blocks.
TEST(CanonicalizationTest, RelaxedScannerFindsRunsAtEveryOffset) {
    for (std::size_t offset = 0; offset < 80; ++offset) {
        for (const std::string_view run : {"  ", "\t", " \t", " \r\n", "\t\r\n"}) {
            std::string body(100, 'x');
            body.replace(offset, 0, run);
            body.append("\r\n");
            ASSERT_EQ(stream(Canon::relaxed, body),
                      canonicalize_body_reference(Canon::relaxed, body))
                << offset;
        }
    }
}

// Every vectorised scanner this CPU runs agrees with the scalar one, at every alignment and
// up to the end of the range (the canonicalizer only uses the fastest).
TEST(CanonicalizationTest, EveryRelaxedScannerAgreesWithScalar) {
    const auto scanners = detail::relaxed_scanners();
    ASSERT_GE(scanners.size(), 1U);
    std::mt19937 rng(7);
    const std::string alphabet = "abcdefgh \t\r\n";
    for (int iteration = 0; iteration < 3000; ++iteration) {
        std::string data(1 + rng() % 300, 'x');
        for (char& c : data) {
            c = (rng() % 8 == 0) ? alphabet[rng() % alphabet.size()] : 'x';
        }
        data.back() = 'x';  // the caller's guarantee: the range ends in content
        const std::size_t start = rng() % data.size();
        const std::size_t expected = scanners[0].find(data.data(), start, data.size());
        for (const auto& s : scanners) {
            ASSERT_EQ(s.find(data.data(), start, data.size()), expected)
                << s.name << " on '" << data << "' from " << start;
        }
    }
}

TEST(CanonicalizationTest, RelaxedHeaderRules) {
    std::string out;
    canonicalize_header_relaxed("SUBJect \t:\t  Hello \t World\r\n\t again  \r\n", out);
    EXPECT_EQ(out, "subject:Hello World again\r\n");
    out.clear();
    canonicalize_header_relaxed("X-Empty:   \r\n", out);
    EXPECT_EQ(out, "x-empty:\r\n");
    out.clear();
    canonicalize_header_relaxed("X-8bit: caf\xc3\xa9\r\n", out);
    EXPECT_EQ(out, "x-8bit:caf\xc3\xa9\r\n");
}

TEST(CanonicalizationTest, SignatureFieldLosesItsBValueOnly) {
    const std::string field =
        "DKIM-Signature: v=1; a=rsa-sha256; bh=abc=;\r\n\tb=dGVz\r\n\t dA==\r\n";
    std::string out;
    canonicalize_signature_header(Canon::simple, field, out);
    EXPECT_EQ(out, "DKIM-Signature: v=1; a=rsa-sha256; bh=abc=;\r\n\tb=");
    out.clear();
    canonicalize_signature_header(Canon::relaxed, field, out);
    EXPECT_EQ(out, "dkim-signature:v=1; a=rsa-sha256; bh=abc=; b=");
    out.clear();
    // b= in the middle, with white space around the tag name.
    canonicalize_signature_header(Canon::relaxed, "DKIM-Signature: b = xyz ; d=x\r\n", out);
    EXPECT_EQ(out, "dkim-signature:b =; d=x");
}

TEST(CanonicalizationTest, ParseCTag) {
    EXPECT_EQ(Canonicalization::parse("relaxed")->to_string(), "relaxed/simple");
    EXPECT_EQ(Canonicalization::parse("simple/relaxed")->to_string(), "simple/relaxed");
    EXPECT_FALSE(Canonicalization::parse("nowsp/simple"));
    EXPECT_FALSE(Canonicalization::parse("relaxed/"));
}

}  // namespace
}  // namespace dkim

#include "dkim/mail/header.hpp"

#include <gtest/gtest.h>

#include <string>

namespace dkim::mail {
namespace {

TEST(HeaderBlockTest, FieldsKeepTheirExactBytes) {
    auto h = HeaderBlock::parse("From: a@example.com\r\nSubject: hello\r\n  world\r\nTo:b@x\r\n");
    ASSERT_TRUE(h) << h.error().to_string();
    ASSERT_EQ(h->size(), 3U);
    EXPECT_EQ(h->raw(1), "Subject: hello\r\n  world\r\n");
    EXPECT_EQ(h->name(1), "Subject");
    EXPECT_EQ(h->value(1), " hello\r\n  world\r\n");
    EXPECT_EQ(h->unfolded_value(1), "hello  world");
    EXPECT_EQ(h->value(2), "b@x\r\n");
}

TEST(HeaderBlockTest, ObsoleteWhiteSpaceBeforeTheColon) {
    auto h = HeaderBlock::parse("Subject \t: x\r\n");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->name(0), "Subject");
    EXPECT_EQ(h->value(0), " x\r\n");
}

TEST(HeaderBlockTest, DuplicatesInOrderAndCaseInsensitiveLookup) {
    auto h = HeaderBlock::parse("Received: 1\r\nFROM: a\r\nreceived: 2\r\n");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->find_all("RECEIVED"), (std::vector<std::size_t>{0, 2}));
    EXPECT_EQ(h->find_first("from"), 1U);
    EXPECT_EQ(h->find_first("cc"), h->size());
}

TEST(HeaderBlockTest, EightBitBytesAndVeryLongFieldsAreKept) {
    std::string value(200000, 'x');
    value[7] = '\xe9';
    value[100] = '\0';
    auto h = HeaderBlock::parse("X-Long: " + value + "\r\n");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->value(0).size(), value.size() + 3);
    EXPECT_EQ(h->value(0)[8], '\xe9');
}

TEST(HeaderBlockTest, UnterminatedLastFieldIsAccepted) {
    auto h = HeaderBlock::parse("From: a\r\nSubject: b");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->raw(1), "Subject: b");
}

TEST(HeaderBlockTest, EmptyBlock) {
    auto h = HeaderBlock::parse("");
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->empty());
}

struct BadHeader {
    const char* text;
    std::size_t line;
    const char* message;
};
// What ctest's test name shows of a case (CMake 3.25's gtest_discover_tests keeps gtest's
// "# GetParam() = ..." in the name): its text, not the struct's bytes, which hold pointers.
inline void PrintTo(const BadHeader& c, std::ostream* os) {
    *os << ::testing::PrintToString(std::string(c.text));
}

class HeaderRejectTest : public testing::TestWithParam<BadHeader> {};

TEST_P(HeaderRejectTest, ClearErrorWithLine) {
    auto h = HeaderBlock::parse(GetParam().text);
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().line, GetParam().line);
    EXPECT_NE(h.error().message.find(GetParam().message), std::string::npos) << h.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, HeaderRejectTest,
    testing::Values(BadHeader{"From: a\r\nno colon here\r\n", 2, "without a colon"},
                    BadHeader{" leading: continuation\r\n", 1, "continuation line before"},
                    BadHeader{"From: a\r\nBad Name: x\r\n", 2, "invalid character"},
                    BadHeader{": empty name\r\n", 1, "empty name"},
                    BadHeader{"From: a\nTo: b\r\n", 1, "bare LF"},
                    BadHeader{"From: a\r\nTo: b\rc\r\n", 2, "bare CR"},
                    BadHeader{"From: a\r\n\r\nTo: b\r\n", 2, "empty line"}),
    [](const auto& param_info) { return "Case" + std::to_string(param_info.index); });

TEST(MessageSplitterTest, SeparatorSplitAcrossChunksAndBodyReturnedAsViews) {
    const std::string message = "From: a\r\nTo: b\r\n\r\nbody line\r\n";
    for (std::size_t cut1 = 0; cut1 <= message.size(); ++cut1) {
        for (std::size_t cut2 = cut1; cut2 <= message.size(); ++cut2) {
            MessageSplitter s;
            std::string body;
            for (auto part : {std::string_view(message).substr(0, cut1),
                              std::string_view(message).substr(cut1, cut2 - cut1),
                              std::string_view(message).substr(cut2)}) {
                auto b = s.feed(part);
                ASSERT_TRUE(b);
                body.append(*b);
            }
            ASSERT_TRUE(s.finish());
            auto h = s.take_header();
            ASSERT_TRUE(h);
            EXPECT_EQ(h->text(), "From: a\r\nTo: b\r\n") << cut1 << "," << cut2;
            EXPECT_EQ(body, "body line\r\n") << cut1 << "," << cut2;
        }
    }
}

TEST(MessageSplitterTest, MessageWithoutBodyIsAllHeader) {
    MessageSplitter s;
    ASSERT_TRUE(s.feed("From: a\r\nSubject: x\r\n"));
    EXPECT_FALSE(s.header_complete());
    ASSERT_TRUE(s.finish());
    auto h = s.take_header();
    ASSERT_TRUE(h);
    EXPECT_EQ(h->size(), 2U);
}

TEST(MessageSplitterTest, MessageWithoutHeaderFields) {
    MessageSplitter s;
    auto b = s.feed("\r\nonly body\r\n");
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, "only body\r\n");
    auto h = s.take_header();
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->empty());
}

TEST(MessageSplitterTest, OversizedHeaderIsRefusedAndStaysRefused) {
    MessageSplitter s(64);
    ASSERT_TRUE(s.feed("From: a\r\n"));
    auto b = s.feed("X: " + std::string(100, 'y') + "\r\n");
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find("longer than 64 bytes"), std::string::npos);
    EXPECT_FALSE(s.feed("more"));
    EXPECT_FALSE(s.finish());
}

TEST(HeaderBlockTest, AtMostTenThousandFields) {
    std::string section;
    for (std::size_t i = 0; i < kMaxHeaderFields; ++i) {
        section += "X:\r\n";
    }
    auto most = HeaderBlock::parse(section);
    ASSERT_TRUE(most) << most.error().to_string();
    EXPECT_EQ(most->size(), kMaxHeaderFields);
    auto over = HeaderBlock::parse(section + "Y: one more\r\n");
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().line, kMaxHeaderFields + 1);
    EXPECT_NE(over.error().message.find("more than 10000 header fields"), std::string::npos)
        << over.error().message;
}

}  // namespace
}  // namespace dkim::mail

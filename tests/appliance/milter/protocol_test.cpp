// The milter protocol's framing and packets (dkim/milter/protocol.hpp): what Postfix sends,
// byte for byte as its milter8.c writes it, and what a hostile MTA might send instead.
#include "dkim/milter/protocol.hpp"

#include <gtest/gtest.h>

#include "milter_packets.hpp"

namespace dkim::milter {
namespace {

using test::bin;
using test::packet;
using test::u32;

TEST(MilterPacketReaderTest, FramesPacketsWhateverTheChunking) {
    const std::string stream = packet('O', u32(6) + u32(0x1ff) + u32(0x1fffff)) +
                               packet('L', bin("From\0 a@b\0")) + packet('N', "");
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        PacketReader reader(1024);
        std::vector<Packet> got;
        for (std::size_t at = 0; at < stream.size(); at += step) {
            reader.feed(std::string_view(stream).substr(at, step));
            for (;;) {
                auto next = reader.next();
                ASSERT_TRUE(next) << next.error().message;
                if (!*next) {
                    break;
                }
                got.push_back(std::move(**next));
            }
        }
        ASSERT_EQ(got.size(), 3u) << "chunks of " << step;
        EXPECT_EQ(got[0].command, 'O');
        EXPECT_EQ(got[0].data.size(), 12u);
        EXPECT_EQ(got[1].command, 'L');
        EXPECT_EQ(got[1].data, bin("From\0 a@b\0"));
        EXPECT_EQ(got[2].command, 'N');
        EXPECT_TRUE(got[2].data.empty());
        EXPECT_EQ(reader.buffered(), 0u);
    }
}

TEST(MilterPacketReaderTest, ALengthOfZeroOrOverTheLimitIsAnErrorBeforeAnyByteIsBuffered) {
    PacketReader zero(1024);
    zero.feed(u32(0) + "x");
    EXPECT_FALSE(zero.next());

    PacketReader big(1024);
    big.feed(u32(1025));  // announced only: the reader refuses before the bytes come
    auto next = big.next();
    ASSERT_FALSE(next);
    EXPECT_NE(next.error().message.find("1025"), std::string::npos);
    EXPECT_NE(next.error().message.find("1024"), std::string::npos);

    PacketReader huge(1024);
    huge.feed(u32(0xffffffff));
    EXPECT_FALSE(huge.next());

    PacketReader exact(1024);
    exact.feed(u32(1024) + 'B' + std::string(1023, 'x'));
    auto whole = exact.next();
    ASSERT_TRUE(whole && *whole);
    EXPECT_EQ((*whole)->data.size(), 1023u);
}

TEST(MilterPacketTest, NegotiationIsThreeWordsAndMayHaveMore) {
    auto n = parse_negotiation(u32(6) + u32(0x1ff) + u32(0x1fffff));
    ASSERT_TRUE(n);
    EXPECT_EQ(n->version, 6u);
    EXPECT_EQ(n->actions, 0x1ffu);
    EXPECT_EQ(n->steps, 0x1fffffu);
    EXPECT_TRUE(parse_negotiation(u32(6) + u32(1) + u32(2) + "extra"));
    EXPECT_FALSE(parse_negotiation(u32(6) + u32(1)));

    const std::string reply = encode_negotiation(Negotiation{6, 0x31, 0x1003});
    EXPECT_EQ(reply, u32(13) + 'O' + u32(6) + u32(0x31) + u32(0x1003));
}

TEST(MilterPacketTest, ConnectCarriesTheHostAddressFamilyPortAndAddress) {
    auto c =
        parse_connect(bin("mail.example.net\0"
                          "4\x01\x19"
                          "192.0.2.7\0"));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->hostname, "mail.example.net");
    EXPECT_EQ(c->family, Connect::Family::ipv4);
    EXPECT_EQ(c->port, 281);
    EXPECT_EQ(c->address, "192.0.2.7");

    auto v6 =
        parse_connect(bin("h\0"
                          "6\x00\x19"
                          "IPv6:2001:db8::1\0"));
    ASSERT_TRUE(v6) << v6.error().message;
    EXPECT_EQ(v6->family, Connect::Family::ipv6);
    EXPECT_EQ(v6->address, "IPv6:2001:db8::1");

    auto unknown = parse_connect(bin("localhost\0U"));
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->family, Connect::Family::unknown);

    EXPECT_FALSE(parse_connect("no-nul"));
    EXPECT_FALSE(parse_connect(bin("h\0")));  // no family
    EXPECT_FALSE(
        parse_connect(bin("h\0"
                          "X\0\0"
                          "a\0")));  // bad family
    EXPECT_FALSE(
        parse_connect(bin("h\0"
                          "4\0")));  // no port
    EXPECT_FALSE(
        parse_connect(bin("h\0"
                          "4\0\x19"
                          "1.2.3.4")));  // no NUL
    EXPECT_FALSE(
        parse_connect(bin("h\0"
                          "4\0\x19"
                          "1.2.3.4\0x")));
}

TEST(MilterPacketTest, StringsHeadersAndMacros) {
    auto mail = parse_strings(bin("<a@example.com>\0SIZE=100\0"));
    ASSERT_TRUE(mail);
    EXPECT_EQ(*mail, (std::vector<std::string>{"<a@example.com>", "SIZE=100"}));
    EXPECT_FALSE(parse_strings(bin("<a@b>\0tail")));
    EXPECT_TRUE(parse_strings("")->empty());

    auto h = parse_header(bin("Subject\0 hi\n\tthere\0"));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->name, "Subject");
    EXPECT_EQ(h->value, " hi\n\tthere");
    EXPECT_FALSE(parse_header(bin("Subject\0hi")));          // no NUL after value
    EXPECT_FALSE(parse_header(bin("\0hi\0")));               // empty name
    EXPECT_FALSE(parse_header(bin("Sub ject\0hi\0")));       // space in the name
    EXPECT_FALSE(parse_header(bin("Sub:ject\0hi\0")));       // colon in the name
    EXPECT_FALSE(parse_header(bin("Subject\0hi\0more\0")));  // a third string

    auto m =
        parse_macros(bin("M{auth_authen}\0alice\0i\0"
                         "4F2A\0"));
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->for_command, 'M');
    ASSERT_EQ(m->values.size(), 2u);
    EXPECT_EQ(m->values[0], (std::pair<std::string, std::string>{"{auth_authen}", "alice"}));
    EXPECT_EQ(m->values[1], (std::pair<std::string, std::string>{"i", "4F2A"}));
    EXPECT_FALSE(parse_macros(""));
    EXPECT_FALSE(parse_macros(bin("Mname\0")));  // a name without its value
}

TEST(MilterPacketTest, RepliesAreWholePackets) {
    EXPECT_EQ(encode(reply::continue_), u32(1) + "c");
    EXPECT_EQ(encode_insert_header(0, "DKIM-Signature", " v=1;\n\tb=x"),
              u32(1 + 4 + 15 + 11) + "i" + u32(0) + bin("DKIM-Signature\0 v=1;\n\tb=x\0"));
    EXPECT_EQ(encode_change_header(2, "Authentication-Results", ""),
              u32(1 + 4 + 23 + 1) + "m" + u32(2) + bin("Authentication-Results\0\0"));
    // An embedded NUL would end the value early at the MTA: it is cut there.
    EXPECT_EQ(encode_insert_header(0, "X", bin("a\0b")),
              u32(1 + 4 + 2 + 2) + "i" + u32(0) + bin("X\0a\0"));
    const std::string code =
        encode_reply_code(451, "4.7.0", "awaiting approval (request 7)\r\n100%");
    EXPECT_EQ(code.substr(4, 1), "y");
    EXPECT_EQ(code.substr(5), bin("451 4.7.0 awaiting approval (request 7) 100?\0"));
}

TEST(MilterPacketTest, ReplyTextIsOnePrintableLineWithinItsLimit) {
    EXPECT_EQ(reply_text("a\r\nb\tc\x01\xff"), "a b c??");
    EXPECT_EQ(reply_text(std::string(1000, 'x')).size(), 399u);
    EXPECT_EQ(reply_text("50%", 5), "50?");
}

}  // namespace
}  // namespace dkim::milter

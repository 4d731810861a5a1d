#include "dkim/smtp/protocol.hpp"

#include <gtest/gtest.h>

#include <random>

namespace dkim::smtp {
namespace {

TEST(SmtpCommandTest, VerbsAreCaseInsensitiveAndKeepTheArgument) {
    const auto c = parse_command("mail FROM:<a@b.example> SIZE=10  ");
    EXPECT_EQ(c.verb, Verb::mail);
    EXPECT_EQ(c.argument, "FROM:<a@b.example> SIZE=10");
    EXPECT_EQ(parse_command("StartTLS").verb, Verb::starttls);
    EXPECT_EQ(parse_command("QUIT").argument, "");
    const auto unknown = parse_command("XYZZYXYZZYXYZZYXYZZY now");
    EXPECT_EQ(unknown.verb, Verb::unknown);
    EXPECT_EQ(unknown.verb_text.size(), 16u) << "never echoes much of an unknown verb";
}

TEST(SmtpPathTest, MailFromAcceptsWhatRfc5321Allows) {
    auto p = parse_mail_from("FROM:<Alice.Smith@Example.COM> SIZE=1024 BODY=8BITMIME");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->address, "Alice.Smith@Example.COM");
    EXPECT_EQ(p->local_part, "Alice.Smith");
    EXPECT_EQ(p->domain, "example.com");
    ASSERT_EQ(p->parameters.size(), 2u);
    EXPECT_EQ(p->parameters[0].keyword, "SIZE");
    EXPECT_EQ(*p->parameters[0].value, "1024");
    EXPECT_TRUE(parse_mail_from("FROM:<>"));
    EXPECT_TRUE(parse_mail_from("from: <a@b.example>")) << "a space after the colon is tolerated";
    auto quoted = parse_mail_from(R"(FROM:<"john doe>\"x"@example.com>)");
    ASSERT_TRUE(quoted) << quoted.error().message;
    EXPECT_EQ(quoted->domain, "example.com");
    auto routed = parse_mail_from("FROM:<@relay.example,@other.example:user@example.com>");
    ASSERT_TRUE(routed);
    EXPECT_EQ(routed->address, "user@example.com");
    EXPECT_TRUE(parse_mail_from("FROM:<user@[192.0.2.1]>"));
    EXPECT_TRUE(parse_mail_from("FROM:<user@[IPv6:2001:db8::1]>"));
    auto utf8 = parse_mail_from("FROM:<jörg@example.com> SMTPUTF8");
    ASSERT_TRUE(utf8);
    EXPECT_TRUE(utf8->utf8);
}

TEST(SmtpPathTest, MalformedPathsAreRefused) {
    for (const char* bad :
         {"FROM:a@b.example", "FROM:<a@b.example", "FROM:<a@>", "FROM:<@b.example>",
          "FROM:<a..b@b.example>", "FROM:<.a@b.example>", "FROM:<a@-b.example>",
          "FROM:<a@b..example>", "FROM:<a@[300.1.1.1]>", "TO:<a@b.example>",
          "FROM:<a@b.example>SIZE=1", "FROM:<a@b.example> SIZE=", "FROM:<a@b.example> =x",
          "FROM:<a@b.example> SIZE=1 SIZE=2", "FROM:<a b@c.example>"}) {
        EXPECT_FALSE(parse_mail_from(bad)) << bad;
    }
    const std::string long_local(65, 'a');
    EXPECT_FALSE(parse_mail_from("FROM:<" + long_local + "@b.example>"));
    EXPECT_FALSE(parse_rcpt_to("TO:<>")) << "the null path is not a recipient";
    EXPECT_TRUE(parse_rcpt_to("TO:<Postmaster>"));
    EXPECT_FALSE(parse_rcpt_to("TO:<bob>"));
}

// Found by fuzz_smtp_protocol: std::strchr took a NUL for one of atext's specials, and
// inet_pton read an address literal only up to a NUL, so paths with NUL bytes were accepted
// and would have been written into the next hop's MAIL and RCPT lines.
TEST(SmtpPathTest, NulBytesAreRefused) {
    using namespace std::string_literals;
    for (const std::string& bad :
         {"FROM:<\0a@b.example>"s, "FROM:<a\0b@b.example>"s, "FROM:<a@[192.0.2.1\0x]>"s,
          "FROM:<a@[IPv6:2001:db8::1\0x]>"s, "FROM:<a@b.example\0>"s}) {
        EXPECT_FALSE(parse_mail_from(bad)) << "NUL at " << bad.find('\0');
        EXPECT_FALSE(parse_rcpt_to("TO:" + bad.substr(5))) << "NUL at " << bad.find('\0');
    }
    EXPECT_TRUE(parse_mail_from("FROM:<!#$%&'*+-/=?^_`{|}~@b.example>")) << "atext's specials";
}

TEST(SmtpDomainTest, Names) {
    EXPECT_TRUE(is_valid_domain("mail.example.com"));
    EXPECT_TRUE(is_valid_domain("xn--bcher-kva.example"));
    EXPECT_FALSE(is_valid_domain("bücher.example"));
    EXPECT_TRUE(is_valid_domain("bücher.example", true));
    EXPECT_FALSE(is_valid_domain(std::string(64, 'a') + ".example"));
    EXPECT_FALSE(is_valid_domain("a_b.example"));
    EXPECT_FALSE(is_valid_domain(""));
    EXPECT_FALSE(is_valid_domain("example.com."));
}

TEST(SmtpXtextTest, Decodes) {
    EXPECT_EQ(decode_xtext("a+2Bb"), "a+b");
    EXPECT_FALSE(decode_xtext("a+2"));
    EXPECT_FALSE(decode_xtext("a+zz"));
    EXPECT_FALSE(decode_xtext("a=b"));
}

TEST(LineBufferTest, LinesEndInCrlfOnly) {
    LineBuffer b(20);
    std::string line;
    b.append("EHLO a\r\nNOOP\r");
    ASSERT_EQ(b.next_line(line), LineBuffer::Status::line);
    EXPECT_EQ(line, "EHLO a");
    EXPECT_EQ(b.next_line(line), LineBuffer::Status::need_more) << "the CR's LF has not arrived";
    b.append("\n");
    ASSERT_EQ(b.next_line(line), LineBuffer::Status::line);
    EXPECT_EQ(line, "NOOP");
    LineBuffer bare_lf;
    bare_lf.append("NOOP\nQUIT\r\n");
    EXPECT_EQ(bare_lf.next_line(line), LineBuffer::Status::bare_newline);
    LineBuffer bare_cr;
    bare_cr.append("NOOP\rQUIT\r\n");
    EXPECT_EQ(bare_cr.next_line(line), LineBuffer::Status::bare_newline);
    LineBuffer longer(20);
    longer.append(std::string(21, 'x'));
    EXPECT_EQ(longer.next_line(line), LineBuffer::Status::too_long);
    LineBuffer exact(20);
    exact.append(std::string(20, 'x') + "\r\n");
    EXPECT_EQ(exact.next_line(line), LineBuffer::Status::line);
}

// Feeds `wire` to a decoder in pieces of `piece` bytes.
struct Decoded {
    DataDecoder::Status status = DataDecoder::Status::more;
    std::string message;
    std::size_t consumed = 0;
    bool too_long = false;
    bool oversized = false;
};
Decoded decode(std::string_view wire, std::size_t piece, std::size_t max_size = 1 << 20,
               std::size_t max_line = 998) {
    DataDecoder d(max_line);
    Decoded out;
    for (std::size_t i = 0; i < wire.size(); i += piece) {
        const auto r = d.feed(wire.substr(i, piece), out.message, max_size);
        out.consumed += r.consumed;
        if (r.status != DataDecoder::Status::more) {
            out.status = r.status;
            break;
        }
    }
    out.too_long = d.line_too_long();
    out.oversized = d.oversized();
    return out;
}

TEST(DataDecoderTest, UnstuffsAndStopsAtTheEndOfDataLineWhateverTheChunks) {
    const std::string wire = "Subject: x\r\n\r\n..dot\r\n.\r\nNEXT COMMAND\r\n";
    for (std::size_t piece : {1u, 2u, 3u, 7u, 100u}) {
        const auto d = decode(wire, piece);
        EXPECT_EQ(d.status, DataDecoder::Status::done) << piece;
        EXPECT_EQ(d.message, "Subject: x\r\n\r\n.dot\r\n") << piece;
        EXPECT_EQ(d.consumed, wire.find("NEXT")) << "the pipelined command stays unread";
    }
    EXPECT_EQ(decode(".\r\n", 1).message, "") << "an empty message";
    EXPECT_EQ(decode(".\r\n", 1).status, DataDecoder::Status::done);
}

TEST(DataDecoderTest, EverySmugglingLookAlikeIsABareNewline) {
    for (const char* sequence :
         {"\n.\r\n", "\r\n.\n", "\n.\n", "\r.\r\n", "\r\n.\r", "a\rb", "a\nb"}) {
        const std::string wire = std::string("x") + sequence + "y\r\n.\r\n";
        for (std::size_t piece : {1u, 64u}) {
            EXPECT_EQ(decode(wire, piece).status, DataDecoder::Status::bare_newline)
                << testing::PrintToString(sequence) << " in pieces of " << piece;
        }
    }
}

TEST(DataDecoderTest, SizeAndLineLimitsAreReportedAtTheEnd) {
    const auto big = decode(std::string(2000, 'a') + "\r\n.\r\n", 50, 1000, 5000);
    EXPECT_EQ(big.status, DataDecoder::Status::done);
    EXPECT_TRUE(big.oversized);
    EXPECT_TRUE(big.message.empty()) << "nothing kept beyond the limit";
    const auto wide = decode(std::string(999, 'a') + "\r\n.\r\n", 13);
    EXPECT_TRUE(wide.too_long);
    EXPECT_FALSE(decode(std::string(998, 'a') + "\r\n.\r\n", 13).too_long);
}

TEST(DotStuffTest, RoundTripsThroughTheDecoder) {
    std::mt19937 random(7);
    const std::string alphabet = ".a \r\n";
    for (int round = 0; round < 500; ++round) {
        // A message of CRLF lines (the only kind the decoder lets through).
        std::string message;
        const int lines = static_cast<int>(random() % 6);
        for (int l = 0; l < lines; ++l) {
            const int length = static_cast<int>(random() % 5);
            for (int i = 0; i < length; ++i) {
                message += ".ab"[random() % 3];
            }
            message += "\r\n";
        }
        std::string wire;
        dot_stuff(message, wire);
        wire += ".\r\n";
        const auto d = decode(wire, 1 + random() % 4);
        ASSERT_EQ(d.status, DataDecoder::Status::done) << testing::PrintToString(message);
        EXPECT_EQ(d.message, message);
        EXPECT_EQ(d.consumed, wire.size());
    }
}

TEST(ReplyParserTest, MultiLineRepliesAndEnhancedCodes) {
    ReplyParser p;
    auto first = p.add_line("250-mx.example Hello");
    ASSERT_TRUE(first);
    EXPECT_FALSE(*first);
    ASSERT_TRUE(p.add_line("250-PIPELINING"));
    auto done = p.add_line("250 SIZE 1000");
    ASSERT_TRUE(done && *done);
    EXPECT_EQ((*done)->code, 250);
    EXPECT_EQ((*done)->lines.size(), 3u);
    auto enhanced = ReplyParser().add_line("451 4.7.0 Try later");
    ASSERT_TRUE(enhanced && *enhanced);
    EXPECT_EQ((*enhanced)->enhanced, "4.7.0");
    EXPECT_EQ((*enhanced)->text, "Try later");
    auto mismatch = ReplyParser().add_line("550 4.7.0 wrong class");
    ASSERT_TRUE(mismatch && *mismatch);
    EXPECT_EQ((*mismatch)->enhanced, "") << "an enhanced code of another class is text";
    EXPECT_EQ(ReplyParser().add_line("250")->value().code, 250);
    ReplyParser q;
    ASSERT_TRUE(q.add_line("250-a"));
    EXPECT_FALSE(q.add_line("251 b")) << "codes must agree";
    for (const char* bad : {"25", "abc ok", "150 x", "250x", "650 x"}) {
        EXPECT_FALSE(ReplyParser().add_line(bad)) << bad;
    }
}

TEST(ReplyFormatTest, MultiLine) {
    EXPECT_EQ(format_reply(250, "", std::vector<std::string>{"a", "b"}), "250-a\r\n250 b\r\n");
    EXPECT_EQ(format_reply(451, "4.7.0", "later"), "451 4.7.0 later\r\n");
}

}  // namespace
}  // namespace dkim::smtp

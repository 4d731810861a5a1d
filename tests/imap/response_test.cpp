// dkim_imap: responses split off a byte stream (literals by their length, any chunking, the
// caps), and the SEARCH, FETCH, CAPABILITY and completion parsers on what real servers send and
// on what a hostile one might. The fetcher's URL and --after-store.

#include "dkim/imap/response.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dkim::imap {
namespace {

std::vector<Response> imap_test_read_all(std::string_view bytes, std::size_t chunk,
                                         const Limits& limits = {}) {
    ResponseReader reader(limits);
    std::vector<Response> out;
    for (std::size_t i = 0; i < bytes.size(); i += chunk) {
        reader.feed(bytes.substr(i, chunk));
        while (true) {
            auto next = reader.next();
            EXPECT_TRUE(next) << (next ? "" : next.error());
            if (!next || !*next) {
                break;
            }
            out.push_back(std::move(**next));
        }
    }
    return out;
}

Response imap_test_one(std::string_view bytes) {
    auto all = imap_test_read_all(bytes, bytes.size());
    EXPECT_EQ(all.size(), 1U);
    return all.empty() ? Response{} : std::move(all.front());
}

TEST(ImapResponseTest, SplitsTaggedUntaggedAndContinuationInAnyChunking) {
    const std::string stream =
        "* OK [CAPABILITY IMAP4rev1] ready\r\n"
        "* 2 FETCH (UID 7 BODY[] {12}\r\nhello\r\nworld)\r\n"
        "+ go ahead\r\n"
        "F1 OK done\r\n";
    for (const std::size_t chunk : {1UL, 2UL, 3UL, 7UL, 64UL}) {
        const auto all = imap_test_read_all(stream, chunk);
        ASSERT_EQ(all.size(), 4U) << chunk;
        EXPECT_EQ(all[0].kind, Response::Kind::untagged);
        EXPECT_EQ(all[0].text, "OK [CAPABILITY IMAP4rev1] ready");
        EXPECT_EQ(all[1].text, "2 FETCH (UID 7 BODY[] {12}\r\n)");
        ASSERT_EQ(all[1].literals.size(), 1U);
        EXPECT_EQ(all[1].literals[0], "hello\r\nworld");
        EXPECT_EQ(all[2].kind, Response::Kind::continuation);
        EXPECT_EQ(all[2].text, "go ahead");
        EXPECT_EQ(all[3].kind, Response::Kind::tagged);
        EXPECT_EQ(all[3].tag, "F1");
        EXPECT_EQ(all[3].text, "OK done");
    }
}

TEST(ImapResponseTest, ALiteralHidesWhatLooksLikeACompletion) {
    // A message's line that reads like our tag's completion is message, not protocol.
    const std::string body = "F3 OK fake\r\n* SEARCH 1\r\n+ x\r\n";
    const std::string stream = "* 1 FETCH (UID 9 BODY[] {" + std::to_string(body.size()) + "}\r\n" +
                               body + ")\r\nF3 OK real\r\n";
    auto all = imap_test_read_all(stream, 5);
    ASSERT_EQ(all.size(), 2U);
    auto fetch = parse_fetch(all[0]);
    ASSERT_TRUE(fetch) << fetch.error();
    EXPECT_EQ(fetch->uid, 9U);
    EXPECT_EQ(fetch->body, body);
    EXPECT_EQ(all[1].text, "OK real");
}

TEST(ImapResponseTest, CapsLinesAndLiterals) {
    Limits limits;
    limits.max_line = 64;
    limits.max_literal = 10;
    {
        ResponseReader reader(limits);
        reader.feed(std::string(66, 'a'));
        auto next = reader.next();
        ASSERT_FALSE(next);
        EXPECT_NE(next.error().find("longer than 64"), std::string::npos);
        reader.feed("\r\n* OK\r\n");
        EXPECT_FALSE(reader.next());  // final
    }
    {
        ResponseReader reader(limits);
        reader.feed("* 1 FETCH (BODY[] {11}\r\n");
        auto next = reader.next();
        ASSERT_FALSE(next);
        EXPECT_NE(next.error().find("literal of 11 bytes"), std::string::npos);
    }
    {
        ResponseReader reader(limits);
        reader.feed("* 1 FETCH (BODY[] {99999999999999999999999}\r\n");
        EXPECT_FALSE(reader.next());
    }
    {
        Limits few;
        few.max_literals = 2;
        ResponseReader reader(few);
        reader.feed("* X {1}\r\na {1}\r\nb {1}\r\nc\r\n");
        EXPECT_FALSE(reader.next());
    }
    {
        ResponseReader reader(limits);
        reader.feed(std::string("* OK a\0b\r\n", 10));
        EXPECT_FALSE(reader.next());
    }
    {
        ResponseReader reader(limits);
        reader.feed("NOSPACE\r\n");
        EXPECT_FALSE(reader.next());
    }
}

TEST(ImapResponseTest, AnIncompleteResponseWaits) {
    ResponseReader reader;
    reader.feed("* 1 FETCH (BODY[] {5}\r\nab");
    auto next = reader.next();
    ASSERT_TRUE(next);
    EXPECT_FALSE(*next);
    reader.feed("cde)\r");
    next = reader.next();
    ASSERT_TRUE(next);
    EXPECT_FALSE(*next);
    reader.feed("\n");
    next = reader.next();
    ASSERT_TRUE(next && *next);
    EXPECT_EQ((*next)->literals.at(0), "abcde");
    EXPECT_EQ(reader.pending(), 0U);
}

TEST(ImapResponseTest, Search) {
    auto r = imap_test_one("* SEARCH 42 3 17 3\r\n");
    EXPECT_EQ(untagged_keyword(r), "SEARCH");
    auto uids = parse_search(r);
    ASSERT_TRUE(uids) << uids.error();
    EXPECT_EQ(*uids, (std::vector<std::uint32_t>{3, 17, 42}));

    auto empty = parse_search(imap_test_one("* SEARCH\r\n"));
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
    auto trailing = parse_search(imap_test_one("* search 1 \r\n"));
    ASSERT_TRUE(trailing);
    EXPECT_EQ(*trailing, (std::vector<std::uint32_t>{1}));
    EXPECT_TRUE(parse_search(imap_test_one("* SEARCH 4294967295\r\n")));

    for (const char* bad :
         {"* SEARCH 0\r\n", "* SEARCH 4294967296\r\n", "* SEARCH -1\r\n", "* SEARCH 1 x\r\n",
          "* SEARCH 1 (MODSEQ 5)\r\n", "* SEARCH 99999999999999999999999\r\n", "* EXISTS 1\r\n",
          "F1 SEARCH 1\r\n"}) {
        EXPECT_FALSE(parse_search(imap_test_one(bad))) << bad;
    }
}

TEST(ImapResponseTest, Capability) {
    auto caps = parse_capability(imap_test_one("* CAPABILITY IMAP4rev1 move UIDPLUS IDLE\r\n"));
    ASSERT_TRUE(caps);
    EXPECT_EQ(caps->count("MOVE"), 1U);
    EXPECT_EQ(caps->count("UIDPLUS"), 1U);
    EXPECT_FALSE(parse_capability(imap_test_one("* OK CAPABILITY MOVE\r\n")));
}

TEST(ImapResponseTest, Completion) {
    auto ok = parse_completion(imap_test_one("F7 ok [READ-WRITE] Select completed\r\n"));
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, "OK");
    EXPECT_EQ(ok->text, "[READ-WRITE] Select completed");
    auto no = parse_completion(imap_test_one("F8 NO\r\n"));
    ASSERT_TRUE(no);
    EXPECT_EQ(no->status, "NO");
    EXPECT_FALSE(parse_completion(imap_test_one("F9 MAYBE x\r\n")));
    EXPECT_FALSE(parse_completion(imap_test_one("* OK x\r\n")));
}

TEST(ImapResponseTest, UntaggedKeyword) {
    EXPECT_EQ(untagged_keyword(imap_test_one("* 12 EXISTS\r\n")), "EXISTS");
    EXPECT_EQ(untagged_keyword(imap_test_one("* 3 fetch (FLAGS ())\r\n")), "FETCH");
    EXPECT_EQ(untagged_keyword(imap_test_one("* BYE going\r\n")), "BYE");
    EXPECT_EQ(untagged_keyword(imap_test_one("* 12\r\n")), "");
    EXPECT_EQ(untagged_keyword(imap_test_one("F1 OK\r\n")), "");
}

TEST(ImapResponseTest, FetchItems) {
    auto r = imap_test_one(
        "* 12 FETCH (FLAGS (\\Recent $Junk) UID 42 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
        "RFC822.SIZE 1234 ENVELOPE (NIL \"a \\\"b\\\"\" ((NIL NIL \"x\" \"y\")) NIL) "
        "BODY[HEADER.FIELDS (FROM TO)] {3}\r\nabc BODY[] {4}\r\nwxyz)\r\n");
    auto f = parse_fetch(r);
    ASSERT_TRUE(f) << f.error();
    EXPECT_EQ(f->sequence, 12U);
    EXPECT_EQ(f->uid, 42U);
    EXPECT_EQ(f->size, 1234U);
    EXPECT_EQ(f->body, "wxyz");

    auto quoted = imap_test_one("* 1 FETCH (BODY[] \"tiny\" UID 5)\r\n");
    auto q = parse_fetch(quoted);
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ(q->body, "tiny");
    EXPECT_EQ(q->uid, 5U);

    auto nil = imap_test_one("* 1 FETCH (UID 5 BODY[] NIL)\r\n");
    auto n = parse_fetch(nil);
    ASSERT_TRUE(n) << n.error();
    EXPECT_FALSE(n->body);

    auto flags_only = imap_test_one("* 4 FETCH (FLAGS (\\Seen))\r\n");
    auto fo = parse_fetch(flags_only);
    ASSERT_TRUE(fo);
    EXPECT_FALSE(fo->uid);
    EXPECT_FALSE(fo->body);

    auto partial = imap_test_one("* 4 FETCH (UID 3 BODY[]<0> {2}\r\nab)\r\n");
    auto p = parse_fetch(partial);
    ASSERT_TRUE(p) << p.error();
    EXPECT_FALSE(p->body);  // a partial body is not the message
}

TEST(ImapResponseTest, FetchRefusesWhatIsMalformed) {
    for (const char* bad : {
             "* 0 FETCH (UID 1)\r\n",
             "* 1 FETCH UID 1\r\n",
             "* 1 FETCH (UID 0)\r\n",
             "* 1 FETCH (UID 4294967296)\r\n",
             "* 1 FETCH (UID)\r\n",
             "* 1 FETCH (UID 1\r\n",
             "* 1 FETCH (UID 1) extra\r\n",
             "* 1 FETCH (RFC822.SIZE -5)\r\n",
             "* 1 FETCH (RFC822.SIZE 99999999999999999999)\r\n",
             "* 1 FETCH (BODY[] 12)\r\n",
             "* 1 FETCH (BODY[] \"open)\r\n",
             "* 1 FETCH (BODY[] \"bad \\x escape\")\r\n",
             "* 1 FETCH (BODY[ {1}\r\nx)\r\n",
             "* 1 FETCH (X ((((((((((a)))))))))))\r\n",
             "* 1 FETCH (X (a b)\r\n",
             "* 1 FETCH (UID 1  RFC822.SIZE 2)\r\n",
             "* 1 FETCH ({1}\r\nx 1)\r\n",
         }) {
        auto r = imap_test_one(bad);
        EXPECT_FALSE(parse_fetch(r)) << bad;
    }
}

TEST(ImapResponseTest, QuotingAndPrintable) {
    EXPECT_EQ(*quote_mailbox("INBOX"), "\"INBOX\"");
    EXPECT_EQ(*quote_mailbox("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_FALSE(quote_mailbox(""));
    EXPECT_FALSE(quote_mailbox("a\r\nb"));
    EXPECT_FALSE(quote_mailbox("caf\xc3\xa9"));
    EXPECT_EQ(printable("ok\x1b[31m\xff"), "ok?[31m?");
    EXPECT_EQ(printable("abcdef", 3), "abc...");
}

TEST(ImapResponseTest, Urls) {
    auto u = parse_url("imaps://mail.example.net/Reports%2FDMARC");
    ASSERT_TRUE(u) << u.error();
    EXPECT_TRUE(u->implicit_tls);
    EXPECT_EQ(u->host, "mail.example.net");
    EXPECT_EQ(u->port, 993);
    EXPECT_EQ(u->mailbox, "Reports/DMARC");
    EXPECT_EQ(u->server(), "imaps://mail.example.net:993/");

    auto plain = parse_url("IMAP://127.0.0.1:1143");
    ASSERT_TRUE(plain) << plain.error();
    EXPECT_FALSE(plain->implicit_tls);
    EXPECT_EQ(plain->port, 1143);
    EXPECT_EQ(plain->mailbox, "INBOX");

    auto v6 = parse_url("imaps://[::1]:9993/dmarc");
    ASSERT_TRUE(v6) << v6.error();
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->server(), "imaps://[::1]:9993/");

    for (const char* bad :
         {"https://x/", "imaps://", "imaps:///INBOX", "imaps://u:secret@host/INBOX",
          "imaps://host:0/", "imaps://host:65536/", "imaps://host:/", "imaps://host:x/",
          "imaps://host/INBOX;UID=1", "imaps://host/INBOX?x", "imaps://host/a%0d%0ab",
          "imaps://host/%4", "imaps://host/%zz", "imaps://ho st/", "imaps://[::1/", "pop3://h/"}) {
        auto r = parse_url(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error().find("secret"), std::string::npos);
        }
    }
}

TEST(ImapResponseTest, AfterStore) {
    EXPECT_EQ(parse_after_store("seen")->action, AfterStore::Action::seen);
    EXPECT_EQ(parse_after_store("delete")->action, AfterStore::Action::remove);
    auto move = parse_after_store("move:Archive/Reports");
    ASSERT_TRUE(move);
    EXPECT_EQ(move->action, AfterStore::Action::move);
    EXPECT_EQ(move->folder, "Archive/Reports");
    EXPECT_FALSE(parse_after_store("move:"));
    EXPECT_FALSE(parse_after_store("keep"));
    EXPECT_FALSE(parse_after_store("move:a\nb"));
}

}  // namespace
}  // namespace dkim::imap

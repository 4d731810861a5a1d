// The SMTP transaction without a socket (transaction.hpp), the way tests/web/handlers_test.cpp
// tests webd: bytes in, replies out, a ManualClock, fakes for the next hop, signerd and the
// password check. Both policies: signing (fake signatures) and verifying (inbound::Verifier
// over a FakeResolver).

#include "transaction.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <fstream>
#include <random>

#include "dkim/dns/resolver.hpp"
#include "jit_fixture.hpp"
#include "signing_policy.hpp"
#include "transaction_fakes.hpp"
#include "transaction_fixture.hpp"
#include "verifying_policy.hpp"

namespace dkim::relayd {
namespace {

using namespace std::chrono_literals;
using namespace dkim::relayd::fakes;

class TransactionTest : public TransactionFixture {};

// --- commands --------------------------------------------------------------------------------

TEST_F(TransactionTest, EhloListsTheExtensionsThisListenerOffers) {
    start_signing(apps(), /*tls_offered=*/true);
    const auto r = send("EHLO c.test\r\n");
    EXPECT_NE(r.find("250-PIPELINING"), std::string::npos);
    EXPECT_NE(r.find("250-SIZE 4096"), std::string::npos);
    EXPECT_NE(r.find("250 STARTTLS"), std::string::npos);
    EXPECT_EQ(r.find("AUTH"), std::string::npos) << "no AUTH before TLS without plain_auth";
    EXPECT_EQ(codes(send("HELO c.test\r\n")), std::vector<int>{250});
}

TEST_F(TransactionTest, CommandsOutOfOrderGet503) {
    start_signing(apps());
    EXPECT_EQ(codes(send("MAIL FROM:<a@example.com>\r\n")), std::vector<int>{503});
    EXPECT_EQ(codes(send("RCPT TO:<b@example.net>\r\n")), std::vector<int>{503});
    EXPECT_EQ(codes(send("DATA\r\n")), std::vector<int>{503});
    EXPECT_EQ(codes(send("EHLO c.test\r\nMAIL FROM:<a@example.com>\r\nMAIL FROM:<a@example.com>\r\n"
                         "DATA\r\n")),
              (std::vector<int>{250, 250, 503, 554}));
    EXPECT_TRUE(host_.hop.messages.empty());
}

TEST_F(TransactionTest, EveryReplyCodeOfTheSimpleCommands) {
    start_signing(apps());
    EXPECT_EQ(codes(send("NOOP\r\nHELP\r\nVRFY x\r\nEXPN x\r\nRSET\r\nEHLO\r\n")),
              (std::vector<int>{250, 214, 252, 502, 250, 501}));
    EXPECT_EQ(codes(send("QUIT\r\n")), std::vector<int>{221});
    EXPECT_TRUE(txn_->closing());
}

TEST_F(TransactionTest, ErrorsAreCountedAndTheLimitClosesTheSession) {
    start_signing(apps());
    EXPECT_EQ(codes(send("BOGUS\r\nBDAT 10\r\n")), (std::vector<int>{500, 502}));
    EXPECT_FALSE(txn_->closing());
    const auto r = send("BOGUS\r\nNOOP\r\n");
    EXPECT_EQ(codes(r), std::vector<int>{421}) << r;
    EXPECT_TRUE(txn_->closing());
}

TEST_F(TransactionTest, TheCommandLimitClosesTheSession) {
    start_signing(apps());
    std::string many;
    for (int i = 0; i < 41; ++i) {
        many += "NOOP\r\n";
    }
    const auto c = codes(send(many));
    ASSERT_EQ(c.size(), 41U);
    EXPECT_EQ(c.back(), 421);
    EXPECT_TRUE(txn_->closing());
}

TEST_F(TransactionTest, LongLinesAndBareNewlinesEndTheSession) {
    start_signing(apps());
    EXPECT_EQ(codes(send(std::string(config_->limits.command_line + 1, 'A') + "\r\n")),
              std::vector<int>{500});
    EXPECT_TRUE(txn_->closing());
    start_signing(apps());
    EXPECT_EQ(codes(send("NOOP\nNOOP\r\n")), std::vector<int>{521});
    EXPECT_TRUE(txn_->closing());
}

TEST_F(TransactionTest, MailParametersAreCheckedBeforeTheNextHopHearsOfIt) {
    start_signing(apps());
    send("EHLO c.test\r\n");
    EXPECT_EQ(codes(send("MAIL FROM:<a@example.com> SIZE=12x\r\n")), std::vector<int>{501});
    EXPECT_EQ(codes(send("MAIL FROM:<a@example.com> SIZE=5000\r\n")), std::vector<int>{552});
    EXPECT_EQ(codes(send("MAIL FROM:<a@example.com> FOO=1\r\n")), std::vector<int>{555});
    EXPECT_EQ(codes(send("MAIL FROM:<\xc3\xa9@example.com>\r\n")), std::vector<int>{553});
    EXPECT_EQ(codes(send("MAIL FROM:<a@example.com> BODY=8BITMIME SIZE=100 AUTH=<>\r\n")),
              std::vector<int>{250});
    EXPECT_EQ(host_.hop.calls, std::vector<std::string>{"MAIL <a@example.com>"});
}

TEST_F(TransactionTest, TheSigningPolicyRefusesStrangersAndForeignSenders) {
    start_signing(nullptr);
    EXPECT_EQ(codes(send("EHLO c.test\r\nMAIL FROM:<a@example.com>\r\n")),
              (std::vector<int>{250, 554}));
    start_signing(nullptr, /*tls_offered=*/true);
    EXPECT_EQ(codes(send("EHLO c.test\r\nMAIL FROM:<a@example.com>\r\n")),
              (std::vector<int>{250, 530}));
    start_signing(apps());
    const auto r = send("EHLO c.test\r\nMAIL FROM:<a@other.test>\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 550}));
    EXPECT_NE(r.find("may not send mail from the domain other.test"), std::string::npos);
    EXPECT_TRUE(host_.hop.calls.empty());
}

TEST_F(TransactionTest, RecipientsAreLimitedAndTheNextHopsRefusalIsPassedOn) {
    start_signing(apps());
    send(kEnvelope);
    EXPECT_EQ(codes(send("RCPT TO:<c@example.net>\r\nRCPT TO:<d@example.net>\r\n"
                         "RCPT TO:<e@example.net>\r\nRCPT TO:<f@example.net> NOTIFY=NEVER\r\n")),
              (std::vector<int>{250, 250, 452, 555}));
    host_.hop.rcpt = local_reply(550, "", "no such user");
    const auto r = send("RSET\r\n" + kEnvelope.substr(13));
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 550}));
    EXPECT_NE(r.find("550 5.0.0 Next hop: no such user"), std::string::npos) << r;
}

// --- a whole message -------------------------------------------------------------------------

TEST_F(TransactionTest, ASignedMessageReachesTheNextHopAndTheClientHears250After) {
    start_signing(apps());
    const auto r = send(kEnvelope + "DATA\r\n" + kMessage + ".\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 354, 250})) << r;
    EXPECT_NE(r.find("250 2.0.0 Ok: signed and accepted by the next hop: 250 2.0.0 queued as 1"),
              std::string::npos)
        << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_EQ(host_.hop.messages[0],
              "DKIM-Signature: v=1; t=1767225600; bodylen=11\r\n" + kMessage);
    EXPECT_EQ(host_.hop.calls,
              (std::vector<std::string>{"MAIL <a@example.com>", "RCPT <b@example.net>", "DATA"}))
        << "no RSET after a message the next hop answered";
    EXPECT_EQ(signing_.clients, std::vector<std::string>{"apps"});
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::delivered), 1U);
    ASSERT_EQ(host_.logs.size(), 1U);
    EXPECT_NE(host_.logs[0].find("txn id=t1.1 client=apps ip=10.1.2.3 from_domain=example.com "
                                 "size=66 rcpts=1 selectors=sel1 sign=ok"),
              std::string::npos)
        << host_.logs[0];
}

TEST_F(TransactionTest, SigningWaitsForAGrantWithA451AndTheNextHopIsReset) {
    start_signing(apps());
    signing_.failure = SignFailure{SignFailure::Kind::locked, "locked", "sel1", 42};
    const auto r = send(kEnvelope + "DATA\r\n" + kMessage + ".\r\n");
    EXPECT_NE(r.find("451 4.7.0 Signing for example.com is awaiting approval (elevation request "
                     "42)"),
              std::string::npos)
        << r;
    EXPECT_TRUE(host_.hop.messages.empty());
    EXPECT_EQ(host_.hop.calls.back(), "RSET");
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::deferred_grant), 1U);
    signing_.failure = SignFailure{SignFailure::Kind::self_check, "bad", "sel1", 0};
    EXPECT_NE(send(kEnvelope.substr(13) + "DATA\r\n" + kMessage + ".\r\n").find("451 4.3.0"),
              std::string::npos);
    signing_.failure = SignFailure{SignFailure::Kind::refused, "profile", "sel1", 0};
    EXPECT_NE(send(kEnvelope.substr(13) + "DATA\r\n" + kMessage + ".\r\n").find("451 4.3.5"),
              std::string::npos);
}

TEST_F(TransactionTest, UncachedKeysAreFetchedAndTheBodyHashedAtTheEnd) {
    start_signing(apps());
    signing_.cached = false;
    send(kEnvelope + "DATA\r\n" + kMessage + ".\r\n");
    EXPECT_EQ(signing_.prepares, 1U);
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_NE(host_.hop.messages[0].find("bodylen=11\r\n"), std::string::npos)
        << host_.hop.messages[0];
    signing_.cached = false;
    signing_.prepare_fails = true;
    const auto r = send(kEnvelope.substr(13) + "DATA\r\n" + kMessage + ".\r\n");
    EXPECT_NE(r.find("451 4.3.0 Signing is unavailable: signerd is down"), std::string::npos) << r;
}

TEST_F(TransactionTest, MessagesTheSignerMustNotSignAreRefused) {
    start_signing(apps());
    const auto two_from = send(kEnvelope +
                               "DATA\r\nFrom: a@example.com\r\nFrom: "
                               "b@example.com\r\n\r\nx\r\n.\r\n");
    EXPECT_NE(two_from.find("554 5.6.0 The message needs exactly one From: field (it has 2)"),
              std::string::npos)
        << two_from;
    const auto foreign =
        send(kEnvelope.substr(13) + "DATA\r\nFrom: a@other.test\r\n\r\nx\r\n.\r\n");
    EXPECT_NE(foreign.find("550 5.7.1 Client apps may not send mail with From: domain other.test"),
              std::string::npos)
        << foreign;
    EXPECT_TRUE(host_.hop.messages.empty());
}

TEST_F(TransactionTest, OversizedMessagesLongLinesAndBareNewlinesInData) {
    start_signing(apps());
    auto r = send(kEnvelope + "DATA\r\n" + kMessage + std::string(5000, 'x') + "\r\n.\r\n");
    EXPECT_NE(r.find("552 5.3.4"), std::string::npos) << r;
    r = send(kEnvelope.substr(13) + "DATA\r\n" + kMessage + std::string(300, 'y') + "\r\n.\r\n");
    EXPECT_NE(r.find("550 5.6.0 A line is longer than 200 octets"), std::string::npos) << r;
    EXPECT_TRUE(host_.hop.messages.empty());
    EXPECT_FALSE(txn_->closing());
    r = send(kEnvelope.substr(13) + "DATA\r\n" + kMessage + "a bare\nnewline\r\n.\r\n");
    EXPECT_EQ(codes(r).back(), 521);
    EXPECT_TRUE(txn_->closing());
    EXPECT_TRUE(host_.hop.messages.empty());
}

// The end of data is CRLF "." CRLF and nothing else: look-alikes stay in the message (or end
// the session), and what follows the real end is a command again.
TEST_F(TransactionTest, EndOfDataLookAlikesDoNotSmuggleCommands) {
    start_signing(apps());
    const std::string smuggled = "\r\n.\nMAIL FROM:<evil@example.com>\r\n";
    auto r = send(kEnvelope + "DATA\r\n" + kMessage + smuggled + ".\r\n");
    EXPECT_EQ(codes(r).back(), 521) << r;
    EXPECT_TRUE(host_.hop.messages.empty());

    start_signing(apps());
    host_.hop = HopScript{};
    r = send(kEnvelope + "DATA\r\n" + kMessage +
             "..\r\nMAIL FROM:<x@example.com>\r\n.\r\nRSET\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 354, 250, 250})) << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_NE(host_.hop.messages[0].find(".\r\nMAIL FROM:<x@example.com>\r\n"), std::string::npos)
        << "the dot-stuffed line and the look-alike command are message text";
}

// A client that pipelined a whole transaction and reset the connection cannot hear the 250
// and will send again: what it sent after the failed write is not passed on (red team, issue
// 20: the first Transaction went on delivering).
TEST_F(TransactionTest, NothingIsPassedOnOnceTheClientCannotBeWrittenTo) {
    start_signing(apps());
    host_.broken = true;
    send(kEnvelope + "DATA\r\n" + kMessage + ".\r\n");
    EXPECT_TRUE(txn_->closing());
    EXPECT_TRUE(host_.hop.calls.empty()) << host_.hop.calls.front();
    EXPECT_TRUE(host_.hop.messages.empty());

    start_signing(apps());
    host_ = FakeHost{};
    send(kEnvelope + "DATA\r\n" + kMessage);  // the end of data has not come yet
    host_.broken = true;
    send(".\r\n");
    EXPECT_TRUE(txn_->closing());
    EXPECT_TRUE(host_.hop.messages.empty()) << "neither signed nor forwarded";
    EXPECT_TRUE(signing_.clients.size() <= 1U);
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::aborted), 1U);
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::delivered), 0U);
}

TEST_F(TransactionTest, PipelinedRepliesGoOutBeforeTheNextHopIsAsked) {
    start_signing(apps());
    send(kEnvelope);
    EXPECT_GE(host_.flushes, 2U) << "before MAIL and RCPT reach the next hop";
}

// The replies, and what the next hop receives, do not depend on how the bytes were cut.
TEST_F(TransactionTest, RepliesDoNotDependOnHowTheBytesAreChunked) {
    const std::string stream = kEnvelope + "DATA\r\n" + kMessage + "..dot\r\n.\r\nNOOP\r\n" +
                               "MAIL FROM:<a@example.com>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n" +
                               kMessage + ".\r\nQUIT\r\n";
    start_signing(apps());
    const auto whole = send(stream);
    const auto whole_messages = host_.hop.messages;
    ASSERT_EQ(whole_messages.size(), 2U);
    std::mt19937 random(7);
    for (int round = 0; round < 20; ++round) {
        host_ = FakeHost{};
        start_signing(apps());
        std::string replies_now;
        for (std::size_t at = 0; at < stream.size();) {
            const std::size_t n = round == 0 ? 1 : 1 + random() % 17;
            replies_now += send(std::string_view(stream).substr(at, n));
            at += n;
        }
        EXPECT_EQ(replies_now, whole) << "round " << round;
        EXPECT_EQ(host_.hop.messages, whole_messages) << "round " << round;
    }
}

// --- STARTTLS and AUTH -----------------------------------------------------------------------

TEST_F(TransactionTest, WhatFollowsStarttlsInClearTextIsDropped) {
    start_signing(nullptr, /*tls_offered=*/true, /*plain_auth=*/false);
    const auto r = send("EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<a@example.com>\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 220}));
    EXPECT_TRUE(txn_->tls_requested());
    txn_->tls_started();
    EXPECT_EQ(codes(send("MAIL FROM:<a@example.com>\r\n")), std::vector<int>{503})
        << "RFC 3207: EHLO again after TLS";
    const auto ehlo = send("EHLO c.test\r\n");
    EXPECT_EQ(ehlo.find("STARTTLS"), std::string::npos);
    EXPECT_NE(ehlo.find("AUTH PLAIN LOGIN"), std::string::npos);
    EXPECT_EQ(codes(send("STARTTLS\r\n")), std::vector<int>{503});
}

TEST_F(TransactionTest, AuthPlainAndLoginWithTheirRefusals) {
    start_signing(nullptr, false, /*plain_auth=*/true);
    send("EHLO c.test\r\n");
    // "\0alice\0s3cret"
    EXPECT_EQ(codes(send("AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")), std::vector<int>{235});
    EXPECT_EQ(codes(send("AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")), std::vector<int>{503});
    EXPECT_EQ(codes(send("MAIL FROM:<a@example.com>\r\n")), std::vector<int>{250});

    start_signing(nullptr, false, true);
    send("EHLO c.test\r\n");
    EXPECT_EQ(send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    EXPECT_EQ(send("YWxpY2U=\r\n"), "334 UGFzc3dvcmQ6\r\n");
    EXPECT_EQ(codes(send("czNjcmV0\r\n")), std::vector<int>{235});

    start_signing(nullptr, false, true);
    send("EHLO c.test\r\n");
    const std::size_t checked = host_.password_checks;
    EXPECT_EQ(codes(send("AUTH CRAM-MD5\r\n")), std::vector<int>{504});
    EXPECT_EQ(codes(send("AUTH PLAIN\r\n*\r\n")), (std::vector<int>{334, 501}));
    EXPECT_EQ(codes(send("AUTH PLAIN !!!\r\n")), std::vector<int>{501});
    EXPECT_EQ(codes(send("AUTH PLAIN Ym9i\r\n")), std::vector<int>{501}) << "no NULs";
    // authzid differs from authcid: "mallory\0alice\0s3cret"
    EXPECT_EQ(codes(send("AUTH PLAIN bWFsbG9yeQBhbGljZQBzM2NyZXQ=\r\n")), std::vector<int>{535});
    EXPECT_EQ(host_.password_checks, checked) << "refused before any password check";
    // Two wrong passwords end the session (auth_failures = 2).
    EXPECT_EQ(codes(send("AUTH PLAIN AGFsaWNlAHdyb25n\r\n")), std::vector<int>{535});
    EXPECT_EQ(codes(send("AUTH PLAIN AGFsaWNlAHdyb25n\r\n")), std::vector<int>{421});
    EXPECT_TRUE(txn_->closing());
}

TEST_F(TransactionTest, AuthNeedsTlsOrPlainAuthAndAMalformedAnswerEndsTheSession) {
    start_signing(nullptr, /*tls_offered=*/true, /*plain_auth=*/false);
    send("EHLO c.test\r\n");
    EXPECT_EQ(codes(send("AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")), std::vector<int>{538});
    start_signing(nullptr, false, true);
    send("EHLO c.test\r\n");
    EXPECT_EQ(codes(send("AUTH LOGIN\r\nbad\nline\r\n")), (std::vector<int>{334, 500}));
    EXPECT_TRUE(txn_->closing());
}

// --- the end of input ------------------------------------------------------------------------

TEST_F(TransactionTest, TimeoutsAnswer421AndAnAbandonedMessageIsNotForwarded) {
    start_signing(apps());
    send("EHLO c.test\r\n");
    run(txn_->input_ended(true));
    EXPECT_NE(replies().find("421 4.4.2 relay.test Timeout; closing"), std::string::npos);

    start_signing(apps());
    send(kEnvelope + "DATA\r\n" + kMessage);
    EXPECT_TRUE(txn_->in_data());
    clock_.advance(3s);
    run(txn_->input_ended(true));
    EXPECT_NE(replies().find("421 4.4.2 relay.test Timeout in DATA; closing"), std::string::npos);
    EXPECT_TRUE(host_.hop.messages.empty());
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::aborted), 1U);
    ASSERT_FALSE(host_.logs.empty());
    EXPECT_NE(host_.logs.back().find("reply=421 latency_ms=3000.000"), std::string::npos)
        << host_.logs.back();
    run(txn_->finish());
    EXPECT_EQ(host_.hop.calls.back(), "QUIT");
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::aborted), 1U) << "counted once";
}

// --- the verifying policy --------------------------------------------------------------------

TEST_F(TransactionTest, TheVerifyingPolicyReceivesOnlyForItsDomainsAndOffersNoAuth) {
    start_verifying();
    const auto ehlo = send("EHLO c.test\r\n");
    EXPECT_EQ(ehlo.find("AUTH"), std::string::npos);
    EXPECT_EQ(codes(send("MAIL FROM:<x@sender.test>\r\nRCPT TO:<a@example.com>\r\n"
                         "RCPT TO:<b@example.net>\r\nRCPT TO:<postmaster>\r\n")),
              (std::vector<int>{250, 550, 250, 250}));
    EXPECT_EQ(host_.hop.calls,
              (std::vector<std::string>{"MAIL <x@sender.test>", "RCPT <b@example.net>",
                                        "RCPT <postmaster>"}));
}

TEST_F(TransactionTest, TheVerifyingPolicyAddsResultsAndDropsForgedOnes) {
    start_verifying();
    resolver_.set_txt("sender.test", {"v=spf1 ip4:10.1.2.3 -all"});
    const std::string message =
        "Authentication-Results: relay.test; dkim=pass\r\nFrom: x@sender.test\r\n"
        "Subject: s\r\n\r\nbody\r\n";
    const auto r = send(
        "EHLO c.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<b@example.net>\r\n"
        "DATA\r\n" +
        message + ".\r\n");
    EXPECT_NE(r.find("250 2.0.0 Ok: verified and accepted by the next hop"), std::string::npos)
        << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    const auto& forwarded = host_.hop.messages[0];
    EXPECT_TRUE(forwarded.starts_with("Authentication-Results: relay.test;")) << forwarded;
    EXPECT_NE(forwarded.find("spf=pass"), std::string::npos) << forwarded;
    EXPECT_EQ(forwarded.find("dkim=pass"), std::string::npos) << "the forged field is gone";
    EXPECT_TRUE(forwarded.ends_with("From: x@sender.test\r\nSubject: s\r\n\r\nbody\r\n"));
    ASSERT_EQ(host_.logs.size(), 1U);
    EXPECT_NE(host_.logs[0].find("dkim-relayd: inbound id=t1.1 ip=10.1.2.3"), std::string::npos)
        << host_.logs[0];
    EXPECT_NE(host_.logs[0].find("spf=pass"), std::string::npos) << host_.logs[0];
    EXPECT_NE(host_.logs[0].find("action=deliver"), std::string::npos) << host_.logs[0];
}

}  // namespace
}  // namespace dkim::relayd

// The red team against the relay's socket-free Transaction (issue 20's refactor of the
// session): AUTH state across STARTTLS and pipelining, STARTTLS injection at the
// Transaction's own boundary, per-message state of the policies (signature, From: domains,
// SPF result) across transactions, From: domains a client may not use, the verifying role's
// forged Authentication-Results, quarantine and reject routing, and the rule that the client
// hears 250 only after the next hop accepted. The fixture is transaction_test.cpp's.

#include <gtest/gtest.h>

#include "transaction_fixture.hpp"

namespace dkim::relayd {
namespace {

using namespace std::chrono_literals;
using namespace dkim::relayd::fakes;

class TransactionAttackTest : public TransactionFixture {
  protected:
    std::size_t command_limit() const override { return 60; }
};

const std::string kNext = "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n";

// --- AUTH and STARTTLS -----------------------------------------------------------------------

// RFC 3207 §4.2: an AUTH made in clear text (plain_auth) is forgotten by STARTTLS; the failure
// counter is not.
TEST_F(TransactionAttackTest, AuthDoesNotSurviveStarttlsButItsFailuresDo) {
    start_signing(nullptr, /*tls_offered=*/true, /*plain_auth=*/true);
    EXPECT_EQ(codes(send("EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nSTARTTLS\r\n")),
              (std::vector<int>{250, 235, 220}));
    txn_->tls_started();
    EXPECT_EQ(codes(send("EHLO c.test\r\nMAIL FROM:<a@example.com>\r\n")),
              (std::vector<int>{250, 530}))
        << "the clear-text AUTH must not carry over into TLS";
    EXPECT_TRUE(host_.hop.calls.empty());

    start_signing(nullptr, true, true);
    EXPECT_EQ(codes(send("EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\nSTARTTLS\r\n")),
              (std::vector<int>{250, 535, 220}));
    txn_->tls_started();
    EXPECT_EQ(codes(send("EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\n")),
              (std::vector<int>{250, 421}))
        << "auth_failures = 2 counts across STARTTLS";
    EXPECT_TRUE(txn_->closing());
}

// Commands pipelined behind AUTH are the client's answer to the 334, never commands: they
// neither run nor reach the next hop, and a password client cannot be reached by naming a
// network-only client.
TEST_F(TransactionAttackTest, CommandsPipelinedIntoAn334ExchangeAreNotExecuted) {
    start_signing(nullptr, false, /*plain_auth=*/true);
    auto r = send(
        "EHLO c.test\r\nAUTH PLAIN\r\nMAIL FROM:<a@example.com>\r\n"
        "RCPT TO:<b@example.net>\r\n");
    // The MAIL line is the (invalid base64) answer; RCPT is then a command without MAIL.
    EXPECT_EQ(codes(r), (std::vector<int>{250, 334, 501, 503})) << r;
    r = send("AUTH LOGIN\r\nRSET\r\nQUIT\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{334, 334, 535})) << "RSET and QUIT were the answers";
    EXPECT_FALSE(txn_->closing());
    EXPECT_TRUE(host_.hop.calls.empty());
    // "\0apps\0" : a client without a password hash is never authenticated by AUTH.
    EXPECT_EQ(codes(send("AUTH PLAIN AGFwcHMA\r\n")), std::vector<int>{421});
    EXPECT_TRUE(txn_->closing());
}

TEST_F(TransactionAttackTest, TheVerifyingListenerNeverAuthenticates) {
    start_verifying(/*plain_auth=*/true);
    const std::size_t before = host_.password_checks;
    EXPECT_EQ(codes(send("EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")),
              (std::vector<int>{250, 502}));
    EXPECT_EQ(host_.password_checks, before);
}

// The Transaction's own promise (transaction.hpp: "What the client sent after STARTTLS was
// dropped"), whatever its host does: bytes handed to receive() between "220 Ready to start
// TLS" and tls_started() came in clear text and must never be read as commands sent over TLS
// (CVE-2011-0411).
TEST_F(TransactionAttackTest, ClearTextHandedInBeforeTheHandshakeIsNeverExecutedAfterIt) {
    start_signing(apps(), /*tls_offered=*/true);
    EXPECT_EQ(codes(send("EHLO c.test\r\nSTARTTLS\r\n")), (std::vector<int>{250, 220}));
    ASSERT_TRUE(txn_->tls_requested());
    // An attacker's injection arrives while the session is about to shake hands.
    EXPECT_EQ(send("EHLO evil\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<attacker@evil.test>\r\n"),
              "");
    txn_->tls_started();
    // The victim's first command over TLS.
    const auto r = send("EHLO c.test\r\n");
    EXPECT_EQ(codes(r), std::vector<int>{250}) << r;
    EXPECT_TRUE(host_.hop.calls.empty())
        << "the injected MAIL/RCPT reached the next hop: " << host_.hop.calls.front();
}

// --- per-message state of the signing policy ------------------------------------------------

// A message refused at the end of data (signer locked, next hop refused) leaves nothing for
// the next one: no header, no From: domains, no half-hashed body.
TEST_F(TransactionAttackTest, NoSigningStateOutlivesItsTransaction) {
    start_signing(apps());
    signing_.failure = SignFailure{SignFailure::Kind::locked, "locked", "sel1", 7};
    EXPECT_EQ(codes(send(kEnvelope + "DATA\r\n" + kMessage + ".\r\n")).back(), 451);
    signing_.failure.reset();
    // Next: a message without any header section but a body line (no From:).
    auto r = send(kNext + "DATA\r\n\r\nno header here\r\n.\r\n");
    EXPECT_EQ(codes(r).back(), 554) << r;
    EXPECT_EQ(data_calls(), 0U);

    // The next hop refuses the first message; the second's body alone is hashed.
    host_.hop.data = local_reply(550, "5.7.1", "no");
    EXPECT_EQ(
        codes(send(kNext + "DATA\r\n" + kMessage + std::string(150, 'z') + "\r\n.\r\n")).back(),
        550);
    host_.hop.data = local_reply(250, "2.0.0", "ok");
    r = send(kNext + "DATA\r\nFrom: a@example.com\r\n\r\nx\r\n.\r\n");
    EXPECT_EQ(codes(r).back(), 250) << r;
    ASSERT_EQ(host_.hop.messages.size(), 2U);
    EXPECT_TRUE(
        host_.hop.messages[1].starts_with("DKIM-Signature: v=1; t=1767225600; bodylen=3\r\n"))
        << host_.hop.messages[1];

    // An aborted DATA (the client stopped) leaves nothing either.
    start_signing(apps());
    send(kEnvelope + "DATA\r\n" + kMessage + "partial");
    run(txn_->input_ended(false));
    EXPECT_TRUE(txn_->closing());
    EXPECT_EQ(host_.hop.messages.size(), 2U);
}

// RSET after the header section arrived is impossible (it is message text), so the only way
// to end a transaction with a signature started is the end of data or the end of input.
TEST_F(TransactionAttackTest, RsetInsideDataIsMessageText) {
    start_signing(apps());
    const auto r =
        send(kEnvelope + "DATA\r\n" + kMessage + "RSET\r\nMAIL FROM:<a@example.com>\r\n" + ".\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 354, 250})) << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_TRUE(host_.hop.messages[0].ends_with("RSET\r\nMAIL FROM:<a@example.com>\r\n"));
    EXPECT_NE(host_.hop.messages[0].find("bodylen=" + std::to_string(11 + 6 + 27) + "\r\n"),
              std::string::npos)
        << "the signature covers exactly the forwarded body: " << host_.hop.messages[0];
}

// --- From: domains ----------------------------------------------------------------------------

TEST_F(TransactionAttackTest, EveryFromDomainMustBeTheClients) {
    start_signing(apps());
    send("EHLO c.test\r\n");
    const std::vector<std::string> refused = {
        "From: a@example.com, b@other.test\r\n",
        "From: b@other.test, a@example.com\r\n",
        "From: \"a@example.com\" <b@other.test>\r\n",
        "From: b@other.test (a@example.com)\r\n",
        "From: a@example.com\r\nfrom: b@other.test\r\n",
        "From: friends: a@example.com, b@other.test;\r\n",
        "From: a@example.com,\r\n b@other.test\r\n",
        "From: <b@other.test>\r\n",
        "From: b@sub.other.test\r\n",
        "From: a@EXAMPLE.com\r\nFROM: b@other.test\r\n",
    };
    for (const auto& from : refused) {
        const auto r = send(kNext + "DATA\r\n" + from + "Subject: s\r\n\r\nx\r\n.\r\n");
        EXPECT_NE(codes(r).back(), 250) << from << r;
    }
    // MAIL FROM:<> (a bounce) does not open the door to a foreign From: either.
    const auto r = send(
        "MAIL FROM:<>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nFrom: b@other.test\r\n\r\nx\r\n.\r\n");
    EXPECT_EQ(codes(r).back(), 550) << r;
    EXPECT_EQ(data_calls(), 0U);
}

// The From: domain is decided by the header section the policy was shown, which is the one
// forwarded: a second empty-line look-alike or a header in the body changes nothing.
TEST_F(TransactionAttackTest, TheSignedHeaderIsTheForwardedHeader) {
    start_signing(apps());
    const auto r = send(kEnvelope + "DATA\r\nFrom: a@example.com\r\n\r\nFrom: b@other.test\r\n" +
                        "\r\nbody\r\n.\r\n");
    EXPECT_EQ(codes(r).back(), 250) << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_NE(host_.hop.messages[0].find("bodylen=" + std::to_string(20 + 2 + 6) + "\r\n"),
              std::string::npos)
        << host_.hop.messages[0];
    // A header section split across chunks at every point gives the same signature.
    for (std::size_t cut = 1; cut < kMessage.size(); ++cut) {
        host_ = FakeHost{};
        start_signing(apps());
        send(kEnvelope + "DATA\r\n" + kMessage.substr(0, cut));
        send(kMessage.substr(cut) + ".\r\n");
        ASSERT_EQ(host_.hop.messages.size(), 1U) << cut;
        EXPECT_TRUE(
            host_.hop.messages[0].starts_with("DKIM-Signature: v=1; t=1767225600; bodylen=11\r\n"))
            << cut << ": " << host_.hop.messages[0];
    }
}

// --- the verifying role -----------------------------------------------------------------------

TEST_F(TransactionAttackTest, EveryForgedResultIsStrippedWhateverItsSpelling) {
    start_verifying();
    resolver_.set_txt("sender.test", {"v=spf1 ip4:10.1.2.3 -all"});
    const std::string forged =
        "Authentication-Results: relay.test; dkim=pass header.d=bank.test\r\n"
        "authentication-results:RELAY.TEST;dmarc=pass\r\n"
        "Authentication-Results: relay.test;\r\n\tdkim=pass header.i=@bank.test\r\n"
        "Authentication-Results: (comment) relay.test; arc=pass\r\n";
    const auto r =
        send("EHLO c.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" +
             forged + "From: x@sender.test\r\n\r\nbody\r\n.\r\n");
    EXPECT_EQ(codes(r).back(), 250) << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    const auto& out = host_.hop.messages[0];
    EXPECT_EQ(out.find("bank.test"), std::string::npos) << out;
    EXPECT_EQ(out.find("dmarc=pass"), std::string::npos) << out;
    EXPECT_EQ(out.find("arc=pass"), std::string::npos) << out;

    // A message that is all header (no empty line) is stripped too.
    const auto all_header =
        send(std::string("MAIL FROM:<x@sender.test>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
                         "Authentication-Results: relay.test; dkim=pass header.d=bank.test\r\n"
                         "From: x@sender.test\r\n.\r\n"));
    EXPECT_EQ(codes(all_header).back(), 250) << all_header;
    ASSERT_EQ(host_.hop.messages.size(), 2U);
    EXPECT_EQ(host_.hop.messages[1].find("bank.test"), std::string::npos) << host_.hop.messages[1];
}

// The SPF result of one transaction is never the next one's.
TEST_F(TransactionAttackTest, TheSpfResultBelongsToItsOwnMailFrom) {
    start_verifying();
    resolver_.set_txt("sender.test", {"v=spf1 ip4:10.1.2.3 -all"});
    resolver_.set_txt("spoof.test", {"v=spf1 -all"});
    const std::string body = "From: x@spoof.test\r\n\r\nbody\r\n.\r\n";
    // A passing MAIL FROM, then RSET; a MAIL FROM refused by the next hop; then the real one.
    send("EHLO c.test\r\nMAIL FROM:<x@sender.test>\r\nRSET\r\n");
    host_.hop.mail = local_reply(451, "4.3.0", "busy");
    send("MAIL FROM:<x@sender.test>\r\n");
    host_.hop.mail = local_reply(250, "2.1.0", "ok");
    const auto r = send("MAIL FROM:<x@spoof.test>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" + body);
    EXPECT_EQ(codes(r).back(), 250) << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_NE(host_.hop.messages[0].find("spf=fail"), std::string::npos) << host_.hop.messages[0];
    EXPECT_EQ(host_.hop.messages[0].find("spf=pass"), std::string::npos) << host_.hop.messages[0];
}

// DMARC p=quarantine with quarantine = "next_hop": the primary next hop never sees the message
// (RSET, no DATA), the quarantine hop gets it with the results on top; its refusal is never a
// 250 (and never a 5xx bounce); p=reject is refused and reaches no hop.
TEST_F(TransactionAttackTest, QuarantineAndRejectRouteAsDecided) {
    config_->inbound->quarantine = Quarantine::next_hop;
    start_verifying();
    resolver_.set_txt("spoof.test", {"v=spf1 -all"});
    resolver_.set_txt("_dmarc.spoof.test", {"v=DMARC1; p=quarantine"});
    resolver_.set_txt("reject.test", {"v=spf1 -all"});
    resolver_.set_txt("_dmarc.reject.test", {"v=DMARC1; p=reject"});
    const auto txn = [](const std::string& domain) {
        return "MAIL FROM:<x@" + domain + ">\r\nRCPT TO:<b@example.net>\r\nDATA\r\nFrom: x@" +
               domain + "\r\n\r\nbody\r\n.\r\n";
    };
    auto r = send("EHLO c.test\r\n" + txn("spoof.test"));
    EXPECT_NE(r.find("250 2.0.0 Ok: quarantined and accepted by the next hop"), std::string::npos)
        << r;
    EXPECT_EQ(data_calls(""), 0U) << "the primary hop saw DATA";
    EXPECT_EQ(data_calls("Q:"), 1U);
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_TRUE(host_.hop.messages[0].starts_with("Authentication-Results: relay.test;"));
    EXPECT_NE(std::find(host_.hop.calls.begin(), host_.hop.calls.end(), "RSET"),
              host_.hop.calls.end());

    // The quarantine hop refuses a recipient permanently: 451, never 250, never 5xx.
    host_.hop.rcpt = local_reply(250, "2.1.5", "ok");
    host_.hop.calls.clear();
    r = send("MAIL FROM:<x@spoof.test>\r\nRCPT TO:<b@example.net>\r\n");
    host_.hop.rcpt = local_reply(550, "5.1.1", "no such mailbox");
    r = send("DATA\r\nFrom: x@spoof.test\r\n\r\nbody\r\n.\r\n");
    EXPECT_EQ(codes(r).back(), 451) << r;
    EXPECT_EQ(host_.hop.messages.size(), 1U);
    host_.hop.rcpt = local_reply(250, "2.1.5", "ok");

    // The quarantine hop refuses the message itself: its answer, not 250.
    host_.hop.data = local_reply(452, "4.3.1", "full");
    r = send(txn("spoof.test"));
    EXPECT_EQ(codes(r).back(), 452) << r;
    host_.hop.data = local_reply(250, "2.0.0", "ok");

    // p=reject: 550, no hop sees DATA.
    host_.hop.calls.clear();
    r = send(txn("reject.test"));
    EXPECT_EQ(codes(r).back(), 550) << r;
    EXPECT_EQ(data_calls(""), 0U);
    EXPECT_EQ(data_calls("Q:"), 0U);
    EXPECT_EQ(host_.hop.calls.back(), "RSET");
}

// Relaying through the verifying listener: foreign recipient domains count as errors and
// close the session at the limit; none reaches the next hop.
TEST_F(TransactionAttackTest, TheVerifyingListenerIsNoOpenRelay) {
    start_verifying();
    const auto r = send(
        "EHLO c.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<a@evil.test>\r\n"
        "RCPT TO:<a@example.net.evil.test>\r\nRCPT TO:<a@[127.0.0.1]>\r\n"
        "RCPT TO:<b@example.net>\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 550, 550, 421})) << r;
    EXPECT_TRUE(txn_->closing());
    EXPECT_EQ(host_.hop.calls, std::vector<std::string>{"MAIL <x@sender.test>"});
}

// --- 250 only after the next hop accepted -----------------------------------------------------

TEST_F(TransactionAttackTest, TheClientHears250OnlyWhenTheNextHopAccepted) {
    start_signing(apps());
    for (const auto& answer : {local_reply(451, "", "later"), local_reply(554, "5.7.1", "spam"),
                               local_reply(421, "4.4.2", "closing")}) {
        host_.hop.data = answer;
        const auto r =
            send((host_.hop.calls.empty() ? kEnvelope : kNext) + "DATA\r\n" + kMessage + ".\r\n");
        EXPECT_EQ(codes(r).back(), answer.code) << r;
        EXPECT_EQ(r.find("250 2.0.0"), std::string::npos) << r;
    }
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::delivered), 0U);
    // A next hop that refuses every RCPT: DATA is refused, and the message that the client
    // pipelined behind it is read as commands (RFC 2920 §3.1), none of which delivers mail.
    host_.hop = HopScript{};
    host_.hop.rcpt = local_reply(550, "5.1.1", "unknown");
    const auto r = send(kNext + "DATA\r\n" + kMessage + ".\r\n");
    EXPECT_NE(codes(r).back(), 250) << r;
    EXPECT_EQ(r.find("250 2.0.0 Ok: signed"), std::string::npos) << r;
    EXPECT_TRUE(host_.hop.messages.empty());
}

}  // namespace
}  // namespace dkim::relayd

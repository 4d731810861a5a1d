// The red team against report addresses on the inbound listener ([inbound.reports], issue 21),
// through the socket-free Transaction: anyone may send to them, so they must not become a way
// to relay mail anywhere, to slip a second message past the checks, to reach the next hop or
// signerd, to have a DMARC or SPF verdict decide (or an Authentication-Results field be added),
// to get a 250 for mail reportd did not store, or to get round the size and hourly limits. The
// fixture is transaction_test.cpp's (transaction_fixture.hpp), with a fake dkim-reportd.

#include <gtest/gtest.h>

#include <random>

#include "dkim/dkim/signer.hpp"
#include "software_signer.hpp"
#include "transaction_fixture.hpp"

namespace dkim::relayd {
namespace {

using namespace std::chrono_literals;
using namespace dkim::relayd::fakes;

class ReportAttackTest : public TransactionFixture {
  protected:
    std::size_t command_limit() const override { return 200; }
    // Everything reached neither the next hop nor signerd.
    void expect_no_hop_and_no_signer() {
        EXPECT_TRUE(host_.hop.calls.empty()) << host_.hop.calls.front();
        EXPECT_TRUE(host_.hop.messages.empty());
        EXPECT_TRUE(signing_.clients.empty());
        EXPECT_EQ(signing_.prepares, 0U);
    }
};

const std::string kReportMail =
    "MAIL FROM:<reports@reporter.test>\r\nRCPT TO:<dmarc-reports@example.net>\r\n";
const std::string kReportBody =
    "From: reports@reporter.test\r\nSubject: Report domain: example.net\r\n\r\n<feedback/>\r\n";

// A report address takes other recipients with it nowhere: foreign domains are refused (and
// counted as errors, up to the session's end), addresses of the received domains wait for a
// transaction of their own, and the recipients the message names in its header go nowhere.
TEST_F(ReportAttackTest, AReportAddressRelaysMailNowhere) {
    start_reports();
    auto r = send("EHLO c.test\r\n" + kReportMail +
                  "RCPT TO:<b@example.net>\r\n"
                  "RCPT TO:<dmarc-reports%evil.test@example.net>\r\n"
                  "RCPT TO:<victim@evil.test>\r\n"
                  "RCPT TO:<dmarc-reports@example.net.evil.test>\r\n"
                  "RCPT TO:<\"dmarc-reports@example.net\"@evil.test>\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 452, 452, 550, 550, 421})) << r;
    EXPECT_TRUE(txn_->closing());
    expect_no_hop_and_no_signer();
    EXPECT_TRUE(submitter_.messages.empty());

    // Header recipients are message text: reportd stores them, nothing sends to them.
    start_reports();
    r = send("EHLO c.test\r\n" + kReportMail +
             "DATA\r\nTo: victim@evil.test\r\nBcc: b@example.net\r\nResent-To: c@evil.test\r\n" +
             kReportBody + ".\r\n");
    EXPECT_EQ(codes(r).back(), 250) << r;
    expect_no_hop_and_no_signer();
    EXPECT_EQ(submitter_.messages.size(), 1U);
}

// The end of data is CRLF "." CRLF only: look-alikes inside a report stay in it or end the
// session, and nothing after them is a command; what follows the real end is a new transaction
// that the report's routing does not carry over to.
TEST_F(ReportAttackTest, AReportCannotSmuggleASecondMessage) {
    const std::string second =
        "MAIL FROM:<evil@evil.test>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: smuggled\r\n"
        "\r\nhi\r\n";
    // Look-alikes with a bare CR or LF end the session: nothing stored, nothing forwarded.
    for (const std::string cut : {"\r\n.\n", "\n.\r\n", "\n.\n", "\r.\r\n"}) {
        clock_.advance(2h);  // each its own hour of report transactions
        start_reports();
        submitter_.clear();
        const auto r = send("EHLO c.test\r\n" + kReportMail + "DATA\r\n" + kReportBody + cut +
                            second + ".\r\n");
        EXPECT_EQ(codes(r).back(), 521) << r;
        EXPECT_TRUE(txn_->closing());
        EXPECT_TRUE(submitter_.messages.empty());
        expect_no_hop_and_no_signer();
    }
    // A dot-stuffed look-alike stays in the one message.
    clock_.advance(2h);
    start_reports();
    submitter_.clear();
    auto r = send("EHLO c.test\r\n" + kReportMail + "DATA\r\n" + kReportBody + "..\r\n" + second +
                  ".\r\n");
    EXPECT_EQ(codes(r).back(), 250) << r;
    ASSERT_EQ(submitter_.messages.size(), 1U);
    EXPECT_NE(submitter_.messages[0].find(".\r\nMAIL FROM:<evil@evil.test>"), std::string::npos)
        << submitter_.messages[0];
    expect_no_hop_and_no_signer();

    // A transaction pipelined after the real end is an ordinary one: verified and forwarded, not
    // a report, and the report stays as it was.
    r = send(kReportMail.substr(0, kReportMail.find("RCPT")) + "RCPT TO:<b@example.net>\r\n" +
             "DATA\r\nFrom: x@sender.test\r\n\r\nbody\r\n.\r\n");
    EXPECT_NE(r.find("250 2.0.0 Ok: verified and accepted by the next hop"), std::string::npos)
        << r;
    ASSERT_EQ(host_.hop.messages.size(), 1U);
    EXPECT_TRUE(host_.hop.messages[0].starts_with("Authentication-Results: relay.test;"));
    EXPECT_EQ(submitter_.messages.size(), 1U);
}

// No verdict decides a report and no check runs on it: a sender whose SPF fails and whose
// domain publishes p=reject, a forged Authentication-Results field and a broken header section
// are stored as received, with no DNS lookup after MAIL FROM and no field added.
TEST_F(ReportAttackTest, NoVerdictDecidesAReportAndNoCheckRunsOnIt) {
    start_reports();
    resolver_.set_txt("reporter.test", {"v=spf1 -all"});
    resolver_.set_txt("_dmarc.reporter.test", {"v=DMARC1; p=reject"});
    send("EHLO c.test\r\n" + kReportMail);
    const std::size_t lookups = resolver_.lookups();
    const std::string body =
        "Authentication-Results: relay.test; dmarc=pass\r\nFrom: a@reporter.test\r\n"
        "From: b@reporter.test\r\nDKIM-Signature: v=1; d=reporter.test; s=x; b=AAAA\r\n"
        "not a header field\r\n\r\n<feedback/>\r\n";
    const auto r = send("DATA\r\n" + body + ".\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{354, 250})) << r;
    EXPECT_EQ(resolver_.lookups(), lookups)
        << "no DKIM key, no DMARC record was looked up (two From fields: no reporter to check)";
    ASSERT_EQ(submitter_.messages.size(), 1U);
    EXPECT_EQ(submitter_.messages[0], body) << "nothing added, nothing removed";
    EXPECT_EQ(submitter_.reporters[0], "");
    expect_no_hop_and_no_signer();
    EXPECT_EQ(metrics_.render().find("dkim_relayd_inbound_messages_total{dmarc=\"fail\","
                                     "action=\"reject\"} 1"),
              std::string::npos);
}

// The reporter cannot be claimed: a signature that verifies for the sender's own domain names no
// reporter when From says another (a forged "google.com" report signed by attacker.test), nor
// does a forged Authentication-Results field or a DKIM-Signature with no key; the genuine
// signature of the From domain still counts when a forged one sits beside it.
TEST_F(ReportAttackTest, AReporterIsOnlyTheFromDomainWithItsOwnPassingSignature) {
    const auto attacker = test::SoftwareSigner::generate(0);
    const auto google = test::SoftwareSigner::generate(0);
    resolver_.set_txt("a._domainkey.attacker.test", {attacker->key_record()});
    resolver_.set_txt("g._domainkey.google.com", {google->key_record()});
    const std::string report =
        "Authentication-Results: relay.test; dkim=pass header.d=google.com\r\n"
        "From: noreply-dmarc-support@google.com\r\nSubject: Report domain: example.net\r\n"
        "\r\n<feedback/>\r\n";
    const auto by_attacker =
        sign_message(report, {SigningKey{"attacker.test", "a", attacker.get(), {}}}, clock_.now());
    ASSERT_TRUE(by_attacker);
    // A signature claiming d=google.com made with the attacker's key: it fails.
    const auto forged =
        sign_message(report, {SigningKey{"google.com", "g", attacker.get(), {}}}, clock_.now());
    ASSERT_TRUE(forged);
    const auto genuine =
        sign_message(*by_attacker, {SigningKey{"google.com", "g", google.get(), {}}}, clock_.now());
    ASSERT_TRUE(genuine);
    int client = 0;  // each from a client of its own: the hourly limit is 3 per client
    for (const std::string* m : {&*by_attacker, &*forged, &report, &*genuine}) {
        start_reports("192.0.2." + std::to_string(++client));
        const auto r = send("EHLO c.test\r\n" + kReportMail + "DATA\r\n" + *m + ".\r\n");
        EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 354, 250})) << r;
    }
    EXPECT_EQ(submitter_.reporters, (std::vector<std::string>{"", "", "", "google.com"}));
    expect_no_hop_and_no_signer();
}

// A 250 only for what reportd stored: when it is down or refuses, the client hears 4xx or 5xx
// and nothing goes to a next hop instead; a client that is gone before the answer gets nothing
// stored.
TEST_F(ReportAttackTest, The250ComesOnlyFromReportdAndThereIsNoFallback) {
    start_reports();
    send("EHLO c.test\r\n");
    for (const auto kind : {ReportAnswer::Kind::unavailable, ReportAnswer::Kind::invalid}) {
        submitter_.answer = ReportAnswer{};
        submitter_.answer.kind = kind;
        submitter_.answer.reason = "no";
        const auto r = send(kReportMail + "DATA\r\n" + kReportBody + ".\r\n");
        EXPECT_EQ(r.find("250 2.0.0"), std::string::npos) << r;
        EXPECT_EQ(codes(r).back(), kind == ReportAnswer::Kind::invalid ? 554 : 451) << r;
    }
    expect_no_hop_and_no_signer();
    EXPECT_EQ(metrics_.reports(RelayMetrics::ReportOutcome::stored), 0U);

    start_reports();
    submitter_.clear();
    send("EHLO c.test\r\n" + kReportMail + "DATA\r\n" + kReportBody);
    host_.broken = true;
    send(".\r\n");
    EXPECT_TRUE(txn_->closing());
    EXPECT_TRUE(submitter_.messages.empty()) << "the client cannot hear the 250: it sends again";
}

// The limits cannot be got round: not by a false SIZE, not by RSET or a new connection, not by
// many report addresses in one transaction, not by the general recipient limit.
TEST_F(ReportAttackTest, TheLimitsHoldAgainstEveryWayRound) {
    start_reports("192.0.2.66");
    send("EHLO c.test\r\n");
    // A SIZE that lies: the decoder stops at max_size whatever was declared.
    std::string big = "Subject: r\r\n\r\n";
    for (int i = 0; i < 30; ++i) {
        big += std::string(98, 'x') + "\r\n";
    }
    auto r = send(
        "MAIL FROM:<a@reporter.test> SIZE=100\r\nRCPT TO:<dmarc-reports@example.net>\r\n"
        "DATA\r\n" +
        big + ".\r\n");
    EXPECT_EQ(codes(r).back(), 552) << r;
    EXPECT_TRUE(submitter_.messages.empty());
    // Four recipients: the fourth is over [limits] recipients = 3 whatever they are.
    r = send(kReportMail +
             "RCPT TO:<DMARC-REPORTS@example.net>\r\n"
             "RCPT TO:<tls-reports@reports.example.org>\r\n"
             "RCPT TO:<tls-reports@REPORTS.example.org>\r\nRSET\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 250, 452, 250})) << r;
    // Two transactions so far; the third is the client's last this hour, on any connection.
    r = send(kReportMail + "RSET\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250}));
    start_reports("192.0.2.66");
    r = send("EHLO c.test\r\n" + kReportMail);
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 450})) << r;
    EXPECT_EQ(codes(send("RCPT TO:<tls-reports@reports.example.org>\r\n")), std::vector<int>{450});
    // Mail that is not a report is not limited by them, and cannot open the way either.
    EXPECT_EQ(codes(send("RCPT TO:<b@example.net>\r\nRCPT TO:<dmarc-reports@example.net>\r\n")),
              (std::vector<int>{250, 452}));
}

// Any mix of recipients in any order: a transaction reaches either reportd or the next hop,
// never both, and the next hop never hears of a report address.
TEST_F(ReportAttackTest, RandomRecipientOrdersNeverMixTheTwoRoutes) {
    const std::vector<std::string> recipients = {"dmarc-reports@example.net", "b@example.net",
                                                 "TLS-reports@reports.example.org", "c@example.net",
                                                 "victim@evil.test"};
    std::mt19937 random(21);
    for (int round = 0; round < 40; ++round) {
        host_ = FakeHost{};
        submitter_.clear();
        clock_.advance(2h);  // the hourly limits are not what this test is about
        start_reports("198.51.100." + std::to_string(round));
        std::string commands = "EHLO c.test\r\nMAIL FROM:<a@reporter.test>\r\n";
        for (int i = 0; i < 3; ++i) {
            commands += "RCPT TO:<" + recipients[random() % recipients.size()] + ">\r\n";
        }
        send(commands + "DATA\r\n" + kReportBody + ".\r\n");
        const bool hop = !host_.hop.messages.empty();
        const bool reportd = !submitter_.messages.empty();
        EXPECT_FALSE(hop && reportd) << commands;
        for (const auto& call : host_.hop.calls) {
            EXPECT_EQ(call.find("reports"), std::string::npos) << commands;
            EXPECT_EQ(call.find("evil.test"), std::string::npos) << commands;
        }
        EXPECT_TRUE(signing_.clients.empty());
    }
}

}  // namespace
}  // namespace dkim::relayd

// Report addresses on the inbound listener ([inbound.reports], report_intake.hpp; issue 21):
// the configuration, and the socket-free Transaction with a fake dkim-reportd (routing to the
// report store instead of a next hop, no mixing of report and other recipients, the size limit,
// the hourly limits on a ManualClock, each of reportd's answers), reportd's answers as the relay
// reads them, and the channel submitter against a Unix socket that answers like reportd.

#include "report_intake.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "dkim/dkim/signer.hpp"
#include "dkim/ipc/frame.hpp"
#include "software_signer.hpp"
#include "transaction_fixture.hpp"

namespace dkim::relayd {
namespace {

using namespace std::chrono_literals;
using namespace dkim::relayd::fakes;
namespace channel = reports::channel;

// --- configuration ---------------------------------------------------------------------------

class ReportConfigTest : public ::testing::Test {
  protected:
    Expected<Config, std::string> load(const std::string& reports) {
        const auto file = dir_ / "relayd.toml";
        std::ofstream(file) << "[[listen]]\naddress = \"127.0.0.1:25\"\nrole = \"inbound\"\n"
                               "[next_hop]\nurl = \"maildir:/m\"\n"
                               "[inbound]\ndomains = [\"example.com\"]\n"
                            << reports;
        return load_config(file.string());
    }
    std::filesystem::path dir_ = test::make_temp_dir("relayd-report-config");
};

TEST_F(ReportConfigTest, AddressesAreReadInTheFormTheyAreComparedIn) {
    auto c = load(
        "[inbound.reports]\naddresses = [\"DMARC-Reports@Example.COM\", "
        "\"\\\"tls.reports\\\"@reports.example.org\"]\n");
    ASSERT_TRUE(c) << c.error();
    ASSERT_TRUE(c->inbound->reports);
    const ReportSettings& r = *c->inbound->reports;
    EXPECT_EQ(r.addresses, (std::vector<std::string>{"dmarc-reports@example.com",
                                                     "tls.reports@reports.example.org"}));
    EXPECT_EQ(r.socket, "/run/dkim-appliance/reportd.sock");
    EXPECT_EQ(r.max_size, std::uint64_t{32} << 20);
    EXPECT_EQ(r.max_per_client_per_hour, 60U);
    EXPECT_EQ(r.max_per_hour, 2000U);
    EXPECT_TRUE(r.is_report_address("dmarc-reports", "example.com"));
    EXPECT_TRUE(r.is_report_address("DMARC-REPORTS", "EXAMPLE.com"));
    EXPECT_TRUE(r.is_report_address("\"dmarc-reports\"", "example.com"))
        << "quoting changes nothing";
    EXPECT_TRUE(r.is_report_address("TLS.Reports", "reports.example.org"));
    EXPECT_FALSE(r.is_report_address("dmarc-reports+x", "example.com"));
    EXPECT_FALSE(r.is_report_address("dmarc-reports", "example.com.evil.test"));
    EXPECT_FALSE(r.is_report_address("postmaster", ""));
    // Without the table there are no report addresses.
    auto without = load("");
    ASSERT_TRUE(without) << without.error();
    EXPECT_FALSE(without->inbound->reports);
}

TEST_F(ReportConfigTest, ErrorsNameFileLineAndKey) {
    struct Case {
        std::string text;
        std::string key;
        std::string says;
    };
    const std::string t = "[inbound.reports]\n";
    const std::string a = "addresses = [\"r@example.com\"]\n";
    const std::vector<Case> cases = {
        {t, "inbound.reports.addresses", "missing"},
        {t + "addresses = []\n", "inbound.reports.addresses", "missing"},
        {t + "addresses = [\"reports\"]\n", "inbound.reports.addresses", "not a mailbox"},
        {t + "addresses = [\"r@[192.0.2.1]\"]\n", "inbound.reports.addresses", "not a mailbox"},
        {t + "addresses = [\"r@example.com> NOTIFY=NEVER\"]\n", "inbound.reports.addresses",
         "not a mailbox"},
        {t + "addresses = [\"@a.example:r@example.com\"]\n", "inbound.reports.addresses",
         "not a mailbox"},
        {t + "addresses = [\"r@example.com\", \"R@EXAMPLE.com\"]\n", "inbound.reports.addresses",
         "twice"},
        {t + a + "socket = \"reportd.sock\"\n", "inbound.reports.socket", "absolute"},
        {t + a + "max_size = \"65MiB\"\n", "inbound.reports.max_size", ""},
        {t + a + "max_per_client_per_hour = 0\n", "inbound.reports.max_per_client_per_hour", ""},
        {t + a + "max_per_hour = \"many\"\n", "inbound.reports.max_per_hour", ""},
        {t + a + "maximum = 1\n", "inbound.reports.maximum", "unknown key"},
    };
    for (const auto& c : cases) {
        auto loaded = load(c.text);
        ASSERT_FALSE(loaded) << c.text;
        EXPECT_NE(loaded.error().find("relayd.toml:"), std::string::npos) << loaded.error();
        EXPECT_NE(loaded.error().find(c.key), std::string::npos) << loaded.error();
        EXPECT_NE(loaded.error().find(c.says), std::string::npos) << loaded.error();
    }
}

// --- routing ---------------------------------------------------------------------------------

class ReportTransactionTest : public TransactionFixture {
  protected:
    std::size_t command_limit() const override { return 200; }
    // One report transaction's commands (without DATA).
    std::string report_envelope(const std::string& to = "dmarc-reports@example.net") {
        return "MAIL FROM:<noreply-dmarc-support@google.com>\r\nRCPT TO:<" + to + ">\r\n";
    }
};

// `n` lines of 100 octets (the fixture's line_length is 200).
std::string lines(std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += std::string(98, 'x') + "\r\n";
    }
    return out;
}

const std::string kReport =
    "From: noreply-dmarc-support@google.com\r\nTo: dmarc-reports@example.net\r\n"
    "Subject: Report domain: example.net Submitter: google.com\r\n"
    "Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBBQ=\r\n";

TEST_F(ReportTransactionTest, ReportMailGoesToTheReportStoreFromAnySenderAndNeverToTheNextHop) {
    start_reports();
    const auto r = send("EHLO mail-sor-f69.google.com\r\n" + report_envelope() + "DATA\r\n" +
                        kReport + ".\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 354, 250})) << r;
    EXPECT_NE(r.find("250 2.1.5 Recipient OK: report address"), std::string::npos) << r;
    EXPECT_NE(r.find("250 2.0.0 Ok: report stored (submission 7)"), std::string::npos) << r;
    EXPECT_NE(r.find("250-SIZE 4096"), std::string::npos) << "the listener's SIZE stays its own";
    EXPECT_TRUE(host_.hop.calls.empty()) << "the next hop never hears of a report transaction";
    ASSERT_EQ(submitter_.messages.size(), 1U);
    EXPECT_EQ(submitter_.messages[0], kReport) << "the bytes as received: nothing added";
    EXPECT_EQ(submitter_.origins[0],
              "smtp 10.1.2.3 <noreply-dmarc-support@google.com> mail-sor-f69.google.com");
    ASSERT_EQ(host_.logs.size(), 1U);
    const std::string& log = host_.logs[0];
    EXPECT_TRUE(
        log.starts_with("dkim-relayd: report id=t1.1 ip=10.1.2.3 "
                        "helo=\"mail-sor-f69.google.com\" "
                        "mail_from=\"noreply-dmarc-support@google.com\" reporter=- size="))
        << log;
    EXPECT_NE(log.find(" rcpts=1 submission=7 reports=1 duplicates=0 errors=0 reportd=\"stored\" "
                       "reply=250 latency_ms="),
              std::string::npos)
        << log;
    EXPECT_EQ(metrics_.reports(RelayMetrics::ReportOutcome::stored), 1U);
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::delivered), 1U);
    const std::string rendered = metrics_.render();
    EXPECT_NE(rendered.find("dkim_relayd_report_submissions_total{outcome=\"stored\"} 1"),
              std::string::npos);
    EXPECT_NE(rendered.find("dkim_relayd_report_submissions_total{outcome=\"rate_limited\"} 0"),
              std::string::npos);

    // The next transaction on the connection is ordinary mail again: the next hop hears MAIL
    // with its first recipient.
    EXPECT_EQ(codes(send("MAIL FROM:<x@sender.test>\r\nRCPT TO:<b@example.net>\r\n")),
              (std::vector<int>{250, 250}));
    EXPECT_EQ(host_.hop.calls,
              (std::vector<std::string>{"MAIL <x@sender.test>", "RCPT <b@example.net>"}));
}

// The reporter: the From domain of a report whose aligned DKIM signature verified (the inbound
// verifier's authenticated_author, over the fixture's DNS), handed to reportd with the bytes and
// named in the log; none for an unsigned report or one whose signature no longer verifies, which
// are stored all the same.
TEST_F(ReportTransactionTest, ASignedReportNamesItsReporterAndAnUnsignedOneNone) {
    const auto key = test::SoftwareSigner::generate(0);
    resolver_.set_txt("sel._domainkey.google.com", {key->key_record()});
    resolver_.set_txt("_dmarc.google.com", {"v=DMARC1; p=reject"});
    const std::string report =
        "From: Google <noreply-dmarc-support@accounts.google.com>\r\n"
        "To: dmarc-reports@example.net\r\nSubject: Report domain: example.net Submitter: "
        "google.com\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n<feedback/>\r\n";
    const auto signed_report =
        sign_message(report, {SigningKey{"google.com", "sel", key.get(), {}}}, clock_.now());
    ASSERT_TRUE(signed_report) << signed_report.error().message;
    std::string forged = *signed_report;
    forged.replace(forged.find("<feedback/>"), 11, "<feedback>x");

    int client = 0;  // each from a client of its own: the hourly limit is 3 per client
    const auto deliver = [&](const std::string& m) {
        start_reports("192.0.2." + std::to_string(++client));
        const auto r =
            send("EHLO mail-sor-f69.google.com\r\n" + report_envelope() + "DATA\r\n" + m + ".\r\n");
        EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 354, 250})) << r;
    };
    deliver(*signed_report);
    deliver(report);
    deliver(forged);
    ASSERT_EQ(submitter_.reporters.size(), 3U);
    EXPECT_EQ(submitter_.reporters[0], "accounts.google.com")
        << "d=google.com is aligned with the From domain (the tree walk finds _dmarc.google.com)";
    EXPECT_EQ(submitter_.reporters[1], "") << "unsigned";
    EXPECT_EQ(submitter_.reporters[2], "") << "the signature does not verify";
    EXPECT_EQ(submitter_.messages[0], *signed_report) << "nothing added";
    ASSERT_EQ(host_.logs.size(), 3U);
    EXPECT_NE(host_.logs[0].find(" reporter=accounts.google.com size="), std::string::npos)
        << host_.logs[0];
    EXPECT_NE(host_.logs[1].find(" reporter=- size="), std::string::npos) << host_.logs[1];
    EXPECT_NE(host_.logs[2].find(" reporter=- size="), std::string::npos) << host_.logs[2];
    EXPECT_TRUE(host_.hop.calls.empty());

    // DNS down: not authenticated, and still stored.
    resolver_.set_status("sel._domainkey.google.com", dns::LookupStatus::temporary_failure);
    deliver(*signed_report);
    ASSERT_EQ(submitter_.reporters.size(), 4U);
    EXPECT_EQ(submitter_.reporters[3], "");
}

TEST_F(ReportTransactionTest, ReportAddressesMatchInAnyCaseAndOutsideTheReceivedDomains) {
    start_reports();
    send("EHLO c.test\r\n");
    // The null sender, a quoted local part, the second address's domain (not in [inbound]
    // domains), and both addresses in one transaction: one submission.
    const auto r = send(
        "MAIL FROM:<>\r\nRCPT TO:<\"DMARC-Reports\"@EXAMPLE.net>\r\n"
        "RCPT TO:<tls-reports@reports.example.org>\r\nRCPT TO:<other@reports.example.org>\r\n"
        "RCPT TO:<dmarc-reports+tag@example.net>\r\nDATA\r\n" +
        kReport + ".\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 250, 550, 452, 354, 250})) << r;
    EXPECT_NE(r.find("550 5.7.1 Relaying denied: reports.example.org"), std::string::npos) << r;
    EXPECT_EQ(submitter_.origins, std::vector<std::string>{"smtp 10.1.2.3 <> c.test"});
    EXPECT_TRUE(host_.hop.calls.empty());
}

TEST_F(ReportTransactionTest, ReportAndOtherRecipientsNeedTransactionsOfTheirOwn) {
    start_reports();
    send("EHLO c.test\r\n");
    // A report transaction refuses other recipients for now...
    auto r = send(report_envelope() + "RCPT TO:<b@example.net>\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 452})) << r;
    EXPECT_NE(r.find("452 4.5.3 This transaction is for report addresses only"), std::string::npos)
        << r;
    EXPECT_TRUE(host_.hop.calls.empty());
    send("RSET\r\n");
    // ...and a mail transaction refuses report addresses.
    r = send(
        "MAIL FROM:<x@sender.test>\r\nRCPT TO:<b@example.net>\r\n"
        "RCPT TO:<dmarc-reports@example.net>\r\nDATA\r\n" +
        kMessage + ".\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 452, 354, 250})) << r;
    EXPECT_NE(r.find("452 4.5.3 Report addresses take a transaction of their own"),
              std::string::npos)
        << r;
    EXPECT_EQ(host_.hop.calls,
              (std::vector<std::string>{"MAIL <x@sender.test>", "RCPT <b@example.net>", "DATA"}));
    EXPECT_TRUE(submitter_.messages.empty());
    EXPECT_EQ(metrics_.reports(RelayMetrics::ReportOutcome::stored), 0U);
}

TEST_F(ReportTransactionTest, TheNextHopsRefusalOfTheDeferredMailIsTheRecipientsReply) {
    start_reports();
    host_.hop.mail = local_reply(451, "4.3.2", "try later");
    const auto r = send(
        "EHLO c.test\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<b@example.net>\r\n"
        "RCPT TO:<c@example.net>\r\nRCPT TO:<dmarc-reports@example.net>\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 451, 451, 250})) << r;
    EXPECT_NE(r.find("451 4.3.2 Next hop: try later"), std::string::npos) << r;
    EXPECT_EQ(host_.hop.calls, std::vector<std::string>{"MAIL <x@sender.test>"})
        << "asked once; a report address still works in the transaction";
    EXPECT_EQ(codes(send("RSET\r\n")), std::vector<int>{250});
    EXPECT_EQ(host_.hop.calls, std::vector<std::string>{"MAIL <x@sender.test>"})
        << "no RSET for a MAIL the next hop refused";
}

TEST_F(ReportTransactionTest, ReportsHaveTheirOwnSizeLimitWithinTheListeners) {
    start_reports();
    send("EHLO c.test\r\n");
    // Declared: 552 at RCPT (RFC 1870 §6.1) for the report address only.
    auto r = send(
        "MAIL FROM:<a@sender.test> SIZE=3000\r\nRCPT TO:<dmarc-reports@example.net>\r\n"
        "RCPT TO:<b@example.net>\r\nRSET\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 552, 250, 250})) << r;
    EXPECT_NE(r.find("552 5.3.4 Report messages are limited to 2048 bytes"), std::string::npos)
        << r;
    EXPECT_EQ(host_.hop.calls,
              (std::vector<std::string>{"MAIL <a@sender.test>", "RCPT <b@example.net>", "RSET"}));
    // Not declared: 552 at the final dot, and nothing goes to reportd.
    const std::string big = "Subject: r\r\n\r\n" + lines(21);
    r = send(report_envelope() + "DATA\r\n" + big + ".\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 250, 354, 552})) << r;
    EXPECT_NE(r.find("552 5.3.4 Report messages are limited to 2048 bytes"), std::string::npos)
        << r;
    EXPECT_TRUE(submitter_.messages.empty());
    // Just within: stored.
    const std::string fits = "Subject: r\r\n\r\n" + lines(20);
    r = send(report_envelope() + "DATA\r\n" + fits + ".\r\n");
    EXPECT_EQ(codes(r).back(), 250) << r;
    EXPECT_EQ(submitter_.messages, std::vector<std::string>{fits});
    EXPECT_EQ(metrics_.reports(RelayMetrics::ReportOutcome::too_large), 2U);
    EXPECT_EQ(host_.hop.calls.size(), 3U) << "nothing more for the next hop";
}

TEST_F(ReportTransactionTest, ReportTransactionsAreLimitedPerClientAndAltogetherEachHour) {
    // max_per_client_per_hour = 3, max_per_hour = 5.
    start_reports("10.1.2.3");
    send("EHLO c.test\r\n");
    for (int i = 0; i < 3; ++i) {
        // Two report addresses in one transaction count once.
        EXPECT_EQ(codes(send(report_envelope() + "RCPT TO:<tls-reports@reports.example.org>\r\n"
                                                 "RSET\r\n")),
                  (std::vector<int>{250, 250, 250, 250}));
    }
    auto r = send(report_envelope());
    EXPECT_EQ(codes(r), (std::vector<int>{250, 450})) << r;
    EXPECT_NE(r.find("450 4.7.1 Too many reports from your address this hour"), std::string::npos)
        << r;
    // The transaction is still undecided: ordinary mail goes on.
    EXPECT_EQ(codes(send("RCPT TO:<b@example.net>\r\nRSET\r\n")), (std::vector<int>{250, 250}));

    // Another client has its own count, within the relay's.
    start_reports("192.0.2.7");
    send("EHLO d.test\r\n");
    EXPECT_EQ(codes(send(report_envelope() + "RSET\r\n" + report_envelope() + "RSET\r\n")),
              (std::vector<int>{250, 250, 250, 250, 250, 250}));
    r = send(report_envelope() + "RSET\r\n");
    EXPECT_EQ(codes(r), (std::vector<int>{250, 450, 250})) << r;
    EXPECT_NE(r.find("450 4.7.1 Too many reports this hour"), std::string::npos) << r;
    EXPECT_EQ(metrics_.reports(RelayMetrics::ReportOutcome::rate_limited), 2U);

    // A sliding hour on the injected clock.
    clock_.advance(59min);
    EXPECT_EQ(codes(send(report_envelope() + "RSET\r\n")), (std::vector<int>{250, 450, 250}));
    clock_.advance(1min);
    EXPECT_EQ(codes(send(report_envelope() + "RSET\r\n")), (std::vector<int>{250, 250, 250}));
}

TEST_F(ReportTransactionTest, AnIpv6ClientIsCountedByItsSlash64) {
    for (const char* address : {"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"}) {
        start_reports(address);
        EXPECT_EQ(codes(send("EHLO c.test\r\n" + report_envelope() + "RSET\r\n")),
                  (std::vector<int>{250, 250, 250, 250}))
            << address;
    }
    start_reports("2001:db8:1:2::3");
    EXPECT_EQ(codes(send("EHLO c.test\r\n" + report_envelope())),
              (std::vector<int>{250, 250, 450}));
    start_reports("2001:db8:1:3::1");  // another /64
    EXPECT_EQ(codes(send("EHLO c.test\r\n" + report_envelope())),
              (std::vector<int>{250, 250, 250}));
    EXPECT_EQ(report_rate_key("::ffff:192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(report_rate_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    EXPECT_EQ(report_rate_key("192.0.2.1"), "192.0.2.1");
}

TEST_F(ReportTransactionTest, ReportdsAnswersDecideTheReply) {
    start_reports();
    send("EHLO c.test\r\n");
    // Refused as invalid: 554 with reportd's reason, on one line of printable ASCII.
    submitter_.answer = ReportAnswer{};
    submitter_.answer.kind = ReportAnswer::Kind::invalid;
    submitter_.answer.reason = "submission larger than\r\n64 MiB \xc3\xa9\x01";
    auto r = send(report_envelope() + "DATA\r\n" + kReport + ".\r\n");
    EXPECT_NE(r.find("554 5.6.0 Report refused: submission larger than  64 MiB ???\r\n"),
              std::string::npos)
        << r;
    EXPECT_EQ(codes(r).size(), 4U) << "one reply line: " << r;
    // Unreachable or busy: 451, which names nothing of the relay's insides.
    submitter_.answer = ReportAnswer{};
    submitter_.answer.reason = "dkim-reportd could not be asked: cannot connect to /run/x.sock";
    r = send(report_envelope() + "DATA\r\n" + kReport + ".\r\n");
    EXPECT_NE(r.find("451 4.3.0 The report store is unavailable; try again later\r\n"),
              std::string::npos)
        << r;
    EXPECT_EQ(r.find("/run/x.sock"), std::string::npos);
    EXPECT_EQ(submitter_.messages.size(), 2U);
    EXPECT_TRUE(host_.hop.calls.empty()) << "no next hop instead of reportd";
    ASSERT_EQ(host_.logs.size(), 2U);
    EXPECT_NE(
        host_.logs[0].find("submission=- reports=- duplicates=- errors=- reportd=\"submission "
                           "larger than  64 MiB ???\" reply=554"),
        std::string::npos)
        << host_.logs[0];
    EXPECT_NE(host_.logs[1].find("reportd=\"dkim-reportd could not be asked: cannot connect to "
                                 "/run/x.sock\" reply=451"),
              std::string::npos)
        << host_.logs[1];
    EXPECT_EQ(metrics_.reports(RelayMetrics::ReportOutcome::invalid), 1U);
    EXPECT_EQ(metrics_.reports(RelayMetrics::ReportOutcome::unavailable), 1U);
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::rejected), 1U);
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::deferred_hop), 1U);
}

TEST_F(ReportTransactionTest, WithoutReportAddressesTheyAreOrdinaryRecipients) {
    start_verifying();  // no [inbound.reports] handed to the transaction
    EXPECT_EQ(codes(send("EHLO c.test\r\nMAIL FROM:<x@sender.test>\r\n"
                         "RCPT TO:<dmarc-reports@example.net>\r\n")),
              (std::vector<int>{250, 250, 250}));
    EXPECT_EQ(host_.hop.calls, (std::vector<std::string>{"MAIL <x@sender.test>",
                                                         "RCPT <dmarc-reports@example.net>"}));
}

// --- reportd's answers -----------------------------------------------------------------------

channel::Message json_message(std::string_view text) {
    channel::Message m;
    m.json = boost::json::parse(text).as_object();
    return m;
}

TEST(ReportAnswerTest, ReportdsAnswersAreReadStrictly) {
    auto a = read_report_answer(json_message(
        R"({"ok":true,"submission":12,"reports":2,"duplicates":1,"errors":["part 3: not a report"]})"));
    EXPECT_EQ(a.kind, ReportAnswer::Kind::stored);
    EXPECT_EQ(a.submission, 12);
    EXPECT_EQ(a.reports, 2);
    EXPECT_EQ(a.duplicates, 1);
    EXPECT_EQ(a.errors, 1U);
    EXPECT_EQ(report_reply(a).code, 250);

    a = read_report_answer(json_message(R"({"ok":false,"code":"invalid","error":"nothing"})"));
    EXPECT_EQ(a.kind, ReportAnswer::Kind::invalid);
    EXPECT_EQ(report_reply(a).text, "Report refused: nothing");
    EXPECT_EQ(report_reply(a).enhanced, "5.6.0");

    for (const char* text : {R"({"ok":false,"code":"unavailable","error":"too many"})",
                             R"({"ok":false,"code":"forbidden","error":"uid 7"})",
                             R"({"ok":"true","submission":1})", R"({"submission":1})"}) {
        a = read_report_answer(json_message(text));
        EXPECT_EQ(a.kind, ReportAnswer::Kind::unavailable) << text;
        EXPECT_EQ(report_reply(a).code, 451) << text;
        EXPECT_EQ(report_reply(a).enhanced, "4.3.0") << text;
    }
    EXPECT_EQ(read_report_answer(json_message(R"({"ok":false,"code":"forbidden","error":"uid 7"})"))
                  .reason,
              "forbidden: uid 7");
    a = read_report_answer(unexpected(std::string("cannot connect")));
    EXPECT_EQ(a.kind, ReportAnswer::Kind::unavailable);
    EXPECT_EQ(a.reason, "dkim-reportd could not be asked: cannot connect");
}

// --- the channel -----------------------------------------------------------------------------

// A Unix socket that answers one request like dkim-reportd, keeping what it was sent in
// `received` (read it once the FakeReportd is gone: its thread writes it).
class FakeReportd {
  public:
    FakeReportd(const std::filesystem::path& path, std::string answer,
                std::optional<channel::Message>& received)
        : received_(received), path_(path.string()), answer_(std::move(answer)) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
        EXPECT_EQ(::listen(fd_, 1), 0);
        thread_ = std::thread([this] {
            const int peer = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (peer < 0) {
                return;
            }
            auto payload = ipc::read_frame(peer, 10s, 10s, channel::kMaxFrame, channel::kVersion);
            if (payload) {
                auto request = channel::decode(*payload);
                if (request) {
                    received_ = std::move(*request);
                }
            }
            (void)ipc::write_all(peer, channel::encode(json_message(answer_)), 10s);
            ::close(peer);
        });
    }
    ~FakeReportd() {
        thread_.join();
        ::close(fd_);
    }
    FakeReportd(const FakeReportd&) = delete;
    FakeReportd& operator=(const FakeReportd&) = delete;

  private:
    std::optional<channel::Message>& received_;
    std::string path_;
    std::string answer_;
    int fd_ = -1;
    std::thread thread_;
};

awaitable<void> submit_into(ChannelSubmitter* submitter, const std::string* origin,
                            const std::string* message, const std::string* reporter,
                            ReportAnswer* out) {
    *out = co_await submitter->submit(*origin, *message, *reporter);
}

ReportAnswer submit_through(ChannelSubmitter& submitter, const std::string& origin,
                            const std::string& message, const std::string& reporter = "") {
    asio::io_context io;
    ReportAnswer out;
    asio::co_spawn(io, submit_into(&submitter, &origin, &message, &reporter, &out), asio::detached);
    io.run();
    return out;
}

TEST(ChannelSubmitterTest, SubmitsTheBytesWithTheirOriginAndReadsTheAnswer) {
    const auto dir = test::make_temp_dir("relayd-report-channel");
    asio::thread_pool pool(1);
    std::optional<channel::Message> received;
    const std::string message = "Subject: r\r\n\r\n" + std::string(100000, 'r') + "\r\n";
    {
        FakeReportd reportd(dir / "reportd.sock",
                            R"({"ok":true,"submission":42,"reports":1,"duplicates":0,"errors":[]})",
                            received);
        ChannelSubmitter submitter((dir / "reportd.sock").string(), pool, 10s);
        const ReportAnswer a = submit_through(submitter, "smtp 192.0.2.1 <a@b.example> h", message);
        EXPECT_EQ(a.kind, ReportAnswer::Kind::stored) << a.reason;
        EXPECT_EQ(a.submission, 42);
    }
    ASSERT_TRUE(received);
    EXPECT_EQ(channel::string_member(received->json, "op"), "submit");
    EXPECT_EQ(channel::string_member(received->json, "origin"), "smtp 192.0.2.1 <a@b.example> h");
    EXPECT_EQ(received->body, message);
    EXPECT_FALSE(received->json.contains("reporter")) << "no member for an unauthenticated one";
    // An authenticated reporter goes as "reporter".
    received.reset();
    std::filesystem::remove(dir / "reportd.sock");
    {
        FakeReportd reportd(dir / "reportd.sock",
                            R"({"ok":true,"submission":43,"reports":1,"duplicates":0,"errors":[]})",
                            received);
        ChannelSubmitter submitter((dir / "reportd.sock").string(), pool, 10s);
        const ReportAnswer a =
            submit_through(submitter, "smtp 192.0.2.1 <a@b.example> h", message, "b.example");
        EXPECT_EQ(a.submission, 43) << a.reason;
    }
    ASSERT_TRUE(received);
    EXPECT_EQ(channel::string_member(received->json, "reporter"), "b.example");
    // reportd is not there: unavailable, with the reason for the log.
    ChannelSubmitter missing((dir / "none.sock").string(), pool, 10s);
    const ReportAnswer a = submit_through(missing, "smtp 192.0.2.1 <> h", "x");
    EXPECT_EQ(a.kind, ReportAnswer::Kind::unavailable);
    EXPECT_NE(a.reason.find("none.sock"), std::string::npos) << a.reason;
    pool.join();
}

}  // namespace
}  // namespace dkim::relayd

// What anyone who mails a report address can make dkim-reportd's store believe (issue 21's red
// team). Reports carry no authentication that reportd checks: org_name, report_id and the
// counts are the sender's word. The tests here are the open findings (SECURITY.md, the report
// rows): each pins what holds (two were open when the red team wrote them, and are fixed).

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "findings.hpp"
#include "report_test_support.hpp"
#include "store.hpp"

namespace dkim::reportd {
namespace {

using reports::testing::aggregate_xml;

class ReportForgeryTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("reportd-forgery-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        auto s = ReportStore::open((dir_ / "reports.db").string());
        ASSERT_TRUE(s) << s.error();
        store_ = std::move(*s);
    }
    void TearDown() override {
        store_.reset();
        std::filesystem::remove_all(dir_);
    }
    IngestResult submit(const std::string& bytes, std::string_view reporter = {}) {
        auto id = store_->add_submission(1700000000, "relay", bytes, reporter);
        EXPECT_TRUE(id) << id.error();
        return store_->ingest(*id, reports::Limits{}, 1700000000);
    }

    std::filesystem::path dir_;
    std::unique_ptr<ReportStore> store_;
};

// Held (was open): duplicates were keyed by (kind, org_name, report_id, domain), all the
// sender's word. A
// forger who sends, first, a report under a real reporter's name and its next report id (many
// reporters' ids are a domain and a timestamp, or a counter) has the real report dropped as a
// duplicate: its records were never counted (a replay it would show stayed hidden). Now a
// duplicate is one whose content is the same (a digest of the report's records kept with it);
// the same key with other content is stored too, both flagged as a conflict.
TEST_F(ReportForgeryTest, AForgedReportDoesNotPreemptTheRealOne) {
    const auto forged = submit(aggregate_xml(1, 1, "r-1"));  // same org, id and domain
    ASSERT_EQ(forged.reports, 1U);
    const auto real = submit(aggregate_xml(3, 5, "r-1"));
    EXPECT_EQ(real.duplicates, 0U) << "the real report was taken for a duplicate";
    const std::int64_t day = 1700000000 / kDay;
    std::uint64_t messages = 0;
    for (const auto& d : store_->daily("example.com", day - 1, day + 2)) {
        messages += d.messages;
    }
    EXPECT_GE(messages, 15U) << "the real report's 15 messages are not counted";
    ASSERT_EQ(real.errors.size(), 1U);
    EXPECT_NE(real.errors[0].find("conflict"), std::string::npos) << real.errors[0];
}

// Holds: the same report again (gzip'd, say) is a duplicate, not counted twice.
TEST_F(ReportForgeryTest, TheSameReportAgainIsADuplicate) {
    EXPECT_EQ(submit(aggregate_xml(3, 5, "r-1")).reports, 1U);
    EXPECT_EQ(submit(reports::testing::gzip_bytes(aggregate_xml(3, 5, "r-1"))).duplicates, 1U);
}

// Held (was open): one report's counts weigh what it says, so a single forged report of
// 2^53 - 1 aligned messages outweighs every real reporter in the pooled totals. Enforcement
// readiness therefore weighs each reporter on its own and takes the weakest: the forger's
// report cannot make it recommend a stricter policy while a real reporter sees a legitimate
// source failing alignment (that source's mail would then be rejected).
TEST_F(ReportForgeryTest, OneReportCannotOutweighEveryOtherReporterInReadiness) {
    std::string real = aggregate_xml(1, 1000, "real-1");
    real.replace(real.find("<dkim>pass</dkim>"), 17, "<dkim>fail</dkim>");
    real.replace(real.find("<result>pass</result>"), 21, "<result>fail</result>");
    ASSERT_EQ(submit(real).reports, 1U);
    std::string forged = aggregate_xml(1, 1, "forged-1");
    forged.replace(forged.find("<org_name>Reporter</org_name>"), 29, "<org_name>Forger</org_name>");
    forged.replace(forged.find("<count>1</count>"), 16, "<count>9007199254740991</count>");
    ASSERT_EQ(submit(forged).reports, 1U);
    const std::int64_t day = 1700000000 / kDay;

    DomainEvidence e;
    e.domain = "example.com";
    e.sources = store_->sources("example.com", day - 13, day + 1);
    e.by_reporter = store_->reporter_sources("example.com", day - 13, day + 1);
    e.published = std::make_pair(std::string("none"), std::optional<unsigned>());
    FindingInput in;
    in.from_day = day - 13;
    in.to_day = day + 1;
    in.domains.push_back(e);
    const auto found = find(in, FindingOptions{});
    const auto it = std::find_if(found.begin(), found.end(), [](const Finding& f) {
        return f.kind == "enforcement_readiness";
    });
    ASSERT_NE(it, found.end());
    EXPECT_EQ(it->evidence.at("next").as_string(), "none") << it->summary;
    EXPECT_EQ(it->evidence.at("weakest_reporter").as_string(), "Reporter");
    // The pooled share, which the forger decides, is not what the step is judged on.
    EXPECT_LT(it->evidence.at("aligned_share").as_double(), 0.5);
}

// Closed (was open: forged false criticals): reports carry no authentication of their own, so
// a report's DKIM counts are only authenticated when its mail was (relayd's or the CLI's DKIM
// check of the From domain, the submission's reporter). An unauthenticated submission counts
// in pass and fail, never in the authenticated counts the critical findings are judged on; the
// same report again from an authenticated reporter vouches for the stored copy, and a second,
// unauthenticated copy takes nothing away.
TEST_F(ReportForgeryTest, OnlyAnAuthenticatedReporterCountsAsAuthenticated) {
    const std::int64_t day = 1700000000 / kDay;
    auto totals = [&] {
        SelectorDay sum;
        for (const auto& d : store_->selector_days(day - 1, day + 2)) {
            sum.pass += d.pass;
            sum.authenticated_pass += d.authenticated_pass;
        }
        return sum;
    };
    ASSERT_EQ(submit(aggregate_xml(2, 5, "r-1")).reports, 1U);
    EXPECT_EQ(totals().pass, 10U);
    EXPECT_EQ(totals().authenticated_pass, 0U);
    // The same report from an authenticated reporter: a duplicate, and now vouched for.
    EXPECT_EQ(submit(reports::testing::report_mail(aggregate_xml(2, 5, "r-1")), "reporter.example")
                  .duplicates,
              1U);
    EXPECT_EQ(totals().pass, 10U);
    EXPECT_EQ(totals().authenticated_pass, 10U);
    // (The report's hours fall on day + 1 almost all: five messages a row all land there.)
    EXPECT_EQ(store_->authenticated_reporters("example.com", "s1", day + 1),
              std::vector<std::string>{"reporter.example"});
    // Again unauthenticated: still a duplicate, still vouched for.
    EXPECT_EQ(submit(aggregate_xml(2, 5, "r-1")).duplicates, 1U);
    EXPECT_EQ(totals().authenticated_pass, 10U);
    // Another report of the same key and other content from a forger: counted, unauthenticated,
    // both flagged as a conflict.
    const auto forged = submit(aggregate_xml(2, 500, "r-1"));
    EXPECT_EQ(forged.reports, 1U);
    EXPECT_EQ(totals().pass, 1010U);
    EXPECT_EQ(totals().authenticated_pass, 10U);
    const auto listed = store_->reports("example.com", 0, 2000000000, 10);
    ASSERT_EQ(listed.size(), 2U);
    for (const auto& r : listed) {
        EXPECT_TRUE(r.conflict);
        EXPECT_EQ(r.reporter, r.messages == 10 ? "reporter.example" : "");
    }
}

// Held (was open: an authenticated reporter for any report): relayd and the CLI vouch for a
// mail message (its From domain and a DKIM signature aligned with it), and reportd reads the
// same bytes by their first bytes. A line "<!--:--><feedback>...</feedback>" put above a
// genuine signed mail of google.com is one more header field to DKIM (unsigned fields may be
// added), so google.com stays the authenticated author; to the reader the bytes begin with
// '<': an XML report, read up to </feedback>, the mail below never looked at. The reporter
// counts only for bytes read as a mail message.
TEST_F(ReportForgeryTest, AReporterVouchesOnlyForBytesReadAsAMail) {
    const std::int64_t day = 1700000000 / kDay;
    const auto authenticated_pass = [&] {
        std::uint64_t n = 0;
        for (const auto& d : store_->selector_days(day - 1, day + 2)) {
            n += d.authenticated_pass;
        }
        return n;
    };
    std::string xml = aggregate_xml(2, 5, "forged-1");
    xml.erase(0, xml.find("<feedback>"));
    for (std::size_t at = xml.find('\n'); at != std::string::npos; at = xml.find('\n', at + 3)) {
        xml.replace(at, 1, "\r\n ");  // folded: one header field
    }
    const std::string genuine =
        "DKIM-Signature: v=1; a=rsa-sha256; d=google.com; s=20230601; h=from:to:subject;\r\n"
        "\tbh=...; b=...\r\nFrom: noreply-dmarc-support@google.com\r\n"
        "To: dmarc-reports@example.com\r\nSubject: Report domain: example.com\r\n\r\n"
        "(a genuine report's attachment)\r\n";
    const std::string forged = "<!--:-->" + xml + "\r\n" + genuine;
    ASSERT_EQ(reports::sniff(forged), reports::ContentKind::xml);
    const auto stored = submit(forged, "google.com");
    EXPECT_EQ(stored.reports, 1U);
    EXPECT_EQ(authenticated_pass(), 0U) << "bytes read as XML counted as google.com's";
    EXPECT_TRUE(store_->authenticated_reporters("example.com", "s1", day + 1).empty());
    // A bare report file likewise; the same report as a mail's attachment is vouched for.
    EXPECT_EQ(submit(aggregate_xml(2, 5, "bare-1"), "reporter.example").reports, 1U);
    EXPECT_EQ(authenticated_pass(), 0U);
    EXPECT_EQ(
        submit(reports::testing::report_mail(aggregate_xml(2, 5, "mail-1")), "reporter.example")
            .reports,
        1U);
    EXPECT_EQ(authenticated_pass(), 10U);
}

// Held (was open: failure and TLS reports were deduplicated by their key alone): a forger who
// sends a TLS report under the real reporter's name and next report id first no longer has
// the real one dropped; both are kept, flagged as a conflict. The same report again is still a
// duplicate. Failure reports likewise (their key: the report mail's Message-ID).
TEST_F(ReportForgeryTest, AForgedTlsOrFailureReportDoesNotPreemptTheRealOne) {
    const std::string real = reports::testing::sample("smtp_tls/smtp_tls.json");
    std::string forged = real;
    forged.replace(forged.find("\"failed-session-count\":2"), 24, "\"failed-session-count\":0");
    ASSERT_NE(forged, real);
    EXPECT_EQ(submit(forged).reports, 1U);
    const auto kept = submit(real);
    EXPECT_EQ(kept.reports, 1U) << "the real TLS report was taken for a duplicate";
    ASSERT_EQ(kept.errors.size(), 1U);
    EXPECT_NE(kept.errors[0].find("conflict"), std::string::npos) << kept.errors[0];
    EXPECT_EQ(submit(real).duplicates, 1U);

    const std::string mail = reports::testing::sample("failure/domain.de-failure-report.eml");
    std::string other = mail;
    const auto at = other.find("Source-IP:");
    ASSERT_NE(at, std::string::npos);
    other.replace(other.find_first_of("0123456789", at), 1, "9");
    EXPECT_EQ(submit(other).reports, 1U);
    EXPECT_EQ(submit(mail).reports, 1U) << "the real failure report was taken for a duplicate";
    EXPECT_EQ(submit(mail).duplicates, 1U);
}

// Held (was open): the aggregate digest joined the sender's fields with ':' and '|' unescaped,
// so a report whose selector took a ':' from its neighbour digested like the real one: sent
// first, it made the real one a duplicate (and had the real one's authenticated copy vouch for
// it). Each field now goes in with its length: the two are different reports.
TEST_F(ReportForgeryTest, FieldsMovedAcrossASeparatorAreNotTheSameReport) {
    const std::string base = aggregate_xml(1, 5, "r-1");
    const std::string field = "<domain>example.com</domain><selector>s1</selector>";
    ASSERT_NE(base.find(field), std::string::npos);
    std::string real = base;
    real.replace(real.find(field), field.size(),
                 "<domain>example.com</domain><selector>s1:x</selector>");
    std::string moved = base;
    moved.replace(moved.find(field), field.size(),
                  "<domain>example.com:s1</domain><selector>x</selector>");
    const auto first = submit(moved);
    EXPECT_EQ(first.reports, 1U) << (first.errors.empty() ? "" : first.errors[0]);
    const auto second = submit(real, "reporter.example");
    EXPECT_EQ(second.duplicates, 0U) << "the real report was taken for the moved one";
    EXPECT_EQ(second.reports, 1U);
}

}  // namespace
}  // namespace dkim::reportd

// TLS reports (RFC 8460) and failure reports (RFC 6591) on the real samples, and the content
// sniffing that routes every input: mails with attachments, mboxes, gzip'd JSON.

#include <gtest/gtest.h>

#include "dkim/reports/tls.hpp"
#include "report_test_support.hpp"

namespace dkim::reports {
namespace {

using testing::aggregate_xml;
using testing::gzip_bytes;
using testing::read_bytes;
using testing::sample;
using testing::zip_bytes;
using testing::zip_entry;

TEST(Rfc3339Test, ReadsUtcOffsetsAndFractions) {
    EXPECT_EQ(parse_rfc3339("2024-01-09T00:00:00Z"), 1704758400);
    EXPECT_EQ(parse_rfc3339("2024-01-09T23:59:59Z"), 1704844799);
    EXPECT_EQ(parse_rfc3339("2024-01-09T02:00:00.250+02:00"), 1704758400);
    EXPECT_EQ(parse_rfc3339("2024-01-08T19:00:00-05:00"), 1704758400);
    EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_rfc3339("2016-04-01T00:00:00Z"), 1459468800);
    EXPECT_FALSE(parse_rfc3339("2024-01-09"));
    EXPECT_FALSE(parse_rfc3339("2024-13-09T00:00:00Z"));
    EXPECT_FALSE(parse_rfc3339("2024-01-09T00:00:00"));  // no offset
    EXPECT_FALSE(parse_rfc3339("2024-01-09T00:00:00Zjunk"));
}

TEST(TlsReportTest, ReadsTheSamples) {
    const auto sink = read_bytes(sample("smtp_tls/smtp_tls.json"));
    ASSERT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.tls_reports.size(), 1U);
    const TlsReport& r = sink.tls_reports[0];
    EXPECT_EQ(r.org_name, "Example Inc.");
    EXPECT_EQ(r.report_id, "2024-01-09T00:00:00Z_example.com");
    EXPECT_EQ(r.begin, 1704758400);
    EXPECT_EQ(r.end, 1704844799);
    ASSERT_EQ(r.policies.size(), 1U);
    EXPECT_EQ(r.policies[0].policy_type, "sts");
    EXPECT_EQ(r.policies[0].policy_domain, "example.com");
    EXPECT_EQ(r.policies[0].policy_strings.size(), 4U);
    EXPECT_EQ(r.policies[0].successful, 0U);
    EXPECT_EQ(r.policies[0].failed, 3U);
    ASSERT_EQ(r.policies[0].failures.size(), 2U);
    EXPECT_EQ(r.policies[0].failures[0].result_type, "validation-failure");
    EXPECT_EQ(r.policies[0].failures[0].failed_session_count, 2U);
    EXPECT_EQ(r.policies[0].failures[1].sending_mta_ip, "209.85.208.176");

    const auto rfc = read_bytes(sample("smtp_tls/rfc8460.json"));
    ASSERT_TRUE(rfc.errors.empty()) << rfc.errors.front();
    ASSERT_EQ(rfc.tls_reports.size(), 1U);
    EXPECT_EQ(rfc.tls_reports[0].org_name, "Company-X");
}

TEST(TlsReportTest, GzippedAndRefused) {
    const auto gz = read_bytes(gzip_bytes(sample("smtp_tls/smtp_tls.json")));
    ASSERT_TRUE(gz.errors.empty()) << gz.errors.front();
    EXPECT_EQ(gz.tls_reports.size(), 1U);

    auto refused = [](const std::string& json, const std::string& why) {
        const auto sink = read_bytes(json);
        EXPECT_TRUE(sink.tls_reports.empty());
        ASSERT_EQ(sink.errors.size(), 1U);
        EXPECT_NE(sink.errors[0].find(why), std::string::npos) << sink.errors[0];
    };
    refused("{\"organization-name\":\"x\"}", "\"report-id\" is missing");
    refused(
        "{\"organization-name\":\"x\",\"report-id\":\"1\",\"date-range\":{\"start-datetime\":"
        "\"yesterday\",\"end-datetime\":\"2024-01-09T00:00:00Z\"},\"policies\":[]}",
        "not an RFC 3339 date-time");
    refused("{\"organization-name\":\"x\",", "JSON error");
    std::string deep = "{\"a\":";
    for (int i = 0; i < 100; ++i) {
        deep += "[";
    }
    refused(deep, "JSON error");
    refused("{\"organization-name\":5,\"report-id\":\"1\",\"date-range\":{},\"policies\":[]}",
            "\"organization-name\" is not a string");
}

TEST(FailureReportTest, ReadsRfc6591Reports) {
    const auto sink = read_bytes(sample("failure/domain.de-failure-report.eml"));
    ASSERT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.failures.size(), 1U);
    const FailureReport& f = sink.failures[0];
    EXPECT_EQ(f.feedback_type, "auth-failure");
    EXPECT_EQ(f.auth_failure, "dmarc");
    EXPECT_EQ(f.reported_domain, "domain.de");
    EXPECT_EQ(f.source_ip, "10.10.10.10");
    EXPECT_EQ(f.original_mail_from, "sharepoint@domain.de");
    EXPECT_EQ(f.original_rcpt_to, "peter.pan@domain.de");
    EXPECT_EQ(f.delivery_result, "smg-policy-action");
    EXPECT_EQ(f.arrival_date, 1538385627);  // Mon, 01 Oct 2018 11:20:27 +0200
    EXPECT_EQ(f.original_subject, "Subject");
    EXPECT_EQ(f.reporter, "dmarc-report@domain.de");
    EXPECT_FALSE(f.plain_text);
}

TEST(FailureReportTest, ReadsAnMboxMessageWithAnEmptyMailFrom) {
    const auto sink = read_bytes(sample("failure/dmarc_ruf_report_linkedin.eml"));
    ASSERT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.failures.size(), 1U);
    const FailureReport& f = sink.failures[0];
    EXPECT_EQ(f.reported_domain, "example.com");
    EXPECT_EQ(f.original_mail_from, "");
    EXPECT_EQ(f.delivery_result, "delivered");
    EXPECT_EQ(f.arrival_date, 1556590140);  // Tue, 30 Apr 2019 02:09:00 +0000
    EXPECT_EQ(f.original_from, "Sender <sender@example.com>");
    EXPECT_EQ(f.original_message_id,
              "<01010101010101010101010101010101@ABAB01MS0016.someserver.loc>");
}

TEST(FailureReportTest, ThePlainTextVariant) {
    const std::string mail =
        "From: reports@receiver.example\r\nTo: ruf@example.com\r\nSubject: DMARC failure\r\n"
        "Message-ID: <x@receiver.example>\r\nContent-Type: text/plain\r\n\r\n"
        "A message from your domain failed DMARC.\r\n\r\n"
        "Feedback-Type: auth-failure\r\nAuth-Failure: dkim\r\nSource-IP: 198.51.100.7\r\n"
        "Reported-Domain: Example.COM\r\nDKIM-Domain: example.com\r\nDKIM-Selector: s1\r\n"
        "Arrival-Date: Tue, 30 Apr 2019 02:09:00 +0000\r\n";
    const auto sink = read_bytes(mail);
    ASSERT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.failures.size(), 1U);
    EXPECT_TRUE(sink.failures[0].plain_text);
    EXPECT_EQ(sink.failures[0].auth_failure, "dkim");
    EXPECT_EQ(sink.failures[0].reported_domain, "example.com");
    EXPECT_EQ(sink.failures[0].dkim_selector, "s1");
    EXPECT_EQ(sink.failures[0].source_ip, "198.51.100.7");
}

std::string report_mail(const std::string& attachment, const std::string& type,
                        const std::string& name) {
    std::string b64;
    static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::size_t i = 0;
    for (; i + 2 < attachment.size(); i += 3) {
        const auto n = (static_cast<unsigned char>(attachment[i]) << 16) |
                       (static_cast<unsigned char>(attachment[i + 1]) << 8) |
                       static_cast<unsigned char>(attachment[i + 2]);
        b64 += table[(n >> 18) & 63];
        b64 += table[(n >> 12) & 63];
        b64 += table[(n >> 6) & 63];
        b64 += table[n & 63];
        if (b64.size() % 77 == 76) {
            b64 += "\r\n";
        }
    }
    if (i < attachment.size()) {
        const auto a = static_cast<unsigned char>(attachment[i]);
        const auto b =
            i + 1 < attachment.size() ? static_cast<unsigned char>(attachment[i + 1]) : 0;
        const auto n = (a << 16) | (b << 8);
        b64 += table[(n >> 18) & 63];
        b64 += table[(n >> 12) & 63];
        b64 += i + 1 < attachment.size() ? table[(n >> 6) & 63] : '=';
        b64 += '=';
    }
    return "From: noreply-dmarc-support@google.com\r\nTo: rua@example.com\r\n"
           "Subject: Report domain: example.com\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\n"
           "--BOUNDARY\r\nContent-Type: text/plain\r\n\r\nThis is a report.\r\n"
           "--BOUNDARY\r\nContent-Type: " +
           type + "; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name +
           "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 + "\r\n--BOUNDARY--\r\n";
}

TEST(ReaderTest, ReportMailsAreSniffedByTheirBytesNotTheirDeclaredType) {
    // Declared as XML, really gzip.
    const auto gz =
        read_bytes(report_mail(gzip_bytes(aggregate_xml(3)), "application/xml", "report.xml"));
    ASSERT_TRUE(gz.errors.empty()) << gz.errors.front();
    ASSERT_EQ(gz.aggregates.size(), 1U);
    EXPECT_EQ(gz.aggregates[0].records.size(), 3U);

    const auto zip = read_bytes(report_mail(zip_bytes({zip_entry("r.xml", aggregate_xml(2))}),
                                            "application/octet-stream", "r.zip"));
    ASSERT_TRUE(zip.errors.empty()) << zip.errors.front();
    EXPECT_EQ(zip.aggregates.size(), 1U);

    const auto tls = read_bytes(report_mail(gzip_bytes(sample("smtp_tls/rfc8460.json")),
                                            "application/tlsrpt+gzip", "tls.json.gz"));
    ASSERT_TRUE(tls.errors.empty()) << tls.errors.front();
    EXPECT_EQ(tls.tls_reports.size(), 1U);
}

TEST(ReaderTest, AnMboxIsReadMessageByMessage) {
    const std::string mbox = "From a@b Tue Apr 30 02:09:16 2019\n" +
                             report_mail(aggregate_xml(1, 1, "one"), "text/xml", "1.xml") +
                             "\nFrom a@b Tue Apr 30 02:10:16 2019\n" +
                             "From: x@y\nSubject: no report here\n\nHello\n" +
                             "\nFrom a@b Tue Apr 30 02:11:16 2019\n" +
                             report_mail(aggregate_xml(2, 1, "three"), "text/xml", "3.xml");
    const auto sink = read_bytes(mbox);
    ASSERT_EQ(sink.aggregates.size(), 2U);
    EXPECT_EQ(sink.aggregates[0].header.report_id, "one");
    EXPECT_EQ(sink.aggregates[1].header.report_id, "three");
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find("message 2"), std::string::npos) << sink.errors[0];
    EXPECT_NE(sink.errors[0].find("no report in the message"), std::string::npos);
}

TEST(ReaderTest, UnknownContentAndDeepNestingAreRefused) {
    const auto unknown = read_bytes(std::string("\x00\x01\x02 binary", 10));
    ASSERT_EQ(unknown.errors.size(), 1U);
    EXPECT_NE(unknown.errors[0].find("not a report"), std::string::npos);

    std::string nested = aggregate_xml(1);
    for (int i = 0; i < 6; ++i) {
        nested = gzip_bytes(nested);
    }
    const auto deep = read_bytes(nested);
    ASSERT_EQ(deep.errors.size(), 1U);
    EXPECT_NE(deep.errors[0].find("nested"), std::string::npos) << deep.errors[0];
}

TEST(SniffTest, KindsByTheirFirstBytes) {
    EXPECT_EQ(sniff("\x1f\x8b\x08"), ContentKind::gzip);
    EXPECT_EQ(sniff(std::string_view("PK\x03\x04", 4)), ContentKind::zip);
    EXPECT_EQ(sniff("\xef\xbb\xbf<?xml version"), ContentKind::xml);
    EXPECT_EQ(sniff("  \n<feedback>"), ContentKind::xml);
    EXPECT_EQ(sniff("\n{\"organization-name\""), ContentKind::json);
    EXPECT_EQ(sniff("From someone@example.com Tue"), ContentKind::mbox);
    EXPECT_EQ(sniff("Return-Path: <a@b>\r\n"), ContentKind::mail);
    EXPECT_EQ(sniff(""), ContentKind::empty);
    EXPECT_EQ(sniff("hello world"), ContentKind::unknown);
}

}  // namespace
}  // namespace dkim::reports

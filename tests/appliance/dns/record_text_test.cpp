#include "dkim/dns/record_text.hpp"

#include <gtest/gtest.h>

#include "dkim/dmarc/policy.hpp"

namespace dkim::dns {
namespace {

TEST(RecordTextTest, SplitsIntoCharacterStringsOfAtMost255) {
    EXPECT_EQ(split_character_strings(""), std::vector<std::string>{""});
    EXPECT_EQ(split_character_strings(std::string(255, 'a')).size(), 1U);
    const auto two = split_character_strings(std::string(256, 'a'));
    ASSERT_EQ(two.size(), 2U);
    EXPECT_EQ(two[0].size(), 255U);
    EXPECT_EQ(two[1], "a");
    const auto parts = split_character_strings("abcdefg", 3);
    EXPECT_EQ(parts, (std::vector<std::string>{"abc", "def", "g"}));
}

TEST(RecordTextTest, ZoneLineQuotesOneShortValue) {
    EXPECT_EQ(zone_line("brisbane._domainkey.football.example.com",
                        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
              "brisbane._domainkey.football.example.com. IN TXT ( \"v=DKIM1; k=ed25519; "
              "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\" )");
    EXPECT_EQ(zone_line("example.com", ""), "example.com. IN TXT ( \"\" )");
}

// webd's own zone_line wrote these characters bare, which ends the character-string early (a
// quote) or escapes the next character (a backslash) in any zone file that reads the line.
TEST(RecordTextTest, ZoneLineEscapesQuotesAndBackslashes) {
    EXPECT_EQ(quoted_character_string(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
    EXPECT_EQ(zone_line("example.com", R"(v=spf1 exp="x\y" -all)"),
              R"(example.com. IN TXT ( "v=spf1 exp=\"x\\y\" -all" ))");
}

// A 2048-bit RSA key's record is about 400 bytes: two character-strings, split at 255 bytes of
// the value (the escaping does not count against the limit: it is not in the record).
TEST(RecordTextTest, ZoneLineSplitsALongValueAt255Bytes) {
    const std::string value = "v=DKIM1; k=rsa; p=" + std::string(237, 'A') + "\"" +
                              std::string(150, 'B');  // byte 256 is the quote
    ASSERT_EQ(value.size(), 18U + 237U + 1U + 150U);
    const std::string line = zone_line("s1._domainkey.example.com", value);
    const std::string first = value.substr(0, 255);
    const std::string second = "\\\"" + std::string(150, 'B');
    EXPECT_EQ(line, "s1._domainkey.example.com. IN TXT ( \"" + first + "\" \"" + second + "\" )");

    const std::string exact(255 * 2, 'x');
    EXPECT_EQ(zone_line("n", exact),
              "n. IN TXT ( \"" + std::string(255, 'x') + "\" \"" + std::string(255, 'x') + "\" )");
}

// `dns records --dnsmasq` and the dnsmasq.conf of `up` write their lines here: a value in
// character-strings of at most 255 octets, each quoted as in a zone file.
TEST(RecordTextTest, DnsmasqLineSplitsAt255Octets) {
    const std::string value(600, 'x');
    EXPECT_EQ(dnsmasq_txt_line("a.example.test", value),
              "txt-record=a.example.test,\"" + value.substr(0, 255) + "\",\"" +
                  value.substr(255, 255) + "\",\"" + value.substr(510) + "\"");
    EXPECT_EQ(dnsmasq_txt_line("ed25519._domainkey.example.test", "v=DKIM1; k=ed25519; p=Kx"),
              "txt-record=ed25519._domainkey.example.test,\"v=DKIM1; k=ed25519; p=Kx\"");
    EXPECT_EQ(dnsmasq_txt_line("example.test", ""), "txt-record=example.test,\"\"");
}

// dnsmasq reads a backslash in a quoted string as an escape, as zone files do; the CLI's own
// builder wrote both characters bare.
TEST(RecordTextTest, DnsmasqLineEscapesQuotesAndBackslashes) {
    EXPECT_EQ(dnsmasq_txt_line("q.example.test", "say \"hi\""),
              "txt-record=q.example.test,\"say \\\"hi\\\"\"");
    EXPECT_EQ(dnsmasq_txt_line("example.com", R"(v=spf1 exp="x\y" -all)"),
              R"(txt-record=example.com,"v=spf1 exp=\"x\\y\" -all")");
}

TEST(RecordTextTest, DkimKeyRecordText) {
    EXPECT_EQ(dkim_key_record_text("ed25519", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
              "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    EXPECT_EQ(dkim_key_record_text("rsa", "MIIBIg=="), "v=DKIM1; k=rsa; p=MIIBIg==");
}

TEST(RecordTextTest, SpfRecordText) {
    EXPECT_EQ(spf_address_term("192.0.2.25"), "ip4:192.0.2.25");
    EXPECT_EQ(spf_address_term("198.51.100.0/28"), "ip4:198.51.100.0/28");
    EXPECT_EQ(spf_address_term("2001:db8::/64"), "ip6:2001:db8::/64");
    EXPECT_EQ(spf_address_term("::ffff:192.0.2.1"), "ip6:::ffff:192.0.2.1");
    EXPECT_EQ(spf_record_text({"127.0.0.1", "::1"}), "v=spf1 ip4:127.0.0.1 ip6:::1 -all");
    EXPECT_EQ(spf_record_text({}), "v=spf1 -all");
}

TEST(RecordTextTest, SpfTermsGoRightAfterTheVersion) {
    EXPECT_EQ(spf_record_with_terms("v=spf1 include:_spf.example.net ~all", {"ip4:192.0.2.25"}),
              "v=spf1 ip4:192.0.2.25 include:_spf.example.net ~all");
    EXPECT_EQ(spf_record_with_terms("v=spf1 -all", {}), "v=spf1 -all");
    EXPECT_EQ(spf_record_with_terms("v=spf1", {"ip6:::1"}), "v=spf1 ip6:::1");
}

TEST(RecordTextTest, DmarcRecordText) {
    EXPECT_EQ(dmarc_record_text({}), "v=DMARC1; p=none");
    DmarcRecordFields fields;
    fields.policy = "quarantine";
    fields.pct = 25;
    fields.rua = "mailto:dmarc-reports@example.com";
    fields.adkim = "r";
    fields.aspf = "s";
    EXPECT_EQ(dmarc_record_text(fields),
              "v=DMARC1; p=quarantine; pct=25; rua=mailto:dmarc-reports@example.com; adkim=r; "
              "aspf=s");
    fields.ruf = "mailto:dmarc-failures@example.com";
    EXPECT_EQ(dmarc_record_text(fields),
              "v=DMARC1; p=quarantine; pct=25; rua=mailto:dmarc-reports@example.com; "
              "ruf=mailto:dmarc-failures@example.com; adkim=r; aspf=s")
        << "ruf= right after rua=";
    DmarcRecordFields failures_only;
    failures_only.ruf = "mailto:f@example.com";
    EXPECT_EQ(dmarc_record_text(failures_only), "v=DMARC1; p=none; ruf=mailto:f@example.com");
}

TEST(RecordTextTest, DmarcRampClimbsFromMonitorToReject) {
    const auto ramp = dmarc_ramp("mailto:d@example.com");
    ASSERT_EQ(ramp.size(), 4U);
    EXPECT_EQ(ramp[0].record, "v=DMARC1; p=none; rua=mailto:d@example.com");
    EXPECT_EQ(ramp[1].record, "v=DMARC1; p=quarantine; pct=25; rua=mailto:d@example.com");
    EXPECT_EQ(ramp[2].record, "v=DMARC1; p=quarantine; pct=100; rua=mailto:d@example.com");
    EXPECT_EQ(ramp[3].record, "v=DMARC1; p=reject; rua=mailto:d@example.com");
    EXPECT_EQ(dmarc_ramp("")[0].record, "v=DMARC1; p=none");
    for (const DmarcStage& s : ramp) {
        EXPECT_FALSE(s.when.empty());
    }
    const auto with_failures = dmarc_ramp("mailto:d@example.com", "mailto:f@example.com");
    EXPECT_EQ(with_failures[1].record,
              "v=DMARC1; p=quarantine; pct=25; rua=mailto:d@example.com; ruf=mailto:f@example.com");
}

// RFC 7489 §6.2: "a comma-separated list of DMARC URIs", each with an optional size limit.
TEST(RecordTextTest, ReportUrisAndTheirDomains) {
    EXPECT_EQ(report_uris("mailto:a@example.com, mailto:b@example.net!10m ,"),
              (std::vector<std::string>{"mailto:a@example.com", "mailto:b@example.net!10m"}));
    EXPECT_TRUE(report_uris("").empty());
    EXPECT_EQ(report_uri_domain("mailto:dmarc@Reports.Example.NET!10m"), "reports.example.net");
    EXPECT_EQ(report_uri_domain("MAILTO:d@example.com?subject=x"), "example.com");
    EXPECT_EQ(report_uri_domain("https://reports.example.net:8443/tlsrpt"), "reports.example.net");
    EXPECT_EQ(report_uri_domain("https://user@reports.example.net"), "reports.example.net");
    EXPECT_EQ(report_uri_domain("mailto:nobody"), "");
    EXPECT_EQ(report_uri_domain("ftp://example.com/"), "");
}

TEST(RecordTextTest, ReportUrisAreValidatedForTheirRecord) {
    for (const char* good :
         {"mailto:dmarc-reports@example.com",
          "mailto:a@example.com,mailto:b@reports.example.net!10m", "mailto:a@example.com!500"}) {
        EXPECT_EQ(report_uris_problem(good), "") << good;
    }
    for (const char* bad :
         {"dmarc-reports@example.com", "mailto:example.com", "mailto:@example.com",
          "mailto:a@example.com; p=reject", "mailto:a b@example.com", "mailto:\"a\"@example.com",
          "mailto:a@-bad-.com", "mailto:a@example.com!10x", "https://reports.example.net/x", ","}) {
        EXPECT_NE(report_uris_problem(bad), "") << bad;
    }
    EXPECT_EQ(report_uris_problem("https://reports.example.net/tlsrpt", true), "");
    EXPECT_EQ(report_uris_problem("mailto:t@example.com,https://reports.example.net/", true), "");
    EXPECT_NE(report_uris_problem("http://reports.example.net/", true), "");
    EXPECT_EQ(report_uris_problem("mailto:a@example.com; p=reject"),
              "no ';', spaces, quotes or backslashes");

    EXPECT_TRUE(is_report_address("dmarc-reports@example.test"));
    EXPECT_TRUE(is_report_address("tls+reports@mail.example.com"));
    for (const char* bad :
         {"", "example.test", "@example.test", "a@b@example.test", "a,b@example.test",
          "a@example.test!10m", "a b@example.test", "a@", "a@-x-.test", "mailto:a@example.test"}) {
        EXPECT_FALSE(is_report_address(bad)) << bad;
    }
}

TEST(RecordTextTest, ConfiguredReportUrisAreAddedToAPublishedRecord) {
    const std::vector<std::string> ours{"mailto:d@example.com"};
    EXPECT_TRUE(missing_report_uris({"MAILTO:D@Example.com!10m"}, ours).empty())
        << "compared without case and size limit";
    EXPECT_EQ(missing_report_uris({"mailto:other@example.net"}, ours), ours);
    EXPECT_EQ(
        record_with_report_uris("v=DMARC1; p=none; rua=mailto:other@example.net", "rua", ours),
        "v=DMARC1; p=none; rua=mailto:other@example.net,mailto:d@example.com");
    EXPECT_EQ(record_with_report_uris("v=DMARC1;p=reject;", "ruf", ours),
              "v=DMARC1; p=reject; ruf=mailto:d@example.com");
    EXPECT_EQ(record_with_report_uris("v=DMARC1; p=none; rua=mailto:d@example.com", "rua", ours),
              "v=DMARC1; p=none; rua=mailto:d@example.com");
}

// RFC 8460 §3: "_smtp._tls.<domain>", "v=TLSRPTv1; rua=...".
TEST(RecordTextTest, TlsRptRecords) {
    EXPECT_EQ(tlsrpt_record_name("example.com"), "_smtp._tls.example.com");
    EXPECT_EQ(tlsrpt_record_text("mailto:tls-reports@example.com"),
              "v=TLSRPTv1; rua=mailto:tls-reports@example.com");
    EXPECT_EQ(tlsrpt_record_text("mailto:a@example.com,https://reports.example.net/tlsrpt"),
              "v=TLSRPTv1; rua=mailto:a@example.com,https://reports.example.net/tlsrpt");
    EXPECT_TRUE(is_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@example.com"));
    EXPECT_TRUE(is_tlsrpt_record("v=TLSRPTv1;rua=mailto:a@example.com"));
    EXPECT_FALSE(is_tlsrpt_record("v=TLSRPTv10; rua=mailto:a@example.com"));
    EXPECT_FALSE(is_tlsrpt_record("v=spf1 -all"));

    const auto rua = tlsrpt_record_rua(
        "v=TLSRPTv1; rua=mailto:a@example.com, https://reports.example.net/x; ext=1;");
    ASSERT_TRUE(rua);
    EXPECT_EQ(*rua,
              (std::vector<std::string>{"mailto:a@example.com", "https://reports.example.net/x"}));
    std::string problem;
    EXPECT_FALSE(tlsrpt_record_rua("v=TLSRPTv1", &problem));
    EXPECT_EQ(problem, "rua= is missing (it is required)");
    EXPECT_FALSE(tlsrpt_record_rua("v=TLSRPTv1; rua=ftp://example.com/", &problem));
    EXPECT_NE(problem.find("neither a mailto: nor an https: URI"), std::string::npos);
    EXPECT_FALSE(tlsrpt_record_rua("v=TLSRPTv1; rua=mailto:a@x; rua=mailto:b@x", &problem));
    EXPECT_FALSE(tlsrpt_record_rua("v=TLSRPTv1; garbage", &problem));
    EXPECT_FALSE(tlsrpt_record_rua("v=DMARC1; rua=mailto:a@x", &problem));
}

// RFC 7489 §7.1: reports leave the organizational domain only to a domain that says yes.
TEST(RecordTextTest, ExternalReportDomainsNeedAnAuthorizationRecord) {
    EXPECT_EQ(report_authorization_name("Example.com.", "reports.example.net"),
              "example.com._report._dmarc.reports.example.net");
    EXPECT_EQ(kReportAuthorizationText, "v=DMARC1");
    auto psl = dmarc::PublicSuffixList::load();
    ASSERT_TRUE(psl) << psl.error();
    const dmarc::PublicSuffixList* list = psl->get();
    EXPECT_FALSE(is_external_report_domain(list, "example.com", "example.com"));
    EXPECT_FALSE(is_external_report_domain(list, "mail.example.com", "reports.example.com"))
        << "the same organizational domain";
    EXPECT_TRUE(is_external_report_domain(list, "example.com", "example.net"));
    EXPECT_TRUE(is_external_report_domain(list, "a.example.co.uk", "b.other.co.uk"));
    EXPECT_FALSE(is_external_report_domain(list, "a.example.co.uk", "b.example.co.uk"));
    // Without a list: related by the tree only (a cousin counts as external: harmless).
    EXPECT_FALSE(is_external_report_domain(nullptr, "mail.example.com", "example.com"));
    EXPECT_FALSE(is_external_report_domain(nullptr, "example.com", "reports.example.com"));
    EXPECT_TRUE(is_external_report_domain(nullptr, "mail.example.com", "reports.example.com"));
    EXPECT_TRUE(is_external_report_domain(nullptr, "example.com", "badexample.com"));

    const auto records =
        report_authorizations(list, "example.com",
                              {"mailto:d@example.com", "mailto:a@reports.example.net",
                               "mailto:b@Reports.example.net!1m", "mailto:c@provider.example.org"});
    ASSERT_EQ(records.size(), 2U) << "one per external domain";
    EXPECT_EQ(records[0].report_domain, "reports.example.net");
    EXPECT_EQ(records[0].name, "example.com._report._dmarc.reports.example.net");
    EXPECT_EQ(records[1].name, "example.com._report._dmarc.provider.example.org");
}

}  // namespace
}  // namespace dkim::dns

#include "dkim/dns/record_text.hpp"

#include <gtest/gtest.h>

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
}

}  // namespace
}  // namespace dkim::dns

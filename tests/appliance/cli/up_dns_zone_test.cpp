// The demo domain's records as `up` prints them and as dnsmasq serves them: keys, SPF, DMARC
// and TLS-RPT with the report addresses of up.toml.
#include "up_dns_zone.hpp"

#include <gtest/gtest.h>

namespace dkim::cli::up {
namespace {

TEST(UpDnsZoneTest, ZoneLinesQuoteTheRecordInCharacterStrings) {
    const std::string long_value = "v=DKIM1; k=rsa; p=" + std::string(300, 'A');
    const auto lines =
        zone_lines({{"rsa2048._domainkey.example.test", long_value},
                    {"ed25519._domainkey.example.test", "v=DKIM1; k=ed25519; p=Kx"}});
    ASSERT_EQ(lines.size(), 2U);
    EXPECT_EQ(lines[0], "rsa2048._domainkey.example.test. IN TXT ( \"" + long_value.substr(0, 255) +
                            "\" \"" + long_value.substr(255) + "\" )");
    EXPECT_EQ(lines[1], "ed25519._domainkey.example.test. IN TXT ( \"v=DKIM1; k=ed25519; p=Kx\" )");
}

TEST(UpDnsZoneTest, TheDemoPublishesKeysSpfDmarcAndTlsRptWithTheReportAddresses) {
    const auto records = demo_records(
        "example.test", {{"ed25519._domainkey.example.test", "v=DKIM1; k=ed25519; p=Kx"}},
        default_report_addresses("example.test"));
    ASSERT_EQ(records.size(), 4U);
    EXPECT_EQ(records[1].name, "example.test");
    EXPECT_EQ(records[1].value, "v=spf1 ip4:127.0.0.1 ip6:::1 -all");
    EXPECT_EQ(records[2].name, "_dmarc.example.test");
    EXPECT_EQ(records[2].value,
              "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.test; "
              "ruf=mailto:dmarc-failures@example.test");
    EXPECT_EQ(records[3].name, "_smtp._tls.example.test");
    EXPECT_EQ(records[3].value, "v=TLSRPTv1; rua=mailto:tls-reports@example.test");

    // "" publishes none of that kind; a report domain elsewhere needs its authorization.
    ReportAddresses elsewhere;
    elsewhere.aggregate_address = "dmarc@reports.example.net";
    const auto other = demo_records("example.test", {}, elsewhere);
    ASSERT_EQ(other.size(), 3U);
    EXPECT_EQ(other[1].value, "v=DMARC1; p=none; rua=mailto:dmarc@reports.example.net");
    EXPECT_EQ(other[2].name, "example.test._report._dmarc.reports.example.net");
    EXPECT_EQ(other[2].value, "v=DMARC1");
    EXPECT_EQ(demo_records("example.test", {}, ReportAddresses{})[1].value, "v=DMARC1; p=none");
}

TEST(UpDnsZoneTest, TheDnsmasqConfAnswersTheDomainWithItsRecords) {
    const std::string conf =
        dnsmasq_conf("example.test",
                     demo_records("example.test",
                                  {{"ed25519._domainkey.example.test", "v=DKIM1; k=ed25519; p=Kx"}},
                                  default_report_addresses("example.test")),
                     "/state/dns/dnsmasq.conf");
    EXPECT_EQ(conf,
              "# The DNS records of example.test, for dnsmasq on a loopback port (written by up at "
              "every start):\n"
              "#   dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=127.0.0.1 "
              "--bind-interfaces --port=5353 --conf-file=/state/dns/dnsmasq.conf\n"
              "local=/example.test/\n"
              "txt-record=ed25519._domainkey.example.test,\"v=DKIM1; k=ed25519; p=Kx\"\n"
              "txt-record=example.test,\"v=spf1 ip4:127.0.0.1 ip6:::1 -all\"\n"
              "txt-record=_dmarc.example.test,\"v=DMARC1; p=none; "
              "rua=mailto:dmarc-reports@example.test; ruf=mailto:dmarc-failures@example.test\"\n"
              "txt-record=_smtp._tls.example.test,\"v=TLSRPTv1; "
              "rua=mailto:tls-reports@example.test\"\n");
}

}  // namespace
}  // namespace dkim::cli::up

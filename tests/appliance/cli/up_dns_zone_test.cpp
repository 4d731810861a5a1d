// The demo domain's records as `up` prints them and as dnsmasq serves them.
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

TEST(UpDnsZoneTest, TheDnsmasqConfAnswersTheDomainWithKeysSpfAndDmarc) {
    const std::string conf = dnsmasq_conf(
        "example.test", {{"ed25519._domainkey.example.test", "v=DKIM1; k=ed25519; p=Kx"}},
        "/state/dns/dnsmasq.conf");
    EXPECT_EQ(conf,
              "# The DNS records of example.test, for dnsmasq on a loopback port (written by up at "
              "every start):\n"
              "#   dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=127.0.0.1 "
              "--bind-interfaces --port=5353 --conf-file=/state/dns/dnsmasq.conf\n"
              "local=/example.test/\n"
              "txt-record=ed25519._domainkey.example.test,\"v=DKIM1; k=ed25519; p=Kx\"\n"
              "txt-record=example.test,\"v=spf1 ip4:127.0.0.1 ip6:::1 -all\"\n"
              "txt-record=_dmarc.example.test,\"v=DMARC1; p=none\"\n");
}

}  // namespace
}  // namespace dkim::cli::up

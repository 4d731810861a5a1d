// What `up` prints when the appliance runs: the JSON facts (one object on one line, as
// appliance_up.py and other scripts read them) and the text for a person.
#include "up_facts.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>

namespace dkim::cli::up {
namespace {

Facts sample_facts() {
    Facts f;
    f.state_dir = "/state";
    f.console_url = "https://127.0.0.1:8443/";
    f.certificate_sha256 = "AB:CD";
    f.smtp = "127.0.0.1:2525";
    f.inbound_smtp = "127.0.0.1:2500";
    f.domain = "example.test";
    f.next_hop = "maildir:/state/maildir";
    f.signerd_socket = "/state/run/signerd.sock";
    f.cli_config = "/state/dkim-appliance.toml";
    f.cli_command = "/usr/sbin/dkim-appliance --config /state/dkim-appliance.toml";
    f.dnsmasq_conf = "/state/dns/dnsmasq.conf";
    f.secrets = "/state/secrets";
    f.log_folder = "/state/log/";
    f.users = {
        {"admin", "admin,requester,auditor", "pass\"word\n", "SEED", "otpauth://x?secret=SEED"},
        {"approver", "approver", "p2", "SEED2", "otpauth://y"}};
    f.dns_records = {"rsa2048._domainkey.example.test. IN TXT ( \"v=DKIM1; k=rsa; p=A\" )"};
    f.reports = {"dmarc-reports@example.test", "", "tls-reports@example.test"};
    f.swaks = swaks_command(Settings{});
    f.logs = {{"dkim-signerd", "/state/log/dkim-signerd.log"},
              {"dkim-relayd", "/state/log/dkim-relayd.log"},
              {"dkim-webd", "/state/log/dkim-webd.log"}};
    return f;
}

TEST(UpFactsTest, JsonIsOneObjectOnOneLineWithEveryFact) {
    const std::string json = facts_json(sample_facts());
    ASSERT_FALSE(json.empty());
    EXPECT_EQ(json.back(), '\n');
    EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 1) << json;
    rapidjson::Document d;
    d.Parse(json.c_str());
    ASSERT_FALSE(d.HasParseError()) << json;
    ASSERT_TRUE(d.IsObject());
    for (const char* key :
         {"state_dir", "console_url", "certificate_sha256", "smtp", "inbound_smtp", "domain",
          "next_hop", "signerd_socket", "cli_config", "dnsmasq_conf", "swaks"}) {
        ASSERT_TRUE(d.HasMember(key) && d[key].IsString()) << key;
    }
    EXPECT_STREQ(d["certificate_sha256"].GetString(), "AB:CD");
    EXPECT_STREQ(d["dnsmasq_conf"].GetString(), "/state/dns/dnsmasq.conf");
    ASSERT_TRUE(d["users"].IsArray());
    ASSERT_EQ(d["users"].Size(), 2U);
    const auto& admin = d["users"][0];
    EXPECT_STREQ(admin["name"].GetString(), "admin");
    EXPECT_STREQ(admin["roles"].GetString(), "admin,requester,auditor");
    EXPECT_STREQ(admin["password"].GetString(), "pass\"word\n") << "escaped, not a line break";
    EXPECT_STREQ(admin["totp_secret"].GetString(), "SEED");
    EXPECT_STREQ(admin["otpauth_uri"].GetString(), "otpauth://x?secret=SEED");
    ASSERT_TRUE(d["dns_records"].IsArray());
    EXPECT_STREQ(d["dns_records"][0].GetString(),
                 "rsa2048._domainkey.example.test. IN TXT ( \"v=DKIM1; k=rsa; p=A\" )");
    ASSERT_TRUE(d["reports"].IsObject());
    EXPECT_STREQ(d["reports"]["aggregate_address"].GetString(), "dmarc-reports@example.test");
    EXPECT_STREQ(d["reports"]["failure_address"].GetString(), "") << "none";
    EXPECT_STREQ(d["reports"]["tls_address"].GetString(), "tls-reports@example.test");
    ASSERT_TRUE(d["logs"].IsObject());
    EXPECT_STREQ(d["logs"]["dkim-relayd"].GetString(), "/state/log/dkim-relayd.log");
    EXPECT_EQ(d["logs"].MemberCount(), 3U);
}

TEST(UpFactsTest, TheTextNamesTheConsoleUsersRecordsAndSwaks) {
    const std::string text = facts_text(sample_facts());
    for (const std::string line :
         {"The DKIM appliance is running (state in /state).",
          "  Console    https://127.0.0.1:8443/\n"
          "             self-signed certificate, SHA-256 AB:CD\n",
          "  Admin      user admin, password pass\"word\n",
          "  Approver   user approver, password p2 (approver)\n"
          "             TOTP seed SEED2  (oathtool --totp -b SEED2)\n",
          "  CLI        /usr/sbin/dkim-appliance --config /state/dkim-appliance.toml elevation "
          "list\n",
          "  Inbound    127.0.0.1:2500 the domain's MX: report mail to its [reports] addresses "
          "goes "
          "to dkim-reportd\n",
          "  Reports    /usr/sbin/dkim-appliance --config /state/dkim-appliance.toml reports "
          "findings\n",
          "  Logs       /state/log/{dkim-signerd,dkim-reportd,dkim-relayd,dkim-webd}.log\n",
          "DNS records to publish for example.test:\n"
          "  rsa2048._domainkey.example.test. IN TXT ( \"v=DKIM1; k=rsa; p=A\" )\n"
          "  (for a DNS server of your own on 127.0.0.1: /state/dns/dnsmasq.conf)\n"
          "Reports (up.toml [reports]): DMARC aggregate dmarc-reports@example.test, DMARC "
          "failure (none), TLS tls-reports@example.test\n",
          "  swaks --server 127.0.0.1:2525 --from demo@example.test"}) {
        EXPECT_NE(text.find(line), std::string::npos) << line << "\n---\n" << text;
    }
}

TEST(UpFactsTest, TheConsoleOnThisMachineIsLocalhostForPasskeys) {
    Settings s;
    EXPECT_EQ(console_url(s), "https://localhost:8443/");
    EXPECT_EQ(localhost_origin(s), "https://localhost:8443");
    s.https_listen = "[::1]:9443";
    EXPECT_EQ(console_url(s), "https://localhost:9443/");
}

TEST(UpFactsTest, AWildcardListenerIsReachedOnLoopback) {
    Settings s;
    s.https_listen = "0.0.0.0:8443";
    s.smtp_listen = "[::]:2525";
    EXPECT_EQ(console_url(s), "https://localhost:8443/") << "passkeys need a host name";
    EXPECT_EQ(swaks_command(s).rfind("swaks --server [::1]:2525 --from demo@example.test", 0), 0U);
    s.https_listen = "[2001:db8::1]:443";
    EXPECT_EQ(console_url(s), "https://[2001:db8::1]:443/");
    EXPECT_EQ(localhost_origin(s), std::nullopt);
    s.https_listen = "192.0.2.7:8443";
    EXPECT_EQ(console_url(s), "https://192.0.2.7:8443/");
    EXPECT_EQ(localhost_origin(s), std::nullopt);
    s.smtp_listen = "192.0.2.7:25";
    EXPECT_EQ(swaks_command(s),
              "swaks --server 192.0.2.7:25 --from demo@example.test --to someone@example.net "
              "--header 'Subject: signed by the DKIM appliance'");
}

}  // namespace
}  // namespace dkim::cli::up

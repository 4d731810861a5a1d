#include "config.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "jit_fixture.hpp"

namespace dkim::relayd {
namespace {

class RelayConfigTest : public ::testing::Test {
  protected:
    Expected<Config, std::string> load(const std::string& text) {
        const auto file = dir_ / "relayd.toml";
        std::ofstream(file) << text;
        return load_config(file.string());
    }
    std::filesystem::path dir_ = test::make_temp_dir("relayd-config");
};

constexpr const char* kMinimal =
    "[[listen]]\naddress = \"127.0.0.1:2525\"\n"
    "[next_hop]\nurl = \"maildir:/var/lib/dkim/maildir\"\n"
    "[[domain]]\nname = \"Example.COM\"\nselectors = [\"rsa1\", \"ed1\"]\n"
    "[[client]]\nname = \"apps\"\nnetworks = [\"10.0.0.0/8\", \"::1\"]\n"
    "domains = [\"example.com\"]\n";

TEST_F(RelayConfigTest, AMinimalConfigurationGetsSafeDefaults) {
    auto c = load(kMinimal);
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ(c->listeners.at(0).address.port, 2525);
    EXPECT_FALSE(c->listeners[0].tls());
    EXPECT_EQ(c->next_hop.kind, NextHop::Kind::maildir);
    EXPECT_EQ(c->next_hop.tls, TlsMode::required);
    EXPECT_EQ(c->limits.message_size, std::uint64_t{25} << 20);
    EXPECT_EQ(c->limits.command_timeout, std::chrono::minutes(5)) << "RFC 5321 §4.5.3.2.7";
    EXPECT_EQ(c->domains.at(0).name, "example.com");
    ASSERT_NE(c->domain("EXAMPLE.com"), nullptr);
    const auto& client = c->clients.at(0);
    EXPECT_TRUE(client.allows("Example.Com"));
    EXPECT_FALSE(client.allows("other.example"));
}

TEST_F(RelayConfigTest, ADomainWithoutSelectorsSignsWithSignerdsActiveKeys) {
    auto c = load(
        "[[listen]]\naddress = \"127.0.0.1:2525\"\n[next_hop]\nurl = \"maildir:/m\"\n"
        "[signing]\nkey_refresh = \"30s\"\n"
        "[[domain]]\nname = \"managed.example\"\n"
        "[[domain]]\nname = \"pinned.example\"\nselectors = [\"S1\"]\n");
    ASSERT_TRUE(c) << c.error();
    EXPECT_TRUE(c->domain("managed.example")->managed());
    EXPECT_FALSE(c->domain("pinned.example")->managed());
    EXPECT_EQ(c->domain("pinned.example")->selectors, std::vector<std::string>{"s1"});
    EXPECT_EQ(c->key_refresh, std::chrono::seconds(30));
    EXPECT_EQ(load(kMinimal)->key_refresh, std::chrono::seconds(60)) << "the default";
}

TEST_F(RelayConfigTest, ClientsAreFoundByNetwork) {
    auto c = load(kMinimal);
    ASSERT_TRUE(c);
    auto n = parse_network("10.0.0.0/8");
    ASSERT_TRUE(n);
    auto v4 = [](unsigned char a, unsigned char b) {
        std::array<unsigned char, 16> ip{};
        ip[10] = ip[11] = 0xff;
        ip[12] = a;
        ip[13] = b;
        return ip;
    };
    EXPECT_NE(c->client_for(v4(10, 200)), nullptr);
    EXPECT_EQ(c->client_for(v4(11, 0)), nullptr);
    std::array<unsigned char, 16> loopback6{};
    loopback6[15] = 1;
    EXPECT_NE(c->client_for(loopback6), nullptr);
    EXPECT_TRUE(is_loopback(v4(127, 5)));
    EXPECT_FALSE(is_loopback(v4(10, 0)));
    EXPECT_FALSE(parse_network("10.0.0.0/33"));
    EXPECT_FALSE(parse_network("example.com"));
    EXPECT_TRUE(parse_network("2001:db8::/32"));
}

TEST_F(RelayConfigTest, ErrorsNameFileLineColumnAndKey) {
    struct Case {
        std::string text;
        std::string key;
        std::string says;
    };
    const std::string listen = "[[listen]]\naddress = \"127.0.0.1:25\"\n";
    const std::string hop = "[next_hop]\nurl = \"maildir:/m\"\n";
    const std::string domain = "[[domain]]\nname = \"example.com\"\nselectors = [\"s\"]\n";
    const std::vector<Case> cases = {
        {listen + hop + "[limits]\nmessage_sise = 1\n", "limits.message_sise", "unknown key"},
        {listen + hop + "[limits]\nmessage_size = \"12XB\"\n", "limits.message_size", "size"},
        {listen + hop + "[limits]\ncommand_timeout = \"soon\"\n", "limits.command_timeout",
         "duration"},
        {"[[listen]]\naddress = \"0.0.0.0:25\"\nplain_auth = true\n" + hop, "plain_auth",
         "loopback"},
        {"[[listen]]\naddress = \"127.0.0.1:25\"\ntls_key = \"k\"\n" + hop, "tls_certificate",
         "both"},
        {listen + "[next_hop]\nurl = \"ftp://x\"\n", "next_hop.url", "smtp://"},
        {listen + "[next_hop]\nurl = \"smtp://h:25\"\ntls = \"maybe\"\n", "next_hop.tls",
         "opportunistic"},
        {listen + hop + domain +
             "[[client]]\nname = \"a\"\nnetworks = [\"10/8\"]\ndomains = [\"example.com\"]\n",
         "networks", "not an address"},
        {listen + hop + domain +
             "[[client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\ndomains = "
             "[\"other.example\"]\n",
         "domains", "no [[domain]]"},
        {listen + hop + domain + "[[client]]\nname = \"a\"\ndomains = [\"example.com\"]\n",
         "client", "networks, a password_hash"},
        {listen + hop + domain +
             "[[client]]\nname = \"a\"\npassword_hash = \"md5:x\"\n"
             "domains = [\"example.com\"]\n",
         "password_hash", "Argon2id"},
        {listen + hop + "[metrics]\nlisten = \"0.0.0.0:9100\"\n", "metrics.listen", "loopback"},
        {hop, "listen", "at least one"},
        {"[[listen]]\naddress = \"127.0.0.1:25\"\nrole = \"both\"\n" + hop, "role", "inbound"},
        {"[[listen]]\naddress = \"127.0.0.1:25\"\nrole = \"inbound\"\n" + hop, "inbound",
         "[inbound] table"},
        {listen + hop + "[inbound]\n", "inbound.domains", "no open relay"},
        {listen + hop + "[[domain]]\nname = \"example.com\"\nselectors = []\n", "selectors",
         "leave selectors out"},
        {listen + hop + "[signing]\nkey_refresh = \"10ms\"\n", "signing.key_refresh", "at least"},
        {listen + hop + "[inbound]\ndomains = [\"example.com\"]\nquarantine = \"next_hop\"\n",
         "inbound.quarantine", "quarantine_next_hop"},
        {listen + hop + "[inbound]\ndomains = [\"example.com\"]\norg_domain = \"guess\"\n",
         "inbound.org_domain", "tree-walk"},
        {listen + hop + "[inbound]\ndomains = [\"example.com\"]\ndns_server = \"dns.example\"\n",
         "inbound.dns_server", "IP:PORT"},
        {listen + hop + "[inbound]\ndomains = [\"example.com\"]\n[inbound.next_hop]\nurl = \"x\"\n",
         "inbound.next_hop.url", "smtp://"},
    };
    for (const auto& c : cases) {
        auto loaded = load(c.text);
        ASSERT_FALSE(loaded) << c.text;
        EXPECT_NE(loaded.error().find("relayd.toml:"), std::string::npos) << loaded.error();
        EXPECT_NE(loaded.error().find(c.key), std::string::npos) << loaded.error();
        EXPECT_NE(loaded.error().find(c.says), std::string::npos) << loaded.error();
    }
}

TEST_F(RelayConfigTest, InboundListenersGetTheirOwnSettings) {
    auto c = load(
        "hostname = \"mx.example.com\"\n"
        "[[listen]]\naddress = \"127.0.0.1:25\"\nrole = \"inbound\"\n"
        "[next_hop]\nurl = \"maildir:/m\"\n"
        "[inbound]\ndomains = [\"Example.COM\"]\norg_domain = \"tree-walk\"\n"
        "quarantine = \"next_hop\"\ndns_server = \"127.0.0.1:5353\"\ndns_timeout = \"2s\"\n"
        "[inbound.quarantine_next_hop]\nurl = \"maildir:/q\"\n");
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ(c->listeners.at(0).role, Listener::Role::inbound);
    ASSERT_TRUE(c->inbound);
    EXPECT_TRUE(c->inbound->accepts("example.com"));
    EXPECT_TRUE(c->inbound->accepts("EXAMPLE.com"));
    EXPECT_FALSE(c->inbound->accepts("sub.example.com"));
    EXPECT_EQ(c->inbound->authserv_id, "mx.example.com");  // the hostname by default
    EXPECT_TRUE(c->inbound->tree_walk);
    EXPECT_TRUE(c->inbound->dmarc_reject);
    EXPECT_EQ(c->inbound->quarantine, Quarantine::next_hop);
    EXPECT_EQ(c->inbound->next_hop.maildir, "/m");  // [next_hop] unless overridden
    EXPECT_EQ(c->inbound->quarantine_next_hop->maildir, "/q");
    EXPECT_EQ(c->inbound->dns_timeout, std::chrono::seconds(2));
    EXPECT_EQ(c->inbound->workers, 16U);
}

TEST(EndpointTest, Parses) {
    EXPECT_EQ(parse_endpoint("[::1]:25")->host, "::1");
    EXPECT_EQ(parse_endpoint("127.0.0.1:0")->port, 0);
    EXPECT_FALSE(parse_endpoint("127.0.0.1"));
    EXPECT_FALSE(parse_endpoint("::1:25"));
    EXPECT_FALSE(parse_endpoint("h:99999"));
    EXPECT_EQ((Endpoint{"::1", 25}.to_string()), "[::1]:25");
}

}  // namespace
}  // namespace dkim::relayd

namespace {

// Every key of the declarations is read by the parser (the reader refuses any other).
TEST(RelaydConfigSchemaTest, EveryDeclaredKeyIsRead) {
    const auto file = std::filesystem::temp_directory_path() /
                      ("relayd-config-" + std::to_string(::getpid()) + ".toml");
    const std::string example = dkim::config::example_toml(dkim::relayd::config_schema());
    std::ofstream(file) << example;
    auto config = dkim::relayd::load_config(file.string());
    std::filesystem::remove(file);
    ASSERT_TRUE(config.has_value()) << config.error() << "\n" << example;
    ASSERT_TRUE(config->inbound.has_value());
    EXPECT_EQ(config->clients.size(), 1U);
    EXPECT_EQ(config->next_hop.tls, dkim::relayd::TlsMode::opportunistic);
}

}  // namespace

// The daemons' configurations `up` writes: TOML that reads back to the settings and the state
// folder's paths (quoted by toml++, whatever they hold), commented for the reader; and the
// commented-TOML writer under them.
#include "up_daemon_config.hpp"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <algorithm>
#include <stdexcept>

#include "up_commented_toml.hpp"

namespace dkim::cli::up {
namespace {

Settings demo_settings() {
    Settings s;
    s.domain = "example.test";
    s.next_hop = "maildir:/state/maildir";
    s.module = "/usr/lib/softhsm/libsofthsm2.so";
    return s;
}

std::size_t comments(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '#'));
}

TEST(UpDaemonConfigTest, SignerdReadsTheModuleTokenFolderSocketPinPeersAndPolicy) {
    const StatePaths p("/srv/state \"odd\\");
    const std::string text = signerd_config(demo_settings(), p);
    const toml::table t = toml::parse(text);
    EXPECT_EQ(t["module"].value_or(""), std::string("/usr/lib/softhsm/libsofthsm2.so"));
    EXPECT_EQ(t["token"].value_or(""), std::string("dkim"));
    EXPECT_EQ(t["state_dir"].value_or(""), p.signerd.string());
    EXPECT_EQ(t["socket"].value_or(""), p.socket.string());
    EXPECT_EQ(t["socket_group"].value_or(""), std::string("dkim-signer"));
    EXPECT_EQ(t["pin"]["source"].value_or(""), std::string("file"));
    EXPECT_EQ(t["pin"]["file"].value_or(""), (p.signerd / "user.pin").string());
    EXPECT_EQ(t["peers"]["admin"][0].value_or(""), std::string("root"));
    EXPECT_EQ(t["peers"]["relay"][0].value_or(""), std::string("dkim-relay"));
    EXPECT_EQ(t["peers"]["web"][0].value_or(""), std::string("dkim-web"));
    EXPECT_EQ(t["peers"]["reports"][0].value_or(""), std::string("dkim-report"));
    EXPECT_EQ(t["policy"]["sign"]["max_duration"].value_or(""), std::string("1h"));
    EXPECT_EQ(t["webauthn"]["rp_id"].value_or(""), std::string("localhost"));
    EXPECT_EQ(t.size(), 9U) << text;
    EXPECT_GE(comments(text), 6U) << text;
    EXPECT_NE(
        text.find("# Written by `dkim-appliance up` at every start, from " + p.settings.string()),
        std::string::npos)
        << text;
}

// [pin] follows up.toml's pin_custody: a file signerd reads, or no path at all.
TEST(UpDaemonConfigTest, SignerdsPinTableIsTheFoldersCustody) {
    const StatePaths p("/state");
    for (const auto& [custody, comment] :
         {std::pair{"sealed", "/state/credentials/signerd-pin.cred"},
          {"approver", "/state/secrets/user.pin"},
          {"shares", "shares of a quorum of custodians"}}) {
        Settings s = demo_settings();
        s.pin_custody = custody;
        const std::string text = signerd_config(s, p);
        const toml::table t = toml::parse(text);
        EXPECT_EQ(t["pin"]["source"].value_or(""), std::string(custody)) << text;
        EXPECT_FALSE(t["pin"]["file"]) << "signerd has no PIN file: " << text;
        EXPECT_NE(text.find(comment), std::string::npos) << text;
    }
}

TEST(UpDaemonConfigTest, PasskeysWorkOnLocalhostWhenWebdListensOnThisMachine) {
    const StatePaths p("/state");
    for (const auto& [listen, origin] : {std::pair{"127.0.0.1:8443", "https://localhost:8443"},
                                         {"127.0.0.2:9443", "https://localhost:9443"},
                                         {"[::1]:443", "https://localhost:443"},
                                         {"0.0.0.0:8443", "https://localhost:8443"},
                                         {"[::]:8444", "https://localhost:8444"}}) {
        Settings s = demo_settings();
        s.https_listen = listen;
        const std::string text = signerd_config(s, p);
        const toml::table t = toml::parse(text);
        EXPECT_EQ(t["webauthn"]["rp_id"].value_or(""), std::string("localhost")) << listen;
        const auto* origins = t["webauthn"]["origins"].as_array();
        ASSERT_NE(origins, nullptr) << text;
        ASSERT_EQ(origins->size(), 1U) << text;
        EXPECT_EQ((*origins)[0].value_or(std::string()), std::string(origin)) << listen;
        EXPECT_NE(text.find("# Passkeys (WebAuthn), checked by signerd"), std::string::npos)
            << text;
    }
}

TEST(UpDaemonConfigTest, PasskeysAreLeftToTheOperatorWhenWebdListensElsewhere) {
    const StatePaths p("/state");
    for (const char* listen : {"192.0.2.10:8443", "[2001:db8::1]:443"}) {
        Settings s = demo_settings();
        s.https_listen = listen;
        const std::string text = signerd_config(s, p);
        const toml::table t = toml::parse(text);
        EXPECT_FALSE(t.contains("webauthn")) << text;
        EXPECT_NE(
            text.find("# Passkeys (WebAuthn) are off: webd listens on " + std::string(listen)),
            std::string::npos)
            << text;
        EXPECT_NE(text.find("rp_id"), std::string::npos) << "the comment says what to set";
    }
}

TEST(UpDaemonConfigTest, RelaydListensSignsForTheDomainAndTakesLocalClients) {
    const StatePaths p("/state");
    const std::string text = relayd_config(demo_settings(), p);
    const toml::table t = toml::parse(text);
    EXPECT_EQ(t["hostname"].value_or(""), std::string("relay.example.test"));
    EXPECT_EQ(t["signerd_socket"].value_or(""), std::string("/state/run/signerd.sock"));
    EXPECT_EQ(t["listen"][0]["address"].value_or(""), std::string("127.0.0.1:2525"));
    EXPECT_FALSE(t["listen"][0]["role"]) << "outbound, the default";
    EXPECT_EQ(t["listen"][1]["address"].value_or(""), std::string("127.0.0.1:2500"));
    EXPECT_EQ(t["listen"][1]["role"].value_or(""), std::string("inbound"));
    EXPECT_EQ(t["inbound"]["domains"][0].value_or(""), std::string("example.test"));
    EXPECT_EQ(t["inbound"]["reports"]["socket"].value_or(""),
              std::string("/state/run/reportd/reportd.sock"));
    const auto* addresses = t["inbound"]["reports"]["addresses"].as_array();
    ASSERT_NE(addresses, nullptr) << text;
    ASSERT_EQ(addresses->size(), 3U) << text;
    EXPECT_EQ((*addresses)[0].value_or(""), std::string("dmarc-reports@example.test"));
    EXPECT_EQ((*addresses)[2].value_or(""), std::string("tls-reports@example.test"));
    EXPECT_EQ(t["next_hop"]["url"].value_or(""), std::string("maildir:/state/maildir"));
    EXPECT_FALSE(t["next_hop"]["tls"]) << "a maildir has no TLS";
    EXPECT_EQ(t["domain"][0]["name"].value_or(""), std::string("example.test"));
    EXPECT_EQ(t["client"][0]["name"].value_or(""), std::string("local"));
    EXPECT_EQ(t["client"][0]["networks"][1].value_or(""), std::string("::1/128"));
    EXPECT_EQ(t["client"][0]["domains"][0].value_or(""), std::string("example.test"));
    EXPECT_GE(comments(text), 5U) << text;
}

// The report addresses relayd routes to dkim-reportd: those of up.toml's [reports] that are set,
// each once (relayd refuses an address listed twice, in any case); none set, no [inbound.reports].
TEST(UpDaemonConfigTest, RelaydRoutesTheReportAddressesThatAreSetEachOnce) {
    const StatePaths p("/state");
    Settings s = demo_settings();
    s.reports = {"reports@example.test", "", "Reports@Example.test"};
    toml::table t = toml::parse(relayd_config(s, p));
    const auto* addresses = t["inbound"]["reports"]["addresses"].as_array();
    ASSERT_NE(addresses, nullptr);
    ASSERT_EQ(addresses->size(), 1U);
    EXPECT_EQ((*addresses)[0].value_or(""), std::string("reports@example.test"));
    s.reports = {"", "", ""};
    t = toml::parse(relayd_config(s, p));
    EXPECT_TRUE(t["inbound"]["domains"]);
    EXPECT_FALSE(t["inbound"]["reports"]);
}

TEST(UpDaemonConfigTest, StartTlsToTheNextHopIsRequiredUnlessItIsOnThisMachine) {
    const StatePaths p("/state");
    for (const auto& [url, tls] : {std::pair{"smtp://127.0.0.1:2526", "opportunistic"},
                                   {"smtp://[::1]:2526", "opportunistic"},
                                   {"smtp://localhost:25", "opportunistic"},
                                   {"smtp://mx.example.net:25", "required"},
                                   {"smtp://192.0.2.1:25", "required"}}) {
        Settings s = demo_settings();
        s.next_hop = url;
        const toml::table t = toml::parse(relayd_config(s, p));
        EXPECT_EQ(t["next_hop"]["tls"].value_or(""), std::string(tls)) << url;
    }
}

TEST(UpDaemonConfigTest, WebdAndTheCliDefaultsNameTheFoldersSocket) {
    const StatePaths p("/state");
    const toml::table web = toml::parse(webd_config(demo_settings(), p));
    EXPECT_EQ(web["listen"].value_or(""), std::string("127.0.0.1:8443"));
    EXPECT_EQ(web["self_signed"].value_or(false), true);
    EXPECT_EQ(web["state_dir"].value_or(""), std::string("/state/webd"));
    EXPECT_EQ(web["signerd_socket"].value_or(""), std::string("/state/run/signerd.sock"));
    EXPECT_EQ(web["reports"]["socket"].value_or(""),
              std::string("/state/run/reportd/reportd.sock"));
    const std::string cli = cli_defaults_config(demo_settings(), p);
    EXPECT_EQ(toml::parse(cli)["socket"].value_or(""), std::string("/state/run/signerd.sock"));
    EXPECT_NE(cli.find("#   dkim-appliance --config /state/dkim-appliance.toml elevation list\n"),
              std::string::npos)
        << cli;
}

// dkim-reportd: its store in the folder, its socket in run/reportd/ (group dkim-report, which
// relayd and webd are in), signerd's socket, the demo's outbound addresses; the relay submits,
// the console reads, root does everything.
TEST(UpDaemonConfigTest, ReportdKeepsItsStoreInTheFolderAndNamesItsPeers) {
    const StatePaths p("/state");
    const std::string text = reportd_config(demo_settings(), p);
    const toml::table t = toml::parse(text);
    EXPECT_EQ(t["store"].value_or(""), std::string("/state/reportd/reports.db"));
    EXPECT_EQ(t["socket"].value_or(""), std::string("/state/run/reportd/reportd.sock"));
    EXPECT_EQ(t["socket"].value_or(""), p.reportd_socket.string());
    EXPECT_EQ(t["socket_group"].value_or(""), std::string("dkim-report"));
    EXPECT_EQ(t["signerd_socket"].value_or(""), std::string("/state/run/signerd.sock"));
    EXPECT_EQ(t["outbound"][0].value_or(""), std::string("127.0.0.1"));
    EXPECT_EQ(t["outbound"][1].value_or(""), std::string("::1"));
    ASSERT_TRUE(t["peers"].is_table()) << text;
    EXPECT_EQ(t["peers"]["relay"][0].value_or(""), std::string("dkim-relay"));
    EXPECT_EQ(t["peers"]["web"][0].value_or(""), std::string("dkim-web"));
    EXPECT_EQ(t["peers"]["admin"][0].value_or(""), std::string("root"));
    EXPECT_EQ(t["peers"].as_table()->size(), 3U) << text;
    EXPECT_EQ(t.size(), 6U) << text;
    EXPECT_GE(comments(text), 5U) << text;
    const toml::table cli = toml::parse(cli_defaults_config(demo_settings(), p));
    EXPECT_EQ(cli["reportd-socket"].value_or(""), p.reportd_socket.string());
}

// The report addresses of up.toml reach the console's DNS page and `dns records`.
TEST(UpDaemonConfigTest, WebdAndTheCliDefaultsNameTheReportAddresses) {
    const StatePaths p("/state");
    Settings s = demo_settings();
    const toml::table web = toml::parse(webd_config(s, p));
    EXPECT_EQ(web["dns"]["outbound_addresses"][1].value_or(""), std::string("::1"));
    EXPECT_EQ(web["dns"]["dmarc_rua"].value_or(""),
              std::string("mailto:dmarc-reports@example.test"));
    EXPECT_EQ(web["dns"]["dmarc_ruf"].value_or(""),
              std::string("mailto:dmarc-failures@example.test"));
    EXPECT_EQ(web["dns"]["tlsrpt_rua"].value_or(""),
              std::string("mailto:tls-reports@example.test"));
    const toml::table cli = toml::parse(cli_defaults_config(s, p));
    EXPECT_EQ(cli["dmarc-rua"].value_or(""), std::string("mailto:dmarc-reports@example.test"));
    EXPECT_EQ(cli["dmarc-ruf"].value_or(""), std::string("mailto:dmarc-failures@example.test"));
    EXPECT_EQ(cli["tlsrpt-rua"].value_or(""), std::string("mailto:tls-reports@example.test"));

    s.reports = {"dmarc@example.test", "", ""};
    const toml::table fewer = toml::parse(webd_config(s, p));
    EXPECT_TRUE(fewer["dns"]["dmarc_rua"]);
    EXPECT_FALSE(fewer["dns"]["dmarc_ruf"]) << "\"\" publishes none";
    EXPECT_FALSE(fewer["dns"]["tlsrpt_rua"]);
    s.reports = {};
    EXPECT_FALSE(toml::parse(cli_defaults_config(s, p))["dmarc-rua"]);
}

TEST(CommentedTomlTest, CommentsWrapAndPartsKeepTheirOrder) {
    CommentedToml file("A header.");
    file.add("Last in the alphabet, first in the file.", toml::table{{"zeta", 1}})
        .add(std::string(60, 'a') + " " + std::string(40, 'b') + "\nA second line.",
             toml::table{{"alpha", "x"}})
        .add("", toml::table{{"table", toml::table{{"key", true}}}});
    EXPECT_EQ(file.text(),
              "# A header.\n\n"
              "# Last in the alphabet, first in the file.\nzeta = 1\n"
              "# " +
                  std::string(60, 'a') + "\n# " + std::string(40, 'b') +
                  "\n# A second line.\nalpha = \"x\"\n"
                  "\n[table]\nkey = true\n");
}

TEST(CommentedTomlTest, PlainKeysAfterATableAreAProgrammingError) {
    CommentedToml file;
    file.add("", toml::table{{"table", toml::table{{"key", 1}}}});
    EXPECT_THROW(file.add("", toml::table{{"loose", 2}}), std::logic_error);
    EXPECT_NO_THROW(file.add("", toml::table{{"array", toml::array{toml::table{{"k", 3}}}}}));
}

}  // namespace
}  // namespace dkim::cli::up

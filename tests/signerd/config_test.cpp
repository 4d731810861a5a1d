// dkim-signerd's configuration against its declarations: a file with every declared key
// parses (the parser reads each one), and the pin sources that exclude each other each parse.
#include "config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;

class SignerdConfigTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("signerd-config-" + std::to_string(::getpid()));
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string write(const std::string& text) {
        const fs::path file = dir_ / "signerd.toml";
        std::ofstream(file) << text;
        return file.string();
    }
    fs::path dir_;
};

TEST_F(SignerdConfigTest, EveryDeclaredKeyIsRead) {
    const std::string example = dkim::config::example_toml(dkim::signerd::config_schema());
    auto config = dkim::signerd::load_config(write(example));
    ASSERT_TRUE(config.has_value()) << config.error() << "\n" << example;
    EXPECT_EQ(config->token, "dkim");
    EXPECT_EQ(config->pin_source, dkim::signerd::PinSourceKind::sealed);
    EXPECT_EQ(config->policy.auto_approve.size(), 1U);
    EXPECT_EQ(config->metrics_listen, "127.0.0.1:9464");
}

TEST_F(SignerdConfigTest, ThePinSourcesThatExcludeEachOther) {
    auto file = dkim::signerd::load_config(
        write("module = \"m.so\"\ntoken = \"t\"\n[pin]\nsource = \"file\"\nfile = \"/p\"\n"));
    ASSERT_TRUE(file.has_value()) << file.error();
    EXPECT_EQ(file->pin_file, "/p");
    auto approver = dkim::signerd::load_config(
        write("module = \"m.so\"\ntoken = \"t\"\n[pin]\nsource = \"approver\"\n"));
    ASSERT_TRUE(approver.has_value()) << approver.error();
    auto misspelt = dkim::signerd::load_config(write(
        "module = \"m.so\"\ntoken = \"t\"\n[pin]\nsource = \"file\"\nfile = \"/p\"\nfiles = 1\n"));
    ASSERT_FALSE(misspelt.has_value());
    EXPECT_NE(misspelt.error().find("signerd.toml:6:9: key 'pin.files': unknown key"),
              std::string::npos)
        << misspelt.error();
}

// Issue 18, finding 6: on the appliance signerd writes webhook events to dkim-notifyd's outbox
// and posts nothing; the notifier holds the URL and the key, so they may not be given here too.
// [cluster]: a node name, a connection string without a password, a bounded lease, and a PIN
// custody that logs in by itself (every node logs in whenever the cluster has a grant).
TEST_F(SignerdConfigTest, AClusterNodeNeedsANameADatabaseAndAPinItCanUseByItself) {
    const std::string head = "module = \"m.so\"\ntoken = \"t\"\n";
    const std::string file_pin = "[pin]\nsource = \"file\"\nfile = \"/p\"\n";
    auto good = dkim::signerd::load_config(
        write(head + file_pin +
              "[cluster]\nnode = \"mx1\"\ndatabase = \"host=db dbname=dkim\"\n"
              "password_file = \"/etc/db-password\"\nlease = \"3s\"\n"
              "node_keys = [\"mx2=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]\n"));
    ASSERT_TRUE(good.has_value()) << good.error();
    ASSERT_EQ(good->cluster->node_keys.size(), 1U);
    EXPECT_EQ(good->cluster->node_keys.at("mx2").size(), 32U) << "the raw key";
    ASSERT_TRUE(good->cluster);
    EXPECT_EQ(good->cluster->node, "mx1");
    EXPECT_EQ(good->cluster->password_file, "/etc/db-password");
    EXPECT_EQ(good->cluster->lease, std::chrono::seconds(3));
    EXPECT_FALSE(dkim::signerd::load_config(write(head + file_pin))->cluster) << "SQLite";
    const std::pair<std::string, std::string> refused[] = {
        {file_pin + "[cluster]\ndatabase = \"host=db\"\n", "node"},
        {file_pin + "[cluster]\nnode = \"mx 1\"\ndatabase = \"host=db\"\n", "node"},
        {file_pin + "[cluster]\nnode = \"mx1\"\n", "database"},
        {file_pin + "[cluster]\nnode = \"mx1\"\ndatabase = \"host=db password=x\"\n",
         "password_file"},
        {file_pin + "[cluster]\nnode = \"mx1\"\ndatabase = \"host=db\"\nlease = \"10m\"\n",
         "lease"},
        {"[pin]\nsource = \"approver\"\n[cluster]\nnode = \"mx1\"\ndatabase = \"host=db\"\n",
         "sealed"},
        {"[pin]\nsource = \"shares\"\n[cluster]\nnode = \"mx1\"\ndatabase = \"host=db\"\n",
         "sealed"},
        // node_keys: NAME=BASE64 of 32 bytes, another node's, each once.
        {file_pin + "[cluster]\nnode = \"mx1\"\ndatabase = \"host=db\"\nnode_keys = [\"mx2\"]\n",
         "NAME=BASE64"},
        {file_pin +
             "[cluster]\nnode = \"mx1\"\ndatabase = \"host=db\"\nnode_keys = [\"mx2=AAAA\"]\n",
         "32 bytes"},
        {file_pin + "[cluster]\nnode = \"mx1\"\ndatabase = \"host=db\"\nnode_keys = "
                    "[\"mx1=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]\n",
         "own key"},
        {file_pin + "[cluster]\nnode = \"mx1\"\ndatabase = \"host=db\"\nnode_keys = "
                    "[\"mx2=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\", "
                    "\"mx2=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]\n",
         "twice"},
    };
    for (const auto& [text, words] : refused) {
        auto config = dkim::signerd::load_config(write(head + text));
        ASSERT_FALSE(config.has_value()) << text;
        EXPECT_NE(config.error().find(words), std::string::npos) << config.error();
        EXPECT_NE(config.error().find("signerd.toml:"), std::string::npos)
            << "names the file and line: " << config.error();
    }
}

TEST_F(SignerdConfigTest, TheWebhookOutboxExcludesTheUrlAndTheKey) {
    const std::string head = "module = \"m.so\"\ntoken = \"t\"\n[pin]\nsource = \"approver\"\n";
    auto outbox = dkim::signerd::load_config(
        write(head + "[webhook]\noutbox = \"/var/spool/dkim-notify\"\n"));
    ASSERT_TRUE(outbox.has_value()) << outbox.error();
    EXPECT_EQ(outbox->webhook_outbox, "/var/spool/dkim-notify");
    EXPECT_TRUE(outbox->webhook_url.empty());
    auto both =
        dkim::signerd::load_config(write(
            head + "[webhook]\noutbox = \"/var/spool/dkim-notify\"\nurl = \"https://h.example/\"\n"
                   "secret_file = \"/k\"\n"));
    ASSERT_FALSE(both.has_value());
    EXPECT_NE(both.error().find("key 'webhook.outbox'"), std::string::npos) << both.error();
    auto relative = dkim::signerd::load_config(write(head + "[webhook]\noutbox = \"spool\"\n"));
    ASSERT_FALSE(relative.has_value());
    EXPECT_NE(relative.error().find("absolute"), std::string::npos) << relative.error();
}

// Issue 22: passkeys need a relying party a browser accepts: a host name (never an IP address)
// and origins on it, compared exactly; a half-configured [webauthn] is an error, not "off".
TEST_F(SignerdConfigTest, TheRelyingPartyIsAHostNameAndItsOrigins) {
    const std::string head = "module = \"m.so\"\ntoken = \"t\"\n[pin]\nsource = \"approver\"\n";
    auto off = dkim::signerd::load_config(write(head));
    ASSERT_TRUE(off.has_value()) << off.error();
    EXPECT_FALSE(off->webauthn.enabled());
    auto good = dkim::signerd::load_config(
        write(head + "[webauthn]\nrp_id = \"dkim.example.com\"\norigins = "
                     "[\"https://dkim.example.com:8443\", \"https://console.dkim.example.com\"]\n"
                     "user_verification = \"preferred\"\n"));
    ASSERT_TRUE(good.has_value()) << good.error();
    EXPECT_TRUE(good->webauthn.enabled());
    EXPECT_FALSE(good->webauthn.require_user_verification);
    auto local = dkim::signerd::load_config(
        write(head + "[webauthn]\nrp_id = \"localhost\"\norigins = [\"http://localhost:8443\"]\n"));
    ASSERT_TRUE(local.has_value()) << local.error();
    const std::pair<const char*, const char*> wrong[] = {
        {"rp_id = \"dkim.example.com\"\n", "webauthn.origins"},  // the missing key is named
        {"origins = [\"https://dkim.example.com\"]\n", "webauthn.rp_id"},
        {"rp_id = \"192.0.2.1\"\norigins = [\"https://192.0.2.1\"]\n", "host name"},
        {"rp_id = \"example.com\"\norigins = [\"https://evil-example.com\"]\n", "evil-example.com"},
        {"rp_id = \"example.com\"\norigins = [\"http://dkim.example.com\"]\n", "https://"},
        {"rp_id = \"example.com\"\norigins = [\"https://example.com/console\"]\n", "origins"},
        {"rp_id = \"Example.com\"\norigins = [\"https://example.com\"]\n", "lower case"},
        {"rp_id = \"localhost\"\norigins = [\"https://localhost\"]\nuser_verification = "
         "\"discouraged\"\n",
         "user_verification"},
    };
    for (const auto& [text, named] : wrong) {
        auto refused = dkim::signerd::load_config(write(head + "[webauthn]\n" + text));
        ASSERT_FALSE(refused.has_value()) << text;
        EXPECT_NE(refused.error().find(named), std::string::npos) << refused.error();
        EXPECT_NE(refused.error().find("signerd.toml:"), std::string::npos) << refused.error();
    }
}

}  // namespace

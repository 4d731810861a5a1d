// up.toml: read by its schema (errors at file:line:column with the key), the options given to
// `up` on top, the machine's defaults, and the file written back with its comments.
#include "up_settings.hpp"

#include <gtest/gtest.h>

#include <array>
#include <regex>
#include <string_view>

#include "dkim/config/schema.hpp"
#include "up_test_folder.hpp"

namespace dkim::cli::up {
namespace {

using test::TestFolder;

bool same(const Settings& a, const Settings& b) {
    return a.domain == b.domain && a.smtp_listen == b.smtp_listen &&
           a.inbound_listen == b.inbound_listen && a.https_listen == b.https_listen &&
           a.next_hop == b.next_hop && a.module == b.module && a.reports == b.reports &&
           a.pin_custody == b.pin_custody;
}

TEST(UpSettingsTest, WithoutAFileTheDefaultsApply) {
    TestFolder folder;
    const auto s = load_settings(folder.path() / "up.toml");
    ASSERT_TRUE(s) << s.error();
    EXPECT_TRUE(same(*s, Settings{}));
    EXPECT_EQ(s->domain, "example.test");
    EXPECT_EQ(s->smtp_listen, "127.0.0.1:2525");
    EXPECT_EQ(s->inbound_listen, "127.0.0.1:2500");
    EXPECT_EQ(s->https_listen, "127.0.0.1:8443");
    EXPECT_EQ(s->reports.aggregate_address, "dmarc-reports@example.test");
    EXPECT_EQ(s->reports.failure_address, "dmarc-failures@example.test");
    EXPECT_EQ(s->reports.tls_address, "tls-reports@example.test");
    EXPECT_EQ(s->pin_custody, "file") << "up keeps a PIN file unless told otherwise";
}

TEST(UpSettingsTest, EveryDeclaredKeyIsRead) {
    TestFolder folder;
    const auto file = folder.write("up.toml", config::example_toml(settings_schema()));
    const auto s = load_settings(file);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->next_hop, "smtp://127.0.0.1:2526");
    EXPECT_EQ(s->module, "/usr/lib/softhsm/libsofthsm2.so");
    EXPECT_EQ(s->reports.tls_address, "tls-reports@example.test");
    EXPECT_EQ(s->pin_custody, "sealed");
}

// [reports]: mailboxes of the domain unless set; "" publishes none of that kind.
TEST(UpSettingsTest, ReportAddressesDefaultToTheDomainsOwn) {
    TestFolder folder;
    auto s = load_settings(folder.write("up.toml", "domain = \"b.test\"\n"));
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->reports, default_report_addresses("b.test"));
    EXPECT_EQ(s->reports.aggregate_address, "dmarc-reports@b.test");
    s = load_settings(folder.write("up.toml",
                                   "[reports]\naggregate_address = \"agg@reports.example.net\"\n"
                                   "failure_address = \"\"\n"));
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->reports.aggregate_address, "agg@reports.example.net");
    EXPECT_EQ(s->reports.failure_address, "");
    EXPECT_EQ(s->reports.tls_address, "tls-reports@example.test");
    EXPECT_EQ(mailto(s->reports.aggregate_address), "mailto:agg@reports.example.net");
    EXPECT_EQ(mailto(s->reports.failure_address), "");

    // A new --domain takes the old domain's own addresses along, and leaves the others.
    const std::array<std::string_view, 1> modules{"/opt/hsm.so"};
    Settings saved = *s;
    saved.module = "/opt/hsm.so";
    SettingOverrides given;
    given.domain = "c.test";
    const auto moved = settle(saved, given, "/m", modules);
    ASSERT_TRUE(moved) << moved.error();
    EXPECT_EQ(moved->reports.aggregate_address, "agg@reports.example.net");
    EXPECT_EQ(moved->reports.failure_address, "");
    EXPECT_EQ(moved->reports.tls_address, "tls-reports@c.test");
}

TEST(UpSettingsTest, AMisspeltKeyIsRefusedAtItsLine) {
    TestFolder folder;
    const auto file =
        folder.write("up.toml", "domain = \"a.test\"\nsmtp_lisen = \"127.0.0.1:25\"\n");
    const auto s = load_settings(file);
    ASSERT_FALSE(s);
    EXPECT_TRUE(std::regex_search(s.error(),
                                  std::regex("up\\.toml:2:[0-9]+: key .smtp_lisen.: unknown key")))
        << s.error();
}

TEST(UpSettingsTest, BadValuesInTheFileAreNamedByFileLineAndKey) {
    TestFolder folder;
    for (const auto& [text, key, line] :
         {std::tuple{"domain = \"a.test\"\nsmtp_listen = \"nowhere\"\n", "smtp_listen", 2},
          {"https_listen = \"127.0.0.1\"\n", "https_listen", 1},
          {"\n\nnext_hop = \"ftp://relay\"\n", "next_hop", 3},
          {"[reports]\ntls_address = \"mailto:tls@a.test\"\n", "reports.tls_address", 2},
          {"[reports]\n\naggregate_address = \"a,b@a.test\"\n", "reports.aggregate_address", 3},
          {"[reports]\nfailure_address = \"nobody\"\n", "reports.failure_address", 2},
          {"pin_custody = \"credential\"\n", "pin_custody", 1},
          {"domain = 42\n", "domain", 1}}) {
        const auto file = folder.write("up.toml", text);
        const auto s = load_settings(file);
        ASSERT_FALSE(s) << text;
        EXPECT_EQ(s.error().rfind(file.string() + ":" + std::to_string(line) + ":", 0), 0U)
            << s.error();
        EXPECT_NE(s.error().find(std::string("'") + key + "'"), std::string::npos) << s.error();
    }
}

TEST(UpSettingsTest, GivenOptionsGoOnTopAndTheMachinesDefaultsFillTheRest) {
    TestFolder folder;
    const auto module = folder.write("libsofthsm2.so", "");
    const std::array<std::string_view, 2> modules{"/nonexistent/libsofthsm2.so", module.c_str()};
    SettingOverrides given;
    given.smtp_listen = "127.0.0.1:2600";
    given.inbound_listen = "[::1]:2601";
    const auto s = settle(Settings{}, given, "/state/maildir", modules);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->smtp_listen, "127.0.0.1:2600");
    EXPECT_EQ(s->inbound_listen, "[::1]:2601");
    EXPECT_EQ(s->https_listen, "127.0.0.1:8443");
    EXPECT_EQ(s->next_hop, "maildir:/state/maildir");
    EXPECT_EQ(s->module, module.string());

    Settings saved;
    saved.next_hop = "smtp://127.0.0.1:26";
    saved.module = "/opt/hsm.so";
    saved.pin_custody = "approver";
    given = {};
    given.domain = "b.test";
    const auto kept = settle(saved, given, "/state/maildir", modules);
    ASSERT_TRUE(kept) << kept.error();
    EXPECT_EQ(kept->domain, "b.test");
    EXPECT_EQ(kept->next_hop, "smtp://127.0.0.1:26");
    EXPECT_EQ(kept->module, "/opt/hsm.so");
    EXPECT_EQ(kept->pin_custody, "approver") << "the saved custody stays";
    given.pin_custody = "sealed";
    const auto sealed = settle(saved, given, "/state/maildir", modules);
    ASSERT_TRUE(sealed) << sealed.error();
    EXPECT_EQ(sealed->pin_custody, "sealed");
}

TEST(UpSettingsTest, BadOptionsAreNamedByTheirOption) {
    const std::array<std::string_view, 1> modules{"/nonexistent/libsofthsm2.so"};
    SettingOverrides smtp;
    smtp.smtp_listen = "localhost";
    const auto a = settle(Settings{}, smtp, "/m", modules);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error(), "--smtp: expected an IP:PORT, got \"localhost\"");
    SettingOverrides inbound;
    inbound.inbound_listen = "2500";
    const auto i = settle(Settings{}, inbound, "/m", modules);
    ASSERT_FALSE(i);
    EXPECT_EQ(i.error(), "--inbound: expected an IP:PORT, got \"2500\"");
    SettingOverrides hop;
    hop.next_hop = "relay.example:25";
    const auto b = settle(Settings{}, hop, "/m", modules);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error(), "--next-hop: expected smtp://HOST:PORT (or maildir:/path)");
    SettingOverrides custody;
    custody.pin_custody = "tpm";
    const auto d = settle(Settings{}, custody, "/m", modules);
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error(),
              "--pin-custody: expected \"file\", \"sealed\", \"approver\" or \"shares\"");
    const auto c = settle(Settings{}, {}, "/m", modules);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), "SoftHSM2 is not installed (apt-get install softhsm2), or give --module");
}

TEST(UpSettingsTest, TheSavedFileReadsBackWithTheDeclarationsAsComments) {
    TestFolder folder;
    Settings s;
    s.domain = "quote\"and\\backslash.test";
    s.next_hop = "maildir:/a folder/with spaces";
    s.module = "/usr/lib/softhsm/libsofthsm2.so";
    const std::string text = settings_toml(s);
    const auto back = load_settings(folder.write("up.toml", text));
    ASSERT_TRUE(back) << back.error() << "\n" << text;
    EXPECT_TRUE(same(*back, s)) << text;
    EXPECT_EQ(text.rfind("# dkim-appliance up: the settings of this state folder.", 0), 0U) << text;
    for (const config::KeyDoc& k : settings_schema().keys) {
        // Each key (a table's keys: the table) follows the first words of its declaration's
        // text.
        const std::string words(k.doc.substr(0, 30));
        const auto comment = text.find("# " + words);
        ASSERT_NE(comment, std::string::npos) << words << "\n" << text;
        const std::string path(k.path);
        const auto dot = path.find('.');
        const auto key = k.type == "table" ? text.find("\n[" + path + "]\n")
                         : dot == std::string::npos
                             ? text.find("\n" + path + " = ")
                             : text.find("\n[" + path.substr(0, dot) + "]\n");
        ASSERT_NE(key, std::string::npos) << path << "\n" << text;
        EXPECT_LT(comment, key) << text;
    }
    s.reports = {"agg@reports.example.net", "", "tls@example.net"};
    const auto reports = load_settings(folder.write("up.toml", settings_toml(s)));
    ASSERT_TRUE(reports) << reports.error();
    EXPECT_EQ(reports->reports, s.reports) << "\"\" is saved, and read back, as \"\"";
}

}  // namespace
}  // namespace dkim::cli::up

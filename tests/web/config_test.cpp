// dkim-webd's configuration against its declarations: a file with every declared key parses.
#include "config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <tuple>

namespace {

TEST(WebdConfigTest, EveryDeclaredKeyIsRead) {
    const auto file = std::filesystem::temp_directory_path() /
                      ("webd-config-" + std::to_string(::getpid()) + ".toml");
    const std::string example = dkim::config::example_toml(dkim::web::config_schema());
    std::ofstream(file) << example;
    auto config = dkim::web::load_config(file.string());
    std::filesystem::remove(file);
    ASSERT_TRUE(config.has_value()) << config.error() << "\n" << example;
    EXPECT_EQ(config->login.per_user, 5U);
    EXPECT_EQ(config->handler.dns.dmarc_rua, "mailto:dmarc@example.net");
    EXPECT_EQ(config->handler.dns.dmarc_ruf, "mailto:dmarc-failures@example.net");
    EXPECT_EQ(config->handler.dns.tlsrpt_rua, "mailto:tls-reports@example.net");
    EXPECT_TRUE(config->handler.dns.psl) << "report domains are judged by the suffix list";
    EXPECT_EQ(config->reports_socket, "/run/dkim-appliance/reportd.sock");
}

// [reports]: reportd's socket is an absolute path, an upload at most 64 MiB (reportd's cap on a
// submission); without the table the reports API is off.
TEST(WebdConfigTest, TheReportsTableNamesReportdAndCapsUploads) {
    const auto file = std::filesystem::temp_directory_path() /
                      ("webd-reportd-" + std::to_string(::getpid()) + ".toml");
    for (const auto& [text, key, ok] :
         {std::tuple{"socket = \"/run/dkim-appliance/reportd.sock\"\nupload_limit = \"8MiB\"\n", "",
                     true},
          {"socket = \"reportd.sock\"\n", "reports.socket", false},
          {"upload_limit = \"65MiB\"\n", "reports.upload_limit", false},
          {"upload_timeout = \"soon\"\n", "reports.upload_timeout", false},
          {"reverse_dns = \"yes\"\n", "reports.reverse_dns", false},
          {"dns_server = \"dns.example\"\n", "reports.dns_server", false},
          {"dns_timeout = \"10s\"\n", "reports.dns_timeout", false},
          {"sockets = \"/x\"\n", "sockets", false}}) {
        std::ofstream(file) << "self_signed = true\n[reports]\n" << text;
        const auto config = dkim::web::load_config(file.string());
        EXPECT_EQ(config.has_value(), ok) << text << (config ? "" : config.error());
        if (!ok && !config) {
            EXPECT_NE(config.error().find(key), std::string::npos) << config.error();
        }
        if (ok && config) {
            EXPECT_EQ(config->upload_limit, std::size_t{8} << 20);
        }
    }
    std::ofstream(file) << "self_signed = true\n";
    const auto plain = dkim::web::load_config(file.string());
    ASSERT_TRUE(plain.has_value());
    EXPECT_TRUE(plain->reports_socket.empty());
    EXPECT_TRUE(plain->reverse_dns) << "reverse DNS is on by default";
    EXPECT_FALSE(plain->dns_server.has_value()) << "through the system's resolvers";
    std::ofstream(file) << "self_signed = true\n[reports]\nreverse_dns = false\n"
                           "dns_server = \"[::1]:5353\"\ndns_timeout = \"500ms\"\n";
    const auto off = dkim::web::load_config(file.string());
    ASSERT_TRUE(off.has_value()) << off.error();
    EXPECT_FALSE(off->reverse_dns);
    EXPECT_EQ(off->dns_server, "[::1]:5353");
    EXPECT_EQ(off->dns_timeout, std::chrono::milliseconds(500));
    std::filesystem::remove(file);
}

// Report addresses go into TXT records: a bad one is named by file, line and key.
TEST(WebdConfigTest, ReportAddressesAreUrisThatFitTheirRecords) {
    const auto file = std::filesystem::temp_directory_path() /
                      ("webd-reports-" + std::to_string(::getpid()) + ".toml");
    for (const auto& [text, key, ok] :
         {std::tuple{"dmarc_rua = \"mailto:a@example.com,mailto:b@example.net!10m\"\n", "dmarc_rua",
                     true},
          {"tlsrpt_rua = \"https://reports.example.net/tlsrpt\"\n", "tlsrpt_rua", true},
          {"dmarc_rua = \"mailto:a@example.com; p=reject\"\n", "dmarc_rua", false},
          {"\ndmarc_ruf = \"failures@example.com\"\n", "dmarc_ruf", false},
          {"dmarc_ruf = \"https://reports.example.net/\"\n", "dmarc_ruf", false},
          {"tlsrpt_rua = \"mailto:tls reports@example.com\"\n", "tlsrpt_rua", false}}) {
        std::ofstream(file) << "self_signed = true\n[dns]\n" << text;
        const auto config = dkim::web::load_config(file.string());
        EXPECT_EQ(config.has_value(), ok) << text << (config ? "" : config.error());
        if (!ok && !config) {
            EXPECT_EQ(config.error().rfind(file.string() + ":", 0), 0U) << config.error();
            EXPECT_NE(config.error().find(std::string("dns.") + key), std::string::npos)
                << config.error();
        }
    }
    std::filesystem::remove(file);
}

}  // namespace

// dkim-webd's configuration against its declarations: a file with every declared key parses.
#include "config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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
}

}  // namespace

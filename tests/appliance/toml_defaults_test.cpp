#include "dkim/config/toml_defaults.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace dkim::config {
namespace {

class TomlDefaultsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        app_.require_subcommand(1);
        CLI::App* key = app_.add_subcommand("key");
        generate_ = key->add_subcommand("generate");
        generate_->add_option("--token", token_)->required();
        generate_->add_option("--bits", bits_)->check(CLI::Range(1024, 8192));
        generate_->add_flag("--json", json_);
        CLI::App* list = key->add_subcommand("list");
        list->add_option("--token", list_token_)->required();
    }
    std::string file(const std::string& content) {
        // ctest runs each test in its own process, several at a time: the name carries the pid.
        const auto path =
            std::filesystem::temp_directory_path() / ("dkim-toml-" + std::to_string(::getpid()) +
                                                      "-" + std::to_string(counter_++) + ".toml");
        std::ofstream(path) << content;
        files_.push_back(path);
        return path.string();
    }
    void TearDown() override {
        for (const auto& path : files_) {
            std::filesystem::remove(path);
        }
    }
    int parse(std::vector<std::string> args) {
        std::vector<const char*> argv{"test"};
        for (auto& arg : args) {
            argv.push_back(arg.c_str());
        }
        try {
            app_.parse(static_cast<int>(argv.size()), argv.data());
        } catch (const CLI::ParseError& error) {
            return error.get_exit_code();
        }
        return 0;
    }

    CLI::App app_;
    CLI::App* generate_ = nullptr;
    std::string token_;
    std::string list_token_;
    int bits_ = 2048;
    bool json_ = false;
    int counter_ = 0;
    std::vector<std::filesystem::path> files_;
};

TEST_F(TomlDefaultsTest, TopLevelKeysReachEveryCommandAndTablesOne) {
    ASSERT_TRUE(apply_toml_defaults(
        app_, file("token = \"t\"\n[key.generate]\nbits = 4096\njson = true\n")));
    EXPECT_EQ(parse({"key", "generate"}), 0) << "a required option may come from the file";
    EXPECT_EQ(token_, "t");
    EXPECT_EQ(bits_, 4096);
    EXPECT_TRUE(json_);
    EXPECT_EQ(list_token_, "t");
}

TEST_F(TomlDefaultsTest, ListsSetOptionsThatTakeSeveralValues) {
    std::vector<std::string> outbound;
    CLI::App* check = app_.add_subcommand("check");
    check->add_option("--outbound", outbound);
    ASSERT_TRUE(apply_toml_defaults(
        app_, file("outbound = [\"192.0.2.25\", \"2001:db8::25\"]\ntoken = \"t\"\n")));
    EXPECT_EQ(parse({"check"}), 0);
    EXPECT_EQ(outbound, (std::vector<std::string>{"192.0.2.25", "2001:db8::25"}));
    auto single = apply_toml_defaults(app_, file("token = [\"a\", \"b\"]\n"));
    ASSERT_FALSE(single);
    EXPECT_NE(single.error().find("expected one value, not a list"), std::string::npos);
    auto comma = apply_toml_defaults(app_, file("outbound = [\"a,b\"]\n"));
    ASSERT_FALSE(comma);
    EXPECT_NE(comma.error().find("cannot hold ','"), std::string::npos);
}

TEST_F(TomlDefaultsTest, CommandLineWins) {
    ASSERT_TRUE(
        apply_toml_defaults(app_, file("token = \"from-file\"\n[key.generate]\nbits = 4096\n")));
    EXPECT_EQ(parse({"key", "generate", "--token", "from-cli", "--bits", "3072"}), 0);
    EXPECT_EQ(token_, "from-cli");
    EXPECT_EQ(bits_, 3072);
}

TEST_F(TomlDefaultsTest, ATableBeatsATopLevelKeyWhateverTheOrder) {
    CLI::App app;
    std::string a;
    std::string b;
    app.add_subcommand("one")->add_option("--name", a);
    app.add_subcommand("two")->add_option("--name", b);
    const auto path = file("[one]\nname = \"specific\"\n");
    ASSERT_TRUE(apply_toml_defaults(app, path));
    EXPECT_EQ(a, "specific");
    EXPECT_EQ(b, "");
}

TEST_F(TomlDefaultsTest, ValidatorsApplyToFileValues) {
    const auto path = file("\n[key.generate]\nbits = 512\n");
    auto result = apply_toml_defaults(app_, path);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().rfind(path + ":3:8: key 'key.generate.bits': ", 0), 0U)
        << result.error();
}

TEST_F(TomlDefaultsTest, WithoutTheFileRequiredOptionsStayRequired) {
    EXPECT_NE(parse({"key", "generate"}), 0);
}

TEST_F(TomlDefaultsTest, FindsTheConfigArgumentBeforeParsing) {
    const char* a[] = {"x", "key", "list", "--config", "f.toml"};
    EXPECT_EQ(find_config_argument(5, a), "f.toml");
    const char* b[] = {"x", "--config=g.toml", "key"};
    EXPECT_EQ(find_config_argument(3, b), "g.toml");
    const char* c[] = {"x", "key", "--", "--config", "h.toml"};
    EXPECT_EQ(find_config_argument(5, c), std::nullopt);
    const char* d[] = {"x", "--config"};
    EXPECT_EQ(find_config_argument(2, d), std::nullopt);
}

TEST_F(TomlDefaultsTest, MissingFileIsAnError) {
    auto result = apply_toml_defaults(app_, "/nonexistent/dkim.toml");
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().find("/nonexistent/dkim.toml"), std::string::npos) << result.error();
}

}  // namespace
}  // namespace dkim::config

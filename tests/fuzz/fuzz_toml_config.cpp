// libFuzzer target: a TOML configuration file applied to a command line shaped like
// dkim-appliance's. Checks that every refusal names the file.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dkim/config/toml_defaults.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view document(reinterpret_cast<const char*>(data), size);
    CLI::App app;
    std::string module;
    std::string token;
    std::string algorithm;
    int bits = 0;
    bool json = false;
    CLI::App* key = app.add_subcommand("key");
    CLI::App* generate = key->add_subcommand("generate");
    generate->add_option("--module", module);
    generate->add_option("--token", token)->required();
    generate->add_option("--algorithm", algorithm)->check(CLI::IsMember({"rsa-2048", "ed25519"}));
    generate->add_option("--bits", bits)->check(CLI::Range(1024, 8192));
    generate->add_flag("--json", json);
    key->add_subcommand("list")->add_option("--token", token);
    auto result = dkim::config::apply_toml_defaults(app, document, "fuzz.toml");
    if (!result && result.error().rfind("fuzz.toml", 0) != 0) {
        std::abort();
    }
    return 0;
}

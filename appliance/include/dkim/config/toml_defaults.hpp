#pragma once
// A TOML file as the defaults of a CLI11 command line: every option is declared once, in
// CLI11 (name, type, default, help text); the file may set any of them and the command line
// wins. `--help` documents both.
//
//   module = "/usr/lib/softhsm/libsofthsm2.so"   # applies to every command with --module
//   token = "dkim"
//   [key.generate]                               # applies to `key generate` only
//   algorithm = "ed25519"
//
// Errors name the file, the line and the key: "/etc/dkim.toml:3:1: key 'algoritm': ...".

#include <CLI/CLI.hpp>
#include <filesystem>
#include <optional>
#include <string>

#include "dkim/expected.hpp"

namespace dkim::config {

// "--config FILE" or "--config=FILE" anywhere in argv (before "--"), found before CLI11
// parses, so that the file's values can become defaults first.
std::optional<std::string> find_config_argument(int argc, const char* const* argv);

dkim::Expected<void, std::string> apply_toml_defaults(CLI::App& app,
                                                      const std::filesystem::path& file);
// The same for a document already in memory; `file` only names it in error messages.
dkim::Expected<void, std::string> apply_toml_defaults(CLI::App& app, std::string_view document,
                                                      const std::filesystem::path& file);

}  // namespace dkim::config

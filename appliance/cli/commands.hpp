#pragma once
// Subcommands of dkim-appliance that live outside main.cpp.

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

namespace dkim::cli {

// Exit codes: the operation failed; the command line is wrong.
inline constexpr int kFailed = 1;
inline constexpr int kUsage = 2;

// "dkim-appliance: <message>" on standard error; returns kFailed.
inline int fail(const std::string& message) {
    std::cerr << "dkim-appliance: " << message << "\n";
    return kFailed;
}

// `sign` and `verify`; each sets `exit_code` when it runs.
void add_mail_commands(CLI::App& app, int& exit_code);
// `dns query`: one lookup through the resolver the daemons use (with its DNSSEC state).
void add_dns_query_command(CLI::App& dns, int& exit_code);
// user, apitoken, totp, elevation, grant, audit, signerd: through dkim-signerd.
void add_signerd_commands(CLI::App& app, int& exit_code);

}  // namespace dkim::cli

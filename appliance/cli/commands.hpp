#pragma once
// Subcommands of dkim-appliance that live outside main.cpp.

#include <CLI/CLI.hpp>

namespace dkim::cli {

// `sign` and `verify`; each sets `exit_code` when it runs.
void add_mail_commands(CLI::App& app, int& exit_code);
// user, apitoken, totp, elevation, grant, audit, signerd: through dkim-signerd.
void add_signerd_commands(CLI::App& app, int& exit_code);

}  // namespace dkim::cli

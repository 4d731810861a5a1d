#pragma once
// Subcommands of dkim-appliance that live outside main.cpp.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "dkim/dns/unbound_resolver.hpp"
#include "dkim/expected.hpp"

namespace dkim::cli {

// Exit codes: the operation failed; the command line is wrong; a step waits for something
// outside it (DNS publication, a grace period), rerun later (EX_TEMPFAIL).
inline constexpr int kFailed = 1;
inline constexpr int kUsage = 2;
inline constexpr int kWaiting = 75;

// "dkim-appliance: <message>" on standard error; returns kFailed.
inline int fail(const std::string& message) {
    std::cerr << "dkim-appliance: " << message << "\n";
    return kFailed;
}

// The resolver options of the commands that look DNS up: the daemons' resolver (libunbound).
struct DnsArgs {
    std::string server;
    int timeout_ms = 5000;
    std::string trust_anchor;
};
// --dns-server, --dns-timeout-ms, --trust-anchor.
void add_dns_options(CLI::App* command, DnsArgs& dns);
Expected<std::unique_ptr<dns::UnboundResolver>, std::string> open_resolver(const DnsArgs& args);

// `sign` and `verify`; each sets `exit_code` when it runs.
void add_mail_commands(CLI::App& app, int& exit_code);
// `dns query`: one lookup through the resolver the daemons use (with its DNSSEC state).
void add_dns_query_command(CLI::App& dns, int& exit_code);
// `signerd status` (through dkim-signerd) and `relay hash-password` (signerd_commands.cpp).
void add_signerd_commands(CLI::App& app, int& exit_code);
// user, apitoken, totp: through dkim-signerd (user_commands.cpp).
void add_user_commands(CLI::App& app, int& exit_code);
// elevation, grant: through dkim-signerd (elevation_commands.cpp).
void add_elevation_commands(CLI::App& app, int& exit_code);
// passkey list | remove: through dkim-signerd (passkey_commands.cpp).
void add_passkey_commands(CLI::App& app, int& exit_code);
// The `pin` group: the token PIN's custody. `pin seal` (pin_commands.cpp) seals it as
// dkim-signerd's systemd credential.
void add_pin_commands(CLI::App& app, int& exit_code);
// pin status | split | submit | lock: PIN custody through dkim-signerd (pin_share_commands.cpp),
// added to the `pin` group.
void add_pin_share_commands(CLI::App& pin, int& exit_code);
// `pin split` for `up --pin-custody shares` (up_pin_ceremony.cpp), as root over `socket`: splits
// the PIN in `pin_file` among `custodians` (comma-separated, any `threshold` of them unlock) into
// <out_dir>/<custodian>.share, each encrypted to the passphrase in
// <passphrase_dir>/<custodian><passphrase_suffix>. A signerd that has a split already is left as
// it is ("split" false); otherwise those custodians' old share files go first. Errors are printed;
// the exit code is returned.
struct UpPinSplit {
    std::string socket, pin_file, custodians, out_dir, passphrase_dir, passphrase_suffix;
    std::uint32_t threshold = 0;
};
int split_pin_for_up(const UpPinSplit& request, bool& split);
// audit show (through dkim-signerd) | export | verify (on the state store; audit_commands.cpp).
void add_audit_commands(CLI::App& app, int& exit_code);
// `import opendkim` (import_opendkim_command.cpp).
void add_import_command(CLI::App& app, int& exit_code);
// `apply` (apply_command.cpp).
void add_apply_command(CLI::App& app, int& exit_code);
// key activate | retire | rotate (key_rotation_commands.cpp).
void add_key_rotation_commands(CLI::App& key, int& exit_code);
// dns records | check (dns_records_commands.cpp).
void add_dns_records_commands(CLI::App& dns, int& exit_code);
// `up`: the whole appliance on this machine, supervised (up_command.cpp).
void add_up_command(CLI::App& app, int& exit_code);
// reports parse | ... (reports_commands.cpp)
void add_reports_commands(CLI::App& app, int& exit_code);
// reports fetch-imap (reports_fetch_command.cpp), added to `reports` after the others.
void add_reports_fetch_command(CLI::App& app, int& exit_code);
// The signerd forms of key list and key generate (signerd_keys.cpp; main.cpp keeps their
// offline, token-direct forms).
struct Common;
int list_through_signerd(const Common& common, bool json);
int generate_through_signerd(const Common& common, const std::string& domain,
                             const std::string& selector, const std::string& algorithm, bool json);

}  // namespace dkim::cli

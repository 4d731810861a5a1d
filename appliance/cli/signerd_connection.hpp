#pragma once
// The operator CLI's connection to dkim-signerd: where its socket is, who the operator is
// (credentials from files, never from the command line), one request and its reply. A TOTP
// code comes from standard input (`--totp -` or `--totp-stdin`, with a prompt without echo on
// a terminal) so that it is not in the process list; `--totp CODE` still works.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/ipc/protocol.hpp"

namespace dkim::cli {

struct Common {
    std::string socket = "/run/dkim-signerd/signerd.sock";
    std::string user;
    std::string password_file;
    std::string token_file;
    std::string totp;
    bool totp_stdin = false;
};

// One line from standard input, at most `max` bytes without its line end, after `prompt` on
// standard error without echo when standard input is a terminal; nullopt when it is empty,
// longer or missing. Read into a buffer of its own, wiped.
std::optional<hsm::Secret> read_secret_from_stdin(const std::string& prompt, std::size_t max);

// One line from standard input (at most 64 bytes, without its line end), after `prompt` on
// standard error without echo when standard input is a terminal. `what` names it in errors.
std::optional<std::string> read_code_from_stdin(const std::string& prompt, std::string& error);

// `value`, or the line read from standard input when `value` is "-".
std::optional<std::string> code_argument(const std::string& value, const std::string& prompt);

// A secret file's content (hsm::Secret::from_file's checks: not readable by others); sets
// `error` instead when it cannot be read.
std::string read_secret(const std::string& path, std::string& error);

// --socket, --user, --password-file, --token-file, --totp, --totp-stdin.
void add_common(CLI::App* command, Common& c);

// The credentials the options name (read from their files); nullopt after printing why not.
std::optional<ipc::Credentials> credentials(const Common& c);

// "2026-11-30T10:00:00Z", or "-" for 0.
std::string time_text(std::int64_t unix_ms);

// Sends one request and prints the common replies (errors, OkReply). Returns the exit code.
int call(const Common& c, ipc::Request request,
         const std::function<void(const ipc::Reply&)>& print = {});

// Sends one request; an ErrorReply or a transport failure becomes the error text
// ("code: message"). The credentials in `request` are wiped.
Expected<ipc::Reply, std::string> ask_signerd(const Common& c, ipc::Request request);

}  // namespace dkim::cli

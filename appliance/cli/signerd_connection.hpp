#pragma once
// The operator CLI's connection to dkim-signerd: where its socket is, who the operator is
// (credentials from files, never from the command line), one request and its reply.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "dkim/expected.hpp"
#include "dkim/ipc/protocol.hpp"

namespace dkim::cli {

struct Common {
    std::string socket = "/run/dkim-signerd/signerd.sock";
    std::string user;
    std::string password_file;
    std::string token_file;
    std::string totp;
};

// A secret file's content (hsm::Secret::from_file's checks: not readable by others); sets
// `error` instead when it cannot be read.
std::string read_secret(const std::string& path, std::string& error);

// --socket, --user, --password-file, --token-file, --totp.
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

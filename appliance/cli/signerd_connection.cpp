#include "signerd_connection.hpp"

#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <iostream>
#include <span>
#include <vector>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/ipc/client.hpp"
#include "dkim/jit/credentials.hpp"

namespace dkim::cli {

std::optional<hsm::Secret> read_secret_from_stdin(const std::string& prompt, std::size_t max) {
    const bool terminal = ::isatty(STDIN_FILENO) == 1;
    termios saved{};
    const bool echo_off = terminal && ::tcgetattr(STDIN_FILENO, &saved) == 0;
    if (terminal) {
        std::cerr << prompt << std::flush;
    }
    if (echo_off) {
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::vector<unsigned char> line(max + 1);  // never reallocated: no copy left behind
    std::size_t size = 0;
    bool ok = true;
    for (unsigned char c = 0;;) {
        const ssize_t n = ::read(STDIN_FILENO, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || c == '\n') {
            ok = n > 0 || size > 0;
            break;
        }
        if (size == max + 1) {
            ok = false;
            break;
        }
        line[size++] = c;
    }
    if (echo_off) {
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        std::cerr << "\n";
    }
    if (size > 0 && line[size - 1] == '\r') {
        --size;
    }
    std::optional<hsm::Secret> out;
    if (ok && size > 0 && size <= max) {
        out.emplace(std::span(line.data(), size));
    }
    base::secure_wipe(line.data(), line.size());
    return out;
}

std::optional<std::string> read_code_from_stdin(const std::string& prompt, std::string& error) {
    auto code = read_secret_from_stdin(prompt, 64);
    if (!code) {
        error = "expected the code on standard input (one line, at most 64 bytes)";
        return std::nullopt;
    }
    return std::string(reinterpret_cast<const char*>(code->bytes().data()),  // NOLINT
                       code->size());
}

std::optional<std::string> code_argument(const std::string& value, const std::string& prompt) {
    if (value != "-") {
        return value;
    }
    std::string error;
    auto code = read_code_from_stdin(prompt, error);
    if (!code) {
        std::cerr << "dkim-appliance: " << error << "\n";
    }
    return code;
}

std::string read_secret(const std::string& path, std::string& error) {
    auto secret = hsm::Secret::from_file(path);
    if (!secret) {
        error = secret.error().to_string();
        return "";
    }
    return std::string(reinterpret_cast<const char*>(secret->bytes().data()), secret->size());
}

std::optional<ipc::Credentials> credentials(const Common& c) {
    ipc::Credentials out;
    std::string error;
    if (!c.token_file.empty()) {
        out.token = read_secret(c.token_file, error);
    } else if (!c.user.empty()) {
        out.user = c.user;
        if (!c.password_file.empty()) {
            out.password = read_secret(c.password_file, error);
        } else {
            error = "--user needs --password-file (or use --token-file)";
        }
    }
    if (!error.empty()) {
        std::cerr << "dkim-appliance: " << error << "\n";
        return std::nullopt;
    }
    if (c.totp_stdin || c.totp == "-") {
        auto code = read_code_from_stdin("TOTP code: ", error);
        if (!code) {
            out.wipe();
            std::cerr << "dkim-appliance: --totp: " << error << "\n";
            return std::nullopt;
        }
        out.totp = std::move(*code);
    } else {
        out.totp = c.totp;
    }
    return out;
}

std::string time_text(std::int64_t ms) {
    if (ms == 0) {
        return "-";
    }
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buffer[32];
    if (std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        return "?";
    }
    return buffer;
}

// Sends one request and prints the common replies. Returns the exit code.
int call(const Common& c, ipc::Request request,
         const std::function<void(const ipc::Reply&)>& print) {
    auto reply = ask_signerd(c, std::move(request));
    if (!reply) {
        return fail(reply.error());
    }
    if (const auto* ok = std::get_if<ipc::OkReply>(&*reply)) {
        std::cout << ok->message << "\n";
        if (!ok->secret.empty()) {
            std::cout << ok->secret << "\n";
        }
        return 0;
    }
    if (print) {
        print(*reply);
    }
    return 0;
}

void add_common(CLI::App* command, Common& c) {
    command->add_option("--socket", c.socket, "dkim-signerd's socket")->capture_default_str();
    command->add_option("--user", c.user, "authenticate as this user (with --password-file)");
    command->add_option("--password-file", c.password_file, "file holding the user's password");
    command->add_option("--token-file", c.token_file, "file holding an API or session token");
    command->add_option("--totp", c.totp,
                        "the user's current TOTP code (approve, deny, revoke; a login that makes "
                        "a token). '-' reads it from standard input (a prompt without echo on a "
                        "terminal): a code given here is visible in the process list");
    command->add_flag("--totp-stdin", c.totp_stdin,
                      "read the TOTP code from standard input (the same as --totp -)");
}

Expected<ipc::Reply, std::string> ask_signerd(const Common& c, ipc::Request request) {
    ipc::SignerClient client(c.socket);
    auto reply = client.call(request);
    ipc::wipe_secrets(request);
    if (!reply) {
        return unexpected(reply.error());
    }
    if (const auto* error = std::get_if<ipc::ErrorReply>(&*reply)) {
        if (error->rule == "factor") {
            // Policy wants a passkey for this decision: the CLI has none to offer (it keeps TOTP).
            return unexpected(error->describe() +
                              "\ndkim-appliance: the CLI decides with a TOTP code only; this "
                              "decision needs your passkey: sign in to the web console (the URL "
                              "`dkim-appliance up` prints, or the appliance's https:// address), "
                              "open Requests (or Grants, to revoke) and decide there");
        }
        return unexpected(error->describe());
    }
    return std::move(*reply);
}

}  // namespace dkim::cli

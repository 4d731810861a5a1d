// `up --pin-custody shares`: the split ceremony among the demo's users (up_pin_custody.hpp).
// In the CLI rather than the dkim_up library: it talks to dkim-signerd, as up_users.cpp does.
//
// The demo's users are the custodians, any two of them unlock the token. Each one's share is
// written to secrets/shares/<user>.share, encrypted (scrypt, AES-256-GCM) to that user's initial
// password, which the demo keeps beside it in secrets/: a demo of the ceremony, not a custody
// (on the appliance each custodian takes the share away and types a passphrase of their own).

#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include "commands.hpp"
#include "up_pin_custody.hpp"

namespace dkim::cli::up {

namespace fs = std::filesystem;

Expected<void, std::string> run_pin_split_ceremony(const StatePaths& paths,
                                                   const std::vector<DemoUser>& custodians) {
    if (custodians.size() < 2) {
        return unexpected(std::string("the shares custody needs at least two demo users"));
    }
    const auto pin_file = clear_pin_file(PinCustody::shares, paths);
    const fs::path out = paths.secrets / "shares";
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec || ::chmod(out.c_str(), 0700) != 0) {
        return unexpected(out.string() + ": cannot make the folder");
    }
    UpPinSplit request;
    request.socket = paths.socket.string();
    request.pin_file = pin_file->string();
    request.out_dir = out.string();
    request.passphrase_dir = paths.secrets.string();
    request.passphrase_suffix = ".password";
    request.threshold = 2;
    for (const auto& user : custodians) {
        request.custodians += (request.custodians.empty() ? "" : ",") + user.name;
    }
    bool split = false;
    // up's standard output is the facts (one JSON line with --json): what the split says goes to
    // standard error, as up's other messages do.
    std::streambuf* const facts = std::cout.rdbuf(std::cerr.rdbuf());
    const int code = split_pin_for_up(request, split);
    std::cout.rdbuf(facts);
    if (code != 0) {
        return unexpected(std::string("the PIN split ceremony failed (above)"));
    }
    if (split) {
        std::cerr << "up: the token PIN is split, any 2 of " << custodians.size()
                  << " custodians unlock the token; each share is in " << out.string()
                  << "/<user>.share, encrypted to that user's password\n";
    }
    return {};
}

}  // namespace dkim::cli::up

// dkim-appliance pin ...: the token PIN's custody (README, "Choosing the PIN's custody").
//
// `pin seal` makes the "sealed" custody's credential: the PIN that dkim-signerd.service's
// LoadCredentialEncrypted=pin:/etc/dkim-appliance/credentials/signerd-pin.cred hands signerd at
// each start, encrypted with the host key and, on a machine with a TPM2, the TPM2 too. It reads
// the PIN from standard input (no echo on a terminal) or a 0600 file, never from the command
// line; checks it against the token named in signerd.toml with a C_Login and C_Logout of its own
// (a PIN the token refuses is never sealed); seals it with systemd-creds, the PIN on a pipe; and
// checks that the credential opens again on this machine. For a new PIN, a new TPM2, or a
// machine restored from a backup (a credential opens only where it was sealed).
//
// SECURITY: runs as root. The PIN is an hsm::Secret (locked pages, wiped), this process cannot
// be dumped or traced by others of its uid while it holds it (PR_SET_DUMPABLE 0), and nothing
// printed or in an error names it.

#include <sys/prctl.h>
#include <termios.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/config/toml_reader.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/hsm/token.hpp"
#include "dkim/provisioning/keys.hpp"
#include "signerd_connection.hpp"
#include "systemd_creds.hpp"

namespace dkim::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kSignerdConfig = "/etc/dkim-appliance/signerd.toml";
constexpr const char* kSealedPin = "/etc/dkim-appliance/credentials/signerd-pin.cred";

struct PinSealArgs {
    std::string signerd_config = kSignerdConfig;
    std::string pin_file;
    std::string output = kSealedPin;
    std::string with_key = "auto";
    bool no_check = false;
};

// What `pin seal` needs of signerd.toml: where the token is, the credential's name, and the
// custody it is set to (to say when the credential is not what signerd reads).
struct SignerdPinSettings {
    std::string module;
    std::string token;
    std::string source;      // [pin] source
    std::string credential;  // [pin] credential: the ID in LoadCredentialEncrypted=ID:...
};

Expected<SignerdPinSettings, std::string> read_signerd_pin_settings(const std::string& file) {
    SignerdPinSettings s;
    try {
        const toml::table root = config::parse_toml_file(file);
        s.module = root["module"].value_or(std::string());
        s.token = root["token"].value_or(std::string());
        s.source = root["pin"]["source"].value_or(std::string());
        s.credential = root["pin"]["credential"].value_or(std::string("pin"));
    } catch (const std::exception& e) {
        return unexpected(std::string(e.what()));
    }
    if (s.credential.empty() || s.credential.find('/') != std::string::npos) {
        return unexpected(file + ": [pin] credential: a credential name, without '/'");
    }
    return s;
}

// One line of standard input, at most Secret::max_size bytes without its line end, after
// `prompt` on standard error with echo off when standard input is a terminal.
Expected<hsm::Secret, std::string> prompt_new_pin(const std::string& prompt) {
    auto pin = read_secret_from_stdin(prompt, hsm::Secret::max_size);
    if (!pin) {
        return unexpected("expected the PIN on standard input: one line of at most " +
                          std::to_string(hsm::Secret::max_size) + " bytes");
    }
    return std::move(*pin);
}

// A C_Login with the PIN and a C_Logout, in this process: signerd's login is its own.
Expected<void, std::string> token_accepts(const SignerdPinSettings& s, const hsm::Secret& pin) {
    if (s.module.empty() || s.token.empty()) {
        return unexpected(std::string(
            "signerd.toml names no module or token to check the PIN against (--no-check skips "
            "the check)"));
    }
    auto token = provisioning::TokenLocation{s.module, s.token}.open();
    if (!token) {
        return unexpected(token.error().to_string() +
                          " (--no-check seals without asking the token)");
    }
    auto login = hsm::Login::acquire(*token, pin.duplicate(), hsm::Login::Relogin::forbidden);
    if (!login) {
        const hsm::ErrorCode code = login.error().code;
        if (code == hsm::ErrorCode::pin_incorrect) {
            return unexpected((*token)->name() +
                              " refused this PIN: nothing was sealed (each wrong PIN counts "
                              "towards the token's lockout)");
        }
        if (code == hsm::ErrorCode::pin_locked) {
            return unexpected((*token)->name() +
                              ": its user PIN is locked: unlock it with the security officer's "
                              "PIN first; nothing was sealed");
        }
        return unexpected(login.error().to_string());
    }
    if (auto released = login->release(); !released) {
        return unexpected(released.error().to_string());
    }
    return {};
}

int run_pin_seal(const PinSealArgs& args) {
    // Nobody of our uid reads the PIN out of this process, and no core dump holds it.
    (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    auto settings = read_signerd_pin_settings(args.signerd_config);
    if (!settings) {
        return fail(settings.error());
    }
    // The token as dkim-signerd.service sees it: its unit sets SOFTHSM2_CONF to the file beside
    // signerd.toml (a SoftHSM2 token); a shell of root's has none.
    const fs::path softhsm_conf = fs::path(args.signerd_config).parent_path() / "softhsm2.conf";
    std::error_code ec;
    // NOLINTNEXTLINE(concurrency-mt-unsafe): before any thread of ours
    if (std::getenv("SOFTHSM2_CONF") == nullptr && fs::exists(softhsm_conf, ec)) {
        // NOLINTNEXTLINE(concurrency-mt-unsafe)
        ::setenv("SOFTHSM2_CONF", softhsm_conf.c_str(), 1);
    }

    std::optional<hsm::Secret> pin;
    if (!args.pin_file.empty()) {
        auto read = hsm::Secret::from_file(args.pin_file);
        if (!read) {
            return fail(read.error().to_string());
        }
        pin.emplace(std::move(*read));
    } else {
        auto typed = prompt_new_pin("The token's user PIN: ");
        if (!typed) {
            return fail(typed.error());
        }
        if (args.no_check && ::isatty(STDIN_FILENO) == 1) {
            // No token to catch a typing error: the same PIN twice.
            auto again = prompt_new_pin("The same PIN again: ");
            if (!again || !again->equals(*typed)) {
                return fail("the two PINs differ: nothing was sealed");
            }
        }
        pin.emplace(std::move(*typed));
    }

    std::string checked = "not checked against the token (--no-check)";
    if (!args.no_check) {
        if (auto accepted = token_accepts(*settings, *pin); !accepted) {
            return fail(accepted.error());
        }
        checked = "checked: token '" + settings->token + "' accepted it (C_Login, C_Logout)";
    }

    const fs::path output = args.output;
    if (auto sealed = seal_credential(*pin, settings->credential, args.with_key, output, {});
        !sealed) {
        return fail(sealed.error());
    }
    const std::string keys = sealed_with(output);
    if (keys.rfind("no key", 0) == 0) {
        fs::remove(output, ec);
        return fail("systemd-creds sealed the PIN with no key at all: removed " + output.string() +
                    "; choose --with-key host (or host+tpm2)");
    }
    // It must open where signerd starts: on this machine, with this host key and TPM2.
    auto opened = open_credential(output, settings->credential, {});
    if (!opened || !opened->equals(*pin)) {
        return fail(opened ? "the credential " + output.string() +
                                 " does not open to the PIN it was sealed from"
                           : opened.error());
    }
    pin->wipe();

    std::cout << "sealed the token PIN into " << output.string() << " (credential '"
              << settings->credential << "', mode 0600)\n"
              << "  with:   " << (keys.empty() ? "--with-key=" + args.with_key : keys)
              << (args.with_key == "auto" ? " (--with-key=auto chose it)" : "") << "\n"
              << "  " << checked << "\n"
              << "  opened again on this machine: yes\n";
    if (settings->source != "sealed" && settings->source != "credential") {
        std::cout << "note: " << args.signerd_config << " has [pin] source = \"" << settings->source
                  << "\": set source = \"sealed\" for dkim-signerd to read this credential\n";
    }
    std::cout << "dkim-signerd reads it at its next start: systemctl restart dkim-signerd\n";
    return 0;
}

}  // namespace

void add_pin_commands(CLI::App& app, int& exit_code) {
    CLI::App* pin = app.add_subcommand(
        "pin", "The token PIN's custody: sealed (systemd credential), approver, shares");
    pin->require_subcommand(1);
    // `pin seal` here; status, split, submit and lock (pin_share_commands.cpp) below it.

    auto seal_args = std::make_shared<PinSealArgs>();
    CLI::App* seal = pin->add_subcommand(
        "seal",
        "Seal the token's user PIN as dkim-signerd's systemd credential (custody \"sealed\"): "
        "encrypted with the host key and, on a machine with a TPM2, the TPM2 too. The PIN comes "
        "from standard input (no echo on a terminal) or --pin-file, is checked against the token "
        "first (C_Login, C_Logout), and the credential must open again here. For a new PIN, a "
        "new TPM2 or a restored machine; restart dkim-signerd afterwards");
    seal->add_option("--signerd-config", seal_args->signerd_config,
                     "dkim-signerd's configuration: the module and token to check the PIN "
                     "against, [pin] credential (the credential's name); a softhsm2.conf beside "
                     "it is used as the unit uses it")
        ->capture_default_str();
    seal->add_option("--pin-file", seal_args->pin_file,
                     "read the PIN from this file (mode 0600 or stricter) instead of standard "
                     "input");
    seal->add_option("--output", seal_args->output,
                     "the credential file (LoadCredentialEncrypted= of dkim-signerd.service); "
                     "written beside it, then renamed over it")
        ->capture_default_str();
    seal->add_option("--with-key", seal_args->with_key,
                     "what it is sealed with: auto (host+tpm2 when the machine has a TPM2, host "
                     "otherwise), host, tpm2, host+tpm2")
        ->check(CLI::IsMember(std::vector<std::string>(std::begin(kSealKeys), std::end(kSealKeys))))
        ->capture_default_str();
    seal->add_flag("--no-check", seal_args->no_check,
                   "seal without asking the token (one not reachable from here); on a terminal "
                   "the PIN is asked twice");
    seal->callback([&exit_code, seal_args] { exit_code = run_pin_seal(*seal_args); });

    add_pin_share_commands(*pin, exit_code);
}

}  // namespace dkim::cli

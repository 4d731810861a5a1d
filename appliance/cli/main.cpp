// dkim-appliance: the operator CLI of the DKIM signing appliance.
//
// SECURITY: run by an operator on the appliance. PINs are read only from files (never from
// the command line or the environment, where they would show in process listings and shell
// history), used for one login, and wiped. Nothing secret is ever printed: the only key
// material in the output is public. The PKCS#11 module it loads is the operator's choice.
//
// `verify` reads untrusted mail and DNS answers: everything it parses goes through the same
// bounded parsers as the relay's.
//
// STANDARDS: RFC 6376 (DKIM signing, verification and key records), RFC 8463 (Ed25519),
// RFC 8301 (no rsa-sha1, no RSA keys under 1024 bits; we generate 2048 and up), RFC 8601
// (Authentication-Results), RFC 5322 (message format), RFC 7512 (PKCS#11 URIs), PKCS#11 v2.40.

#include <CLI/CLI.hpp>
#include <cereal/archives/json.hpp>
#include <cereal/types/vector.hpp>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "dkim/base/hex.hpp"
#include "dkim/config/toml_defaults.hpp"
#include "dkim/provisioning/dns_record.hpp"
#include "dkim/provisioning/keys.hpp"
#include "signerd_connection.hpp"

namespace {

using dkim::cli::kFailed;
using dkim::cli::kUsage;
using dkim::provisioning::TokenLocation;

int report(const dkim::hsm::Error& error) {
    std::cerr << "dkim-appliance: " << error.to_string() << "\n";
    return kFailed;
}

struct KeyRow {
    std::string domain;
    std::string selector;
    std::string algorithm;
    std::string id;
    std::string uri;
    std::string private_key;
    std::string dns_name;

    template <class Archive>
    void serialize(Archive& archive) {
        archive(CEREAL_NVP(domain), CEREAL_NVP(selector), CEREAL_NVP(algorithm), CEREAL_NVP(id),
                CEREAL_NVP(uri), CEREAL_NVP(private_key), CEREAL_NVP(dns_name));
    }
};

KeyRow row(const dkim::hsm::KeyInfo& key, const std::string& token_label, bool logged_in) {
    return {key.name.domain,      key.name.selector,
            key.algorithm_name(), dkim::base::hex_encode(key.id),
            key.uri(token_label), dkim::provisioning::protection_summary(key, logged_in),
            key.name.label()};
}

// --- token init ---------------------------------------------------------------------------

struct TokenInitArgs {
    std::string module;
    std::string label;
    std::string so_pin_file;
    std::string pin_file;
};

int run_token_init(const TokenInitArgs& args) {
    auto so_pin = dkim::hsm::Secret::from_file(args.so_pin_file);
    if (!so_pin) {
        return report(so_pin.error());
    }
    auto pin = dkim::hsm::Secret::from_file(args.pin_file);
    if (!pin) {
        return report(pin.error());
    }
    auto slot = dkim::provisioning::init_token(args.module, args.label, *so_pin, *pin);
    if (!slot) {
        return report(slot.error());
    }
    std::cout << "initialised token '" << slot->label << "' in slot " << slot->slot_id
              << " (serial " << slot->serial << ")\n";
    return 0;
}

// --- token list ---------------------------------------------------------------------------

int run_token_list(const std::string& module_path) {
    auto module = dkim::hsm::Module::load(module_path);
    if (!module) {
        return report(module.error());
    }
    auto slots = (*module)->slots();
    if (!slots) {
        return report(slots.error());
    }
    std::cout << "module " << module_path << ": " << (*module)->library_description() << "\n";
    for (const auto& slot : *slots) {
        std::cout << "slot " << slot.slot_id << ": ";
        if (!slot.token_present) {
            std::cout << "no token\n";
        } else if (!slot.token_initialized) {
            std::cout << "uninitialised token\n";
        } else {
            std::cout << "token '" << slot.label << "' (" << slot.manufacturer << " " << slot.model
                      << ", serial " << slot.serial << ")"
                      << (slot.user_pin_locked ? " USER PIN LOCKED" : "") << "\n";
        }
    }
    return 0;
}

// --- key generate -------------------------------------------------------------------------

struct KeyArgs {
    dkim::cli::Common signerd;
    TokenLocation where;
    std::string pin_file;
    std::string domain;
    std::string selector;
    std::string algorithm = "rsa-2048";
    bool json = false;
};

int run_key_generate(const KeyArgs& args) {
    if (args.pin_file.empty()) {
        return dkim::cli::generate_through_signerd(args.signerd, args.domain, args.selector,
                                                   args.algorithm, args.json);
    }
    if (args.where.token.empty()) {
        return dkim::cli::fail("--pin-file (offline generation) needs --token");
    }
    auto name = dkim::hsm::KeyName::make(args.domain, args.selector);
    if (!name) {
        return report(name.error());
    }
    const auto algorithm = dkim::hsm::parse_key_algorithm(args.algorithm);
    auto pin = dkim::hsm::Secret::from_file(args.pin_file);
    if (!pin) {
        return report(pin.error());
    }
    auto generated =
        dkim::provisioning::generate_key(args.where, std::move(*pin), *name, *algorithm);
    if (!generated) {
        return report(generated.error());
    }
    const std::string zone_line =
        dkim::provisioning::render_zone_line(*name, generated->public_key);
    if (args.json) {
        KeyRow key = row(generated->key, generated->token_label, true);
        std::string record = dkim::provisioning::dkim_record_value(generated->public_key);
        {
            cereal::JSONOutputArchive archive(std::cout);
            archive(cereal::make_nvp("key", key), cereal::make_nvp("dns_record", record),
                    cereal::make_nvp("zone_line", zone_line));
        }
        std::cout << "\n";
        return 0;
    }
    std::cout << "generated " << generated->key.algorithm_name() << " key " << name->label()
              << " in token '" << generated->token_label << "'\n"
              << "  object: " << generated->key.uri(generated->token_label) << "\n"
              << "publish this record, then sign with selector '" << name->selector << "':\n"
              << zone_line << "\n";
    return 0;
}

// --- key list -----------------------------------------------------------------------------

int run_key_list(const KeyArgs& args) {
    if (args.where.token.empty()) {
        return dkim::cli::list_through_signerd(args.signerd, args.json);
    }
    std::optional<dkim::hsm::Secret> pin;
    if (!args.pin_file.empty()) {
        auto read = dkim::hsm::Secret::from_file(args.pin_file);
        if (!read) {
            return report(read.error());
        }
        pin.emplace(std::move(*read));
    }
    auto listing = dkim::provisioning::list_keys(args.where, std::move(pin));
    if (!listing) {
        return report(listing.error());
    }
    std::vector<KeyRow> rows;
    for (const auto& key : listing->keys) {
        rows.push_back(row(key, listing->token_label, listing->logged_in));
    }
    if (args.json) {
        {
            cereal::JSONOutputArchive archive(std::cout);
            archive(cereal::make_nvp("token", listing->token_label),
                    cereal::make_nvp("private_keys_checked", listing->logged_in),
                    cereal::make_nvp("keys", rows));
        }
        std::cout << "\n";
        return 0;
    }
    if (rows.empty()) {
        std::cout << "no DKIM keys in token '" << listing->token_label << "'\n";
        return 0;
    }
    std::size_t domain_width = 6;
    std::size_t selector_width = 8;
    for (const auto& r : rows) {
        domain_width = std::max(domain_width, r.domain.size());
        selector_width = std::max(selector_width, r.selector.size());
    }
    const auto line = [&](const std::string& domain, const std::string& selector,
                          const std::string& algorithm, const std::string& id,
                          const std::string& status) {
        std::cout << std::left << std::setw(static_cast<int>(domain_width) + 2) << domain
                  << std::setw(static_cast<int>(selector_width) + 2) << selector << std::setw(11)
                  << algorithm << std::setw(34) << id << status << "\n";
    };
    line("DOMAIN", "SELECTOR", "ALGORITHM", "ID", "PRIVATE KEY");
    for (const auto& r : rows) {
        line(r.domain, r.selector, r.algorithm, r.id, r.private_key);
    }
    return 0;
}

// --- dns record ---------------------------------------------------------------------------

int run_dns_record(const KeyArgs& args) {
    auto name = dkim::hsm::KeyName::make(args.domain, args.selector);
    if (!name) {
        return report(name.error());
    }
    auto key = dkim::provisioning::public_key(args.where, *name);
    if (!key) {
        return report(key.error());
    }
    std::cout << dkim::provisioning::render_zone_line(*name, key->public_key) << "\n";
    return 0;
}

void add_key_name_options(CLI::App* command, KeyArgs& args) {
    command->add_option("--domain", args.domain, "signing domain (d=)")->required();
    command->add_option("--selector", args.selector, "selector (s=)")->required();
}

void add_token_options(CLI::App* command, KeyArgs& args, bool required = true) {
    command->add_option("--module", args.where.module,
                        "PKCS#11 module (.so) of the token, e.g. /usr/lib/softhsm/libsofthsm2.so");
    auto* token =
        command->add_option("--token", args.where.token,
                            "token label, or an RFC 7512 URI (pkcs11:token=dkim;serial=...)");
    if (required) {
        token->required();
    }
}

int run(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
    // Errors are values below this point; anything thrown is a bug or out-of-memory, and
    // still ends with a message and a failure status rather than std::terminate.
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::cerr << "dkim-appliance: internal error: " << error.what() << "\n";
    } catch (...) {
        std::cerr << "dkim-appliance: internal error\n";
    }
    return kFailed;
}

namespace {

int run(int argc, char** argv) {
    CLI::App app{
        "dkim-appliance: operator CLI of the DKIM signing appliance.\n"
        "Every option may also be set in a TOML file given with --config; the "
        "command line wins."};
    app.require_subcommand(1);
    app.fallthrough();
    std::string config_file;
    app.add_option("--config", config_file,
                   "TOML file: top-level keys set options of any command, [key.generate] "
                   "tables set options of one command")
        ->check(CLI::ExistingFile)
        ->configurable(false);
    int exit_code = 0;

    // token init | list
    CLI::App* token = app.add_subcommand("token", "PKCS#11 tokens");
    token->require_subcommand(1);
    TokenInitArgs init_args;
    CLI::App* init = token->add_subcommand(
        "init",
        "Initialise a free slot's token (SoftHSM2 and lab tokens; HSMs use their "
        "vendor's tools)");
    init->add_option("--module", init_args.module, "PKCS#11 module (.so)")->required();
    init->add_option("--label", init_args.label, "label of the new token (at most 32 bytes)")
        ->required();
    init->add_option("--so-pin-file", init_args.so_pin_file,
                     "file holding the new security officer PIN (mode 0600)")
        ->required();
    init->add_option("--pin-file", init_args.pin_file, "file holding the new user PIN (mode 0600)")
        ->required();
    init->callback([&] { exit_code = run_token_init(init_args); });

    std::string list_module;
    CLI::App* token_list = token->add_subcommand("list", "List the module's slots and tokens");
    token_list->add_option("--module", list_module, "PKCS#11 module (.so)")->required();
    token_list->callback([&] { exit_code = run_token_list(list_module); });

    // key generate | list
    CLI::App* key = app.add_subcommand("key", "DKIM keys in the token");
    key->require_subcommand(1);
    KeyArgs generate_args;
    CLI::App* generate = key->add_subcommand(
        "generate",
        "Generate a key pair inside the token (the private key never leaves it), through "
        "dkim-signerd under a key.generate grant; it starts pending-publish. Offline, with "
        "--token and --pin-file, the token is used directly (lab and first-boot use: no grant, "
        "no audit record; signerd treats such a key as active and unmanaged)");
    add_token_options(generate, generate_args, false);
    generate->add_option("--pin-file", generate_args.pin_file,
                         "offline: file holding the user PIN (mode 0600)");
    dkim::cli::add_common(generate, generate_args.signerd);
    add_key_name_options(generate, generate_args);
    generate->add_option("--algorithm", generate_args.algorithm, "key algorithm")
        ->check(CLI::IsMember({"rsa-2048", "rsa-3072", "rsa-4096", "ed25519"}))
        ->capture_default_str();
    generate->add_flag("--json", generate_args.json, "print JSON");
    generate->callback([&] { exit_code = run_key_generate(generate_args); });

    KeyArgs list_args;
    CLI::App* list = key->add_subcommand(
        "list",
        "List the DKIM keys with their lifecycle state (through dkim-signerd); with --token, "
        "read the token directly, and with --pin-file also check each private key's protection");
    add_token_options(list, list_args, false);
    dkim::cli::add_common(list, list_args.signerd);
    list->add_option("--pin-file", list_args.pin_file,
                     "file holding the user PIN; private keys are only visible after login");
    list->add_flag("--json", list_args.json, "print JSON");
    list->callback([&] { exit_code = run_key_list(list_args); });

    // dns record
    CLI::App* dns = app.add_subcommand("dns", "DNS records of the keys, and lookups");
    dns->require_subcommand(1);
    KeyArgs record_args;
    CLI::App* record = dns->add_subcommand(
        "record", "Print the zone-file line of a key's DKIM record (needs no PIN)");
    add_token_options(record, record_args);
    add_key_name_options(record, record_args);
    record->callback([&] { exit_code = run_dns_record(record_args); });
    dkim::cli::add_dns_query_command(*dns, exit_code);
    dkim::cli::add_import_command(app, exit_code);
    dkim::cli::add_apply_command(app, exit_code);
    dkim::cli::add_key_rotation_commands(*key, exit_code);
    dkim::cli::add_dns_records_commands(*dns, exit_code);

    // sign | verify
    dkim::cli::add_mail_commands(app, exit_code);
    dkim::cli::add_signerd_commands(app, exit_code);
    dkim::cli::add_user_commands(app, exit_code);
    dkim::cli::add_elevation_commands(app, exit_code);
    dkim::cli::add_passkey_commands(app, exit_code);
    dkim::cli::add_pin_commands(app, exit_code);
    dkim::cli::add_audit_commands(app, exit_code);
    dkim::cli::add_up_command(app, exit_code);
    dkim::cli::add_reports_commands(app, exit_code);
    dkim::cli::add_reports_fetch_command(app, exit_code);

    // `apply --config` names its own (declarative) file, not a file of option defaults.
    const bool applying = argc > 1 && std::string_view(argv[1]) == "apply";
    if (const auto file = dkim::config::find_config_argument(argc, argv); file && !applying) {
        if (auto ok = dkim::config::apply_toml_defaults(app, *file); !ok) {
            std::cerr << "dkim-appliance: configuration error: " << ok.error() << "\n";
            return kUsage;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        const int code = app.exit(error);
        return code == 0 ? 0 : kUsage;
    }
    return exit_code;
}

}  // namespace

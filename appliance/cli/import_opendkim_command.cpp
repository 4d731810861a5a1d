// dkim-appliance import opendkim: OpenDKIM's keys into the token through dkim-signerd (a
// key.generate grant), each checked at once: a test message signed by the token with the
// imported key, verified with the published record; then the equivalent configuration.
//
// Exit codes: 0 done; 1 a key failed; 2 usage; 75 (EX_TEMPFAIL) a record is not published as
// the key says, or a key is not activated yet.

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/dkim/key_fetcher.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/dkim/verifier.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "dkim/provisioning/dns_record.hpp"
#include "dkim/provisioning/opendkim.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

namespace {

struct ImportArgs {
    Common common;
    DnsArgs dns;
    std::string opendkim_conf;
    std::string key_table;
    std::string signing_table;
    std::string config_out;
    std::string test_messages;
    bool activate = true;
};

// A file read whole (at most `max` bytes); wiped by the caller when it holds a key.
Expected<std::string, std::string> read_file(const std::string& path, std::size_t max) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return unexpected(path + ": cannot be read");
    }
    std::string data;
    data.resize(max + 1);
    in.read(data.data(), static_cast<std::streamsize>(data.size()));
    data.resize(static_cast<std::size_t>(in.gcount()));
    if (data.size() > max) {
        dkim::base::secure_wipe(data.data(), data.size());
        return unexpected(path + ": larger than " + std::to_string(max) + " bytes");
    }
    return data;
}

// Signs through signerd's KeyImport: the import and the test signature in one grant-checked
// call, so that the first signature the token makes with the key is checked right away.
class ImportingSigner final : public Signer {
  public:
    ImportingSigner(const Common& common, std::string domain, std::string selector,
                    std::string& key, SigningAlgorithm algorithm)
        : common_(common),
          domain_(std::move(domain)),
          selector_(std::move(selector)),
          key_(key),
          algorithm_(algorithm) {}
    SigningAlgorithm algorithm() const override { return algorithm_; }
    Expected<std::string, std::string> sign(std::string_view data) override {
        auto auth = credentials(common_);
        if (!auth) {
            return unexpected(std::string("no credentials"));
        }
        auto reply = ask_signerd(
            common_, ipc::KeyImport{std::move(*auth), domain_, selector_, key_, std::string(data)});
        if (!reply) {
            return unexpected(reply.error());
        }
        const auto* keys = std::get_if<ipc::KeysReply>(&*reply);
        if (keys == nullptr || keys->test_signature.empty()) {
            return unexpected(std::string("dkim-signerd returned no test signature"));
        }
        message = keys->message;
        return keys->test_signature;
    }
    std::string message;

  private:
    const Common& common_;
    std::string domain_;
    std::string selector_;
    std::string& key_;
    SigningAlgorithm algorithm_;
};

// The milter settings of opendkim.conf as dkim-relayd's milter listener, and the lines of
// Postfix's main.cf that change (`domains`: the tables').
Expected<std::string, std::string> milter_settings(const provisioning::OpenDkimConf& conf,
                                                   const std::string& conf_file,
                                                   const std::vector<std::string>& domains) {
    auto socket = provisioning::milter_socket(conf.socket);
    if (!socket) {
        return unexpected(conf_file + ": " + socket.error());
    }
    std::string dataset;
    const std::string hosts_file = provisioning::strip_dataset_prefix(conf.internal_hosts);
    if (!hosts_file.empty() && hosts_file.front() == '/') {
        auto text = read_file(hosts_file, 16U << 20);
        if (!text) {
            return unexpected(conf_file + ": InternalHosts: " + text.error());
        }
        dataset = std::move(*text);
    }
    const auto hosts = provisioning::parse_internal_hosts(conf.internal_hosts, dataset);
    auto list = [](const std::vector<std::string>& items) {
        std::string out;
        for (const auto& i : items) {
            out += (out.empty() ? "\"" : ", \"") + i + "\"";
        }
        return "[" + out + "]";
    };
    const char* role = conf.mode == "s" ? "outbound" : conf.mode == "v" ? "inbound" : "both";
    std::ostringstream out;
    out << "\n# dkim-relayd.toml: the milter listener that replaces OpenDKIM (" << conf_file
        << ")\n";
    for (const auto& note : socket->notes) {
        out << "# note: " << note << "\n";
    }
    for (const auto& note : hosts.notes) {
        out << "# note: " << note << "\n";
    }
    for (const auto& note : conf.notes) {
        out << "# note: " << note << "\n";
    }
    out << "[[listen]]\naddress = \"" << socket->listen << "\"\nprotocol = \"milter\"\nrole = \""
        << role << "\"                        # OpenDKIM's Mode " << conf.mode << "\n";
    if (!socket->loopback) {
        out << "allowed_networks = [\"192.0.2.25\"]        # the MTA's address\n";
    }
    for (const auto& d : domains) {
        out << "\n[[domain]]\nname = \"" << d
            << "\"                 # signs with signerd's active keys\n";
    }
    if (std::string(role) != "inbound") {
        out << "\n[[client]]\nname = \"internal\"\nnetworks = " << list(hosts.networks)
            << "   # OpenDKIM's InternalHosts\ndomains = " << list(domains)
            << "\n# sasl_users = [\"alice@example.com\"]       # OpenDKIM signed the mail of "
               "every authenticated\n#                          # sender; name the SMTP AUTH "
               "users here\n";
    }
    if (std::string(role) != "outbound") {
        out << "\n[inbound]                              # verifies the rest: one "
               "Authentication-Results\ndomains = "
            << list(domains) << "\nauthserv_id = \"mx.example.com\"          # this host's name\n";
    }
    out << "\n# Postfix's main.cf: change these lines (postconf -e '...'; postfix reload), and "
           "check\n# master.cf for -o smtpd_milters= overrides naming OpenDKIM's socket:\n"
        << "smtpd_milters = " << socket->postfix << "\nnon_smtpd_milters = $smtpd_milters\n"
        << "milter_default_action = tempfail     # keep the mail when the milter cannot sign\n"
        << "milter_protocol = 6\n";
    return out.str();
}

int run_import(const ImportArgs& args) {
    std::optional<provisioning::OpenDkimConf> conf;
    if (!args.opendkim_conf.empty()) {
        auto text = read_file(args.opendkim_conf, 1U << 20);
        if (!text) {
            return fail(text.error());
        }
        auto parsed = provisioning::parse_opendkim_conf(*text, args.opendkim_conf);
        if (!parsed) {
            return fail(parsed.error());
        }
        conf = std::move(*parsed);
    }
    // The tables: as given, else opendkim.conf's.
    const std::string key_table_file = provisioning::strip_dataset_prefix(
        !args.key_table.empty() || !conf ? args.key_table : conf->key_table);
    const std::string signing_table_file = provisioning::strip_dataset_prefix(
        !args.signing_table.empty() || !conf ? args.signing_table : conf->signing_table);
    if (key_table_file.empty() || signing_table_file.empty()) {
        std::cerr << "dkim-appliance: --keytable and --signingtable are needed (or an "
                     "--opendkim-conf that names KeyTable and SigningTable)\n";
        return kUsage;
    }
    auto key_text = read_file(key_table_file, 16U << 20);
    auto signing_text = read_file(signing_table_file, 16U << 20);
    if (!key_text || !signing_text) {
        return fail(!key_text ? key_text.error() : signing_text.error());
    }
    auto keys = provisioning::parse_key_table(*key_text, key_table_file);
    if (!keys) {
        return fail(keys.error());
    }
    auto signing = provisioning::parse_signing_table(*signing_text, signing_table_file);
    if (!signing) {
        return fail(signing.error());
    }
    auto items = provisioning::plan_import(*keys, *signing, key_table_file, signing_table_file);
    if (!items) {
        return fail(items.error());
    }
    auto resolver = open_resolver(args.dns);
    if (!resolver) {
        return fail(resolver.error());
    }
    int failures = 0;
    int waiting = 0;
    std::vector<std::pair<provisioning::ImportItem, std::string>> imported;  // with algorithm
    for (const auto& item : *items) {
        std::cout << "== " << item.selector << "._domainkey." << item.domain << " (key '"
                  << item.key_name << "', " << key_table_file << ":" << item.line << ")\n";
        for (const auto& w : item.warnings) {
            std::cout << "   note: " << w << "\n";
        }
        auto key = read_file(item.key_file, 64U << 10);
        if (!key) {
            std::cout << "   FAILED: " << key.error() << "\n";
            ++failures;
            continue;
        }
        const std::span<const unsigned char> key_bytes(
            reinterpret_cast<const unsigned char*>(key->data()), key->size());  // NOLINT
        auto public_half = hsm::public_key_of(key_bytes);
        if (!public_half) {
            dkim::base::secure_wipe(key->data(), key->size());
            std::cout << "   FAILED: " << item.key_file << ": " << public_half.error().message
                      << "\n";
            ++failures;
            continue;
        }
        const std::string record = provisioning::dkim_record_value(*public_half);
        const std::string algorithm = public_half->type == hsm::KeyType::ed25519
                                          ? "ed25519"
                                          : "rsa-" + std::to_string(public_half->bits);
        const auto finding = provisioning::check_dkim_key(
            **resolver, item.domain, {item.selector, algorithm, "active", record});
        const bool published = finding.status != provisioning::Status::problem;
        std::cout << "   DNS: " << finding.message << "\n";

        // The import, with a test message signed by the imported key.
        const auto now = std::chrono::system_clock::now();
        const std::time_t t = std::chrono::system_clock::to_time_t(now);
        char date[64];
        std::tm tm{};
        gmtime_r(&t, &tm);
        (void)std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
        const std::string message =
            "From: postmaster@" + item.domain + "\r\nTo: postmaster@" + item.domain +
            "\r\nSubject: dkim-appliance: imported key " + item.selector + "\r\nDate: " + date +
            "\r\nMessage-ID: <import." + std::to_string(t) + "." + item.selector + "@" +
            item.domain + ">\r\n\r\nSigned in the token by the key imported from " + item.key_file +
            ".\r\n";
        ImportingSigner signer(args.common, item.domain, item.selector, *key,
                               public_half->type == hsm::KeyType::ed25519
                                   ? SigningAlgorithm::ed25519_sha256
                                   : SigningAlgorithm::rsa_sha256);
        MessageSigner message_signer({SigningKey{item.domain, item.selector, &signer, {}}});
        auto split = mail::split_message(message);
        if (!split) {
            dkim::base::secure_wipe(key->data(), key->size());
            return fail("internal: the test message does not parse");
        }
        message_signer.update_body(split->body);
        auto fields = message_signer.finish(split->header, now);
        dkim::base::secure_wipe(key->data(), key->size());
        if (!fields) {
            std::cout << "   FAILED: " << fields.error().message << "\n";
            ++failures;
            continue;
        }
        std::cout << "   imported into the token: " << signer.message << "\n";
        const std::string signed_message = *fields + message;
        if (!args.test_messages.empty()) {
            const auto out = std::filesystem::path(args.test_messages) /
                             (item.selector + "." + item.domain + ".eml");
            std::ofstream(out, std::ios::binary) << signed_message;
            std::cout << "   test message: " << out.string() << "\n";
        }
        imported.emplace_back(item, algorithm);
        if (!published) {
            std::cout << "   not verified: the record is not published as the key says\n"
                      << "   " << finding.fix << "\n";
            ++waiting;
            continue;
        }
        KeyFetcher fetcher(**resolver);
        auto verdicts = verify_message(signed_message, fetcher, now);
        if (!verdicts || verdicts->empty() || verdicts->front().result != mail::AuthResult::pass) {
            std::cout << "   FAILED: the token's signature does not verify with the published "
                         "record: "
                      << (verdicts && !verdicts->empty() ? verdicts->front().reason
                                                         : std::string("unparsable"))
                      << "\n";
            ++failures;
            continue;
        }
        std::cout << "   verified: the token's signature passes with the published record\n";
        if (args.activate) {
            auto auth = credentials(args.common);
            if (!auth) {
                return kUsage;
            }
            auto reply = ask_signerd(
                args.common, ipc::KeyActivate{std::move(*auth), item.domain, item.selector, 0});
            if (!reply) {
                std::cout << "   not activated: " << reply.error() << "\n";
                ++waiting;
            } else if (const auto* done = std::get_if<ipc::KeysReply>(&*reply)) {
                std::cout << "   " << done->message << "\n";
            }
        }
    }
    // The equivalent configuration.
    std::ostringstream config;
    config << "# Written by dkim-appliance import opendkim from " << key_table_file << " and "
           << signing_table_file
           << ".\n# For dkim-appliance apply --config; dkim-relayd needs "
              "one [[domain]] with the name alone for each.\n";
    std::string last_domain;
    for (const auto& [item, algorithm] : imported) {
        if (item.domain != last_domain) {
            config << "\n[[domain]]\nname = \"" << item.domain << "\"\n";
            last_domain = item.domain;
        }
        const bool weak = algorithm == "rsa-1024";
        if (weak) {
            config << "# imported as rsa-1024: apply rotates it to a 2048-bit key\n";
        }
        config << "[[domain.key]]\nalgorithm = \"" << (weak ? "rsa-2048" : algorithm)
               << "\"\nselector = \"" << item.selector << "\"\n";
    }
    if (!args.config_out.empty()) {
        std::ofstream out(args.config_out);
        out << config.str();
        if (!out) {
            return fail(args.config_out + ": cannot be written");
        }
        std::cout << "configuration written to " << args.config_out << "\n";
    } else {
        std::cout << "\n" << config.str();
    }
    if (conf) {
        std::vector<std::string> domains;  // every domain of the tables, imported now or before
        for (const auto& item : *items) {
            if (std::find(domains.begin(), domains.end(), item.domain) == domains.end()) {
                domains.push_back(item.domain);
            }
        }
        auto milter = milter_settings(*conf, args.opendkim_conf, domains);
        if (!milter) {
            return fail(milter.error());
        }
        std::cout << *milter;
    }
    if (!imported.empty()) {
        std::cout << "\nThe private keys are in the token now, sensitive and not extractable. "
                     "Destroy the copies on disk (and in backups):\n";
        for (const auto& [item, algorithm] : imported) {
            std::cout << "  shred -u " << item.key_file << "\n";
        }
    }
    return failures > 0 ? kFailed : waiting > 0 ? kWaiting : 0;
}

}  // namespace

void add_import_command(CLI::App& app, int& exit_code) {
    CLI::App* import = app.add_subcommand("import", "migrate keys from another signer");
    import->require_subcommand(1);
    auto import_args = std::make_shared<ImportArgs>();
    CLI::App* opendkim = import->add_subcommand(
        "opendkim",
        "Import OpenDKIM's keys into the token (sensitive, not extractable; key.generate grant), "
        "sign a test message with each, verify it with the published record, activate it, and "
        "print the equivalent configuration. Then destroy the key files");
    opendkim->add_option("--opendkim-conf", import_args->opendkim_conf,
                         "opendkim.conf: its KeyTable and SigningTable, and its milter settings "
                         "(Socket, InternalHosts, Mode) as dkim-relayd's milter listener, with the "
                         "lines of Postfix's main.cf to change");
    opendkim->add_option("--keytable", import_args->key_table,
                         "OpenDKIM's KeyTable (default: opendkim.conf's)");
    opendkim->add_option("--signingtable", import_args->signing_table,
                         "OpenDKIM's SigningTable (default: opendkim.conf's)");
    opendkim->add_option("--config-out", import_args->config_out,
                         "write the equivalent appliance.toml here");
    opendkim
        ->add_option("--test-messages", import_args->test_messages,
                     "write each signed test message into this folder")
        ->check(CLI::ExistingDirectory);
    opendkim->add_flag("!--no-activate", import_args->activate,
                       "leave the imported keys pending-publish");
    add_common(opendkim, import_args->common);
    add_dns_options(opendkim, import_args->dns);
    opendkim->callback([&exit_code, import_args] { exit_code = run_import(*import_args); });
}

}  // namespace dkim::cli

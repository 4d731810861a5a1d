// dkim-appliance key list | generate | activate | retire | rotate, dns records | check: the
// keys' lifecycle through dkim-signerd (every change under a grant of its operation) and the
// DNS records that go with it, looked up live.
//
// Exit codes: 0 done; 1 failed (or, for `dns check`, something is wrong); 2 usage; 75
// (EX_TEMPFAIL) a rotation waits for something outside it (DNS publication, the grace
// period): rerun later, each step is safe to repeat.

#include <openssl/crypto.h>

#include <cereal/archives/json.hpp>
#include <cereal/types/vector.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "commands.hpp"
#include "dkim/config/toml_reader.hpp"
#include "dkim/dkim/key_fetcher.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/dkim/verifier.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/provisioning/apply.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "dkim/provisioning/dns_record.hpp"
#include "dkim/provisioning/opendkim.hpp"
#include "dkim/provisioning/rotation.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

namespace {

constexpr int kWaiting = 75;  // EX_TEMPFAIL

Expected<std::vector<ipc::KeyView>, std::string> fetch_keys(const Common& c) {
    auto auth = credentials(c);
    if (!auth) {
        return unexpected(std::string("no credentials"));
    }
    auto reply = ask_signerd(c, ipc::KeyList{std::move(*auth)});
    if (!reply) {
        return unexpected(reply.error());
    }
    const auto* keys = std::get_if<ipc::KeysReply>(&*reply);
    if (keys == nullptr) {
        return unexpected(std::string("unexpected reply from dkim-signerd"));
    }
    return keys->keys;
}

std::vector<provisioning::DomainKey> domain_keys(const std::vector<ipc::KeyView>& keys,
                                                 const std::string& domain) {
    std::vector<provisioning::DomainKey> out;
    for (const auto& k : keys) {
        if (k.domain == domain) {
            out.push_back({k.selector, k.algorithm, k.state, k.dns_record});
        }
    }
    return out;
}

std::vector<provisioning::KeyStatus> statuses(const std::vector<ipc::KeyView>& keys,
                                              const std::string& domain) {
    std::vector<provisioning::KeyStatus> out;
    for (const auto& k : keys) {
        if (k.domain == domain) {
            out.push_back({k.selector, k.algorithm, k.state, k.managed, k.activated_ms,
                           k.retire_after_ms, k.dns_record, k.retired_ms});
        }
    }
    return out;
}

std::string lower(std::string s) {
    for (char& c : s) {
        c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return s;
}

Expected<std::vector<provisioning::OutboundAddress>, std::string> parse_addresses(
    const std::vector<std::string>& texts) {
    std::vector<provisioning::OutboundAddress> out;
    for (const auto& t : texts) {
        auto a = provisioning::OutboundAddress::parse(t);
        if (!a) {
            return unexpected("--outbound: " + a.error());
        }
        out.push_back(std::move(*a));
    }
    return out;
}

struct KeyViewJson {
    const ipc::KeyView& k;
    template <class Archive>
    void save(Archive& archive) const {
        archive(cereal::make_nvp("domain", k.domain), cereal::make_nvp("selector", k.selector),
                cereal::make_nvp("algorithm", k.algorithm), cereal::make_nvp("bits", k.bits),
                cereal::make_nvp("state", k.state), cereal::make_nvp("managed", k.managed),
                cereal::make_nvp("origin", k.origin),
                cereal::make_nvp("created", time_text(k.created_ms)),
                cereal::make_nvp("activated", time_text(k.activated_ms)),
                cereal::make_nvp("retire_after", time_text(k.retire_after_ms)),
                cereal::make_nvp("retired", time_text(k.retired_ms)),
                cereal::make_nvp("dns_name", k.dns_name),
                cereal::make_nvp("dns_record", k.dns_record));
    }
};

// `name`: a JSON array with one object per item, its fields written by fields(archive, item).
template <class Items, class Fields>
void json_array(cereal::JSONOutputArchive& archive, const char* name, const Items& items,
                Fields fields) {
    archive.setNextName(name);
    archive.startNode();
    archive.makeArray();
    for (const auto& item : items) {
        archive.startNode();
        fields(archive, item);
        archive.finishNode();
    }
    archive.finishNode();
}

void print_keys_json(const std::vector<ipc::KeyView>& keys, const std::string& message = "") {
    {
        cereal::JSONOutputArchive archive(std::cout);
        if (!message.empty()) {
            archive(cereal::make_nvp("message", message));
        }
        archive.setNextName("keys");
        archive.startNode();
        archive.makeArray();
        for (const auto& k : keys) {
            archive(KeyViewJson{k});
        }
        archive.finishNode();
    }
    std::cout << "\n";
}

void print_keys_table(const std::vector<ipc::KeyView>& keys) {
    if (keys.empty()) {
        std::cout << "no DKIM keys\n";
        return;
    }
    std::size_t dw = 6;
    std::size_t sw = 8;
    for (const auto& k : keys) {
        dw = std::max(dw, k.domain.size());
        sw = std::max(sw, k.selector.size());
    }
    const auto line = [&](const std::string& d, const std::string& s, const std::string& a,
                          const std::string& bits, const std::string& created,
                          const std::string& state) {
        std::cout << std::left << std::setw(static_cast<int>(dw) + 2) << d
                  << std::setw(static_cast<int>(sw) + 2) << s << std::setw(11) << a << std::setw(6)
                  << bits << std::setw(22) << created << state << "\n";
    };
    line("DOMAIN", "SELECTOR", "ALGORITHM", "SIZE", "CREATED", "STATE");
    for (const auto& k : keys) {
        std::string state = k.state + (k.managed ? "" : " (unmanaged)");
        if (k.state == "retiring") {
            state += " until " + time_text(k.retire_after_ms);
        }
        line(k.domain, k.selector, k.algorithm, std::to_string(k.bits), time_text(k.created_ms),
             state);
    }
}

// --- dns records / check ------------------------------------------------------------------

struct DnsCommandArgs {
    Common common;
    DnsArgs dns;
    std::string domain;
    std::vector<std::string> outbound;
    std::string dmarc_rua;
    bool offline = false;  // records: do not look the published SPF record up
    bool dnsmasq = false;  // records: as dnsmasq configuration lines
    bool json = false;
};

void add_dns_advice_options(CLI::App* command, DnsCommandArgs& args) {
    command->add_option("domain", args.domain, "the signing domain")->required();
    command->add_option("--outbound", args.outbound,
                        "an address or network the appliance's mail leaves from (repeat); SPF "
                        "must authorize them");
    command->add_option("--dmarc-rua", args.dmarc_rua,
                        "where DMARC aggregate reports go (mailto:dmarc-reports@example.com)");
    command->add_flag("--json", args.json, "print JSON");
    add_common(command, args.common);
    add_dns_options(command, args.dns);
}

int run_dns_records(const DnsCommandArgs& args) {
    const std::string domain = lower(args.domain);
    auto keys = fetch_keys(args.common);
    if (!keys) {
        return fail(keys.error());
    }
    auto addresses = parse_addresses(args.outbound);
    if (!addresses) {
        return fail(addresses.error());
    }
    std::unique_ptr<dns::UnboundResolver> resolver;
    if (!args.offline) {
        auto opened = open_resolver(args.dns);
        if (!opened) {
            return fail(opened.error());
        }
        resolver = std::move(*opened);
    }
    provisioning::RecordsInput in{domain, domain_keys(*keys, domain), *addresses, args.dmarc_rua};
    const auto records = provisioning::records_for(in, resolver.get());
    if (args.dnsmasq) {
        // For a DNS server of one's own (the demo's): the domain is answered from these lines
        // only, each TXT value in character-strings of at most 255 octets.
        std::cout << "local=/" << domain << "/\n";
        for (const auto& r : records) {
            if (r.value.empty()) {
                continue;
            }
            std::cout << "txt-record=" << r.name;
            for (std::size_t at = 0; at < r.value.size(); at += 255) {
                std::cout << ",\"" << r.value.substr(at, 255) << "\"";
            }
            std::cout << "\n";
        }
        return 0;
    }
    if (args.json) {
        {
            cereal::JSONOutputArchive archive(std::cout);
            archive(cereal::make_nvp("domain", domain));
            json_array(archive, "records", records, [](auto& a, const auto& r) {
                a(cereal::make_nvp("kind", r.kind), cereal::make_nvp("name", r.name),
                  cereal::make_nvp("value", r.value), cereal::make_nvp("zone_line", r.zone_line),
                  cereal::make_nvp("note", r.note));
            });
        }
        std::cout << "\n";
        return 0;
    }
    for (const auto& r : records) {
        std::cout << "; " << r.kind << ": " << r.note << "\n";
        std::cout << (r.zone_line.empty() ? "; (nothing to publish yet)" : r.zone_line) << "\n\n";
    }
    return 0;
}

int run_dns_check(const DnsCommandArgs& args) {
    const std::string domain = lower(args.domain);
    auto keys = fetch_keys(args.common);
    if (!keys) {
        return fail(keys.error());
    }
    auto addresses = parse_addresses(args.outbound);
    if (!addresses) {
        return fail(addresses.error());
    }
    auto resolver = open_resolver(args.dns);
    if (!resolver) {
        return fail(resolver.error());
    }
    provisioning::CheckInput in;
    in.domain = domain;
    in.keys = domain_keys(*keys, domain);
    in.addresses = *addresses;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const auto findings = provisioning::check_domain(**resolver, in, now);
    const bool bad = provisioning::has_problems(findings);
    if (args.json) {
        {
            cereal::JSONOutputArchive archive(std::cout);
            archive(cereal::make_nvp("domain", domain), cereal::make_nvp("ok", !bad));
            json_array(archive, "findings", findings, [](auto& a, const auto& f) {
                a(cereal::make_nvp("record", f.record), cereal::make_nvp("name", f.name),
                  cereal::make_nvp("status", std::string(provisioning::to_string(f.status))),
                  cereal::make_nvp("message", f.message), cereal::make_nvp("fix", f.fix));
            });
        }
        std::cout << "\n";
    } else {
        for (const auto& f : findings) {
            std::cout << std::left << std::setw(8) << provisioning::to_string(f.status)
                      << std::setw(14) << f.record << f.name << ": " << f.message << "\n";
            if (!f.fix.empty()) {
                std::cout << "        fix: " << f.fix << "\n";
            }
        }
    }
    return bad ? kFailed : 0;
}

// --- key activate / retire / rotate -----------------------------------------------------------

struct KeyStepArgs {
    Common common;
    DnsArgs dns;
    std::string domain;
    std::string selector;
    std::string grace = "7d";
    bool force = false;
    bool skip_dns_check = false;
    bool json = false;
    // rotate
    std::string algorithm;
    std::string selector_format = "s%Y-%m";
    std::string wait;  // empty: do not wait
    int steps = 0;     // 0: as many as possible
};

Expected<std::chrono::seconds, std::string> parse_seconds(const std::string& text,
                                                          const std::string& option) {
    const auto d = config::parse_duration(text);
    if (!d) {
        return unexpected(option + ": '" + text + "' is not a duration such as 7d, 36h or 30m");
    }
    return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

// Prints a KeysReply's message and keys; returns 0.
int print_keys_reply(const ipc::Reply& reply, bool json) {
    const auto* keys = std::get_if<ipc::KeysReply>(&reply);
    if (keys == nullptr) {
        return fail("unexpected reply from dkim-signerd");
    }
    if (json) {
        print_keys_json(keys->keys, keys->message);
        return 0;
    }
    std::cout << keys->message << "\n";
    print_keys_table(keys->keys);
    return 0;
}

// The published record of `key` is the token's: the condition for switching signing to it.
Expected<void, std::string> published(const DnsArgs& dns, const std::string& domain,
                                      const provisioning::DomainKey& key) {
    auto resolver = open_resolver(dns);
    if (!resolver) {
        return unexpected(resolver.error());
    }
    const auto finding = provisioning::check_dkim_key(**resolver, domain, key);
    if (finding.status == provisioning::Status::problem) {
        return unexpected(finding.name + ": " + finding.message + "\n  " + finding.fix);
    }
    return {};
}

int run_key_activate(const KeyStepArgs& args) {
    const std::string domain = lower(args.domain);
    const std::string selector = lower(args.selector);
    auto grace = parse_seconds(args.grace, "--grace");
    if (!grace) {
        return fail(grace.error());
    }
    if (!args.skip_dns_check) {
        auto keys = fetch_keys(args.common);
        if (!keys) {
            return fail(keys.error());
        }
        for (const auto& k : domain_keys(*keys, domain)) {
            if (k.selector == selector && k.state == "pending-publish") {
                if (auto ok = published(args.dns, domain, k); !ok) {
                    std::cerr << "dkim-appliance: not activated: " << ok.error() << "\n";
                    return kWaiting;
                }
            }
        }
    }
    auto auth = credentials(args.common);
    if (!auth) {
        return kUsage;
    }
    auto reply = ask_signerd(args.common,
                             ipc::KeyActivate{std::move(*auth), domain, selector, grace->count()});
    if (!reply) {
        return fail(reply.error());
    }
    return print_keys_reply(*reply, args.json);
}

int run_key_retire(const KeyStepArgs& args) {
    auto auth = credentials(args.common);
    if (!auth) {
        return kUsage;
    }
    auto reply = ask_signerd(args.common, ipc::KeyRetire{std::move(*auth), lower(args.domain),
                                                         lower(args.selector), args.force});
    if (!reply) {
        return fail(reply.error());
    }
    return print_keys_reply(*reply, args.json);
}

// One pass of the rotation state machine (provisioning/rotation.hpp), then the next, until it
// is done, waits, or fails. Everything it knows comes from signerd and DNS each time, so a
// rerun after a crash continues where the last one stopped.
int run_key_rotate(const KeyStepArgs& args) {
    const std::string domain = lower(args.domain);
    auto grace = parse_seconds(args.grace, "--grace");
    auto wait = args.wait.empty()
                    ? Expected<std::chrono::seconds, std::string>(std::chrono::seconds(0))
                    : parse_seconds(args.wait, "--wait");
    if (!grace || !wait) {
        return fail(!grace ? grace.error() : wait.error());
    }
    const auto deadline = std::chrono::steady_clock::now() + *wait;
    int steps = 0;
    while (true) {
        auto keys = fetch_keys(args.common);
        if (!keys) {
            return fail(keys.error());
        }
        provisioning::RotationRequest request;
        request.domain = domain;
        request.algorithm = args.algorithm;
        request.selector = lower(args.selector);
        request.selector_format = args.selector_format;
        request.now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        auto step = provisioning::next_rotation_step(statuses(*keys, domain), request);
        if (!step) {
            return fail(step.error());
        }
        using Kind = provisioning::RotationStep::Kind;
        std::cout << "rotation of " << domain << ": " << step->describe() << "\n" << std::flush;
        if (step->kind == Kind::done) {
            return 0;
        }
        if (args.steps > 0 && steps >= args.steps) {
            std::cout << "stopped after " << steps << " step(s) (--steps); rerun to go on\n";
            return 0;
        }
        ipc::Request call_request;
        if (step->kind == Kind::wait_for_publication) {
            auto ok = published(
                args.dns, domain,
                {step->key.selector, step->key.algorithm, step->key.state, step->key.dkim_record});
            if (!ok) {
                if (std::chrono::steady_clock::now() < deadline) {
                    std::this_thread::sleep_for(std::chrono::seconds(2));
                    continue;
                }
                std::cout << "  waiting: " << ok.error() << "\n"
                          << "  rerun when the record is published (or pass --wait 30m)\n";
                return kWaiting;
            }
            call_request = ipc::KeyActivate{{}, domain, step->key.selector, grace->count()};
        } else if (step->kind == Kind::wait_for_grace) {
            std::cout << "  rerun after " << time_text(step->not_before_ms)
                      << " to retire it (a key.retire grant is needed then)\n";
            return kWaiting;
        } else if (step->kind == Kind::generate) {
            call_request =
                ipc::KeyGenerate{{}, domain, step->key.selector, step->key.algorithm, true};
        } else {  // retire
            call_request = ipc::KeyRetire{{}, domain, step->key.selector, false};
        }
        auto auth = credentials(args.common);
        if (!auth) {
            return kUsage;
        }
        std::visit(
            [&auth](auto& r) {
                if constexpr (requires { r.auth; }) {
                    r.auth = std::move(*auth);
                }
            },
            call_request);
        auto reply = ask_signerd(args.common, std::move(call_request));
        if (!reply) {
            return fail(reply.error());
        }
        const auto* made = std::get_if<ipc::KeysReply>(&*reply);
        std::cout << "  " << (made != nullptr ? made->message : std::string("done")) << "\n";
        if (step->kind == Kind::generate && made != nullptr && !made->keys.empty()) {
            const auto& k = made->keys.front();
            std::cout << "  publish: " << dns::zone_line(k.dns_name, k.dns_record) << "\n";
        }
        ++steps;
    }
}

// --- apply --------------------------------------------------------------------------------------

struct ApplyArgs {
    Common common;
    DnsArgs dns;
    std::string config;
    bool dry_run = false;
};

int run_apply(ApplyArgs args) {
    auto config = provisioning::load_apply_config(args.config);
    if (!config) {
        std::cerr << "dkim-appliance: configuration error: " << config.error() << "\n";
        return kUsage;
    }
    if (args.common.socket == Common{}.socket) {
        args.common.socket = config->signerd_socket;
    }
    auto keys = fetch_keys(args.common);
    if (!keys) {
        return fail(keys.error());
    }
    std::map<std::string, std::vector<provisioning::KeyStatus>> by_domain;
    for (const auto& d : config->domains) {
        by_domain[d.name] = statuses(*keys, d.name);
    }
    auto resolver = open_resolver(args.dns);
    if (!resolver) {
        return fail(resolver.error());
    }
    const auto published = [&](const std::string& domain, const provisioning::KeyStatus& k) {
        const auto f = provisioning::check_dkim_key(
            **resolver, domain, {k.selector, k.algorithm, k.state, k.dkim_record});
        return f.status != provisioning::Status::problem;
    };
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto plan = provisioning::plan_apply(*config, by_domain, now_ms, published);
    for (const auto& domain : config->domains) {
        for (auto& step :
             provisioning::dns_policy_steps(*config, domain, **resolver, now_ms / 1000)) {
            plan.steps.push_back(std::move(step));
        }
    }
    std::cout << "plan for " << config->file << ":\n";
    if (plan.steps.empty()) {
        std::cout << "  nothing to change: every domain is as configured\n";
    }
    for (const auto& step : plan.steps) {
        std::cout << "  " << std::left << std::setw(9) << provisioning::to_string(step.action)
                  << step.domain << " " << step.selector
                  << (step.algorithm.empty() ? "" : " (" + step.algorithm + ")") << ": "
                  << step.detail << "\n";
    }
    if (args.dry_run) {
        return 0;
    }
    if (!plan.changes()) {
        if (!plan.steps.empty()) {
            std::cout << "nothing apply can change now\n";
        }
        return plan.waiting() ? kWaiting : 0;
    }
    bool failed = false;
    bool made = false;
    using Action = provisioning::PlannedStep::Action;
    for (const auto& step : plan.steps) {
        if (!step.changes()) {
            continue;
        }
        auto auth = credentials(args.common);
        if (!auth) {
            return kUsage;
        }
        ipc::Request request;
        if (step.action == Action::create || step.action == Action::rotate) {
            request = ipc::KeyGenerate{std::move(*auth), step.domain, step.selector, step.algorithm,
                                       step.action == Action::rotate};
        } else if (step.action == Action::activate) {
            request = ipc::KeyActivate{std::move(*auth), step.domain, step.selector,
                                       config->grace.count()};
        } else {
            request = ipc::KeyRetire{std::move(*auth), step.domain, step.selector, false};
        }
        std::cout << provisioning::to_string(step.action) << " " << step.domain << " "
                  << step.selector << ": " << std::flush;
        auto reply = ask_signerd(args.common, std::move(request));
        if (!reply) {
            std::cout << "FAILED: " << reply.error() << "\n";
            failed = true;
            continue;
        }
        const auto* result = std::get_if<ipc::KeysReply>(&*reply);
        std::cout << (result != nullptr ? result->message : std::string("done")) << "\n";
        if ((step.action == Action::create || step.action == Action::rotate) && result != nullptr) {
            made = true;
            for (const auto& k : result->keys) {
                std::cout << "  publish: " << dns::zone_line(k.dns_name, k.dns_record) << "\n";
            }
        }
    }
    if (failed) {
        return kFailed;
    }
    if (made || plan.waiting()) {
        std::cout << "apply again once the records are published (and grace periods over)\n";
        return kWaiting;
    }
    return 0;
}

// --- import opendkim ------------------------------------------------------------------------

std::string strip_dataset_prefix_cli(const std::string& value) {
    return provisioning::strip_dataset_prefix(value);
}

struct ImportArgs {
    Common common;
    DnsArgs dns;
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
        OPENSSL_cleanse(data.data(), data.size());
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

int run_import(const ImportArgs& args) {
    const std::string key_table_file = strip_dataset_prefix_cli(args.key_table);
    const std::string signing_table_file = strip_dataset_prefix_cli(args.signing_table);
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
            OPENSSL_cleanse(key->data(), key->size());
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
            OPENSSL_cleanse(key->data(), key->size());
            return fail("internal: the test message does not parse");
        }
        message_signer.update_body(split->body);
        auto fields = message_signer.finish(split->header, now);
        OPENSSL_cleanse(key->data(), key->size());
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

int list_through_signerd(const Common& common, bool json) {
    auto keys = fetch_keys(common);
    if (!keys) {
        return fail(keys.error());
    }
    if (json) {
        print_keys_json(*keys);
    } else {
        print_keys_table(*keys);
    }
    return 0;
}

int generate_through_signerd(const Common& common, const std::string& domain,
                             const std::string& selector, const std::string& algorithm, bool json) {
    auto auth = credentials(common);
    if (!auth) {
        return kUsage;
    }
    auto reply =
        ask_signerd(common, ipc::KeyGenerate{std::move(*auth), domain, selector, algorithm, false});
    if (!reply) {
        return fail(reply.error());
    }
    const int code = print_keys_reply(*reply, json);
    if (const auto* made = std::get_if<ipc::KeysReply>(&*reply); made && !json) {
        for (const auto& k : made->keys) {
            std::cout << "publish: " << dns::zone_line(k.dns_name, k.dns_record) << "\n";
        }
    }
    return code;
}

void add_provisioning_commands(CLI::App& app, CLI::App& key, CLI::App& dns, int& exit_code) {
    CLI::App* import = app.add_subcommand("import", "migrate keys from another signer");
    import->require_subcommand(1);
    auto import_args = std::make_shared<ImportArgs>();
    CLI::App* opendkim = import->add_subcommand(
        "opendkim",
        "Import OpenDKIM's keys into the token (sensitive, not extractable; key.generate grant), "
        "sign a test message with each, verify it with the published record, activate it, and "
        "print the equivalent configuration. Then destroy the key files");
    opendkim->add_option("--keytable", import_args->key_table, "OpenDKIM's KeyTable")->required();
    opendkim->add_option("--signingtable", import_args->signing_table, "OpenDKIM's SigningTable")
        ->required();
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

    auto apply_args = std::make_shared<ApplyArgs>();
    CLI::App* apply = app.add_subcommand(
        "apply",
        "Make the keys what appliance.toml says: print the plan (create, rotate, activate, "
        "retire; what needs publishing), then carry it out through dkim-signerd. Running it "
        "again changes nothing. Exit 75: waiting for DNS or a grace period");
    apply->add_option("--config", apply_args->config, "the declarative configuration")
        ->required()
        ->check(CLI::ExistingFile);
    apply->add_flag("--dry-run", apply_args->dry_run, "print the plan, change nothing");
    add_common(apply, apply_args->common);
    add_dns_options(apply, apply_args->dns);
    apply->callback([&exit_code, apply_args] { exit_code = run_apply(*apply_args); });

    auto step = std::make_shared<KeyStepArgs>();
    CLI::App* activate = key.add_subcommand(
        "activate",
        "Switch signing to a pending key once its record is published (key.rotate grant when it "
        "replaces a key, else key.generate); the replaced key retires after --grace");
    add_common(activate, step->common);
    add_dns_options(activate, step->dns);
    activate->add_option("--domain", step->domain, "signing domain")->required();
    activate->add_option("--selector", step->selector, "the pending key's selector")->required();
    activate->add_option("--grace", step->grace, "how long the replaced key still signs")
        ->capture_default_str();
    activate->add_flag("--skip-dns-check", step->skip_dns_check,
                       "do not check that the record is published first");
    activate->add_flag("--json", step->json, "print JSON");
    activate->callback([&exit_code, step] { exit_code = run_key_activate(*step); });

    auto retire_args = std::make_shared<KeyStepArgs>();
    CLI::App* retire = key.add_subcommand(
        "retire",
        "Destroy a retiring key's private half after its grace period (key.retire grant)");
    add_common(retire, retire_args->common);
    retire->add_option("--domain", retire_args->domain, "signing domain")->required();
    retire->add_option("--selector", retire_args->selector, "selector")->required();
    retire->add_flag("--force", retire_args->force,
                     "retire now, even an active key or inside the grace period (a compromised "
                     "key)");
    retire->add_flag("--json", retire_args->json, "print JSON");
    retire->callback([&exit_code, retire_args] { exit_code = run_key_retire(*retire_args); });

    auto rotate_args = std::make_shared<KeyStepArgs>();
    CLI::App* rotate = key.add_subcommand(
        "rotate",
        "Rotate a domain's key: generate the next selector (key.rotate grant), wait until DNS "
        "publishes it, switch signing to it, retire the old key after the grace period "
        "(key.retire grant). Rerun it to go on; each step is safe to repeat. Exit 75: waiting");
    add_common(rotate, rotate_args->common);
    add_dns_options(rotate, rotate_args->dns);
    rotate->add_option("domain", rotate_args->domain, "signing domain")->required();
    rotate
        ->add_option("--algorithm", rotate_args->algorithm,
                     "the new key's algorithm (default: the current key's)")
        ->check(CLI::IsMember({"rsa-2048", "rsa-3072", "rsa-4096", "ed25519"}));
    rotate->add_option("--selector", rotate_args->selector,
                       "the new selector (default: from --selector-format)");
    rotate
        ->add_option("--selector-format", rotate_args->selector_format,
                     "naming scheme: %Y %m %d of today, %k the key kind (rsa, ed25519)")
        ->capture_default_str();
    rotate
        ->add_option("--grace", rotate_args->grace,
                     "how long the old key still signs and stays published")
        ->capture_default_str();
    rotate->add_option("--wait", rotate_args->wait,
                       "wait up to this long (such as 30m) for the new record to be published");
    rotate->add_option("--steps", rotate_args->steps, "stop after this many steps");
    rotate->callback([&exit_code, rotate_args] { exit_code = run_key_rotate(*rotate_args); });

    auto records_args = std::make_shared<DnsCommandArgs>();
    CLI::App* records = dns.add_subcommand(
        "records",
        "The records DOMAIN needs: DKIM for its active, pending and retiring keys, SPF for the "
        "outbound addresses (merged with the published record), DMARC monitor mode and ramp");
    add_dns_advice_options(records, *records_args);
    records->add_flag("--offline", records_args->offline,
                      "do not look up the published SPF record to merge with");
    records->add_flag("--dnsmasq", records_args->dnsmasq,
                      "print the records as dnsmasq configuration lines (local=, txt-record=), "
                      "for a DNS server of one's own such as the demo's");
    records->callback([&exit_code, records_args] { exit_code = run_dns_records(*records_args); });

    auto check_args = std::make_shared<DnsCommandArgs>();
    CLI::App* check = dns.add_subcommand(
        "check",
        "Look DOMAIN's records up live and report, per record, OK or what is wrong and how to "
        "fix it; exit 1 when something is wrong");
    add_dns_advice_options(check, *check_args);
    check->callback([&exit_code, check_args] { exit_code = run_dns_check(*check_args); });
}

}  // namespace dkim::cli

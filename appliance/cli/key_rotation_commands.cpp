// dkim-appliance key activate | retire | rotate: the keys' lifecycle through dkim-signerd (every
// change under a grant of its operation), with the DNS record of a new key looked up live
// before signing switches to it.
//
// Exit codes: 0 done; 1 failed; 2 usage; 75 (EX_TEMPFAIL) a rotation waits for something
// outside it (DNS publication, the grace period): rerun later, each step is safe to repeat.

#include <chrono>
#include <iostream>
#include <thread>

#include "commands.hpp"
#include "dkim/config/toml_reader.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "dkim/provisioning/rotation.hpp"
#include "signerd_keys.hpp"

namespace dkim::cli {

namespace {

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
    const std::string domain = mail::ascii_lowercase(args.domain);
    const std::string selector = mail::ascii_lowercase(args.selector);
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
    auto reply = ask_signerd(args.common,
                             ipc::KeyRetire{std::move(*auth), mail::ascii_lowercase(args.domain),
                                            mail::ascii_lowercase(args.selector), args.force});
    if (!reply) {
        return fail(reply.error());
    }
    return print_keys_reply(*reply, args.json);
}

// The rotation of every node's key of one kind (provisioning/rotation.hpp, the cluster's state
// machine): this CLI moves the cluster's phases on, each node's signerd does its own part in its
// own token within a tick. Everything it knows comes from the cluster's state and DNS each time.
int run_cluster_rotate(const KeyStepArgs& args, const std::string& domain,
                       std::chrono::seconds grace, std::chrono::steady_clock::time_point deadline) {
    // The nodes' own parts take a tick or two (a key generation a moment more): waited for
    // here, a minute at least, whatever --wait says.
    const auto patience =
        std::max(deadline, std::chrono::steady_clock::now() + std::chrono::minutes(1));
    int steps = 0;
    std::string last_said;
    while (true) {
        auto status = cluster_status(args.common);
        if (!status) {
            return fail(status.error());
        }
        std::vector<provisioning::NodeKeys> nodes;
        for (const ipc::ClusterNodeView& n : status->nodes) {
            provisioning::NodeKeys node{n.name, n.gone, {}};
            for (const ipc::ClusterKeyView& k : status->keys) {
                if (k.node != n.name || k.domain != domain) {
                    continue;
                }
                provisioning::KeyStatus key;
                key.selector = k.selector;
                key.algorithm = k.algorithm;
                key.state = k.state == "unmanaged" ? "active" : k.state;
                key.managed = k.state != "unmanaged";
                key.dkim_record = k.dns_record;
                key.retire_after_ms = k.retire_after_ms;
                key.activated_ms = k.activated_ms;
                key.retiring_since_ms = k.retiring_since_ms;
                node.keys.push_back(std::move(key));
            }
            nodes.push_back(std::move(node));
        }
        std::vector<provisioning::ClusterRotationPlan> plans;
        for (const ipc::ClusterRotationView& r : status->rotations) {
            if (r.domain == domain) {
                plans.push_back(
                    {r.kind, r.algorithm, r.selector, r.phase, r.updated_ms, r.checked});
            }
        }
        provisioning::RotationRequest request;
        request.domain = domain;
        request.algorithm = args.algorithm;
        request.selector = mail::ascii_lowercase(args.selector);
        request.selector_format = args.selector_format;
        request.now_ms = status->now_ms;
        auto step = provisioning::next_cluster_rotation_step(nodes, plans, request);
        if (!step) {
            return fail(step.error());
        }
        using Kind = provisioning::ClusterRotationStep::Kind;
        const std::string said = step->describe();
        if (said != last_said) {
            std::cout << "rotation of " << domain << " across the cluster: " << said << "\n"
                      << std::flush;
            last_said = said;
        }
        if (step->kind == Kind::done) {
            return 0;
        }
        std::string phase;
        std::vector<std::string> checked;
        if (step->kind == Kind::wait_for_nodes) {
            if (std::chrono::steady_clock::now() < patience) {
                std::this_thread::sleep_for(std::chrono::seconds(1));
                continue;
            }
            std::cout << "  still waiting: see those nodes' dkim-signerd logs (a missing grant, "
                         "a token that cannot be used); rerun to go on\n";
            return kWaiting;
        }
        if (step->kind == Kind::wait_for_grace) {
            std::cout << "  rerun after " << time_text(step->not_before_ms)
                      << " to retire them (a key.retire grant is needed then)\n";
            return kWaiting;
        }
        if (step->kind == Kind::wait_for_publication) {
            std::string missing;
            for (const auto& [node, key] : step->keys) {
                if (key.dkim_record.empty()) {
                    missing += "  " + node + ": " + key.selector +
                               "'s record is not known here: the node has not signed its "
                               "registry row with its audit key yet, or this node does not pin "
                               "that key ([cluster] node_keys)\n";
                    continue;
                }
                checked.push_back(key.selector);
                auto ok = published(args.dns, domain,
                                    {key.selector, key.algorithm, key.state, key.dkim_record});
                if (!ok) {
                    missing += "  " + node + ": " + ok.error() + "\n  publish: " +
                               dns::zone_line(key.selector + "._domainkey." + domain + ".",
                                              key.dkim_record) +
                               "\n";
                }
            }
            if (!missing.empty()) {
                if (std::chrono::steady_clock::now() < deadline) {
                    std::this_thread::sleep_for(std::chrono::seconds(2));
                    continue;
                }
                std::cout << "  waiting for DNS:\n"
                          << missing << "  rerun when they are published (or pass --wait 30m)\n";
                return kWaiting;
            }
            phase = "activate";
        } else if (step->kind == Kind::retire) {
            phase = "retire";
        } else if (step->kind == Kind::finish) {
            phase = "done";
        } else {
            phase = "generate";
        }
        if (args.steps > 0 && steps >= args.steps) {
            std::cout << "stopped after " << steps << " step(s) (--steps); rerun to go on\n";
            return 0;
        }
        auto auth = credentials(args.common);
        if (!auth) {
            return kUsage;
        }
        auto reply = ask_signerd(args.common,
                                 ipc::ClusterRotate{std::move(*auth), domain, step->algorithm,
                                                    step->selector, grace.count(), phase, checked});
        if (!reply) {
            return fail(reply.error());
        }
        if (const auto* e = std::get_if<ipc::ErrorReply>(&*reply)) {
            return fail(e->message);
        }
        const auto* ok = std::get_if<ipc::OkReply>(&*reply);
        std::cout << "  " << (ok != nullptr ? ok->message : std::string("done")) << "\n";
        ++steps;
    }
}

// One pass of the rotation state machine (provisioning/rotation.hpp), then the next, until it
// is done, waits, or fails. Everything it knows comes from signerd and DNS each time, so a
// rerun after a crash continues where the last one stopped. On a cluster node, the rotation
// of every node's key (run_cluster_rotate).
int run_key_rotate(const KeyStepArgs& args) {
    const std::string domain = mail::ascii_lowercase(args.domain);
    auto grace = parse_seconds(args.grace, "--grace");
    auto wait = args.wait.empty()
                    ? Expected<std::chrono::seconds, std::string>(std::chrono::seconds(0))
                    : parse_seconds(args.wait, "--wait");
    if (!grace || !wait) {
        return fail(!grace ? grace.error() : wait.error());
    }
    const auto deadline = std::chrono::steady_clock::now() + *wait;
    if (auto status = cluster_status(args.common); status && status->cluster) {
        return run_cluster_rotate(args, domain, *grace, deadline);
    }
    int steps = 0;
    while (true) {
        auto keys = fetch_keys(args.common);
        if (!keys) {
            return fail(keys.error());
        }
        provisioning::RotationRequest request;
        request.domain = domain;
        request.algorithm = args.algorithm;
        request.selector = mail::ascii_lowercase(args.selector);
        request.selector_format = args.selector_format;
        request.now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        auto step = provisioning::next_rotation_step(key_statuses(*keys, domain), request);
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

}  // namespace

void add_key_rotation_commands(CLI::App& key, int& exit_code) {
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
}

}  // namespace dkim::cli

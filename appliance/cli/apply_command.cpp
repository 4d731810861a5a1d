// dkim-appliance apply --config FILE: the keys and DNS policy as the declarative file says,
// through dkim-signerd (every change under a grant of its operation). It prints the plan, then
// carries it out; running it again changes nothing.
//
// Exit codes: 0 done; 1 failed; 2 usage or configuration; 75 (EX_TEMPFAIL) waiting for DNS
// publication or a grace period: apply again later.

#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>

#include "commands.hpp"
#include "dkim/dmarc/policy.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/provisioning/apply.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "dkim/provisioning/rotation.hpp"
#include "dkim/reports/channel.hpp"
#include "signerd_keys.hpp"

namespace dkim::cli {

namespace {

// dkim-reportd's enforcement readiness for the domain: the evidence a stricter DMARC stage
// waits for (dmarc_requires_evidence). Unreachable or silent reportd: no evidence.
provisioning::DmarcEvidence readiness_evidence(const std::string& socket,
                                               const std::string& domain) {
    provisioning::DmarcEvidence evidence;
    reports::channel::Client client(socket);
    reports::channel::Message request;
    request.json["op"] = "findings";
    request.json["domain"] = domain;
    auto answer = client.call(request);
    if (!answer) {
        evidence.summary = answer.error();
        return evidence;
    }
    const auto* findings = answer->json.if_contains("findings");
    if (findings == nullptr || !findings->is_array()) {
        evidence.summary =
            "dkim-reportd: " + reports::channel::string_member(answer->json, "error");
        return evidence;
    }
    for (const auto& f : findings->as_array()) {
        if (!f.is_object() ||
            reports::channel::string_member(f.as_object(), "kind") != "enforcement_readiness") {
            continue;
        }
        const auto* ev = f.as_object().if_contains("evidence");
        if (ev == nullptr || !ev->is_object()) {
            continue;
        }
        evidence.available = true;
        evidence.next = reports::channel::string_member(ev->as_object(), "next");
        evidence.summary = reports::channel::string_member(f.as_object(), "summary");
        return evidence;
    }
    evidence.summary = "no report about " + domain + " yet";
    return evidence;
}

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
    // On a cluster node, this node's keys: "%n" in the selectors is its name, and a selector
    // that another node uses is refused (one name, one key in DNS).
    auto asking = credentials(args.common);
    if (!asking) {
        return kUsage;
    }
    auto cluster = ask_signerd(args.common, ipc::ClusterStatusRequest{std::move(*asking)});
    const auto* status = cluster ? std::get_if<ipc::ClusterStatusReply>(&*cluster) : nullptr;
    const std::string node = status != nullptr && status->cluster ? status->node : "";
    const auto complete = [&node](std::string& selector, const std::string& where) {
        if (selector.find("%n") == std::string::npos) {
            return true;
        }
        if (node.empty()) {
            std::cerr << "dkim-appliance: configuration error: " << where
                      << ": %n (a cluster node's name) on an appliance that is not a cluster "
                         "node\n";
            return false;
        }
        selector = provisioning::cluster_selector(selector, node);
        return true;
    };
    const std::vector<ipc::ClusterKeyView> none;
    const auto& others = node.empty() ? none : status->keys;
    if (!complete(config->selector_format, "[rotation] selector_format")) {
        return kUsage;
    }
    for (auto& d : config->domains) {
        for (auto& k : d.keys) {
            if (!complete(k.selector, d.name + " [[domain.key]] selector")) {
                return kUsage;
            }
            for (const ipc::ClusterKeyView& other : others) {
                if (other.node != node && other.domain == d.name && other.selector == k.selector) {
                    std::cerr << "dkim-appliance: configuration error: " << d.name << " selector "
                              << k.selector << " is node " << other.node
                              << "'s: in a cluster, put %n (each node's name) in the selectors\n";
                    return kUsage;
                }
            }
        }
    }
    auto keys = fetch_keys(args.common);
    if (!keys) {
        return fail(keys.error());
    }
    std::map<std::string, std::vector<provisioning::KeyStatus>> by_domain;
    for (const auto& d : config->domains) {
        by_domain[d.name] = key_statuses(*keys, d.name);
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
    // Whether a report domain is external (RFC 7489 §7.1); without the list, the tree decides.
    auto psl = dmarc::PublicSuffixList::load();
    for (const auto& domain : config->domains) {
        std::optional<provisioning::DmarcEvidence> evidence;
        if (domain.dmarc_requires_evidence) {
            evidence = readiness_evidence(config->reportd_socket, domain.name);
        }
        for (auto& step : provisioning::dns_policy_steps(*config, domain, **resolver, now_ms / 1000,
                                                         psl ? *psl : nullptr,
                                                         evidence ? &*evidence : nullptr)) {
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

}  // namespace

void add_apply_command(CLI::App& app, int& exit_code) {
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
}

}  // namespace dkim::cli

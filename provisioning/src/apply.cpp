#include "dkim/provisioning/apply.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <set>

#include "dkim/config/toml_reader.hpp"
#include "dkim/dmarc/record.hpp"
#include "dkim/dns/name.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "dkim/provisioning/rotation.hpp"
#include "text.hpp"

namespace dkim::provisioning {

using detail::kind_of;
using detail::lower;
using detail::utc;
Expected<ApplyConfig, std::string> load_apply_config(const std::string& file) {
    try {
        const toml::table root = config::parse_toml_file(file);
        config::TableReader r(root, file);
        ApplyConfig c;
        c.file = file;
        c.signerd_socket = r.string("signerd_socket").value_or(c.signerd_socket);
        c.reportd_socket = r.string("reportd_socket").value_or(c.reportd_socket);
        c.outbound_addresses = r.strings("outbound_addresses").value_or(std::vector<std::string>{});
        for (const auto& a : c.outbound_addresses) {
            if (auto parsed = OutboundAddress::parse(a); !parsed) {
                r.fail("outbound_addresses", parsed.error());
            }
        }
        // Report URIs: mailto: (or https:, RFC 7489 §6.2 allows other schemes; RFC 8460 §3).
        for (const auto& [key, field] : {std::pair{"dmarc_rua", &c.dmarc_rua},
                                         {"dmarc_ruf", &c.dmarc_ruf},
                                         {"tlsrpt_rua", &c.tlsrpt_rua}}) {
            *field = r.string(key).value_or("");
            if (const auto problem = dns::report_uris_problem(*field, true);
                !field->empty() && !problem.empty()) {
                r.fail(key, problem);
            }
        }
        if (auto rotation = r.table("rotation")) {
            c.selector_format = rotation->string("selector_format").value_or(c.selector_format);
            // "%n", a cluster node's name, is completed by apply on each node.
            if (auto ok = format_selector(cluster_selector(c.selector_format, "node1"), 0, "rsa");
                !ok) {
                rotation->fail("selector_format", ok.error());
            }
            if (const auto grace = rotation->duration("grace", std::chrono::seconds(1))) {
                if (*grace > std::chrono::hours(24 * 365)) {
                    rotation->fail("grace", "at most 365d");
                }
                c.grace = std::chrono::duration_cast<std::chrono::seconds>(*grace);
            }
            rotation->finish();
        }
        std::set<std::string> names;
        for (auto& d : r.tables("domain")) {
            DesiredDomain domain;
            domain.name = lower(d.string("name").value_or(""));
            if (!domain.name.empty() && domain.name.back() == '.') {
                domain.name.pop_back();
            }
            if (!dns::is_key_domain(domain.name)) {
                d.fail("name", "expected a domain name");
            }
            if (!names.insert(domain.name).second) {
                d.fail("name", domain.name + " is listed twice");
            }
            domain.rotate_after = d.duration("rotate_after", std::chrono::hours(24));
            domain.dmarc_policy = d.string("dmarc_policy").value_or("none");
            if (domain.dmarc_policy != "none" && domain.dmarc_policy != "quarantine" &&
                domain.dmarc_policy != "reject") {
                d.fail("dmarc_policy", "expected none, quarantine or reject");
            }
            domain.dmarc_pct = static_cast<unsigned>(d.integer("dmarc_pct", 0, 100).value_or(100));
            domain.dmarc_requires_evidence = d.boolean("dmarc_requires_evidence").value_or(false);
            std::set<std::string> kinds;
            for (auto& k : d.tables("key")) {
                DesiredKey key;
                key.algorithm = k.string("algorithm").value_or("");
                if (!hsm::parse_key_algorithm(key.algorithm)) {
                    k.fail("algorithm", "expected rsa-2048, rsa-3072, rsa-4096 or ed25519");
                }
                if (!kinds.insert(kind_of(key.algorithm)).second) {
                    k.fail("algorithm", "one key per kind (RSA, Ed25519) and domain");
                }
                key.selector = lower(k.string("selector").value_or(""));
                if (!key.selector.empty() &&
                    !dns::key_name_problem(domain.name, cluster_selector(key.selector, "node1"))
                         .empty()) {
                    k.fail("selector", "'" + key.selector + "' is not a valid selector");
                }
                k.finish();
                domain.keys.push_back(std::move(key));
            }
            if (domain.keys.empty()) {
                d.fail("key", "each domain needs at least one [[domain.key]]");
            }
            d.finish();
            c.domains.push_back(std::move(domain));
        }
        if (c.domains.empty()) {
            r.fail("domain", "no [[domain]]: nothing to apply");
        }
        r.finish();
        return c;
    } catch (const config::ConfigError& e) {
        return unexpected(std::string(e.what()));
    }
}

bool PlannedStep::changes() const {
    return action == Action::create || action == Action::rotate || action == Action::activate ||
           action == Action::retire;
}

std::string_view to_string(PlannedStep::Action action) {
    switch (action) {
        case PlannedStep::Action::create: return "create";
        case PlannedStep::Action::rotate: return "rotate";
        case PlannedStep::Action::activate: return "activate";
        case PlannedStep::Action::retire: return "retire";
        case PlannedStep::Action::publish: return "publish";
        case PlannedStep::Action::wait: return "wait";
        case PlannedStep::Action::note: return "note";
    }
    return "note";
}

bool Plan::changes() const {
    return std::any_of(steps.begin(), steps.end(), [](const auto& s) { return s.changes(); });
}

bool Plan::waiting() const {
    return std::any_of(steps.begin(), steps.end(), [](const auto& s) {
        return s.action == PlannedStep::Action::publish || s.action == PlannedStep::Action::wait;
    });
}

Plan plan_apply(const ApplyConfig& config,
                const std::map<std::string, std::vector<KeyStatus>>& keys_by_domain,
                std::int64_t now_ms, const PublishedCheck& published) {
    using Action = PlannedStep::Action;
    Plan plan;
    const std::vector<KeyStatus> none;
    for (const DesiredDomain& domain : config.domains) {
        const auto found = keys_by_domain.find(domain.name);
        const std::vector<KeyStatus>& keys = found == keys_by_domain.end() ? none : found->second;
        const auto add = [&](Action action, const std::string& selector,
                             const std::string& algorithm, std::string detail) {
            plan.steps.push_back({action, domain.name, selector, algorithm, std::move(detail)});
        };
        std::set<std::string> desired_kinds;
        for (const DesiredKey& want : domain.keys) {
            const std::string kind = kind_of(want.algorithm);
            desired_kinds.insert(kind);
            std::vector<const KeyStatus*> current;
            std::vector<const KeyStatus*> pending;
            std::vector<const KeyStatus*> retiring;
            for (const auto& k : keys) {
                if (kind_of(k.algorithm) != kind) {
                    continue;
                }
                if (k.state == "active") {
                    current.push_back(&k);
                } else if (k.state == "pending-publish" || k.state == "generating") {
                    pending.push_back(&k);
                } else if (k.state == "retiring") {
                    retiring.push_back(&k);
                }
            }
            // Old keys first: their grace periods.
            for (const KeyStatus* r : retiring) {
                if (now_ms >= r->retire_after_ms) {
                    add(Action::retire, r->selector, r->algorithm, "its grace period is over");
                } else {
                    add(Action::wait, r->selector, r->algorithm,
                        "retiring until " + utc(r->retire_after_ms));
                }
            }
            if (!pending.empty()) {
                const KeyStatus& p = *pending.front();
                if (p.state == "pending-publish" && published(domain.name, p)) {
                    add(Action::activate, p.selector, p.algorithm,
                        current.empty() ? "its record is published"
                                        : "its record is published; " + current.front()->selector +
                                              " retires after the grace period");
                } else {
                    add(Action::publish, p.selector, p.algorithm,
                        p.state == "generating"
                            ? "its generation was interrupted: apply finishes it"
                            : "publish its record (dkim-appliance dns records " + domain.name +
                                  "), then apply again");
                }
                continue;
            }
            if (current.empty()) {
                std::string selector = want.selector;
                if (selector.empty()) {
                    auto formatted = format_selector(config.selector_format, now_ms, kind);
                    selector = formatted ? *formatted : "";
                    const bool taken = std::any_of(keys.begin(), keys.end(), [&](const auto& k) {
                        return k.selector == selector;
                    });
                    if (taken) {
                        selector += "-" + kind;
                    }
                }
                add(Action::create, selector, want.algorithm, "no " + kind + " key signs yet");
                continue;
            }
            if (!retiring.empty()) {
                continue;  // one rotation at a time
            }
            const KeyStatus& now_signing = *current.front();
            std::string why;
            if (!want.selector.empty() && want.selector != now_signing.selector) {
                why = "the configuration names selector " + want.selector;
            } else if (want.algorithm != now_signing.algorithm) {
                why = "the configuration asks for " + want.algorithm + ", " + now_signing.selector +
                      " is " + now_signing.algorithm;
            } else if (domain.rotate_after && now_signing.activated_ms > 0 &&
                       now_ms - now_signing.activated_ms >= domain.rotate_after->count()) {
                why = now_signing.selector + " has signed since " + utc(now_signing.activated_ms) +
                      " (rotate_after)";
            }
            if (why.empty()) {
                continue;
            }
            RotationRequest request;
            request.domain = domain.name;
            request.algorithm = want.algorithm;
            request.selector = want.selector;
            request.selector_format = config.selector_format;
            request.now_ms = now_ms;
            request.min_interval_ms = 0;
            auto step = next_rotation_step(keys, request);
            if (!step) {
                add(Action::note, want.selector, want.algorithm, step.error());
            } else if (step->kind == RotationStep::Kind::generate) {
                add(Action::rotate, step->key.selector, step->key.algorithm, why);
            }
        }
        for (const auto& k : keys) {
            if (k.state == "active" && desired_kinds.count(kind_of(k.algorithm)) == 0) {
                add(Action::note, k.selector, k.algorithm,
                    "signs, but the configuration lists no " + kind_of(k.algorithm) +
                        " key: left alone (dkim-appliance key retire --force to stop it)");
            }
        }
    }
    return plan;
}

std::string desired_dmarc(const ApplyConfig& config, const DesiredDomain& domain) {
    dns::DmarcRecordFields fields;
    fields.policy = domain.dmarc_policy;
    if (domain.dmarc_pct < 100) {
        fields.pct = domain.dmarc_pct;
    }
    fields.rua = config.dmarc_rua;
    fields.ruf = config.dmarc_ruf;
    return dns::dmarc_record_text(fields);
}

int dmarc_stage(std::string_view policy, unsigned pct) {
    if (policy == "reject") {
        return 3;
    }
    if (policy == "quarantine") {
        return pct >= 100 ? 2 : 1;
    }
    return 0;
}

int dmarc_stage_of_next(std::string_view next) {
    const auto semicolon = next.find(';');
    const std::string_view policy = next.substr(0, semicolon);
    unsigned pct = 100;
    if (semicolon != std::string_view::npos) {
        const auto eq = next.find("pct=", semicolon);
        if (eq != std::string_view::npos) {
            pct = 0;
            for (std::size_t i = eq + 4; i < next.size() && next[i] >= '0' && next[i] <= '9'; ++i) {
                pct = pct * 10 + static_cast<unsigned>(next[i] - '0');
            }
        }
    }
    return dmarc_stage(policy, pct);
}

std::vector<PlannedStep> dns_policy_steps(const ApplyConfig& config, const DesiredDomain& domain,
                                          dns::Resolver& resolver, std::int64_t now_unix,
                                          std::shared_ptr<const dmarc::PublicSuffixList> psl,
                                          const DmarcEvidence* evidence) {
    std::vector<PlannedStep> out;
    const std::string want = desired_dmarc(config, domain);
    const std::string name = "_dmarc." + domain.name;
    const auto answer = resolver.lookup_txt(name);
    std::optional<dmarc::Record> published;
    std::string published_text;
    for (const auto& r : answer.records) {
        if (dmarc::is_dmarc_record(r)) {
            auto parsed = dmarc::parse_record(r);
            if (parsed && parsed->p_valid && !published) {
                published = *parsed;
                published_text = r;
            }
        }
    }
    const std::string wanted_policy = domain.dmarc_policy;
    const bool matches =
        published && std::string(dmarc::to_string(published->p)) == wanted_policy &&
        published->pct == domain.dmarc_pct &&
        dns::missing_report_uris(published->rua, dns::report_uris(config.dmarc_rua)).empty() &&
        dns::missing_report_uris(published->ruf, dns::report_uris(config.dmarc_ruf)).empty();
    if (answer.status == dns::LookupStatus::temporary_failure) {
        out.push_back({PlannedStep::Action::note, domain.name, "_dmarc", "",
                       "the DMARC record could not be looked up: " + answer.error});
    } else if (!matches && domain.dmarc_requires_evidence &&
               dmarc_stage(wanted_policy, domain.dmarc_pct) >
                   (published ? dmarc_stage(dmarc::to_string(published->p), published->pct) : 0) &&
               (evidence == nullptr || !evidence->available ||
                dmarc_stage_of_next(evidence->next) <
                    dmarc_stage(wanted_policy, domain.dmarc_pct))) {
        // The configured stage is stricter than what is published, and the reports do not
        // support it yet (or cannot be read): wait, saying why.
        out.push_back(
            {PlannedStep::Action::wait, domain.name, "_dmarc", "",
             "p=" + wanted_policy +
                 (domain.dmarc_pct < 100 ? "; pct=" + std::to_string(domain.dmarc_pct) : "") +
                 " waits for the reports to support it: " +
                 (evidence == nullptr || !evidence->available
                      ? "no evidence (" +
                            (evidence == nullptr ? std::string("dkim-reportd not asked")
                                                 : evidence->summary) +
                            ")"
                      : "they support p=" + evidence->next + " (" + evidence->summary + ")")});
    } else if (!matches) {
        out.push_back({PlannedStep::Action::publish, domain.name, "_dmarc", "",
                       "publish " + dns::zone_line(name, want) +
                           (published ? " (published: \"" + published_text + "\")"
                                      : " (none is published)")});
    }
    if (!config.outbound_addresses.empty()) {
        CheckInput in;
        in.domain = domain.name;
        for (const auto& a : config.outbound_addresses) {
            if (auto parsed = OutboundAddress::parse(a)) {
                in.addresses.push_back(*parsed);
            }
        }
        for (const Finding& f : check_domain(resolver, in, now_unix)) {
            if (f.record == "SPF" && f.status == Status::problem) {
                out.push_back({PlannedStep::Action::publish, domain.name, "SPF", "",
                               f.message + "; " + f.fix});
            }
        }
    }
    // Where reports go: the TLS-RPT record, and the report domains' authorizations.
    CheckInput wanted;
    wanted.domain = domain.name;
    wanted.reports = {config.dmarc_rua, config.dmarc_ruf, config.tlsrpt_rua, std::move(psl)};
    std::vector<std::string> uris = dns::report_uris(config.dmarc_rua);
    for (std::string& uri : dns::report_uris(config.dmarc_ruf)) {
        uris.push_back(std::move(uri));
    }
    auto findings = check_report_authorizations(resolver, wanted, domain.name, uris);
    if (auto tlsrpt = config.tlsrpt_rua.empty() ? std::nullopt : check_tlsrpt(resolver, wanted)) {
        findings.insert(findings.begin(), std::move(*tlsrpt));
    }
    for (const Finding& f : findings) {
        if (f.status == Status::problem) {
            out.push_back({f.fix.empty() ? PlannedStep::Action::note : PlannedStep::Action::publish,
                           domain.name, f.record, "",
                           f.message + (f.fix.empty() ? "" : "; " + f.fix)});
        }
    }
    return out;
}

}  // namespace dkim::provisioning

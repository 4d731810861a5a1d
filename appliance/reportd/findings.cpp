#include "findings.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "dkim/net/ip_address.hpp"

namespace dkim::reportd {

namespace {

namespace bj = boost::json;

using Key = std::pair<std::string, std::string>;  // (domain, selector)

std::string ratio_text(double r) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f", r);
    return text;
}

std::string percent_text(double share) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f%%", share * 100.0);
    return text;
}

// Signatures by (domain, selector): hours in order with running totals, for range sums.
class SignedIndex {
  public:
    explicit SignedIndex(const std::vector<ipc::SigningHour>& hours) {
        for (const auto& h : hours) {
            auto& v = by_key_[{h.domain, h.selector}];
            v.emplace_back(h.hour, h.signatures);
        }
        for (auto& [key, v] : by_key_) {
            std::sort(v.begin(), v.end());
            std::int64_t running = 0;
            for (auto& [hour, n] : v) {
                running += n;
                n = running;
            }
        }
    }
    // Signatures in hours h with from <= h < until.
    std::int64_t between(const Key& key, std::int64_t from, std::int64_t until) const {
        const auto it = by_key_.find(key);
        if (it == by_key_.end()) {
            return 0;
        }
        const auto& v = it->second;
        auto upto = [&v](std::int64_t t) -> std::int64_t {
            auto p =
                std::lower_bound(v.begin(), v.end(), std::make_pair(t, std::int64_t{0}),
                                 [](const auto& a, const auto& b) { return a.first < b.first; });
            return p == v.begin() ? 0 : std::prev(p)->second;
        };
        return upto(until) - upto(from);
    }
    // The last hour with a signature, if any.
    std::optional<std::int64_t> last(const Key& key) const {
        const auto it = by_key_.find(key);
        if (it == by_key_.end() || it->second.empty()) {
            return std::nullopt;
        }
        return it->second.back().first;
    }
    std::vector<Key> keys() const {
        std::vector<Key> out;
        for (const auto& [key, v] : by_key_) {
            out.push_back(key);
        }
        return out;
    }

  private:
    std::map<Key, std::vector<std::pair<std::int64_t, std::int64_t>>> by_key_;
};

bool grant_overlaps(const std::vector<ipc::GrantInterval>& grants, const Key& key,
                    std::int64_t from, std::int64_t until) {
    return std::any_of(grants.begin(), grants.end(), [&](const ipc::GrantInterval& g) {
        return g.domain == key.first && (g.selector == key.second || g.selector == "*") &&
               g.start < until && g.end > from;
    });
}

bj::array sources_json(const std::vector<std::pair<std::string, std::uint64_t>>& sources) {
    bj::array out;
    for (const auto& [ip, n] : sources) {
        bj::object o;
        o["source_ip"] = ip;
        o["messages"] = n;
        out.push_back(std::move(o));
    }
    return out;
}

struct Network {
    net::IpAddress address;
    unsigned prefix;
};

std::vector<Network> networks(const std::vector<std::string>& texts) {
    std::vector<Network> out;
    for (const std::string& t : texts) {
        const auto slash = t.find('/');
        const auto ip = net::IpAddress::parse(t.substr(0, slash));
        if (!ip) {
            continue;
        }
        unsigned prefix = ip->is_v4() ? 32 : 128;
        if (slash != std::string::npos) {
            try {
                prefix = static_cast<unsigned>(std::stoul(t.substr(slash + 1)));
            } catch (...) {
                continue;
            }
        }
        out.push_back({*ip, prefix});
    }
    return out;
}

bool ours(const std::vector<Network>& nets, const std::string& source) {
    const auto ip = net::IpAddress::parse(source);
    return ip && std::any_of(nets.begin(), nets.end(), [&](const Network& n) {
               return ip->unmapped().in_network(n.address.unmapped(), n.prefix);
           });
}

// Who vouches for a finding about our keys: whether the authenticated reporters' reports alone
// meet its condition, and which reporters they are. An unauthenticated finding is a warning
// whose summary says so (see findings.hpp).
void vouch(Finding& f, bool authenticated, const FindingInput& in, const SelectorDay& r,
           std::string_view critical_severity) {
    f.authenticated = authenticated;
    f.evidence["authenticated_pass"] = r.authenticated_pass;
    f.evidence["authenticated_fail"] = r.authenticated_fail;
    if (in.reporters) {
        bj::array names;
        for (const std::string& name : in.reporters(r.signer, r.selector, r.day)) {
            names.push_back(bj::value(name));
        }
        f.evidence["authenticated_reporters"] = std::move(names);
    }
    if (authenticated) {
        f.severity = std::string(critical_severity);
        return;
    }
    f.severity = "warning";
    f.summary +=
        " No reporter of this evidence is authenticated (no report mail carried a "
        "verified DKIM signature of its From domain): it may be forged.";
}

void join_findings(const FindingInput& in, const FindingOptions& options,
                   std::vector<Finding>& out) {
    const SignedIndex signed_index(in.signing.hours);
    std::set<Key> our_keys(in.active_keys.begin(), in.active_keys.end());
    for (const Key& k : signed_index.keys()) {
        our_keys.insert(k);
    }
    for (const auto& g : in.signing.grants) {
        if (g.selector != "*") {
            our_keys.insert({g.domain, g.selector});
        }
    }
    const std::set<Key> active(in.active_keys.begin(), in.active_keys.end());
    const std::int64_t lifetime = std::max<std::int64_t>(in.signing.signature_lifetime, 0);

    for (const SelectorDay& r : in.reported) {
        const Key key{r.signer, r.selector};
        if (our_keys.count(key) == 0) {
            continue;  // another signer's selector, or a domain we do not sign for
        }
        const std::int64_t day_start = r.day * kDay;
        const std::int64_t window_start = day_start - lifetime;
        const std::int64_t window_end = day_start + kDay;

        if (active.count(key) > 0 && r.fail > r.pass && r.fail > 0) {
            Finding f;
            f.kind = "rotation_new_failing";
            f.domain = r.signer;
            f.selector = r.selector;
            f.from = day_start;
            f.until = window_end;
            f.summary = "Reporters saw selector " + r.selector + " of " + r.signer + " fail " +
                        std::to_string(r.fail) + " times and pass " + std::to_string(r.pass) +
                        ": is its DNS record published and correct?";
            f.evidence["pass"] = r.pass;
            f.evidence["fail"] = r.fail;
            vouch(f, r.authenticated_fail > r.authenticated_pass, in, r, "warning");
            out.push_back(std::move(f));
        }
        if (r.pass == 0 || window_start < in.signing.counted_since) {
            continue;
        }
        const std::int64_t signed_count = signed_index.between(key, window_start, window_end);
        const bool granted =
            grant_overlaps(in.signing.grants, key, window_start - kDay, window_end);
        const auto last = signed_index.last(key);
        if (active.count(key) == 0 && last && day_start > *last + lifetime + kDay) {
            Finding f;
            f.kind = "rotation_retired_seen";
            f.domain = r.signer;
            f.selector = r.selector;
            f.from = day_start;
            f.until = window_end;
            f.summary = "Reporters still saw " + std::to_string(r.pass) +
                        " DKIM passes for selector " + r.selector + " of " + r.signer +
                        ", which has not signed since its last signature and its lifetime.";
            f.evidence["pass"] = r.pass;
            f.evidence["last_signature_hour"] = *last;
            f.evidence["signature_lifetime"] = lifetime;
            if (in.top_sources) {
                f.evidence["sources"] = sources_json(in.top_sources(r.signer, r.selector, r.day));
            }
            vouch(f, r.authenticated_pass > 0, in, r, "warning");
            out.push_back(std::move(f));
        }
        if (signed_count == 0 && !granted) {
            Finding f;
            f.kind = "signed_outside_grant";
            f.domain = r.signer;
            f.selector = r.selector;
            f.from = day_start;
            f.until = window_end;
            f.summary = "Reporters saw " + std::to_string(r.pass) + " DKIM passes for " +
                        r.selector + "._domainkey." + r.signer +
                        " on a day when the appliance signed nothing with it and no grant was "
                        "active: the key was used elsewhere.";
            f.evidence["reported_pass"] = r.pass;
            f.evidence["signed"] = 0;
            f.evidence["window_start"] = window_start;
            f.evidence["window_end"] = window_end;
            if (in.top_sources) {
                f.evidence["sources"] = sources_json(in.top_sources(r.signer, r.selector, r.day));
            }
            vouch(f, r.authenticated_pass > 0, in, r, "critical");
            out.push_back(std::move(f));
            continue;
        }
        const double limit = static_cast<double>(signed_count) * options.replay_ratio;
        if (r.pass >= options.replay_min_messages && static_cast<double>(r.pass) > limit) {
            Finding f;
            f.kind = "replay_suspected";
            f.domain = r.signer;
            f.selector = r.selector;
            f.from = day_start;
            f.until = window_end;
            const double ratio =
                signed_count > 0 ? static_cast<double>(r.pass) / static_cast<double>(signed_count)
                                 : 0.0;
            f.summary = "Reporters saw " + std::to_string(r.pass) + " DKIM passes for " +
                        r.selector + "._domainkey." + r.signer + " but the appliance signed " +
                        std::to_string(signed_count) + " messages with it in that day and the " +
                        std::to_string(lifetime / 3600) + " h before" +
                        (signed_count > 0 ? " (" + ratio_text(ratio) + " times as many)" : "") +
                        ": signed messages may be being replayed.";
            f.evidence["reported_pass"] = r.pass;
            f.evidence["signed"] = signed_count;
            f.evidence["ratio"] = ratio;
            f.evidence["window_start"] = window_start;
            f.evidence["window_end"] = window_end;
            f.evidence["grant_active"] = granted;
            if (in.top_sources) {
                f.evidence["sources"] = sources_json(in.top_sources(r.signer, r.selector, r.day));
            }
            vouch(f,
                  r.authenticated_pass >= options.replay_min_messages &&
                      static_cast<double>(r.authenticated_pass) > limit,
                  in, r, "critical");
            out.push_back(std::move(f));
        }
    }
}

void source_findings(const FindingInput& in, const FindingOptions& options,
                     std::vector<Finding>& out) {
    const auto nets = networks(in.outbound);
    for (const DomainEvidence& d : in.domains) {
        std::uint64_t known = 0;
        std::uint64_t known_aligned = 0;
        std::uint64_t total = 0;
        bj::array unknown;
        std::uint64_t unknown_messages = 0;
        std::uint64_t unknown_failing = 0;
        for (const SourceTotals& s : d.sources) {
            total += s.messages;
            const bool our_address = ours(nets, s.source_ip);
            if (our_address || s.spf_pass > 0) {
                known += s.messages;
                known_aligned += s.dmarc_pass;
                continue;
            }
            if (s.messages < options.unknown_min_messages) {
                continue;
            }
            unknown_messages += s.messages;
            unknown_failing += s.messages - std::min(s.messages, s.dmarc_pass);
            if (unknown.size() < 20) {
                bj::object o;
                o["source_ip"] = s.source_ip;
                o["messages"] = s.messages;
                o["dkim_aligned"] = s.dkim_aligned;
                o["spf_aligned"] = s.spf_aligned;
                o["dmarc_pass"] = s.dmarc_pass;
                o["reverse_dns"] = nullptr;  // dkim-reportd has no network: not looked up
                unknown.push_back(std::move(o));
            }
        }
        const std::int64_t from = in.to_day * kDay - (options.readiness_days - 1) * kDay;
        const std::int64_t until = (in.to_day + 1) * kDay;
        if (!unknown.empty()) {
            Finding f;
            f.kind = "unknown_source";
            f.severity = unknown_failing > 0 ? "warning" : "info";
            f.domain = d.domain;
            f.from = from;
            f.until = until;
            f.summary = std::to_string(unknown.size()) + " sources sent " +
                        std::to_string(unknown_messages) + " messages as " + d.domain +
                        " from addresses that are neither the appliance's nor passed SPF (" +
                        std::to_string(unknown_failing) + " of them failed DMARC).";
            f.evidence["sources"] = std::move(unknown);
            out.push_back(std::move(f));
        }

        // Enforcement readiness: the monitor -> quarantine -> reject ramp, judged by the weakest
        // reporter with enough mail from known sources (each reporter's share its own).
        std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> reporters;  // known, aligned
        for (const ReporterSource& r : d.by_reporter) {
            if (ours(nets, r.source_ip) || r.spf_pass > 0) {
                auto& [k, a] = reporters[r.reporter];
                k += r.messages;
                a += std::min(r.dmarc_pass, r.messages);
            }
        }
        double share = 0.0;
        std::string weakest;
        bj::array per_reporter;
        for (const auto& [name, ka] : reporters) {
            if (ka.first < options.readiness_reporter_min) {
                continue;
            }
            const double s = static_cast<double>(ka.second) / static_cast<double>(ka.first);
            if (weakest.empty() || s < share) {
                share = s;
                weakest = name;
            }
            if (per_reporter.size() < 20) {
                bj::object o;
                o["reporter"] = name;
                o["known_messages"] = ka.first;
                o["aligned_share"] = s;
                per_reporter.push_back(std::move(o));
            }
        }
        if (weakest.empty() && known > 0) {
            // No reporter had enough mail on its own: the pooled share.
            share = static_cast<double>(known_aligned) / static_cast<double>(known);
        }
        const std::string p = d.published ? d.published->first : "";
        const unsigned pct = d.published && d.published->second ? *d.published->second : 100;
        std::string next;
        std::string why;
        if (known < options.readiness_min_messages) {
            next = p.empty() ? "none" : p;
            why = "not enough mail from known sources in the window (" + std::to_string(known) +
                  " of at least " + std::to_string(options.readiness_min_messages) + ")";
        } else if (p == "reject") {
            next = "reject";
            why = "already at reject";
        } else if (p == "quarantine" && pct >= 100) {
            next = share >= options.reject_at ? "reject" : "quarantine";
            why = percent_text(share) + " of known sources' mail aligned" +
                  (weakest.empty() ? "" : " at " + weakest) + " (reject needs " +
                  percent_text(options.reject_at) + ")";
        } else if (p == "quarantine") {
            next = share >= options.quarantine_at ? "quarantine; pct=100"
                                                  : "quarantine; pct=" + std::to_string(pct);
            why = percent_text(share) + " of known sources' mail aligned";
        } else {
            next = share >= options.quarantine_at ? "quarantine; pct=25" : "none";
            why = percent_text(share) + " of known sources' mail aligned" +
                  (weakest.empty() ? "" : " at " + weakest) + " (quarantine needs " +
                  percent_text(options.quarantine_at) + ")";
        }
        Finding f;
        f.kind = "enforcement_readiness";
        f.severity = "info";
        f.domain = d.domain;
        f.from = from;
        f.until = until;
        f.summary = d.domain + ": published p=" + (p.empty() ? "?" : p) +
                    (pct < 100 ? "; pct=" + std::to_string(pct) : "") + ", next step p=" + next +
                    " (" + why + ").";
        f.evidence["published_p"] = p;
        f.evidence["published_pct"] = pct;
        f.evidence["next"] = next;
        f.evidence["aligned_share"] = share;
        f.evidence["known_messages"] = known;
        f.evidence["known_aligned"] = known_aligned;
        f.evidence["all_messages"] = total;
        f.evidence["days_with_reports"] = d.daily.size();
        f.evidence["weakest_reporter"] = weakest;
        f.evidence["reporters"] = std::move(per_reporter);
        f.evidence["window_days"] = options.readiness_days;
        out.push_back(std::move(f));
    }
}

void tls_findings(const FindingInput& in, std::vector<Finding>& out) {
    std::map<std::pair<std::string, std::string>, std::pair<std::uint64_t, std::set<std::string>>>
        grouped;
    for (const TlsFailureTotals& t : in.tls_failures) {
        auto& g = grouped[{t.policy_domain, t.result_type}];
        g.first += t.sessions;
        if (!t.receiving_mx_hostname.empty()) {
            g.second.insert(t.receiving_mx_hostname);
        }
    }
    for (const auto& [key, value] : grouped) {
        Finding f;
        f.kind = "tls_failures";
        f.severity = "warning";
        f.domain = key.first;
        f.from = in.from_day * kDay;
        f.until = (in.to_day + 1) * kDay;
        f.summary = std::to_string(value.first) + " TLS sessions to " + key.first +
                    " failed with " + key.second + ".";
        f.evidence["result_type"] = key.second;
        f.evidence["sessions"] = value.first;
        bj::array hosts;
        for (const auto& h : value.second) {
            hosts.push_back(bj::value(h));
        }
        f.evidence["mx_hosts"] = std::move(hosts);
        out.push_back(std::move(f));
    }
}

}  // namespace

std::vector<Finding> find(const FindingInput& input, const FindingOptions& options) {
    std::vector<Finding> out;
    if (input.signing_available) {
        join_findings(input, options, out);
    }
    source_findings(input, options, out);
    tls_findings(input, out);
    return out;
}

bj::object to_json(const Finding& f) {
    bj::object o;
    o["kind"] = f.kind;
    o["severity"] = f.severity;
    o["domain"] = f.domain;
    o["selector"] = f.selector;
    o["from"] = f.from;
    o["until"] = f.until;
    o["summary"] = f.summary;
    o["authenticated"] = f.authenticated;
    o["evidence"] = f.evidence;
    return o;
}

}  // namespace dkim::reportd

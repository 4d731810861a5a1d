#include "dkim/provisioning/rotation.hpp"

#include <algorithm>
#include <ctime>

#include "dkim/dns/name.hpp"
#include "text.hpp"

namespace dkim::provisioning {

using detail::kind_of;
using detail::utc;

namespace {

// The one kind ("rsa", "ed25519") of `keys` (those a rotation without --algorithm looks at):
// none is nothing to rotate, two are ambiguous. `where`: " on any node" for a cluster.
Expected<std::string, std::string> the_one_kind(const std::vector<const KeyStatus*>& keys,
                                                const std::string& domain,
                                                const std::string& where) {
    std::vector<std::string> kinds;
    for (const KeyStatus* k : keys) {
        const std::string kind = kind_of(k->algorithm);
        if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
            kinds.push_back(kind);
        }
    }
    if (kinds.empty()) {
        return unexpected(domain + " has no active key" + where +
                          ": there is nothing to rotate (key generate, then key activate)");
    }
    if (kinds.size() > 1) {
        return unexpected(domain +
                          " signs with an RSA and an Ed25519 key: rotate one at a time "
                          "(--algorithm)");
    }
    return kinds.front();
}

}  // namespace

std::string RotationStep::describe() const {
    switch (kind) {
        case Kind::generate:
            return "generate the next key, " + key.selector + " (" + key.algorithm + ")";
        case Kind::wait_for_publication:
            return key.selector + " is " + key.state +
                   ": once DNS publishes its record, signing switches to it";
        case Kind::wait_for_grace:
            return key.selector + " is retiring until " + utc(not_before_ms) +
                   " (mail signed with it may still be in flight)";
        case Kind::retire: return "the grace period of " + key.selector + " is over: retire it";
        case Kind::done:
            return "nothing in progress; " + key.selector + " (" + key.algorithm +
                   ") signs. Pass --selector to rotate again before the next period";
    }
    return "";
}

Expected<std::string, std::string> format_selector(const std::string& format, std::int64_t now_ms,
                                                   const std::string& kind, bool node_placeholder) {
    if (node_placeholder) {
        // Formatted around each "%n", which stays; then checked as a node would complete it.
        std::string pattern;
        std::size_t from = 0;
        bool has_node = false;
        for (;;) {
            std::size_t at = format.find("%n", from);
            while (at != std::string::npos && at > 0 && format[at - 1] == '%') {
                at = format.find("%n", at + 1);  // "%%n" is a percent sign and an n
            }
            const std::string part = format.substr(from, at == std::string::npos ? at : at - from);
            if (!part.empty()) {
                // A part may begin or end in '-': formatted between two letters.
                auto formatted = format_selector("x" + part + "x", now_ms, kind);
                if (!formatted) {
                    return unexpected("selector format '" + format + "' is not valid around %n");
                }
                pattern += formatted->substr(1, formatted->size() - 2);
            }
            if (at == std::string::npos) {
                break;
            }
            pattern += "%n";
            has_node = true;
            from = at + 2;
        }
        if (!has_node) {
            pattern += "-%n";
        }
        if (!dns::is_key_selector(cluster_selector(pattern, "node1"))) {
            return unexpected("selector format '" + format + "' makes '" + pattern +
                              "', which is not a valid selector for a node");
        }
        return pattern;
    }
    const std::time_t t = static_cast<std::time_t>(now_ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::string out;
    for (std::size_t i = 0; i < format.size(); ++i) {
        if (format[i] != '%') {
            out += format[i];
            continue;
        }
        if (++i == format.size()) {
            return unexpected("selector format '" + format + "' ends in '%'");
        }
        char buffer[16];
        switch (format[i]) {
            case 'Y': (void)std::snprintf(buffer, sizeof buffer, "%04d", tm.tm_year + 1900); break;
            case 'm': (void)std::snprintf(buffer, sizeof buffer, "%02d", tm.tm_mon + 1); break;
            case 'd': (void)std::snprintf(buffer, sizeof buffer, "%02d", tm.tm_mday); break;
            case 'k': out += kind; continue;
            case '%': out += '%'; continue;
            default:
                return unexpected("selector format '" + format + "': unknown %" +
                                  std::string(1, format[i]) + " (%Y %m %d %k)");
        }
        out += buffer;
    }
    if (!dns::is_key_selector(out)) {
        return unexpected("selector format '" + format + "' makes '" + out +
                          "', which is not a valid selector");
    }
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

Expected<RotationStep, std::string> next_rotation_step(const std::vector<KeyStatus>& keys,
                                                       const RotationRequest& request) {
    // The kind that rotates: asked for, else the one of the keys in use (a rotation under way
    // counts its new and its old keys).
    std::string kind = kind_of(request.algorithm);
    if (kind.empty()) {
        std::vector<const KeyStatus*> in_use;
        for (const auto& k : keys) {
            if (k.state == "active" || k.state == "pending-publish" || k.state == "generating" ||
                k.state == "retiring") {
                in_use.push_back(&k);
            }
        }
        auto only = the_one_kind(in_use, request.domain, "");
        if (!only) {
            return unexpected(only.error());
        }
        kind = *only;
    }
    std::vector<KeyStatus> current;
    std::vector<KeyStatus> pending;
    std::vector<KeyStatus> retiring;
    for (const auto& k : keys) {
        if (kind_of(k.algorithm) != kind) {
            continue;
        }
        if (k.state == "active") {
            current.push_back(k);
        } else if (k.state == "pending-publish" || k.state == "generating") {
            pending.push_back(k);
        } else if (k.state == "retiring") {
            retiring.push_back(k);
        }
    }
    RotationStep step;
    // 1. A retiring key whose grace period is over.
    for (const auto& r : retiring) {
        if (request.now_ms >= r.retire_after_ms) {
            step.kind = RotationStep::Kind::retire;
            step.key = r;
            return step;
        }
    }
    // 2. A pending key: publication, then activation.
    if (!pending.empty()) {
        step.kind = RotationStep::Kind::wait_for_publication;
        step.key = pending.front();
        for (const auto& p : pending) {
            if (p.selector == request.selector) {
                step.key = p;
            }
        }
        return step;
    }
    // 3. The grace period of the old key.
    if (!retiring.empty()) {
        const auto first = std::min_element(
            retiring.begin(), retiring.end(),
            [](const auto& a, const auto& b) { return a.retire_after_ms < b.retire_after_ms; });
        step.kind = RotationStep::Kind::wait_for_grace;
        step.key = *first;
        step.not_before_ms = first->retire_after_ms;
        return step;
    }
    // 4. Nothing in progress: start, unless this period's key is the one signing already.
    std::string target = request.selector;
    if (target.empty()) {
        auto formatted = format_selector(request.selector_format, request.now_ms, kind);
        if (!formatted) {
            return unexpected(formatted.error());
        }
        target = *formatted;
        const bool taken_by_other_kind = std::any_of(keys.begin(), keys.end(), [&](const auto& k) {
            return k.selector == target && kind_of(k.algorithm) != kind;
        });
        if (taken_by_other_kind) {
            target += "-" + kind;
        }
    }
    for (const auto& k : keys) {
        if (k.selector != target) {
            continue;
        }
        if (k.state == "active") {
            step.kind = RotationStep::Kind::done;
            step.key = k;
            return step;
        }
        return unexpected("selector " + target + " of " + request.domain + " was used before (" +
                          k.state + "); choose another with --selector");
    }
    if (current.empty()) {
        return unexpected(request.domain + " has no active " + kind +
                          " key: there is nothing to rotate (key generate, then key activate)");
    }
    if (request.selector.empty()) {
        // The rotation that has just ended: its old key retired after the current key became
        // active, a short while ago.
        for (const auto& k : keys) {
            if (kind_of(k.algorithm) == kind && k.state == "retired" &&
                k.retired_ms >= current.front().activated_ms &&
                request.now_ms - k.retired_ms < request.min_interval_ms) {
                step.kind = RotationStep::Kind::done;
                step.key = current.front();
                return step;
            }
        }
    }
    if (current.empty()) {
        return unexpected(request.domain + " has no active " + kind +
                          " key: there is nothing to rotate (key generate, then key activate)");
    }
    step.kind = RotationStep::Kind::generate;
    step.key.selector = target;
    step.key.algorithm = request.algorithm.empty() ? current.front().algorithm : request.algorithm;
    step.key.state = "new";
    return step;
}

// --- a cluster's rotation -----------------------------------------------------------------

std::string cluster_selector(const std::string& pattern, const std::string& node) {
    std::string name;
    for (const char c : node) {
        name += (c == '_' || c == '.')   ? '-'
                : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a')
                                         : c;
    }
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 'n') {
            out += name;
            ++i;
        } else {
            out += pattern[i];
        }
    }
    return out;
}

namespace {

std::string node_list(const std::vector<std::string>& nodes) {
    std::string out;
    for (const auto& n : nodes) {
        out += (out.empty() ? "" : ", ") + n;
    }
    return out;
}

const KeyStatus* find_key(const NodeKeys& n, const std::string& selector) {
    for (const auto& k : n.keys) {
        if (k.selector == selector) {
            return &k;
        }
    }
    return nullptr;
}

}  // namespace

std::string ClusterRotationStep::describe() const {
    std::string listed;
    for (const auto& [node, key] : keys) {
        listed += (listed.empty() ? "" : ", ") + key.selector + " (" + node + ")";
    }
    switch (kind) {
        case Kind::start:
            return "start: every node generates its next " + algorithm + " key, " + selector +
                   " (%n: the node's name)";
        case Kind::wait_for_nodes:
            return "waiting for " + node_list(nodes) + " to " + waiting_for +
                   " (each node's signerd does its part within a second or two)";
        case Kind::wait_for_publication:
            return "new keys made: " + listed +
                   "; once DNS publishes their records, signing switches to them";
        case Kind::wait_for_grace:
            return "the old keys " + listed + " are retiring until " + utc(not_before_ms) +
                   " (mail signed with them may still be in flight)";
        case Kind::retire: return "the grace period of " + listed + " is over: retire them";
        case Kind::finish: return "every node's part is done: close the rotation to " + selector;
        case Kind::done:
            return "nothing in progress; " + listed +
                   " sign. Pass --selector to rotate again before the next period";
    }
    return "";
}

Expected<ClusterRotationStep, std::string> next_cluster_rotation_step(
    const std::vector<NodeKeys>& nodes, const std::vector<ClusterRotationPlan>& plans,
    const RotationRequest& request) {
    std::vector<const NodeKeys*> live;
    for (const auto& n : nodes) {
        if (!n.gone) {
            live.push_back(&n);
        }
    }
    // The kind: asked for, else the one whose rotation is under way, else the one that signs.
    std::string kind = kind_of(request.algorithm);
    if (kind.empty()) {
        for (const auto& p : plans) {
            if (p.phase != "done") {
                kind = p.kind;
            }
        }
    }
    if (kind.empty()) {
        std::vector<const KeyStatus*> active;
        for (const NodeKeys* n : live) {
            for (const auto& k : n->keys) {
                if (k.state == "active") {
                    active.push_back(&k);
                }
            }
        }
        auto only = the_one_kind(active, request.domain, " on any node");
        if (!only) {
            return unexpected(only.error());
        }
        kind = *only;
    }
    const ClusterRotationPlan* plan = nullptr;
    for (const auto& p : plans) {
        if (p.kind == kind) {
            plan = &p;
        }
    }
    const auto of_kind = [&kind](const KeyStatus& k) { return kind_of(k.algorithm) == kind; };
    ClusterRotationStep step;
    if (plan != nullptr && plan->phase != "done") {
        step.algorithm = plan->algorithm;
        step.selector = plan->selector;
        const auto new_key = [&](const NodeKeys& n) -> const KeyStatus* {
            const KeyStatus* k = find_key(n, cluster_selector(plan->selector, n.node));
            return k != nullptr && of_kind(*k) ? k : nullptr;
        };
        // The keys the node's activation replaced: retiring since the moment its new key
        // became active.
        const auto replaced = [&](const NodeKeys& n) {
            std::vector<KeyStatus> out;
            const KeyStatus* mine = new_key(n);
            if (mine == nullptr || mine->state != "active") {
                return out;
            }
            for (const auto& k : n.keys) {
                if (of_kind(k) && k.state == "retiring" && k.selector != mine->selector &&
                    k.retiring_since_ms == mine->activated_ms) {
                    out.push_back(k);
                }
            }
            return out;
        };
        // The nodes that take part: those with their key of the plan, or with a key of the
        // kind that signs.
        std::vector<const NodeKeys*> part;
        for (const NodeKeys* n : live) {
            if (new_key(*n) != nullptr ||
                std::any_of(n->keys.begin(), n->keys.end(), [&](const KeyStatus& k) {
                    return of_kind(k) && k.state == "active";
                })) {
                part.push_back(n);
            }
        }
        const auto is_checked = [&](const std::string& selector) {
            return std::find(plan->checked.begin(), plan->checked.end(), selector) !=
                   plan->checked.end();
        };
        if (plan->phase == "generate" || plan->phase == "activate") {
            std::vector<std::string> making;
            std::vector<std::string> switching;
            std::vector<std::pair<std::string, KeyStatus>> unchecked;
            std::vector<std::pair<std::string, KeyStatus>> old;
            for (const NodeKeys* n : part) {
                const KeyStatus* k = new_key(*n);
                if (k == nullptr || k->state == "generating") {
                    if (plan->phase == "generate") {
                        making.push_back(n->node);
                    }
                } else if (k->state == "pending-publish") {
                    if (plan->phase == "activate" && is_checked(k->selector)) {
                        switching.push_back(n->node);
                    } else {
                        unchecked.emplace_back(n->node, *k);
                    }
                } else {
                    for (const auto& r : replaced(*n)) {
                        old.emplace_back(n->node, r);
                    }
                }
            }
            if (!making.empty()) {
                step.kind = ClusterRotationStep::Kind::wait_for_nodes;
                step.nodes = making;
                step.waiting_for = "generate their keys";
                return step;
            }
            if (!unchecked.empty()) {
                step.kind = ClusterRotationStep::Kind::wait_for_publication;
                step.keys = unchecked;
                return step;
            }
            if (!switching.empty()) {
                step.kind = ClusterRotationStep::Kind::wait_for_nodes;
                step.nodes = switching;
                step.waiting_for = "switch to their new keys";
                return step;
            }
            std::int64_t grace_end = 0;
            for (const auto& [node, k] : old) {
                grace_end = std::max(grace_end, k.retire_after_ms);
            }
            step.keys = old;
            if (request.now_ms < grace_end) {
                step.kind = ClusterRotationStep::Kind::wait_for_grace;
                step.not_before_ms = grace_end;
                return step;
            }
            step.kind =
                old.empty() ? ClusterRotationStep::Kind::finish : ClusterRotationStep::Kind::retire;
            return step;
        }
        // retire
        for (const NodeKeys* n : part) {
            for (const auto& r : replaced(*n)) {
                step.nodes.push_back(n->node);
                step.keys.emplace_back(n->node, r);
                break;
            }
        }
        if (!step.nodes.empty()) {
            step.kind = ClusterRotationStep::Kind::wait_for_nodes;
            step.waiting_for = "retire their old keys";
            return step;
        }
        step.kind = ClusterRotationStep::Kind::finish;
        return step;
    }
    const bool finished = plan != nullptr;
    // Nothing under way: start, unless this period's rotation has just been done.
    std::string target = request.selector;
    if (!target.empty() && target.find("%n") == std::string::npos) {
        target += "-%n";
    }
    if (target.empty()) {
        auto formatted = format_selector(request.selector_format, request.now_ms, kind, true);
        if (!formatted) {
            return unexpected(formatted.error());
        }
        target = *formatted;
    }
    // Every node's selector must be one, and no two nodes' the same (names that differ only in
    // case, or in '.', '_' and '-').
    std::vector<std::string> taken;
    for (const auto& n : nodes) {
        const std::string mine = cluster_selector(target, n.node);
        if (!dns::is_key_selector(mine)) {
            return unexpected("the selector pattern " + target + " makes '" + mine + "' for node " +
                              n.node + ", which is not a valid selector");
        }
        if (std::find(taken.begin(), taken.end(), mine) != taken.end()) {
            return unexpected("the selector pattern " + target + " makes " + mine +
                              " for two nodes (their names differ only in case or in '.', '_', "
                              "'-'): rename one");
        }
        taken.push_back(mine);
    }
    std::vector<std::string> current;
    std::string algorithm = request.algorithm;
    for (const NodeKeys* n : live) {
        for (const auto& k : n->keys) {
            if (of_kind(k) && k.state == "active") {
                current.push_back(n->node);
                step.keys.emplace_back(n->node, k);
                if (algorithm.empty()) {
                    algorithm = k.algorithm;
                }
            }
        }
    }
    if (finished && (plan->selector == target ||
                     (request.selector.empty() &&
                      request.now_ms - plan->updated_ms < request.min_interval_ms))) {
        step.kind = ClusterRotationStep::Kind::done;
        return step;
    }
    for (const NodeKeys* n : live) {
        const std::string mine = cluster_selector(target, n->node);
        if (const KeyStatus* k = find_key(*n, mine); k != nullptr) {
            if (plan == nullptr && k->state == "active" && request.selector.empty()) {
                step.kind = ClusterRotationStep::Kind::done;  // made by hand, this period
                return step;
            }
            return unexpected("selector " + mine + " of " + request.domain +
                              " was used before on " + n->node + " (" + k->state +
                              "); choose another with --selector");
        }
    }
    if (current.empty()) {
        return unexpected(request.domain + " has no active " + kind +
                          " key on any node: there is nothing to rotate (key generate, then key "
                          "activate)");
    }
    step.keys.clear();
    step.kind = ClusterRotationStep::Kind::start;
    step.algorithm = algorithm;
    step.selector = target;
    step.nodes = current;
    return step;
}

}  // namespace dkim::provisioning

#include "dkim/provisioning/rotation.hpp"

#include <algorithm>
#include <ctime>

#include "dkim/dns/name.hpp"
#include "text.hpp"

namespace dkim::provisioning {

using detail::kind_of;
using detail::utc;
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
                                                   const std::string& kind) {
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
    // The kind that rotates.
    std::string kind = kind_of(request.algorithm);
    if (kind.empty()) {
        std::vector<std::string> kinds;
        for (const auto& k : keys) {
            const std::string kk = kind_of(k.algorithm);
            if ((k.state == "active" || k.state == "pending-publish" || k.state == "generating" ||
                 k.state == "retiring") &&
                std::find(kinds.begin(), kinds.end(), kk) == kinds.end()) {
                kinds.push_back(kk);
            }
        }
        if (kinds.empty()) {
            return unexpected(request.domain +
                              " has no active key: there is nothing to rotate "
                              "(key generate, then key activate)");
        }
        if (kinds.size() > 1) {
            return unexpected(request.domain +
                              " signs with an RSA and an Ed25519 key: rotate one at a time "
                              "(--algorithm)");
        }
        kind = kinds.front();
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

}  // namespace dkim::provisioning

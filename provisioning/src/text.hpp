#pragma once
// Internal to dkim_provisioning: small text helpers its sources share (one definition, so
// that unity builds see one).

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "dkim/dns/resolver.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::provisioning::detail {

// "rsa" or "ed25519" (the kind a domain has one active key of), "" otherwise.
inline std::string kind_of(std::string_view algorithm) {
    if (algorithm.rfind("rsa-", 0) == 0) {
        return "rsa";
    }
    return algorithm == "ed25519" ? "ed25519" : "";
}

inline std::string lower(std::string_view text) {
    return mail::ascii_lowercase(text);
}

// "the lookup failed: SERVFAIL" for an answer that failed.
inline std::string describe_failure(const dns::Answer& answer) {
    return answer.error.empty() ? "the lookup failed" : "the lookup failed: " + answer.error;
}

// "2026-11-30T10:00:00Z"
inline std::string utc(std::int64_t unix_ms) {
    const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char out[32];
    (void)std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

}  // namespace dkim::provisioning::detail

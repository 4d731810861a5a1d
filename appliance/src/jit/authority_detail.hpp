#pragma once
// Internal to dkim_jit: what the Authority's files (authority.cpp, authority_decisions.cpp,
// authority_grants.cpp) share.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include "dkim/jit/authority.hpp"

namespace dkim::jit::detail {

// The longest reason a request, a denial or a revoke may give.
inline constexpr std::size_t kMaxReason = 1000;

// The refusal when the audit log cannot be written: nothing was changed.
inline Unexpected<Refusal> unavailable(const std::string& why) {
    return refuse(Refusal::Code::unavailable,
                  "the audit log cannot be written, nothing was changed: " + why);
}

// How the actor's second factor was proven, appended to a decision's audit detail ("; factor=...").
inline std::string factor_note(const Actor& actor) {
    return actor.factor.empty() ? std::string() : "; " + actor.factor;
}

// One line of printable text: no control characters.
inline bool printable(std::string_view text) {
    return std::none_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

}  // namespace dkim::jit::detail

#pragma once
// How both stores (SQLite, PostgreSQL) write the values that a column holds as text, and read
// them back: failure times, operations, request states, the PIN share set's holders.

#include <algorithm>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include "dkim/jit/model.hpp"

namespace dkim::jit::detail {

// More than the directory keeps (Directory::kMaxFailures): a row edited by hand stays bounded.
constexpr std::size_t kMaxStoredFailureTimes = 16;

// Failure times as stored in login_failures.recent: unix ms, oldest first, space-separated.
inline std::string failure_times_text(const std::vector<TimePoint>& times) {
    std::string out;
    for (const TimePoint t : times) {
        out += (out.empty() ? "" : " ") + std::to_string(to_unix_ms(t));
    }
    return out;
}

// At most `limit` of them, the last ones; anything that is not a number is skipped.
inline std::vector<TimePoint> failure_times_from(const std::string& text, std::size_t limit) {
    std::vector<TimePoint> out;
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t end = std::min(text.find(' ', at), text.size());
        const std::string word = text.substr(at, end - at);
        at = end + 1;
        if (word.empty() || word.size() > 18 ||
            !std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            continue;
        }
        out.push_back(from_unix_ms(std::stoll(word)));
        if (out.size() > limit) {
            out.erase(out.begin());
        }
    }
    return out;
}

inline Operation operation_from(const std::string& text) {
    return parse_operation(text).value_or(Operation::admin);
}

inline RequestState request_state_from(const std::string& text) {
    for (RequestState s :
         {RequestState::pending, RequestState::approved, RequestState::denied,
          RequestState::cancelled, RequestState::expired, RequestState::superseded}) {
        if (to_string(s) == text) {
            return s;
        }
    }
    return RequestState::cancelled;  // unknown: never pending, never approved
}

// The share set's holders, one "custodian index commitment" line each.
inline std::string share_holders_text(const PinShareSet& set) {
    std::string holders;
    for (const PinShareHolder& h : set.holders) {
        holders += h.custodian + ' ' + std::to_string(h.index) + ' ' + h.commitment + '\n';
    }
    return holders;
}

inline std::vector<PinShareHolder> share_holders_from(const std::string& text) {
    std::vector<PinShareHolder> out;
    std::istringstream lines(text);
    PinShareHolder h;
    while (lines >> h.custodian >> h.index >> h.commitment) {
        out.push_back(h);
    }
    return out;
}

}  // namespace dkim::jit::detail

#include "dkim/jit/challenges.hpp"

#include <sodium.h>

#include <algorithm>
#include <vector>

#include "dkim/crypto/sha256.hpp"
#include "dkim/text/json.hpp"

namespace dkim::jit {

std::string decision_statement(const DecisionSubject& subject) {
    std::string out = "dkim-appliance decision v1\n";
    out += "action=" + subject.action + "\n";
    out += "id=" + std::to_string(subject.id) + "\n";
    out += "scope=" + subject.scope + "\n";
    out += "duration=" + std::to_string(subject.duration_seconds) + "\n";
    out += "budget=" + (subject.budget ? std::to_string(*subject.budget) : std::string("-")) + "\n";
    out += "reason=" + text::json_quote(subject.reason) + "\n";
    out += "actor=" + subject.actor + "\n";
    out += "target=" + subject.target + "\n";
    return out;
}

std::array<std::uint8_t, 32> decision_digest(const DecisionSubject& subject) {
    return crypto::Sha256::hash(decision_statement(subject));
}

void ChallengeBook::forget_expired(State& state, TimePoint now) {
    for (auto it = state.entries.begin(); it != state.entries.end();) {
        it = now >= it->second.expires ? state.entries.erase(it) : std::next(it);
    }
}

std::string ChallengeBook::issue(Purpose purpose, const std::string& user,
                                 const std::array<std::uint8_t, 32>& digest, TimePoint now) {
    std::string challenge(16, '\0');
    randombytes_buf(challenge.data(), challenge.size());
    if (purpose == Purpose::decision) {
        challenge.append(reinterpret_cast<const char*>(digest.data()), digest.size());
    }
    auto state = state_.lock();
    forget_expired(*state, now);
    // The oldest of this user's (or, for logins, of the anonymous pool's) challenges goes first
    // when there are too many; then the oldest of all when the book is full.
    const auto oldest = [&state](auto&& keep) {
        auto found = state->entries.end();
        std::size_t count = 0;
        for (auto it = state->entries.begin(); it != state->entries.end(); ++it) {
            if (keep(it->second)) {
                ++count;
                if (found == state->entries.end() || it->second.expires < found->second.expires) {
                    found = it;
                }
            }
        }
        return std::make_pair(found, count);
    };
    const std::size_t limit = user.empty() ? kMaxAnonymous : kMaxPerUser;
    if (auto [it, count] = oldest([&user](const Entry& e) { return e.user == user; });
        count >= limit) {
        state->entries.erase(it);
    }
    if (state->entries.size() >= kMaxEntries) {
        state->entries.erase(oldest([](const Entry&) { return true; }).first);
    }
    state->entries[challenge] =
        Entry{purpose, user, purpose == Purpose::decision ? digest : std::array<std::uint8_t, 32>{},
              now + kLifetime};
    return challenge;
}

std::optional<ChallengeBook::Entry> ChallengeBook::take(std::string_view challenge, TimePoint now) {
    auto state = state_.lock();
    const auto it = state->entries.find(std::string(challenge));
    if (it == state->entries.end()) {
        return std::nullopt;
    }
    Entry entry = it->second;
    state->entries.erase(it);
    if (now >= entry.expires) {
        return std::nullopt;
    }
    return entry;
}

std::size_t ChallengeBook::size() const {
    return state_.read_only_lock()->entries.size();
}

}  // namespace dkim::jit

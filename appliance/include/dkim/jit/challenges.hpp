#pragma once
// The WebAuthn challenges signerd hands out, each bound to what it may be used for, and each
// usable once within a short time.
//
// A decision's challenge commits to the decision itself: it is 16 random bytes followed by the
// SHA-256 of the decision's statement (decision_statement below: the action, the request or
// grant, its scope, duration and budget, the reason, and who decides). The authenticator signs
// clientDataJSON, which holds the challenge, so a valid assertion says "this approver approved
// exactly this" and nothing else: signerd rebuilds the statement from the decision it is asked
// to make and from its own store, and refuses unless its hash is the one inside the challenge it
// issued, to this user, not yet used and not expired. An auditor can do the same later from the
// decision's audit record, which holds the challenge and the assertion (see Directory).

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/clock.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::jit {

// What a decision is, in the words its challenge commits to.
struct DecisionSubject {
    std::string action;   // "approve", "deny", "revoke", "break_glass", "passkey.remove"
    std::int64_t id = 0;  // the request (approve, deny), the grant (revoke); 0 for break_glass
    std::string scope;    // Scope::to_string()
    std::int64_t duration_seconds = 0;
    std::optional<std::uint64_t> budget;
    std::string reason;  // deny, revoke, break_glass: the reason given; else empty
    std::string actor;   // the user deciding
    std::string target;  // passkey.remove: the credential id (base64url); else empty
};
// "dkim-appliance decision v1\naction=approve\nid=7\nscope=sign example.com/s1 for *\n
// duration=3600\nbudget=-\nreason=\"...\"\nactor=bob\ntarget=\n": one line per field, the reason
// JSON-quoted (so no field can run into the next).
std::string decision_statement(const DecisionSubject& subject);
// SHA-256 of decision_statement(subject).
std::array<std::uint8_t, 32> decision_digest(const DecisionSubject& subject);

// An auditor's check of the decisions made with a passkey, from the audit log alone: each record
// whose detail says factor=webauthn carries the assertion, the challenge, the statement and the
// rpId (SecondFactors::check writes them); its credential's public key is on the log since its
// passkey.register record. A decision checks when the statement's SHA-256 is the challenge's
// last 32 bytes, the statement names the record's action, id and actor, and the assertion
// verifies (webauthn::verify_assertion: clientDataJSON's challenge, the rpId hash, UP, the
// signature). A record that claims a passkey and does not check is a forged approval (a
// database writer cannot make an assertion without the approver's authenticator).
struct PasskeyDecisionReport {
    std::int64_t checked = 0;    // decisions whose assertion verified
    std::int64_t first_bad = 0;  // the seq of the first that did not (0: none)
    std::string problem;
};
struct AuditRecord;
PasskeyDecisionReport check_passkey_decisions(const std::vector<AuditRecord>& records);

class ChallengeBook {
  public:
    enum class Purpose : std::uint8_t { registration, login, decision };
    struct Entry {
        Purpose purpose = Purpose::decision;
        std::string user;  // registration, decision: the user it was issued to; login: empty
        std::array<std::uint8_t, 32> digest{};  // decision: decision_digest; else zero
        TimePoint expires;
    };

    static constexpr Duration kLifetime = std::chrono::minutes(5);
    // Bounds: a flood of requests (a compromised webd asking for challenges) costs a bounded
    // amount of memory; the oldest challenges go first.
    static constexpr std::size_t kMaxEntries = 4096;
    static constexpr std::size_t kMaxPerUser = 16;
    // Login challenges belong to nobody yet: they share a pool of their own, so that a flood of
    // them pushes out only other login challenges (never an approver's decision challenge), and
    // must outpace this many logins within a ceremony's seconds to push out a real one.
    static constexpr std::size_t kMaxAnonymous = 2048;

    // 16 random bytes (registration, login) or 16 random bytes and the digest (decision).
    std::string issue(Purpose purpose, const std::string& user,
                      const std::array<std::uint8_t, 32>& digest, TimePoint now);
    // The entry of `challenge`, removed (whether the caller then accepts the assertion or not: a
    // challenge is tried once), or none when it was never issued, was used, or expired.
    std::optional<Entry> take(std::string_view challenge, TimePoint now);
    std::size_t size() const;

  private:
    struct State {
        std::map<std::string, Entry> entries;  // by challenge
    };
    static void forget_expired(State& state, TimePoint now);
    LockGuarded<State> state_;
};

}  // namespace dkim::jit

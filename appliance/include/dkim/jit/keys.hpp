#pragma once
// The lifecycle of the DKIM keys in the token, as signerd records it (issue: provisioning).
//
//   generating ──▶ pending-publish ──activate──▶ active ──(a newer key of the same kind
//   (intent,         (in the token,                        is activated)──▶ retiring
//    durable before   its record not yet                                      │ grace period
//    the token is     published / checked)                                   ▼
//    touched)                                                   retire ──▶ retired (private
//                                                                          half destroyed)
//
// Each transition is one durable commit (the record and the audit records describing it
// together), ordered against the token operation so that a crash at any point leaves a
// state from which rerunning the same step finishes it: the intent is recorded before the
// token generates a key, and a retirement is recorded before the private half is destroyed.
//
// A key in the token that has no record is "unmanaged": made before this lifecycle existed,
// or offline with the PIN. It signs like an active key, and the first activation of a newer
// key of its kind moves it to retiring like any other.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/clock.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::jit {

enum class KeyState : std::uint8_t { generating, pending_publish, active, retiring, retired };
inline constexpr KeyState kKeyStates[] = {KeyState::generating, KeyState::pending_publish,
                                          KeyState::active, KeyState::retiring, KeyState::retired};
std::string_view to_string(KeyState state) noexcept;  // "pending-publish", ...
std::optional<KeyState> parse_key_state(std::string_view text) noexcept;

struct KeyRecord {
    std::string domain;     // lower case
    std::string selector;   // lower case
    std::string algorithm;  // "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"
    KeyState state = KeyState::generating;
    std::string origin;  // "generated", "imported", "adopted" (was unmanaged)
    TimePoint created;
    std::optional<TimePoint> activated;
    std::optional<TimePoint> retiring_since;
    std::optional<TimePoint> retire_after;  // end of the grace period
    std::optional<TimePoint> retired;
    std::string dkim_record;  // "v=DKIM1; k=...; p=...", kept after the key is destroyed

    // Active and retiring keys sign (a relay may still hold the old selector for a moment).
    bool signs() const { return state == KeyState::active || state == KeyState::retiring; }
    // "rsa" or "ed25519": a domain has at most one active key of each kind.
    std::string kind() const;
    std::string label() const { return selector + "._domainkey." + domain; }
    bool operator==(const KeyRecord&) const = default;
};

// "rsa" for "rsa-2048" etc., "ed25519" for "ed25519", "" otherwise.
std::string key_kind(std::string_view algorithm);

// The records in memory: read by every signature, changed only after a durable commit.
class KeyRegistry {
  public:
    explicit KeyRegistry(std::vector<KeyRecord> records = {});

    std::optional<KeyRecord> find(std::string_view domain, std::string_view selector) const;
    std::vector<KeyRecord> all() const;
    std::vector<KeyRecord> of_domain(std::string_view domain) const;
    // After the commit that made `record` durable.
    void put(const KeyRecord& record);
    // All of them, as stored (a cluster node reloading its state).
    void reload(std::vector<KeyRecord> records);

  private:
    LockGuarded<std::vector<KeyRecord>> records_;  // sorted by domain, selector
};

}  // namespace dkim::jit

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

// A rotation of one kind of a domain's keys across the nodes of a cluster (shared state, one per
// domain and kind). The operator's CLI moves its phase on, on what every node reports and what
// DNS publishes; each node's signerd carries out its own part in its own token, under the
// requester's grants (rotation_follower):
//   generate  each node that signs with a key of this kind makes its next one (key.rotate),
//   activate  every node's new record is published: each switches to its new key (key.rotate),
//   retire    the grace period is over: each destroys the key its activation replaced
//             (key.retire),
//   done      every part is done: the nodes do nothing more for it.
// A node activates only a key whose record the CLI found published (`checked`).
// A node's new selector is `selector` with "%n" replaced by the node's name
// (provisioning::cluster_selector).
struct ClusterRotation {
    enum class Phase : std::uint8_t { generate, activate, retire, done };
    std::string domain;
    std::string kind;       // "rsa", "ed25519"
    std::string algorithm;  // the new keys'
    std::string selector;   // the pattern, with "%n"
    std::int64_t grace_s = 0;
    Phase phase = Phase::generate;
    std::string requested_by;  // the user whose grants the nodes' steps run under
    std::string checked;       // the nodes' selectors found published, space-separated
    TimePoint started;
    TimePoint updated;
    bool operator==(const ClusterRotation&) const = default;
};
std::string_view to_string(ClusterRotation::Phase phase) noexcept;  // "generate", ...
std::optional<ClusterRotation::Phase> parse_rotation_phase(std::string_view text) noexcept;

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

    // The cluster's rotations (a single appliance has none).
    std::vector<ClusterRotation> rotations() const;
    void put(const ClusterRotation& rotation);
    void reload_rotations(std::vector<ClusterRotation> rotations);

  private:
    LockGuarded<std::vector<KeyRecord>> records_;  // sorted by domain, selector
    LockGuarded<std::vector<ClusterRotation>> rotations_;
};

}  // namespace dkim::jit

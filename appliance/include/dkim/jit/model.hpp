#pragma once
// The JIT elevation model (ARCHITECTURE.md, "JIT elevation model"): who may ask for what,
// requests and their approvals, and the grants that unlock the token.
//
//   request ──▶ pending ──quorum of distinct approvers, not the requester──▶ approved ─▶ grant
//                  │  (or an auto-approval rule, or break-glass by an admin)      active
//                  ├──▶ denied (with a reason)                                      │
//                  ├──▶ cancelled (by the requester)                                ▼
//                  ├──▶ expired (nobody decided in time)      expired / exhausted / revoked
//                  └──▶ superseded (an active grant covers its whole scope: see
//                       Authority::covers; closed when that grant becomes active)
//
// Renewal: as an active grant nears its end (policy renew_before), signerd files a request with
// its scope that `renews` it. Approved while the old grant is active, its grant is scheduled:
// it starts at the instant the old one expires, so signing never pauses.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/clock.hpp"

namespace dkim::jit {

enum class Operation : std::uint8_t { sign, key_generate, key_rotate, key_retire, admin };
inline constexpr Operation kOperations[] = {Operation::sign, Operation::key_generate,
                                            Operation::key_rotate, Operation::key_retire,
                                            Operation::admin};
std::string_view to_string(Operation op) noexcept;  // "sign", "key.generate", ...
std::optional<Operation> parse_operation(std::string_view text) noexcept;

enum class Role : std::uint8_t { requester = 1, approver = 2, admin = 4, auditor = 8 };
inline constexpr Role kRoles[] = {Role::requester, Role::approver, Role::admin, Role::auditor};
std::string_view to_string(Role role) noexcept;
std::optional<Role> parse_role(std::string_view text) noexcept;
using RoleSet = std::uint8_t;
inline bool has_role(RoleSet set, Role role) {
    return (set & static_cast<RoleSet>(role)) != 0;
}
std::string roles_to_string(RoleSet set);                   // "approver,requester"
std::optional<RoleSet> parse_roles(std::string_view text);  // comma-separated

// What an elevation unlocks. domain and selector are lower case; selector "*" is any
// selector of the domain; domain "*" only for operation admin. client names the service
// identity (relay client) that may sign under a sign grant; "*" is any of them.
struct Scope {
    Operation operation = Operation::sign;
    std::string domain;
    std::string selector = "*";
    std::string client = "*";

    bool covers(Operation op, std::string_view d, std::string_view s, std::string_view c) const;
    // Whether this scope covers all of `inner` (as validate_scope leaves it): every signature
    // or operation `inner` would allow, this one allows. A "*" in `inner` is covered only by a
    // "*" here: a grant for one selector does not cover a request for all of them.
    bool covers(const Scope& inner) const;
    // "sign example.com/s1 for relay", "admin *"
    std::string to_string() const;
    bool operator==(const Scope&) const = default;
};

// Checks a scope as a request may carry it: valid domain and selector names (or "*" where
// allowed). Returns the normalised (lower-cased) scope or a message.
std::optional<std::string> validate_scope(Scope& scope);

struct User {
    std::string name;
    RoleSet roles = 0;
    std::string password_hash;  // Argon2id, libsodium's encoded string; empty: no password
    std::string totp_secret;    // raw bytes; empty: not enrolled
    bool totp_confirmed = false;
    std::int64_t totp_last_step = 0;  // the last accepted time step (no replay)
    bool disabled = false;
    TimePoint created;
};

// A WebAuthn credential (passkey) of a user, registered through the console and checked by
// signerd (dkim/jit/webauthn.hpp). The private key never leaves the user's authenticator; signerd
// keeps the public key and the signature counter. removed: the record that deletes it.
struct Passkey {
    std::string credential_id;  // raw bytes, unique across users
    std::string user;
    std::string name;        // the user's label for it ("YubiKey 5C", "laptop")
    std::string public_key;  // COSE_Key bytes
    std::string algorithm;   // "ES256", "Ed25519", "RS256"
    std::uint32_t sign_count = 0;
    bool backup_eligible = false;  // a synced passkey (its counter may stay zero)
    // A user's first passkey, registered through the console with a TOTP code that dkim-webd
    // saw, counts only once the local operator or an admin under an admin grant confirmed it at
    // the CLI (like a first TOTP, which only the CLI enrols); later ones are confirmed by the
    // consent of one the user has.
    bool confirmed = true;
    TimePoint created;
    std::optional<TimePoint> last_used;
    bool removed = false;
};

// The token PIN split M of N among custodians (PIN custody "shares", dkim/custody/shares.hpp):
// who holds which share, and a commitment to each, never a share. One set at a time: a new split
// replaces it.
struct PinShareHolder {
    std::string custodian;  // a user name
    std::uint32_t index = 0;
    std::string commitment;  // custody::share_commitment, hex
};
struct PinShareSet {
    std::string set_id;
    std::uint32_t threshold = 0;
    std::vector<PinShareHolder> holders;  // by index
    TimePoint created;
    std::string created_by;
};

enum class TokenKind : std::uint8_t { api, session };
struct ApiToken {
    std::int64_t id = 0;
    std::string user;
    TokenKind kind = TokenKind::api;
    std::string label;
    std::string hash;  // SHA-256 of the token, raw bytes
    TimePoint created;
    std::optional<TimePoint> expires;
    bool revoked = false;
};

// superseded: closed by signerd because an active grant covers the request's whole scope (for
// operations other than sign, a grant of the same requester); terminal, like the others.
enum class RequestState : std::uint8_t {
    pending,
    approved,
    denied,
    cancelled,
    expired,
    superseded
};
std::string_view to_string(RequestState state) noexcept;

struct Approval {
    std::string approver;
    TimePoint at;
};

struct Request {
    std::int64_t id = 0;
    std::string requester;
    Scope scope;
    Duration duration{0};
    std::optional<std::uint64_t> budget;  // number of signatures; none: unlimited
    std::string reason;
    TimePoint created;
    TimePoint pending_until;  // an undecided request expires here
    RequestState state = RequestState::pending;
    std::vector<Approval> approvals;
    std::string decided_by;  // the denier, canceller, auto-approval rule, or "break-glass"
    std::string decision_reason;
    std::optional<TimePoint> decided_at;
    bool break_glass = false;
    bool filed_by_signer = false;    // filed by signerd for a locked signature
    std::int64_t superseded_by = 0;  // superseded: the grant that covered it
    std::int64_t renews = 0;         // a renewal: the grant it renews (0: not a renewal)

    RequestState state_at(TimePoint now) const {
        return state == RequestState::pending && now >= pending_until ? RequestState::expired
                                                                      : state;
    }
};

// scheduled: approved, but its start is still ahead (a renewal that follows the grant it
// renews); it authorises nothing until then.
enum class GrantState : std::uint8_t { active, expired, exhausted, revoked, scheduled };
std::string_view to_string(GrantState state) noexcept;

struct Grant {
    std::int64_t id = 0;
    std::int64_t request_id = 0;
    std::string holder;  // the requester
    Scope scope;
    TimePoint starts;
    TimePoint expires;
    std::optional<std::uint64_t> budget;
    std::uint64_t uses = 0;
    std::optional<TimePoint> revoked_at;
    std::string revoked_by;
    std::string revoke_reason;
    bool break_glass = false;
    bool end_recorded = false;  // the audit log holds the record of its end
    // When the use that spent its budget was given (none: not exhausted, or exhausted before
    // signerd kept the time).
    std::optional<TimePoint> exhausted_at;

    // The one place that decides whether a grant is in force.
    GrantState state_at(TimePoint now) const {
        if (revoked_at) {
            return GrantState::revoked;
        }
        if (budget && uses >= *budget) {
            return GrantState::exhausted;
        }
        if (now < starts) {
            return GrantState::scheduled;
        }
        return now < expires ? GrantState::active : GrantState::expired;
    }
    // Whether it may still be in force at or after `now`: active, or scheduled to be.
    bool pending_or_active_at(TimePoint now) const {
        const GrantState s = state_at(now);
        return s == GrantState::active || s == GrantState::scheduled;
    }
    bool active_at(TimePoint now) const { return state_at(now) == GrantState::active; }
    // When it ends or ended: its expiry, or its revocation or the spending of its budget when
    // earlier (an exhausted grant without exhausted_at: its expiry, the latest it can be). A
    // scheduled grant revoked before its start ends before it starts: it was never in force.
    TimePoint ends() const {
        TimePoint end = expires;
        for (const auto& t : {revoked_at, exhausted_at}) {
            if (t && *t < end) {
                end = *t;
            }
        }
        return end;
    }
};

}  // namespace dkim::jit

#pragma once
// The grant state machine: elevation requests, approvals, denials, cancellations, revokes,
// and the check made for every signature. It enforces the promise of the product: no
// signature outside an active, approved, unexpired grant that covers it, and every decision
// on the audit log before it takes effect.
//
// All state lives in memory inside one LockGuarded and is written through the Journal: a
// decision holds the lock while its record becomes durable, and only then changes the state (so
// a decision the log cannot hold never happens). A signature is authorized under the lock,
// which spends one use of the grant's budget atomically, and its record is written after
// the token has signed; the caller releases the signature only when that write succeeded.
//
// Time is always a parameter: expiry is decided by comparing with `now` on every call,
// never by a cleanup job. sweep() only writes the informational records of grants and
// requests that ended by time.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dkim/jit/journal.hpp"
#include "dkim/jit/model.hpp"
#include "dkim/jit/policy.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::jit {

// Who is asking: an authenticated user, a relay client (service), or the local operator
// (root on the appliance, through the CLI's socket).
struct Actor {
    enum class Kind : std::uint8_t { user, service, local };
    Kind kind = Kind::user;
    std::string name;  // user name; service name; local user name
    RoleSet roles = 0;
    // How this call's second factor was proven, for the audit record of the decision it makes:
    // "factor=totp", or "factor=webauthn; credential=...; challenge_sha256=...; ..." (signerd's
    // elevation handlers set it after checking the factor). Empty: none was asked for.
    std::string factor{};
    // Set when signerd acts for the user by itself (a cluster's rotation): said in the detail
    // of the records of what it does.
    std::string via{};

    // "alice", "service:relay", "local:root": how the audit log names the actor.
    std::string audit_name() const;
};

struct Refusal {
    enum class Code : std::uint8_t {
        invalid,      // malformed or out-of-policy input
        forbidden,    // the actor may not do this
        not_found,    // no such request or grant
        conflict,     // not in a state that allows it (already decided, ended)
        unavailable,  // the audit log or store cannot be written: fail closed
        unauthenticated,
    };
    Code code = Code::invalid;
    std::string message;
    // For forbidden: which rule refused, in words an API client can switch on: "role",
    // "self_approval", "duplicate_approver", "quorum_met", "no_grant", "owner". Else empty.
    std::string rule;
};
std::string_view to_string(Refusal::Code code) noexcept;
inline Unexpected<Refusal> refuse(Refusal::Code code, std::string message, std::string rule = {}) {
    return unexpected(Refusal{code, std::move(message), std::move(rule)});
}

template <class T>
using Outcome = Expected<T, Refusal>;

struct RequestInput {
    Scope scope;
    Duration duration{0};
    std::optional<std::uint64_t> budget;
    std::string reason;
    bool break_glass = false;
};

struct Decision {
    Request request;
    std::optional<Grant> grant;  // the grant this decision made active, if any
    // The pending requests that grant covers, closed as superseded by it in the same durable
    // write (each with its record).
    std::vector<Request> superseded;
};

// What the daemon tells webhook subscribers and logs; never an approval channel.
struct Event {
    std::string type;  // "request.pending", "request.approved", "request.denied",
                       // "request.expired", "request.superseded" (grant_id: the grant
                       // that covers it), "grant.revoked", "grant.expired",
                       // "grant.exhausted", "break_glass", "request.renewal" (grant_id:
                       // the grant it renews, nearing its end)
    std::int64_t request_id = 0;
    std::int64_t grant_id = 0;
    std::string scope;
    std::string actor;
    std::string reason;
    TimePoint time;
};

// The outcome of authorize_sign().
struct SignPermit {
    std::int64_t grant_id = 0;
    std::uint64_t use = 0;  // this signature's use number (1-based)
    bool last_use = false;  // the grant's budget is spent with this one
    Scope scope;            // the grant's
    // The key it signs with (the grant's selector may be *): what the signing summary counts.
    std::string domain;
    std::string selector;
    TimePoint given;  // when: with last_use, when the grant's budget was spent
};

// The key a refused sign request named, when the signing summary counts the refusal: its names
// are valid and signerd knows the key (store.hpp, SigningTally).
struct CountedKey {
    std::string domain;
    std::string selector;
};

// A sign grant as the signing summary shows it: from its start to its end (Grant::ends: its
// expiry, or its revocation or the spending of its budget when earlier).
struct GrantInterval {
    std::int64_t grant_id = 0;
    std::string domain;
    std::string selector;  // or "*": every selector of the domain
    TimePoint start;
    TimePoint end;
};
struct SignRefusal {
    enum class Kind : std::uint8_t { locked, unavailable } kind = Kind::locked;
    std::int64_t request_id = 0;  // locked: the pending request filed or reused
    std::string message;
};

class Authority {
  public:
    Authority(Journal& journal, Policy policy, const StoredState& state);
    Authority(const Authority&) = delete;
    Authority& operator=(const Authority&) = delete;
    // Replaces the requests and grants with the stored ones (a cluster node whose store another
    // node changed). The event listener stays.
    void reload(const StoredState& state);

    // A request (other than break-glass) whose whole scope an active grant covers already is
    // refused (conflict, naming the grant): there is nothing to approve while it lasts.
    Outcome<Decision> request(const Actor& actor, RequestInput input, TimePoint now);
    // The checks approve() (approving) or deny() would make, without deciding: so that a
    // hopeless decision is refused before the approver's TOTP code is spent.
    Outcome<void> may_decide(const Actor& actor, std::int64_t request_id, bool approving,
                             TimePoint now) const;
    Outcome<Decision> approve(const Actor& actor, std::int64_t request_id, TimePoint now);
    Outcome<Decision> deny(const Actor& actor, std::int64_t request_id, const std::string& reason,
                           TimePoint now);
    Outcome<Decision> cancel(const Actor& actor, std::int64_t request_id, TimePoint now);
    Outcome<Grant> revoke(const Actor& actor, std::int64_t grant_id, const std::string& reason,
                          TimePoint now);

    // The check made for every signature: an active grant for (sign, domain, selector,
    // client) at `now`, with budget left. Spends one use. Without one, files a pending request
    // for the scope (or reuses the one already pending) so approvers see it, and records the
    // refusal.
    Expected<SignPermit, SignRefusal> authorize_sign(const std::string& client,
                                                     const std::string& domain,
                                                     const std::string& selector, TimePoint now);
    // Starts the durable write of the record of a signature under `permit` (write-ahead: the
    // caller signs with the token meanwhile and releases the signature only when the ticket's
    // wait() succeeds). The record's outcome is "issued", and it counts one signature in the
    // signing summary in the same commit; if the token then fails, the caller adds a record
    // with outcome "failed" for the same use (record_signature), which takes it back.
    std::shared_ptr<Journal::Ticket> begin_signature(const SignPermit& permit,
                                                     const std::string& client,
                                                     const std::string& detail, TimePoint now);
    // The same, synchronous, with any outcome: "issued" counts one signature; "failed" takes
    // back the one its "issued" record counted, in the hour of `issued_at` (the time the
    // journal gave that record; none: it was never durable, nothing was counted).
    Expected<void, std::string> record_signature(const SignPermit& permit,
                                                 const std::string& client,
                                                 const std::string& outcome,
                                                 const std::string& detail, TimePoint now,
                                                 std::optional<TimePoint> issued_at = {});
    // A refusal that happened before authorize_sign (the request itself was wrong); counted in
    // the signing summary under `counted`, if given.
    Expected<void, std::string> record_sign_refusal(const std::string& client,
                                                    const std::string& scope,
                                                    const std::string& reason,
                                                    const std::optional<CountedKey>& counted,
                                                    TimePoint now);

    // For key.generate / key.rotate / key.retire / admin: the actor must hold an active
    // grant covering the operation. Spends one use.
    Outcome<Grant> authorize_operation(const Actor& actor, Operation op, const std::string& domain,
                                       const std::string& selector, TimePoint now);

    bool any_active(TimePoint now) const;
    std::size_t active_count(TimePoint now) const;
    // The earliest time something ends or begins by itself (a grant expires, a scheduled grant
    // starts, a grant is due to file its renewal, a pending request times out), after `now`.
    std::optional<TimePoint> next_deadline(TimePoint now) const;
    // Records what ended by time or budget since the last sweep; returns the events. Also
    // closes, as superseded, a pending request that an active grant covers (a grant supersedes
    // them as it becomes active; here: a scheduled grant that has started, or what a store
    // written before signerd did so holds), and files the renewal requests that are due.
    //
    // Renewal: an active grant, not break-glass, whose operation's policy has renew_before, at
    // (expires - lead) files once a request that `renews` it: the holder's, with its scope,
    // the original request's duration (within the policy's cap) and budget, pending until the
    // grant's expiry plus the policy's pending_expiry (a late approval still restores signing).
    // Approved while the grant is active, its grant starts exactly as the old one expires
    // (scheduled until then); later, at once. Revoking the old grant closes its pending
    // renewal and revokes its scheduled one.
    std::vector<Event> sweep(TimePoint now);

    // What a request asks for, as covers() compares it with a grant.
    struct Asked {
        const Scope& scope;
        const std::string& requester;
        Duration duration;
        std::optional<std::uint64_t> budget;  // none: no limit
        bool filed_by_signer = false;
    };
    // Whether `grant` authorises, at `now`, everything a request would: it is active, its
    // scope covers the request's whole scope (Scope::covers, the test authorize_sign makes),
    // for operations other than sign it is the requester's own (authorize_operation serves the
    // holder only), and (unless signerd filed the request for a locked signature, which it
    // files again when the grant ends) it lasts at least as long as the request asks and has
    // at least as many uses left: a short or small grant, which anyone whose request an
    // auto-approval rule takes may hold and revoke at once, closes nobody's longer request.
    // Such a request is superseded.
    static bool covers(const Grant& grant, const Asked& asked, TimePoint now);

    std::vector<Request> requests() const;
    std::optional<Request> find_request(std::int64_t id) const;
    std::optional<Grant> find_grant(std::int64_t id) const;
    std::vector<Grant> grants() const;
    // The sign grants of `domain` (every domain when empty) whose interval overlaps
    // [from, until), by id: for the signing summary.
    std::vector<GrantInterval> sign_grant_intervals(const std::string& domain, TimePoint from,
                                                    TimePoint until) const;

    const Policy& policy() const { return policy_; }
    void on_event(std::function<void(const Event&)> listener);

    // Pending requests one requester (a user, or "service:<relay>") may have at once; more
    // are refused (the relay's sign is then locked without filing one).
    static constexpr std::size_t kMaxPendingPerRequester = 16;

  private:
    // Everything the lock guards. The functions below that take a State are called with it
    // locked (they are handed the locked value).
    struct State {
        std::map<std::int64_t, Request> requests;
        std::map<std::int64_t, Grant> grants;
        std::int64_t next_request_id = 1;
        std::int64_t next_grant_id = 1;
        std::function<void(const Event&)> listener;
    };

    static std::size_t pending_from(const State& state, const std::string& requester,
                                    TimePoint now);
    static Outcome<Request> pending_request(const State& state, std::int64_t request_id,
                                            TimePoint now);
    Outcome<Request> decidable_request(const State& state, const Actor& actor,
                                       std::int64_t request_id, bool approving,
                                       TimePoint now) const;
    Outcome<Decision> commit_decision(State& state, Request request, std::optional<Grant> grant,
                                      std::vector<AuditRecord> records,
                                      std::vector<Request> superseded = {});
    static const Grant* covering_grant(const State& state, const Asked& asked, TimePoint now);
    // Whether `grant` supersedes the pending request `r`: covers(), and for a renewal, see
    // authority.cpp.
    static bool supersedes(const State& state, const Grant& grant, const Request& r, TimePoint now);
    // When `g` files its renewal request, if it still has to (none: it has one already, is
    // break-glass or not active, or its operation's policy renews nothing).
    std::optional<TimePoint> renewal_due(const State& state, const Grant& g, TimePoint now) const;
    // The renewal request of `g`, filed at `now`, with its record and event.
    Request renewal_of(const State& state, const Grant& g, std::int64_t id, TimePoint now,
                       std::vector<AuditRecord>& records, std::vector<Event>& events) const;
    std::vector<Request> supersede_covered(const State& state, const Grant& grant,
                                           std::int64_t except, TimePoint now,
                                           std::vector<AuditRecord>& records,
                                           std::vector<Event>& events) const;
    Request superseded_copy(const Request& request, const Grant& grant, TimePoint now,
                            std::vector<AuditRecord>& records, std::vector<Event>& events) const;
    AuditRecord record(TimePoint now, const std::string& actor, std::string action,
                       const Scope& scope, std::string outcome, std::string reason,
                       std::int64_t request_id, std::int64_t grant_id) const;
    static Grant make_grant(const State& state, const Request& request, TimePoint now);
    void emit(const std::vector<Event>& events);

    Journal& journal_;
    Policy policy_;
    LockGuarded<State> state_;
};

}  // namespace dkim::jit

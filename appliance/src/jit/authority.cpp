#include "dkim/jit/authority.hpp"

#include <algorithm>

namespace dkim::jit {

std::string Actor::audit_name() const {
    switch (kind) {
        case Kind::user: return name;
        case Kind::service: return "service:" + name;
        case Kind::local: return "local:" + name;
    }
    return name;
}

std::string_view to_string(Refusal::Code code) noexcept {
    switch (code) {
        case Refusal::Code::invalid: return "invalid";
        case Refusal::Code::forbidden: return "forbidden";
        case Refusal::Code::not_found: return "not_found";
        case Refusal::Code::conflict: return "conflict";
        case Refusal::Code::unavailable: return "unavailable";
        case Refusal::Code::unauthenticated: return "unauthenticated";
    }
    return "?";
}

namespace {

constexpr std::size_t kMaxReason = 1000;

Unexpected<Refusal> unavailable(const std::string& why) {
    return refuse(Refusal::Code::unavailable,
                  "the audit log cannot be written, nothing was changed: " + why);
}

bool printable(std::string_view text) {
    return std::none_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

std::string grant_end_event(GrantState state) {
    return "grant." + std::string(to_string(state));
}

}  // namespace

Authority::Authority(Journal& journal, Policy policy, const StoredState& stored)
    : journal_(journal), policy_(std::move(policy)) {
    auto state = state_.lock();
    for (const Request& r : stored.requests) {
        state->requests[r.id] = r;
        state->next_request_id = std::max(state->next_request_id, r.id + 1);
    }
    for (const Grant& g : stored.grants) {
        state->grants[g.id] = g;
        state->next_grant_id = std::max(state->next_grant_id, g.id + 1);
    }
}

void Authority::on_event(std::function<void(const Event&)> listener) {
    state_.lock()->listener = std::move(listener);
}

void Authority::emit(const std::vector<Event>& events) {
    const std::function<void(const Event&)> listener = state_.read_only_lock()->listener;
    if (listener) {
        for (const Event& e : events) {
            listener(e);
        }
    }
}

AuditRecord Authority::record(TimePoint now, const std::string& actor, std::string action,
                              const Scope& scope, std::string outcome, std::string reason,
                              std::int64_t request_id, std::int64_t grant_id) const {
    AuditRecord r;
    r.time = now;
    r.actor = actor;
    r.action = std::move(action);
    r.scope = scope.to_string();
    r.outcome = std::move(outcome);
    r.reason = std::move(reason);
    r.request_id = request_id;
    r.grant_id = grant_id;
    return r;
}

Grant Authority::make_grant(const State& state, const Request& request, TimePoint now) {
    Grant g;
    g.id = state.next_grant_id;
    g.request_id = request.id;
    g.holder = request.requester;
    g.scope = request.scope;
    g.starts = now;
    g.expires = now + request.duration;
    g.budget = request.budget;
    g.break_glass = request.break_glass;
    return g;
}

// Called with the state locked. Writes, then applies: the decision, its grant and the requests
// that grant supersedes land together or not at all.
Outcome<Decision> Authority::commit_decision(State& state, Request request,
                                             std::optional<Grant> grant,
                                             std::vector<AuditRecord> records,
                                             std::vector<Request> superseded) {
    std::vector<Mutation> mutations{request};
    if (grant) {
        mutations.emplace_back(*grant);
    }
    for (const Request& closed : superseded) {
        mutations.emplace_back(closed);
    }
    if (auto written = journal_.write(std::move(mutations), records); !written) {
        return unavailable(written.error());
    }
    state.requests[request.id] = request;
    state.next_request_id = std::max(state.next_request_id, request.id + 1);
    if (grant) {
        state.grants[grant->id] = *grant;
        state.next_grant_id = std::max(state.next_grant_id, grant->id + 1);
    }
    for (const Request& closed : superseded) {
        state.requests[closed.id] = closed;
    }
    return Decision{std::move(request), std::move(grant), std::move(superseded)};
}

bool Authority::covers(const Grant& grant, const Asked& asked, TimePoint now) {
    if (!grant.active_at(now) || !grant.scope.covers(asked.scope) ||
        (asked.scope.operation != Operation::sign && grant.holder != asked.requester)) {
        return false;
    }
    if (asked.filed_by_signer) {
        return true;
    }
    if (grant.expires - now < asked.duration) {
        return false;
    }
    // active_at: uses < budget.
    return !grant.budget || (asked.budget && *grant.budget - grant.uses >= *asked.budget);
}

namespace {
Authority::Asked asked_by(const Request& r) {
    return {r.scope, r.requester, r.duration, r.budget, r.filed_by_signer};
}
}  // namespace

// An active grant that covers a request.
const Grant* Authority::covering_grant(const State& state, const Asked& asked, TimePoint now) {
    for (const auto& [id, g] : state.grants) {
        if (covers(g, asked, now)) {
            return &g;
        }
    }
    return nullptr;
}

// `request`, closed as superseded by `grant`, with its record and event.
Request Authority::superseded_copy(const Request& request, const Grant& grant, TimePoint now,
                                   std::vector<AuditRecord>& records,
                                   std::vector<Event>& events) const {
    Request closed = request;
    closed.state = RequestState::superseded;
    closed.superseded_by = grant.id;
    closed.decided_by = "signerd";
    closed.decided_at = now;
    closed.decision_reason = "superseded by grant " + std::to_string(grant.id) + " (request " +
                             std::to_string(grant.request_id) + ", " + grant.scope.to_string() +
                             "), which covers its whole scope";
    AuditRecord r = record(now, "signerd", "elevation.supersede", request.scope, "superseded",
                           closed.decision_reason, request.id, grant.id);
    r.detail = "grant " + std::to_string(grant.id) + " active until " +
               std::to_string(to_unix_ms(grant.expires)) + "; " +
               std::to_string(request.approvals.size()) + " approvals so far";
    records.push_back(std::move(r));
    events.push_back({"request.superseded", request.id, grant.id, request.scope.to_string(),
                      "signerd", closed.decision_reason, now});
    return closed;
}

// As `grant` becomes active: the pending requests other than `except` (the one it was made
// for) that it covers, closed as superseded by it.
std::vector<Request> Authority::supersede_covered(const State& state, const Grant& grant,
                                                  std::int64_t except, TimePoint now,
                                                  std::vector<AuditRecord>& records,
                                                  std::vector<Event>& events) const {
    std::vector<Request> out;
    for (const auto& [id, r] : state.requests) {
        if (id != except && r.state_at(now) == RequestState::pending &&
            covers(grant, asked_by(r), now)) {
            out.push_back(superseded_copy(r, grant, now, records, events));
        }
    }
    return out;
}

std::size_t Authority::pending_from(const State& state, const std::string& requester,
                                    TimePoint now) {
    return static_cast<std::size_t>(
        std::count_if(state.requests.begin(), state.requests.end(), [&](const auto& entry) {
            return entry.second.requester == requester &&
                   entry.second.state_at(now) == RequestState::pending;
        }));
}

Outcome<Decision> Authority::request(const Actor& actor, RequestInput input, TimePoint now) {
    if (actor.kind != Actor::Kind::user) {
        return refuse(Refusal::Code::forbidden, "only users may request elevations", "role");
    }
    if (input.break_glass) {
        if (!has_role(actor.roles, Role::admin)) {
            return refuse(Refusal::Code::forbidden, "break-glass is for admins only", "role");
        }
    } else if (!has_role(actor.roles, Role::requester)) {
        return refuse(Refusal::Code::forbidden, actor.name + " does not have the requester role",
                      "role");
    }
    if (auto problem = validate_scope(input.scope)) {
        return refuse(Refusal::Code::invalid, *problem);
    }
    const OperationPolicy& op_policy = policy_.for_operation(input.scope.operation);
    if (input.reason.empty() || input.reason.size() > kMaxReason || !printable(input.reason)) {
        return refuse(Refusal::Code::invalid,
                      "a reason is required (one line of printable text, at most 1000 bytes)");
    }
    if (op_policy.ticket_regex && !std::regex_search(input.reason, *op_policy.ticket_regex)) {
        return refuse(Refusal::Code::invalid,
                      "the reason must name a ticket matching " + *op_policy.ticket_pattern);
    }
    const Duration cap = input.break_glass
                             ? std::min(policy_.break_glass_max, op_policy.max_duration)
                             : op_policy.max_duration;
    if (input.duration <= Duration(0) || input.duration > cap) {
        return refuse(Refusal::Code::invalid,
                      "the duration must be more than 0 and at most " + format_duration(cap) +
                          (input.break_glass ? " for break-glass" : "") + " for " +
                          std::string(to_string(input.scope.operation)));
    }
    if (input.budget && *input.budget == 0) {
        return refuse(Refusal::Code::invalid, "a use budget must be at least 1");
    }

    std::vector<Event> events;
    Outcome<Decision> decided = refuse(Refusal::Code::conflict, "not decided");
    {
        auto state = state_.lock();
        if (const Grant* g =
                input.break_glass
                    ? nullptr
                    : covering_grant(
                          *state, {input.scope, actor.name, input.duration, input.budget}, now)) {
            // It would be superseded at once: say so instead of filing it. (The relay never
            // gets here: authorize_sign signs under such a grant.)
            return refuse(Refusal::Code::conflict,
                          "grant " + std::to_string(g->id) + " (" + g->scope.to_string() +
                              ") covers " + input.scope.to_string() + " already, for another " +
                              format_duration(g->expires - now) +
                              ": nothing to request while it is active");
        }
        if (!input.break_glass &&
            pending_from(*state, actor.name, now) >= kMaxPendingPerRequester) {
            return refuse(Refusal::Code::conflict,
                          std::to_string(kMaxPendingPerRequester) + " requests of " + actor.name +
                              " are pending already: withdraw or wait for a decision first");
        }
        std::vector<AuditRecord> records;
        Request r;
        r.id = state->next_request_id;
        r.requester = actor.name;
        r.scope = input.scope;
        r.duration = input.duration;
        r.budget = input.budget;
        r.reason = input.reason;
        r.created = now;
        r.pending_until = now + op_policy.pending_expiry;
        r.break_glass = input.break_glass;
        const std::string who = actor.audit_name();
        const std::string terms = "duration " + format_duration(r.duration) +
                                  (r.budget ? "; budget " + std::to_string(*r.budget) : "");
        std::optional<Grant> grant;
        if (input.break_glass) {
            r.state = RequestState::approved;
            r.decided_by = "break-glass";
            r.decided_at = now;
            grant = make_grant(*state, r, now);
            records.push_back(record(now, who, "elevation.break_glass", r.scope, "alert", r.reason,
                                     r.id, grant->id));
            records.back().detail = "BREAK-GLASS: active without approval; " + terms;
            events.push_back(
                {"break_glass", r.id, grant->id, r.scope.to_string(), who, r.reason, now});
        } else if (const AutoApproveRule* rule = policy_.auto_rule(r, now)) {
            r.state = RequestState::approved;
            r.decided_by = "rule:" + rule->name;
            r.decided_at = now;
            grant = make_grant(*state, r, now);
            records.push_back(
                record(now, who, "elevation.request", r.scope, "ok", r.reason, r.id, 0));
            records.back().detail = terms;
            records.push_back(record(now, r.decided_by, "elevation.auto_approve", r.scope, "ok",
                                     "auto-approval rule " + rule->name, r.id, grant->id));
            events.push_back({"request.approved", r.id, grant->id, r.scope.to_string(),
                              r.decided_by, r.reason, now});
        } else {
            records.push_back(
                record(now, who, "elevation.request", r.scope, "ok", r.reason, r.id, 0));
            records.back().detail = terms;
            events.push_back({"request.pending", r.id, 0, r.scope.to_string(), who, r.reason, now});
        }
        std::vector<Request> superseded;
        if (grant) {
            superseded = supersede_covered(*state, *grant, r.id, now, records, events);
        }
        decided = commit_decision(*state, std::move(r), std::move(grant), std::move(records),
                                  std::move(superseded));
    }
    if (decided) {
        emit(events);
    }
    return decided;
}

// A copy of the request if it is still pending at `now`.
Outcome<Request> Authority::pending_request(const State& state, std::int64_t request_id,
                                            TimePoint now) {
    const auto it = state.requests.find(request_id);
    if (it == state.requests.end()) {
        return refuse(Refusal::Code::not_found, "no request " + std::to_string(request_id));
    }
    const RequestState current = it->second.state_at(now);
    if (current == RequestState::superseded) {
        return refuse(Refusal::Code::conflict,
                      "request " + std::to_string(request_id) +
                          " is superseded, not pending: grant " +
                          std::to_string(it->second.superseded_by) +
                          " covers its whole scope, so nothing is left to decide");
    }
    if (current != RequestState::pending) {
        return refuse(Refusal::Code::conflict, "request " + std::to_string(request_id) + " is " +
                                                   std::string(to_string(current)) +
                                                   ", not pending");
    }
    return it->second;
}

// Whether `actor` may approve (or deny) request `request_id` now: it is pending, the actor
// is an approver of its operation, not its requester, and (approving) has not approved it
// yet.
Outcome<Request> Authority::decidable_request(const State& state, const Actor& actor,
                                              std::int64_t request_id, bool approving,
                                              TimePoint now) const {
    auto found = pending_request(state, request_id, now);
    if (!found) {
        if (const auto it = state.requests.find(request_id);
            approving && it != state.requests.end() && it->second.state == RequestState::approved) {
            return refuse(Refusal::Code::forbidden,
                          "request " + std::to_string(request_id) +
                              " has its quorum of approvals already: it is approved",
                          "quorum_met");
        }
        return unexpected(found.error());
    }
    const Request& r = *found;
    if (!policy_.for_operation(r.scope.operation).may_approve(actor.name, actor.roles)) {
        return refuse(Refusal::Code::forbidden,
                      actor.name + " may not " + (approving ? "approve " : "decide ") +
                          std::string(to_string(r.scope.operation)) + " requests",
                      "role");
    }
    if (r.requester == actor.name) {
        return refuse(Refusal::Code::forbidden,
                      approving ? "nobody may approve their own request"
                                : "nobody may decide their own request (cancel it instead)",
                      "self_approval");
    }
    if (approving) {
        for (const Approval& a : r.approvals) {
            if (a.approver == actor.name) {
                return refuse(Refusal::Code::forbidden,
                              actor.name + " has already approved request " +
                                  std::to_string(request_id) + " (one person counts once)",
                              "duplicate_approver");
            }
        }
    }
    return found;
}

Outcome<void> Authority::may_decide(const Actor& actor, std::int64_t request_id, bool approving,
                                    TimePoint now) const {
    if (actor.kind != Actor::Kind::user) {
        return refuse(Refusal::Code::forbidden, "only users may approve or deny", "role");
    }
    const auto state = state_.read_only_lock();
    auto found = decidable_request(*state, actor, request_id, approving, now);
    if (!found) {
        return unexpected(found.error());
    }
    return {};
}

Outcome<Decision> Authority::approve(const Actor& actor, std::int64_t request_id, TimePoint now) {
    if (actor.kind != Actor::Kind::user) {
        return refuse(Refusal::Code::forbidden, "only users may approve", "role");
    }
    std::vector<Event> events;
    Outcome<Decision> decided = refuse(Refusal::Code::conflict, "not decided");
    {
        auto state = state_.lock();
        auto found = decidable_request(*state, actor, request_id, true, now);
        if (!found) {
            return unexpected(found.error());
        }
        Request r = std::move(*found);
        const OperationPolicy& op_policy = policy_.for_operation(r.scope.operation);
        r.approvals.push_back({actor.name, now});
        std::vector<AuditRecord> records;
        records.push_back(
            record(now, actor.audit_name(), "elevation.approve", r.scope, "ok", "", r.id, 0));
        records.back().detail = std::to_string(r.approvals.size()) + " of " +
                                std::to_string(op_policy.quorum) + " approvals";
        std::optional<Grant> grant;
        if (r.approvals.size() >= op_policy.quorum) {
            r.state = RequestState::approved;
            r.decided_by = actor.name;
            r.decided_at = now;
            grant = make_grant(*state, r, now);
            records.back().grant_id = grant->id;
            records.back().detail += "; grant " + std::to_string(grant->id) + " active until " +
                                     std::to_string(to_unix_ms(grant->expires));
            events.push_back({"request.approved", r.id, grant->id, r.scope.to_string(), actor.name,
                              r.reason, now});
        }
        std::vector<Request> superseded;
        if (grant) {
            superseded = supersede_covered(*state, *grant, r.id, now, records, events);
        }
        decided = commit_decision(*state, std::move(r), std::move(grant), std::move(records),
                                  std::move(superseded));
    }
    if (decided) {
        emit(events);
    }
    return decided;
}

Outcome<Decision> Authority::deny(const Actor& actor, std::int64_t request_id,
                                  const std::string& reason, TimePoint now) {
    if (actor.kind != Actor::Kind::user) {
        return refuse(Refusal::Code::forbidden, "only users may deny", "role");
    }
    if (reason.empty() || reason.size() > kMaxReason || !printable(reason)) {
        return refuse(Refusal::Code::invalid,
                      "a denial needs a reason (one line, at most 1000 bytes)");
    }
    std::vector<Event> events;
    Outcome<Decision> decided = refuse(Refusal::Code::conflict, "not decided");
    {
        auto state = state_.lock();
        auto found = decidable_request(*state, actor, request_id, false, now);
        if (!found) {
            return unexpected(found.error());
        }
        Request r = std::move(*found);
        r.state = RequestState::denied;
        r.decided_by = actor.name;
        r.decision_reason = reason;
        r.decided_at = now;
        std::vector<AuditRecord> records{
            record(now, actor.audit_name(), "elevation.deny", r.scope, "ok", reason, r.id, 0)};
        events.push_back({"request.denied", r.id, 0, r.scope.to_string(), actor.name, reason, now});
        decided = commit_decision(*state, std::move(r), std::nullopt, std::move(records));
    }
    if (decided) {
        emit(events);
    }
    return decided;
}

Outcome<Decision> Authority::cancel(const Actor& actor, std::int64_t request_id, TimePoint now) {
    auto state = state_.lock();
    auto found = pending_request(*state, request_id, now);
    if (!found) {
        return unexpected(found.error());
    }
    Request r = std::move(*found);
    const bool own = actor.kind == Actor::Kind::user && actor.name == r.requester;
    if (!own && !has_role(actor.roles, Role::admin) && actor.kind != Actor::Kind::local) {
        return refuse(Refusal::Code::forbidden, "only the requester or an admin may cancel",
                      "owner");
    }
    r.state = RequestState::cancelled;
    r.decided_by = actor.name;
    r.decided_at = now;
    std::vector<AuditRecord> records{
        record(now, actor.audit_name(), "elevation.cancel", r.scope, "ok", "", r.id, 0)};
    return commit_decision(*state, std::move(r), std::nullopt, std::move(records));
}

Outcome<Grant> Authority::revoke(const Actor& actor, std::int64_t grant_id,
                                 const std::string& reason, TimePoint now) {
    if (reason.empty() || reason.size() > kMaxReason || !printable(reason)) {
        return refuse(Refusal::Code::invalid,
                      "a revoke needs a reason (one line, at most 1000 bytes)");
    }
    std::vector<Event> events;
    Grant g;
    {
        auto state = state_.lock();
        const auto it = state->grants.find(grant_id);
        if (it == state->grants.end()) {
            return refuse(Refusal::Code::not_found, "no grant " + std::to_string(grant_id));
        }
        g = it->second;
        if (g.state_at(now) != GrantState::active) {
            return refuse(Refusal::Code::conflict, "grant " + std::to_string(grant_id) + " is " +
                                                       std::string(to_string(g.state_at(now))) +
                                                       " already");
        }
        const bool allowed =
            actor.kind == Actor::Kind::local ||
            (actor.kind == Actor::Kind::user &&
             (actor.name == g.holder || has_role(actor.roles, Role::admin) ||
              policy_.for_operation(g.scope.operation).may_approve(actor.name, actor.roles)));
        if (!allowed) {
            return refuse(Refusal::Code::forbidden,
                          actor.name + " may not revoke grant " + std::to_string(grant_id), "role");
        }
        g.revoked_at = now;
        g.revoked_by = actor.audit_name();
        g.revoke_reason = reason;
        g.end_recorded = true;
        AuditRecord r = record(now, actor.audit_name(), "grant.revoke", g.scope, "ok", reason,
                               g.request_id, g.id);
        r.detail = "after " + std::to_string(g.uses) + " uses";
        if (auto written = journal_.write({g}, std::move(r)); !written) {
            return unavailable(written.error());
        }
        state->grants[g.id] = g;
        events.push_back({"grant.revoked", g.request_id, g.id, g.scope.to_string(),
                          actor.audit_name(), reason, now});
    }
    emit(events);
    return g;
}

Expected<SignPermit, SignRefusal> Authority::authorize_sign(const std::string& client,
                                                            const std::string& domain,
                                                            const std::string& selector,
                                                            TimePoint now) {
    const std::string actor = "service:" + client;
    std::int64_t reuse_id = 0;
    Scope scope{Operation::sign, domain, selector, client};
    {
        auto state = state_.lock();
        // The grant that ends first is spent first (it would be wasted otherwise).
        Grant* best = nullptr;
        for (auto& [id, g] : state->grants) {
            if (g.scope.covers(Operation::sign, domain, selector, client) && g.active_at(now) &&
                (best == nullptr || g.expires < best->expires)) {
                best = &g;
            }
        }
        if (best != nullptr) {
            ++best->uses;
            return SignPermit{best->id, best->uses, best->budget && best->uses >= *best->budget,
                              best->scope};
        }
        for (const auto& [id, r] : state->requests) {
            if (r.state_at(now) == RequestState::pending &&
                r.scope.covers(Operation::sign, domain, selector, client)) {
                reuse_id = id;
                break;
            }
        }
        if (reuse_id == 0 && pending_from(*state, actor, now) >= kMaxPendingPerRequester) {
            // A relay (compromised or misconfigured) cannot flood approvers with requests.
            if (auto written = journal_.write(
                    {}, record(now, actor, "sign", scope, "locked",
                               "no active grant; no request filed: too many pending", 0, 0));
                !written) {
                return unexpected(
                    SignRefusal{SignRefusal::Kind::unavailable, 0,
                                "the audit log cannot be written: " + written.error()});
            }
            return unexpected(SignRefusal{
                SignRefusal::Kind::locked, 0,
                "no active grant for " + scope.to_string() +
                    "; no request was filed: " + std::to_string(kMaxPendingPerRequester) +
                    " requests of " + actor + " are pending already"});
        }
        if (reuse_id == 0) {
            // File one, durable before the answer, while holding the lock (one per scope).
            Request r;
            r.id = state->next_request_id;
            r.requester = actor;
            r.scope = scope;
            r.duration = std::min(policy_.signer_request_duration,
                                  policy_.for_operation(Operation::sign).max_duration);
            r.reason = "signature requested by relay client " + client + " for d=" + domain +
                       " s=" + selector;
            r.created = now;
            r.pending_until = now + policy_.for_operation(Operation::sign).pending_expiry;
            r.filed_by_signer = true;
            std::vector<AuditRecord> records{
                record(now, actor, "elevation.request", scope, "ok", r.reason, r.id, 0),
                record(now, actor, "sign", scope, "locked", "no active grant", r.id, 0)};
            if (auto written = journal_.write({r}, records); !written) {
                return unexpected(
                    SignRefusal{SignRefusal::Kind::unavailable, 0,
                                "the audit log cannot be written: " + written.error()});
            }
            state->requests[r.id] = r;
            state->next_request_id = r.id + 1;
            Event e{"request.pending", r.id, 0, scope.to_string(), actor, r.reason, now};
            auto listener = state->listener;
            if (listener) {
                listener(e);
            }
            return unexpected(SignRefusal{SignRefusal::Kind::locked, r.id,
                                          "no active grant for " + scope.to_string() +
                                              "; pending request " + std::to_string(r.id) +
                                              " was filed"});
        }
    }
    if (auto written = journal_.write(
            {}, record(now, actor, "sign", scope, "locked", "no active grant", reuse_id, 0));
        !written) {
        return unexpected(SignRefusal{SignRefusal::Kind::unavailable, 0,
                                      "the audit log cannot be written: " + written.error()});
    }
    return unexpected(SignRefusal{SignRefusal::Kind::locked, reuse_id,
                                  "no active grant for " + scope.to_string() +
                                      "; pending request " + std::to_string(reuse_id) +
                                      " awaits approval"});
}

std::shared_ptr<Journal::Ticket> Authority::begin_signature(const SignPermit& permit,
                                                            const std::string& client,
                                                            const std::string& detail,
                                                            TimePoint now) {
    AuditRecord r =
        record(now, "service:" + client, "sign", permit.scope, "issued", "", 0, permit.grant_id);
    r.detail = "use " + std::to_string(permit.use) + "; " + detail;
    std::vector<AuditRecord> records;
    records.push_back(std::move(r));
    return journal_.submit({GrantUses{permit.grant_id, permit.use}}, std::move(records));
}

Expected<void, std::string> Authority::record_signature(const SignPermit& permit,
                                                        const std::string& client,
                                                        const std::string& outcome,
                                                        const std::string& detail, TimePoint now) {
    AuditRecord r =
        record(now, "service:" + client, "sign", permit.scope, outcome, "", 0, permit.grant_id);
    r.detail = "use " + std::to_string(permit.use) + "; " + detail;
    return journal_.write({GrantUses{permit.grant_id, permit.use}}, std::move(r));
}

Expected<void, std::string> Authority::record_sign_refusal(const std::string& client,
                                                           const std::string& scope,
                                                           const std::string& reason,
                                                           TimePoint now) {
    AuditRecord r;
    r.time = now;
    r.actor = "service:" + client;
    r.action = "sign";
    r.scope = scope;
    r.outcome = "refused";
    r.reason = reason;
    return journal_.write({}, std::move(r));
}

Outcome<Grant> Authority::authorize_operation(const Actor& actor, Operation op,
                                              const std::string& domain,
                                              const std::string& selector, TimePoint now) {
    Grant used;
    {
        auto state = state_.lock();
        Grant* best = nullptr;
        for (auto& [id, g] : state->grants) {
            if (g.holder == actor.name && g.scope.covers(op, domain, selector, "*") &&
                g.active_at(now) && (best == nullptr || g.expires < best->expires)) {
                best = &g;
            }
        }
        if (best == nullptr) {
            return refuse(Refusal::Code::forbidden,
                          actor.name + " holds no active grant for " + std::string(to_string(op)) +
                              " " + domain + (op == Operation::admin ? "" : "/" + selector),
                          "no_grant");
        }
        ++best->uses;
        used = *best;
    }
    AuditRecord r = record(now, actor.audit_name(), std::string(to_string(op)), used.scope, "ok",
                           "", used.request_id, used.id);
    r.detail = "target " + domain + "/" + selector + "; use " + std::to_string(used.uses);
    if (auto written = journal_.write({GrantUses{used.id, used.uses}}, std::move(r)); !written) {
        return unavailable(written.error());
    }
    return used;
}

bool Authority::any_active(TimePoint now) const {
    return active_count(now) > 0;
}

std::size_t Authority::active_count(TimePoint now) const {
    const auto state = state_.read_only_lock();
    return static_cast<std::size_t>(
        std::count_if(state->grants.begin(), state->grants.end(),
                      [now](const auto& kv) { return kv.second.active_at(now); }));
}

std::optional<TimePoint> Authority::next_deadline(TimePoint now) const {
    const auto state = state_.read_only_lock();
    std::optional<TimePoint> next;
    auto consider = [&](TimePoint t) {
        if (t > now && (!next || t < *next)) {
            next = t;
        }
    };
    for (const auto& [id, g] : state->grants) {
        if (g.active_at(now)) {
            consider(g.expires);
        }
    }
    for (const auto& [id, r] : state->requests) {
        if (r.state_at(now) == RequestState::pending) {
            consider(r.pending_until);
        }
    }
    return next;
}

std::vector<Event> Authority::sweep(TimePoint now) {
    std::vector<Event> events;
    {
        auto state = state_.lock();
        std::vector<Mutation> mutations;
        std::vector<AuditRecord> records;
        std::vector<Grant> ended;
        std::vector<Request> closed;  // expired or superseded
        for (const auto& [id, g] : state->grants) {
            const GrantState ended_as = g.state_at(now);
            if (ended_as != GrantState::active && !g.end_recorded) {
                Grant copy = g;
                copy.end_recorded = true;
                AuditRecord r = record(now, "signerd", "grant.end", g.scope,
                                       std::string(to_string(ended_as)), "", g.request_id, g.id);
                r.detail = "after " + std::to_string(g.uses) + " uses";
                records.push_back(std::move(r));
                events.push_back({grant_end_event(ended_as), g.request_id, g.id,
                                  g.scope.to_string(), "signerd", "", now});
                mutations.emplace_back(copy);
                ended.push_back(std::move(copy));
            }
        }
        for (const auto& [id, r] : state->requests) {
            if (r.state == RequestState::pending && r.state_at(now) == RequestState::expired) {
                Request copy = r;
                copy.state = RequestState::expired;
                copy.decided_at = now;
                copy.decided_by = "signerd";
                records.push_back(record(now, "signerd", "elevation.expire", r.scope, "expired",
                                         "nobody decided in time", r.id, 0));
                events.push_back(
                    {"request.expired", r.id, 0, r.scope.to_string(), "signerd", "", now});
                mutations.emplace_back(copy);
                closed.push_back(std::move(copy));
            }
        }
        // Grants supersede what they cover as they become active, so this finds only what a
        // store written before that holds.
        for (const auto& [id, r] : state->requests) {
            if (r.state_at(now) != RequestState::pending) {
                continue;
            }
            if (const Grant* g = covering_grant(*state, asked_by(r), now)) {
                Request copy = superseded_copy(r, *g, now, records, events);
                mutations.emplace_back(copy);
                closed.push_back(std::move(copy));
            }
        }
        if (records.empty()) {
            return events;
        }
        if (!journal_.write(std::move(mutations), records)) {
            return {};  // tried again at the next sweep; enforcement never depended on it
        }
        for (Grant& g : ended) {
            // Keep the in-memory use counter (it may be ahead of the one just written).
            state->grants[g.id].end_recorded = true;
        }
        for (Request& r : closed) {
            state->requests[r.id] = std::move(r);
        }
    }
    emit(events);
    return events;
}

std::vector<Request> Authority::requests() const {
    const auto state = state_.read_only_lock();
    std::vector<Request> out;
    out.reserve(state->requests.size());
    for (const auto& [id, r] : state->requests) {
        out.push_back(r);
    }
    return out;
}

std::optional<Request> Authority::find_request(std::int64_t id) const {
    const auto state = state_.read_only_lock();
    const auto it = state->requests.find(id);
    return it == state->requests.end() ? std::nullopt : std::optional<Request>(it->second);
}

std::vector<Grant> Authority::grants() const {
    const auto state = state_.read_only_lock();
    std::vector<Grant> out;
    out.reserve(state->grants.size());
    for (const auto& [id, g] : state->grants) {
        out.push_back(g);
    }
    return out;
}

}  // namespace dkim::jit

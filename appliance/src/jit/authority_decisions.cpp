// The Authority's requests and decisions: filing a request (with break-glass and the
// auto-approval rules), approving, denying and cancelling one, and the checks each decision makes
// first (may_decide makes them without deciding).

#include <algorithm>

#include "authority_detail.hpp"
#include "dkim/jit/authority.hpp"

namespace dkim::jit {

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
    if (input.reason.empty() || input.reason.size() > detail::kMaxReason ||
        !detail::printable(input.reason)) {
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
            records.back().detail =
                "BREAK-GLASS: active without approval; " + terms + detail::factor_note(actor);
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
                                std::to_string(op_policy.quorum) + " approvals" +
                                detail::factor_note(actor);
        std::optional<Grant> grant;
        if (r.approvals.size() >= op_policy.quorum) {
            r.state = RequestState::approved;
            r.decided_by = actor.name;
            r.decided_at = now;
            grant = make_grant(*state, r, now);
            records.back().grant_id = grant->id;
            records.back().detail +=
                "; grant " + std::to_string(grant->id) +
                (grant->starts > now
                     ? " scheduled from " + std::to_string(to_unix_ms(grant->starts)) + " until "
                     : std::string(" active until ")) +
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
    if (reason.empty() || reason.size() > detail::kMaxReason || !detail::printable(reason)) {
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
        records.back().detail = actor.factor;
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

}  // namespace dkim::jit

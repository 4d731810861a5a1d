// The Authority's state and what its other files build on: loading it, the audit records and
// events, committing a decision, which grant covers what and superseding what it covers; the
// queries and the sweep. Requests and decisions are in authority_decisions.cpp, revokes and the
// checks made for signatures and operations in authority_grants.cpp.

#include "dkim/jit/authority.hpp"

#include <algorithm>

#include "authority_detail.hpp"

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

std::string grant_end_event(GrantState state) {
    return "grant." + std::string(to_string(state));
}

}  // namespace

Authority::Authority(Journal& journal, Policy policy, const StoredState& stored)
    : journal_(journal), policy_(std::move(policy)) {
    reload(stored);
}

void Authority::reload(const StoredState& stored) {
    auto state = state_.lock();
    state->requests.clear();
    state->grants.clear();
    state->next_request_id = 1;
    state->next_grant_id = 1;
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

// A renewal approved while the grant it renews is active starts exactly as that grant expires
// (scheduled until then: at that instant one is expired and the other active, so signing never
// pauses); approved later, it starts at once.
Grant Authority::make_grant(const State& state, const Request& request, TimePoint now) {
    TimePoint starts = now;
    if (request.renews != 0) {
        if (const auto old = state.grants.find(request.renews);
            old != state.grants.end() && old->second.active_at(now)) {
            starts = old->second.expires;
        }
    }
    Grant g;
    g.id = state.next_grant_id;
    g.request_id = request.id;
    g.holder = request.requester;
    g.scope = request.scope;
    g.starts = starts;
    g.expires = starts + request.duration;
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
        return detail::unavailable(written.error());
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

// Whether `grant` closes the pending request `r` as superseded. For a renewal the rule is
// stricter than covers(): a renewal asks that signing go on after the grant it renews ends.
//  - The grant it renews never supersedes it: that grant covers its scope now, but ends (with a
//    lead time as long as the grant, it would even cover the renewal's whole duration).
//  - Another active grant supersedes it only when it covers it (scope, and the renewal's
//    duration and budget from now, as for any request) and outlives the renewed grant: when
//    that one ends, the other still signs, and it files a renewal of its own as it nears its
//    end, so nothing pauses. One that ends first would leave a gap that the renewal fills.
//  - A scheduled grant (not active yet) supersedes nothing until it starts (covers()).
bool Authority::supersedes(const State& state, const Grant& grant, const Request& r,
                           TimePoint now) {
    if (r.renews != 0) {
        if (grant.id == r.renews) {
            return false;
        }
        if (const auto old = state.grants.find(r.renews);
            old != state.grants.end() && grant.expires <= old->second.expires) {
            return false;
        }
    }
    return covers(grant, asked_by(r), now);
}

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
            supersedes(state, grant, r, now)) {
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
        const GrantState s = g.state_at(now);
        if (s == GrantState::active) {
            consider(g.expires);
            if (const auto due = renewal_due(*state, g, now)) {
                consider(*due);
            }
        } else if (s == GrantState::scheduled) {
            consider(g.starts);  // it starts, and supersedes what it covers (sweep)
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
            if (ended_as != GrantState::active && ended_as != GrantState::scheduled &&
                !g.end_recorded) {
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
        // Grants supersede what they cover as they become active, so this finds what a
        // scheduled grant covers as it starts, and what a store written before that holds.
        for (const auto& [id, r] : state->requests) {
            if (r.state_at(now) != RequestState::pending) {
                continue;
            }
            for (const auto& [grant_id, g] : state->grants) {
                if (supersedes(*state, g, r, now)) {
                    Request copy = superseded_copy(r, g, now, records, events);
                    mutations.emplace_back(copy);
                    closed.push_back(std::move(copy));
                    break;
                }
            }
        }
        // The renewals that are due. One that another grant would supersede at once is not
        // filed (that grant goes on signing and renews itself).
        std::int64_t next_id = state->next_request_id;
        for (const auto& [id, g] : state->grants) {
            const auto due = renewal_due(*state, g, now);
            if (!due || *due > now) {
                continue;
            }
            std::vector<AuditRecord> renewal_records;
            std::vector<Event> renewal_events;
            Request renewal = renewal_of(*state, g, next_id, now, renewal_records, renewal_events);
            const bool covered = std::any_of(
                state->grants.begin(), state->grants.end(),
                [&](const auto& other) { return supersedes(*state, other.second, renewal, now); });
            if (covered) {
                continue;
            }
            ++next_id;
            records.insert(records.end(), renewal_records.begin(), renewal_records.end());
            events.insert(events.end(), renewal_events.begin(), renewal_events.end());
            mutations.emplace_back(renewal);
            closed.push_back(std::move(renewal));
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
        state->next_request_id = std::max(state->next_request_id, next_id);
    }
    emit(events);
    return events;
}

std::optional<TimePoint> Authority::renewal_due(const State& state, const Grant& g,
                                                TimePoint now) const {
    if (g.break_glass || !g.active_at(now)) {
        return std::nullopt;
    }
    const auto lead =
        policy_.for_operation(g.scope.operation).renew_before.lead_for(g.expires - g.starts);
    if (!lead) {
        return std::nullopt;
    }
    // Once per grant: whatever became of its renewal (denied, expired, superseded), it is not
    // filed again.
    const bool filed = std::any_of(state.requests.begin(), state.requests.end(),
                                   [&](const auto& kv) { return kv.second.renews == g.id; });
    if (filed) {
        return std::nullopt;
    }
    return g.expires - *lead;
}

Request Authority::renewal_of(const State& state, const Grant& g, std::int64_t id, TimePoint now,
                              std::vector<AuditRecord>& records, std::vector<Event>& events) const {
    const OperationPolicy& op_policy = policy_.for_operation(g.scope.operation);
    const auto original = state.requests.find(g.request_id);
    const bool known = original != state.requests.end();
    Request r;
    r.id = id;
    r.requester = g.holder;
    r.scope = g.scope;
    r.duration =
        std::min(known ? original->second.duration : g.expires - g.starts, op_policy.max_duration);
    r.budget = g.budget;
    r.reason = "renewal of grant " + std::to_string(g.id);
    if (known && !original->second.reason.empty()) {
        // Within the length of any reason (the original's ticket, if any, comes first).
        const std::size_t room = detail::kMaxReason - r.reason.size() - 3;
        std::string why = original->second.reason;
        if (why.size() > room) {
            std::size_t cut = room;
            while (cut > 0 && (static_cast<unsigned char>(why[cut]) & 0xC0U) == 0x80U) {
                --cut;  // not inside a UTF-8 sequence
            }
            why.resize(cut);
        }
        r.reason += " (" + why + ")";
    }
    r.created = now;
    r.pending_until = g.expires + op_policy.pending_expiry;
    r.renews = g.id;
    AuditRecord rec =
        record(now, "signerd", "elevation.renewal", r.scope, "ok", r.reason, r.id, g.id);
    rec.detail = "renews grant " + std::to_string(g.id) + " (" + r.requester + "), which expires " +
                 std::to_string(to_unix_ms(g.expires)) + " (in " +
                 format_duration(g.expires - now) + "); duration " + format_duration(r.duration) +
                 (r.budget ? "; budget " + std::to_string(*r.budget) : "");
    records.push_back(std::move(rec));
    events.push_back(
        {"request.renewal", r.id, g.id, r.scope.to_string(), "signerd", r.reason, now});
    return r;
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

std::optional<Grant> Authority::find_grant(std::int64_t id) const {
    const auto state = state_.read_only_lock();
    const auto it = state->grants.find(id);
    return it == state->grants.end() ? std::nullopt : std::optional<Grant>(it->second);
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

std::vector<GrantInterval> Authority::sign_grant_intervals(const std::string& domain,
                                                           TimePoint from, TimePoint until) const {
    const auto state = state_.read_only_lock();
    std::vector<GrantInterval> out;
    for (const auto& [id, g] : state->grants) {
        const TimePoint end = g.ends();
        // (A scheduled grant revoked before its start was never in force: end <= start.)
        if (g.scope.operation == Operation::sign && (domain.empty() || g.scope.domain == domain) &&
            g.starts < until && end > from && end > g.starts) {
            out.push_back({g.id, g.scope.domain, g.scope.selector, g.starts, end});
        }
    }
    return out;
}

}  // namespace dkim::jit

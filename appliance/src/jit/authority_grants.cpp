// The Authority's grants in use: revoking one; the check made for every signature, which files a
// pending request (or reuses one) when no grant covers it; the records of signatures and refusals
// (and their counts in the signing summary, in the same commit); the check made for key and admin
// operations.

#include <algorithm>

#include "authority_detail.hpp"
#include "dkim/jit/authority.hpp"

namespace dkim::jit {

namespace {

// One refused (or locked) sign request of domain/selector in the signing summary, in the hour
// of the record it travels with.
SigningTally refusal_tally(const std::string& domain, const std::string& selector) {
    return SigningTally{domain, selector, std::nullopt, 0, 1};
}

// How a counted refusal's record names its key (a signature's detail names it the same way, from
// signerd's signing handlers): so that the log itself says what the summary counted.
std::string counted_key_detail(const std::string& domain, const std::string& selector) {
    return "d=" + domain + "; s=" + selector;
}

// What a signature's record writes besides itself: the grant's use counter (and, for the use
// that spent its budget, when), and the signing summary's count.
std::vector<Mutation> signature_mutations(const SignPermit& permit, std::int64_t signatures,
                                          std::optional<std::int64_t> hour) {
    std::vector<Mutation> mutations{
        GrantUses{permit.grant_id, permit.use,
                  permit.last_use ? std::optional<TimePoint>(permit.given) : std::nullopt}};
    if (signatures != 0) {
        mutations.emplace_back(SigningTally{permit.domain, permit.selector, hour, signatures, 0});
    }
    return mutations;
}

}  // namespace

Outcome<Grant> Authority::revoke(const Actor& actor, std::int64_t grant_id,
                                 const std::string& reason, TimePoint now) {
    if (reason.empty() || reason.size() > detail::kMaxReason || !detail::printable(reason)) {
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
        if (!g.pending_or_active_at(now)) {
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
        r.detail = "after " + std::to_string(g.uses) + " uses" + detail::factor_note(actor);
        std::vector<Mutation> mutations{g};
        std::vector<AuditRecord> records{std::move(r)};
        // Its renewal goes with it, in the same commit: a pending one is closed, a scheduled
        // grant that would follow it is revoked.
        const std::string why = "the grant it renews was revoked";
        std::vector<Request> closed;
        std::vector<Grant> followers;
        for (const auto& [id, req] : state->requests) {
            if (req.renews != g.id) {
                continue;
            }
            if (req.state_at(now) == RequestState::pending) {
                Request copy = req;
                copy.state = RequestState::cancelled;
                copy.decided_by = "signerd";
                copy.decided_at = now;
                copy.decision_reason = why;
                records.push_back(record(now, "signerd", "elevation.cancel", req.scope, "cancelled",
                                         why, req.id, g.id));
                mutations.emplace_back(copy);
                closed.push_back(std::move(copy));
            }
            for (const auto& [next_id, next] : state->grants) {
                if (next.request_id == req.id && next.state_at(now) == GrantState::scheduled) {
                    Grant copy = next;
                    copy.revoked_at = now;
                    copy.revoked_by = "signerd";
                    copy.revoke_reason = why;
                    copy.end_recorded = true;
                    AuditRecord rec = record(now, "signerd", "grant.revoke", next.scope, "ok", why,
                                             next.request_id, next.id);
                    rec.detail = "scheduled from " + std::to_string(to_unix_ms(next.starts)) +
                                 "; renewal of grant " + std::to_string(g.id);
                    records.push_back(std::move(rec));
                    mutations.emplace_back(copy);
                    followers.push_back(std::move(copy));
                }
            }
        }
        if (auto written = journal_.write(std::move(mutations), records); !written) {
            return detail::unavailable(written.error());
        }
        state->grants[g.id] = g;
        events.push_back({"grant.revoked", g.request_id, g.id, g.scope.to_string(),
                          actor.audit_name(), reason, now});
        for (Request& req : closed) {
            state->requests[req.id] = std::move(req);
        }
        for (Grant& next : followers) {
            events.push_back({"grant.revoked", next.request_id, next.id, next.scope.to_string(),
                              "signerd", why, now});
            state->grants[next.id] = std::move(next);
        }
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
    // A locked signature's record; it names the key the signing summary counts it under.
    const auto locked = [&](std::string reason, std::int64_t request_id) {
        AuditRecord r =
            record(now, actor, "sign", scope, "locked", std::move(reason), request_id, 0);
        r.detail = counted_key_detail(domain, selector);
        return r;
    };
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
            const bool last_use = best->budget && best->uses >= *best->budget;
            if (last_use) {
                best->exhausted_at = now;
            }
            return SignPermit{best->id, best->uses, last_use, best->scope, domain, selector, now};
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
                    {refusal_tally(domain, selector)},
                    locked("no active grant; no request filed: too many pending", 0));
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
                locked("no active grant", r.id)};
            if (auto written = journal_.write({r, refusal_tally(domain, selector)}, records);
                !written) {
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
    if (auto written =
            journal_.write({refusal_tally(domain, selector)}, locked("no active grant", reuse_id));
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
    return journal_.submit(signature_mutations(permit, 1, std::nullopt), std::move(records),
                           permit.grant_id, permit.given);
}

Expected<void, std::string> Authority::record_signature(const SignPermit& permit,
                                                        const std::string& client,
                                                        const std::string& outcome,
                                                        const std::string& detail, TimePoint now,
                                                        std::optional<TimePoint> issued_at) {
    AuditRecord r =
        record(now, "service:" + client, "sign", permit.scope, outcome, "", 0, permit.grant_id);
    r.detail = "use " + std::to_string(permit.use) + "; " + detail;
    if (outcome == "failed" && issued_at) {
        return journal_.write(signature_mutations(permit, -1, signing_hour(*issued_at)),
                              std::move(r));
    }
    if (outcome == "issued") {
        std::vector<AuditRecord> records;
        records.push_back(std::move(r));
        return journal_
            .submit(signature_mutations(permit, 1, std::nullopt), std::move(records),
                    permit.grant_id, permit.given)
            ->wait();
    }
    return journal_.write(signature_mutations(permit, 0, std::nullopt), std::move(r));
}

Expected<void, std::string> Authority::record_sign_refusal(const std::string& client,
                                                           const std::string& scope,
                                                           const std::string& reason,
                                                           const std::optional<CountedKey>& counted,
                                                           TimePoint now) {
    AuditRecord r;
    r.time = now;
    r.actor = "service:" + client;
    r.action = "sign";
    r.scope = scope;
    r.outcome = "refused";
    r.reason = reason;
    std::vector<Mutation> mutations;
    if (counted) {
        r.detail = counted_key_detail(counted->domain, counted->selector);
        mutations.emplace_back(refusal_tally(counted->domain, counted->selector));
    }
    return journal_.write(std::move(mutations), std::move(r));
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
        if (best->budget && best->uses >= *best->budget) {
            best->exhausted_at = now;
        }
        used = *best;
    }
    AuditRecord r = record(now, actor.audit_name(), std::string(to_string(op)), used.scope, "ok",
                           "", used.request_id, used.id);
    r.detail = "target " + domain + "/" + selector + "; use " + std::to_string(used.uses);
    if (!actor.via.empty()) {
        r.detail += "; " + actor.via;
    }
    if (auto written =
            journal_.write({GrantUses{used.id, used.uses, used.exhausted_at}}, std::move(r));
        !written) {
        return detail::unavailable(written.error());
    }
    return used;
}

}  // namespace dkim::jit

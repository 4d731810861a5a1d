#include "elevation_handlers.hpp"

#include <algorithm>
#include <iostream>

#include "dkim/base/wipe.hpp"
#include "dkim/mail/header.hpp"
#include "passkey_handlers.hpp"

namespace dkim::signerd {

using jit::Actor;

namespace {

ipc::RequestView request_view(const jit::Request& r, const jit::Authority& authority,
                              TimePoint now) {
    const jit::Policy& policy = authority.policy();
    ipc::RequestView v;
    v.id = r.id;
    v.requester = r.requester;
    v.scope = r.scope.to_string();
    v.operation = std::string(jit::to_string(r.scope.operation));
    v.domain = r.scope.domain;
    v.selector = r.scope.selector;
    v.client = r.scope.client;
    v.duration_ms = r.duration.count();
    v.budget = r.budget;
    v.reason = r.reason;
    v.created_ms = to_unix_ms(r.created);
    v.pending_until_ms = to_unix_ms(r.pending_until);
    v.state = std::string(jit::to_string(r.state_at(now)));
    for (const jit::Approval& a : r.approvals) {
        v.approvals.push_back(a.approver);
    }
    v.quorum = policy.for_operation(r.scope.operation).quorum;
    v.decided_by = r.decided_by;
    v.decision_reason = r.decision_reason;
    v.break_glass = r.break_glass;
    v.filed_by_signer = r.filed_by_signer;
    v.superseded_by = r.superseded_by;
    if (r.renews != 0) {
        v.renews = r.renews;
        if (const auto old = authority.find_grant(r.renews)) {
            v.renews_expires_ms = to_unix_ms(old->ends());
        }
    }
    return v;
}

// "; it supersedes pending requests 3, 4" (the approver's answer says what else closed).
std::string superseded_note(const std::vector<jit::Request>& superseded) {
    if (superseded.empty()) {
        return "";
    }
    std::string out = "; it supersedes pending request";
    out += superseded.size() == 1 ? " " : "s ";
    for (std::size_t i = 0; i < superseded.size(); ++i) {
        out += (i == 0 ? "" : ", ") + std::to_string(superseded[i].id);
    }
    return out;
}

ipc::GrantView grant_view(const jit::Grant& g, const jit::Authority& authority, TimePoint now) {
    ipc::GrantView v;
    v.id = g.id;
    v.request_id = g.request_id;
    v.holder = g.holder;
    v.scope = g.scope.to_string();
    v.starts_ms = to_unix_ms(g.starts);
    v.expires_ms = to_unix_ms(g.expires);
    v.budget = g.budget;
    v.uses = g.uses;
    v.state = std::string(jit::to_string(g.state_at(now)));
    v.revoked_by = g.revoked_by;
    v.revoke_reason = g.revoke_reason;
    v.break_glass = g.break_glass;
    if (const auto made_by = authority.find_request(g.request_id)) {
        v.renews = made_by->renews;
    }
    return v;
}

}  // namespace

ipc::Reply ElevationHandlers::operate(const Actor& caller, ipc::ElevationRequest& r,
                                      TimePoint now) {
    Actor who = caller;
    const auto op = jit::parse_operation(r.operation);
    if (!op) {
        return error_reply(ipc::ErrorCode::invalid,
                           "unknown operation '" + r.operation +
                               "' (sign, key.generate, key.rotate, key.retire, admin)");
    }
    if (mail::iequals(r.domain, audit_key_name().domain)) {
        // The audit key's domain: no grant may ever name it (sign() refuses it anyway).
        return error_reply(ipc::ErrorCode::forbidden, "the audit key's domain " +
                                                          audit_key_name().domain +
                                                          " is reserved: no request may name it");
    }
    if (r.break_glass) {
        const auto subject = break_glass_subject(r.operation, r.domain, r.selector, r.client,
                                                 r.duration_seconds, r.budget, r.reason, who.name);
        if (!subject) {
            return error_reply(ipc::ErrorCode::invalid, "not a valid break-glass request");
        }
        auto checked = factors_.check(who, r.auth, *op, *subject, now);
        if (!checked) {
            return error_reply(checked.error());
        }
        who.factor = std::move(*checked);
    }
    jit::RequestInput input;
    input.scope = jit::Scope{*op, r.domain, r.selector.empty() ? "*" : r.selector,
                             r.client.empty() ? "*" : r.client};
    input.duration = std::chrono::seconds(
        std::max<std::int64_t>(0, std::min<std::int64_t>(r.duration_seconds, 366LL * 86400)));
    input.budget = r.budget;
    input.reason = r.reason;
    input.break_glass = r.break_glass;
    auto decided = authority_.request(who, std::move(input), now);
    if (!decided) {
        return error_reply(decided.error());
    }
    if (decided->grant) {
        if (decided->request.break_glass) {
            // Loudly, also outside the audit log: the journal of the host shows it at once.
            std::cerr << "dkim-signerd: BREAK-GLASS: " << who.name << " activated grant "
                      << decided->grant->id << " for " << decided->request.scope.to_string()
                      << " without approval, for "
                      << jit::format_duration(decided->request.duration) << ": "
                      << decided->request.reason << "\n";
        }
        (void)lifecycle_.reconcile(now);
        lifecycle_.notify_change();
        return ipc::OkReply{"request " + std::to_string(decided->request.id) + " " +
                                (decided->request.break_glass ? "BREAK-GLASS: " : "") + "grant " +
                                std::to_string(decided->grant->id) + " active (" +
                                decided->request.decided_by + ")" +
                                superseded_note(decided->superseded),
                            decided->request.id, ""};
    }
    lifecycle_.notify_change();
    return ipc::OkReply{"request " + std::to_string(decided->request.id) + " pending approval",
                        decided->request.id, ""};
}

ipc::Reply ElevationHandlers::operate(const Actor& /*who*/, ipc::ElevationList& r, TimePoint now) {
    ipc::RequestsReply out;
    for (const jit::Request& req : authority_.requests()) {
        if (!r.pending_only || req.state_at(now) == jit::RequestState::pending) {
            out.requests.push_back(request_view(req, authority_, now));
        }
    }
    return out;
}

ipc::Reply ElevationHandlers::operate(const Actor& caller, ipc::ElevationDecide& r, TimePoint now) {
    Actor who = caller;
    if (r.action == "cancel") {
        auto cancelled = authority_.cancel(who, r.id, now);
        if (!cancelled) {
            return error_reply(cancelled.error());
        }
        return ipc::OkReply{"request " + std::to_string(r.id) + " cancelled", r.id, ""};
    }
    if (r.action != "approve" && r.action != "deny") {
        return error_reply(ipc::ErrorCode::invalid, "action must be approve, deny or cancel");
    }
    if (who.kind != Actor::Kind::user) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "approvals and denials are made by users with their second factor");
    }
    // Cheap checks first, so that a hopeless approval or denial does not spend the TOTP code:
    // the request is pending, the user is one of its approvers, not its requester, and has
    // not approved it yet.
    const auto pending = authority_.find_request(r.id);
    if (!pending) {
        return error_reply(ipc::ErrorCode::not_found, "no request " + std::to_string(r.id));
    }
    if (auto allowed = authority_.may_decide(who, r.id, r.action == "approve", now); !allowed) {
        return error_reply(allowed.error());
    }
    // The second factor, bound to this decision when it is a passkey's: the subject is rebuilt
    // here from the stored request, so an assertion made for another request, another action,
    // another reason or another approver does not fit its challenge.
    auto checked =
        factors_.check(who, r.auth, pending->scope.operation,
                       request_subject(r.action, *pending,
                                       r.action == "deny" ? r.reason : std::string(), who.name),
                       now);
    if (!checked) {
        return error_reply(checked.error());
    }
    who.factor = std::move(*checked);
    if (r.action == "deny") {
        auto denied = authority_.deny(who, r.id, r.reason, now);
        if (!denied) {
            return error_reply(denied.error());
        }
        lifecycle_.notify_change();
        return ipc::OkReply{"request " + std::to_string(r.id) + " denied", r.id, ""};
    }
    std::optional<hsm::Secret> pin;
    if (custody_.mode() == PinSourceKind::approver && !r.pin.empty()) {
        // Sealed end to end to a key offered to this approver for this request: webd, which
        // forwarded it, could not read it.
        auto opened = custody_.open_approval_pin(who.name, r.id, r.pin, now);
        if (!opened) {
            return error_reply(ipc::ErrorCode::invalid, "the PIN envelope: " + opened.error());
        }
        pin = std::move(*opened);
    }
    const unsigned quorum = authority_.policy().for_operation(pending->scope.operation).quorum;
    const bool completes = pending->approvals.size() + 1 >= quorum;
    std::optional<jit::Outcome<jit::Decision>> decided;
    auto approve = [&] { decided.emplace(authority_.approve(who, r.id, now)); };
    if (custody_.mode() == PinSourceKind::approver && completes) {
        // The approval that activates a grant brings the PIN: the token logs in with it first,
        // and the approval is made under the lifecycle's lock (TokenLifecycle::login_for).
        auto logged = lifecycle_.login_for(now, std::move(pin), who.name, r.id, approve);
        if (!logged) {
            using Kind = TokenLifecycle::LoginRefusal::Kind;
            if (logged.error().kind == Kind::no_pin) {
                return error_reply(ipc::ErrorCode::invalid,
                                   "this approval activates the grant and the token is logged "
                                   "out: PIN custody \"approver\" needs the token PIN with it, "
                                   "sealed to a key signerd offers (pin key offer)");
            }
            if (logged.error().kind == Kind::wrong_pin) {
                return error_reply(ipc::ErrorCode::forbidden,
                                   "the token refused the PIN; the request stays pending");
            }
            if (logged.error().kind == Kind::held_back) {
                return error_reply(ipc::ErrorCode::forbidden,
                                   "the PIN was not tried: " + logged.error().message +
                                       " (systemctl restart dkim-signerd, as root); the request "
                                       "stays pending");
            }
            // The token.login record could not be written: logged out again.
            return error_reply(ipc::ErrorCode::unavailable, logged.error().message);
        }
    } else {
        pin.reset();
        approve();
        // Log in for the new grant, or out again if the approval failed.
        (void)lifecycle_.reconcile(now);
    }
    auto& approved = *decided;
    if (!approved) {
        return error_reply(approved.error());
    }
    lifecycle_.notify_change();
    if (approved->grant) {
        const jit::Grant& g = *approved->grant;
        // A renewal approved while the grant it renews lasts starts when that one ends.
        const std::string when = g.starts > now
                                     ? " scheduled: it starts as grant " +
                                           std::to_string(approved->request.renews) + " ends, in " +
                                           jit::format_duration(g.starts - now)
                                     : " active";
        return ipc::OkReply{"request " + std::to_string(r.id) + " approved: grant " +
                                std::to_string(g.id) + when + superseded_note(approved->superseded),
                            approved->grant->id, ""};
    }
    return ipc::OkReply{"request " + std::to_string(r.id) + " approved (" +
                            std::to_string(approved->request.approvals.size()) + " of " +
                            std::to_string(quorum) + ")",
                        0, ""};
}

ipc::Reply ElevationHandlers::operate(const Actor& caller, ipc::GrantRevoke& r, TimePoint now) {
    Actor who = caller;
    if (who.kind == Actor::Kind::user) {
        std::optional<jit::Grant> grant;
        for (jit::Grant& g : authority_.grants()) {
            if (g.id == r.id) {
                grant = std::move(g);
            }
        }
        if (!grant) {
            return error_reply(ipc::ErrorCode::not_found, "no grant " + std::to_string(r.id));
        }
        auto checked = factors_.check(who, r.auth, grant->scope.operation,
                                      grant_subject(*grant, r.reason, who.name), now);
        if (!checked) {
            return error_reply(checked.error());
        }
        who.factor = std::move(*checked);
    }
    auto revoked = authority_.revoke(who, r.id, r.reason, now);
    if (!revoked) {
        return error_reply(revoked.error());
    }
    // Durable, and the token logged out if this was the last grant, before the answer.
    (void)lifecycle_.reconcile(now);
    lifecycle_.notify_change();
    return ipc::OkReply{"grant " + std::to_string(r.id) + " revoked" +
                            (lifecycle_.logged_in() ? "" : "; the token is logged out"),
                        r.id, ""};
}

ipc::Reply ElevationHandlers::operate(const Actor& /*who*/, ipc::GrantList& r, TimePoint now) {
    ipc::GrantsReply out;
    for (const jit::Grant& g : authority_.grants()) {
        if (!r.active_only || g.active_at(now)) {
            out.grants.push_back(grant_view(g, authority_, now));
        }
    }
    return out;
}

}  // namespace dkim::signerd

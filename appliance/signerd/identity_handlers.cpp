#include "identity_handlers.hpp"

#include <algorithm>

#include "audit_handlers.hpp"
#include "dkim/base/wipe.hpp"

namespace dkim::signerd {

using jit::Actor;
using jit::Refusal;

namespace {

bool may_list_users(const Actor& who) {
    return who.kind != Actor::Kind::user || jit::has_role(who.roles, jit::Role::admin) ||
           jit::has_role(who.roles, jit::Role::auditor);
}

// What `who` may do (WhoAmI), by the rules the operations check: Authority::request (the
// requester role; break-glass: admin, and operate(ElevationRequest) wants a TOTP code),
// Authority::decidable_request and ::revoke (the operation's approvers in the policy; admins
// revoke any grant, holders their own; users confirm each with a TOTP code, which needs a
// confirmed enrolment), Authority::cancel (admins and the local operator cancel any pending
// request), may_read_audit and may_list_users. It grants nothing: every operation checks
// again. PermissionsTest.PermissionsAreWhatTheOperationsAllow holds the two together.
// A second factor is a confirmed TOTP or a passkey (with [webauthn] configured); per operation,
// one that the operation's policy accepts (`factors`).
ipc::Permissions permissions_of(const Actor& who, bool totp, bool passkey,
                                const jit::Policy& policy) {
    ipc::Permissions p;
    const bool user = who.kind == Actor::Kind::user;
    const bool admin = jit::has_role(who.roles, jit::Role::admin);
    const auto factor_for = [&](jit::Operation op) {
        const jit::OperationPolicy& rules = policy.for_operation(op);
        return (totp && rules.accepts_totp) || (passkey && rules.accepts_webauthn);
    };
    const bool any_factor =
        std::any_of(std::begin(jit::kOperations), std::end(jit::kOperations), factor_for);
    p.request = user && jit::has_role(who.roles, jit::Role::requester);
    p.break_glass = user && admin && any_factor;
    if (user) {
        for (const jit::Operation op : jit::kOperations) {
            if (factor_for(op) && policy.for_operation(op).may_approve(who.name, who.roles)) {
                p.approve.emplace_back(jit::to_string(op));
            }
        }
    }
    p.revoke_own = user && any_factor;
    p.revoke_any = who.kind == Actor::Kind::local || (user && admin && any_factor);
    p.cancel_any = who.kind == Actor::Kind::local || admin;
    p.audit = may_read_audit(who);
    p.users = may_list_users(who);
    return p;
}

}  // namespace

Expected<void, Refusal> IdentityHandlers::may_administer(const Actor& actor, TimePoint now) {
    if (actor.kind == Actor::Kind::local) {
        return {};
    }
    if (actor.kind != Actor::Kind::user || !jit::has_role(actor.roles, jit::Role::admin)) {
        return jit::refuse(Refusal::Code::forbidden, "this needs the admin role", "role");
    }
    auto grant = authority_.authorize_operation(actor, jit::Operation::admin, "*", "*", now);
    if (!grant) {
        return unexpected(grant.error());
    }
    return {};
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::SessionCreate& r, TimePoint now) {
    if (who.kind != Actor::Kind::user) {
        return error_reply(ipc::ErrorCode::unauthenticated,
                           "a session needs a user name and password");
    }
    const auto ttl =
        std::chrono::seconds(std::clamp<std::int64_t>(r.ttl_seconds, 60, std::int64_t{12} * 3600));
    auto made =
        directory_.create_token(who, who.name, jit::TokenKind::session, "session", ttl, now);
    if (!made) {
        return error_reply(made.error());
    }
    ipc::OkReply ok{"session for " + who.name + " (" + jit::roles_to_string(who.roles) + ")",
                    made->token.id, std::move(made->secret)};
    return ok;
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::UserAdd& r, TimePoint now) {
    if (auto allowed = may_administer(who, now); !allowed) {
        return error_reply(allowed.error());
    }
    const auto roles = jit::parse_roles(r.roles);
    if (!roles) {
        return error_reply(ipc::ErrorCode::invalid, "unknown role in '" + r.roles +
                                                        "' (requester, approver, admin, auditor)");
    }
    auto added = directory_.add_user(who, r.name, *roles, r.password, now);
    if (!added) {
        return error_reply(added.error());
    }
    return ipc::OkReply{
        "user " + added->name + " added with roles " + jit::roles_to_string(added->roles), 0, ""};
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::UserList& /*r*/, TimePoint now) {
    if (!may_list_users(who)) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "listing users needs the admin or auditor role");
    }
    ipc::UsersReply out;
    for (const jit::User& u : directory_.users()) {
        out.users.push_back({u.name, jit::roles_to_string(u.roles), u.disabled,
                             !u.password_hash.empty(), u.totp_confirmed, to_unix_ms(u.created)});
    }
    for (const jit::ApiToken& t : directory_.tokens()) {
        out.tokens.push_back({t.id, t.user, t.kind == jit::TokenKind::api ? "api" : "session",
                              t.label, to_unix_ms(t.created),
                              t.expires ? to_unix_ms(*t.expires) : 0,
                              t.revoked || (t.expires && now >= *t.expires)});
    }
    return out;
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::UserSetDisabled& r, TimePoint now) {
    if (auto allowed = may_administer(who, now); !allowed) {
        return error_reply(allowed.error());
    }
    auto changed = directory_.set_disabled(who, r.name, r.disabled, now);
    if (!changed) {
        return error_reply(changed.error());
    }
    return ipc::OkReply{"user " + r.name + (r.disabled ? " disabled" : " enabled"), 0, ""};
}

ipc::Reply IdentityHandlers::operate(const Peer& peer, const Actor& who, ipc::ApiTokenCreate& r,
                                     TimePoint now) {
    // A token is made from a password login (with TOTP when enrolled), never from a token.
    const std::string user = r.user.empty() ? who.name : r.user;
    if (user != who.name || who.kind == Actor::Kind::local) {
        if (peer.kind == PeerKind::web) {
            // dkim-webd sees every console user's password: through it, a user makes tokens for
            // themselves only, whatever grant an admin holds.
            return error_reply(ipc::ErrorCode::forbidden,
                               "through the web console a user makes API tokens only for "
                               "themselves");
        }
        if (auto allowed = may_administer(who, now); !allowed) {
            return error_reply(allowed.error());
        }
    }
    // 0: the default lifetime; kApiTokenNeverExpires: no expiry, only when asked for explicitly.
    std::optional<Duration> ttl;
    if (r.ttl_seconds == 0) {
        ttl = ipc::kApiTokenDefaultTtl;
    } else if (r.ttl_seconds > 0) {
        ttl = std::chrono::seconds(r.ttl_seconds);
    } else if (r.ttl_seconds != ipc::kApiTokenNeverExpires) {
        return error_reply(ipc::ErrorCode::invalid,
                           "ttl_seconds is a positive number of seconds, 0 for the default (" +
                               std::to_string(ipc::kApiTokenDefaultTtl.count() / 86400) +
                               " days) or -1 for no expiry");
    }
    auto made = directory_.create_token(who, user, jit::TokenKind::api, r.label, ttl, now);
    if (!made) {
        return error_reply(made.error());
    }
    return ipc::OkReply{"API token " + std::to_string(made->token.id) + " for " + user +
                            " (shown once; only its hash is kept)",
                        made->token.id, std::move(made->secret)};
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::ApiTokenRevoke& r, TimePoint now) {
    auto revoked = directory_.revoke_token(who, r.id, now);
    if (!revoked) {
        return error_reply(revoked.error());
    }
    return ipc::OkReply{"token " + std::to_string(r.id) + " revoked", r.id, ""};
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::TotpEnrol& r, TimePoint now) {
    // From the admin peer only (dispatch refuses the others): a user enrols their own first TOTP
    // there with their password; enrolling another user, or replacing a confirmed TOTP (a lost
    // phone), is the local operator's or an admin's under an admin grant.
    const std::string user = r.user.empty() ? who.name : r.user;
    const auto target = directory_.find(user);
    const bool replace = target && target->totp_confirmed;
    if (who.kind != Actor::Kind::local && (user != who.name || replace)) {
        if (auto allowed = may_administer(who, now); !allowed) {
            if (!replace) {
                return error_reply(allowed.error());
            }
            return error_reply(ipc::ErrorCode::forbidden,
                               "the TOTP of " + user +
                                   " is confirmed: only the local operator (root) or an "
                                   "admin under an admin grant can replace it");
        }
    }
    auto enrolled = directory_.enrol_totp(who, user, now, replace);
    if (!enrolled) {
        return error_reply(enrolled.error());
    }
    ipc::OkReply ok{"TOTP secret for " + user + " (confirm it with a code: totp confirm)", 0,
                    std::move(enrolled->uri)};
    base::wipe(enrolled->secret_base32);
    return ok;
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::TotpConfirm& r, TimePoint now) {
    const std::string user = r.user.empty() ? who.name : r.user;
    if (user != who.name && who.kind != Actor::Kind::local) {
        return error_reply(ipc::ErrorCode::forbidden, "users confirm their own enrolment");
    }
    auto confirmed = directory_.confirm_totp(who, user, r.code, now);
    if (!confirmed) {
        return error_reply(confirmed.error());
    }
    return ipc::OkReply{"TOTP confirmed for " + user, 0, ""};
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::WhoAmI& r, TimePoint /*now*/) {
    ipc::IdentityReply out;
    out.name = who.name;
    out.roles = jit::roles_to_string(who.roles);
    out.kind = who.kind == Actor::Kind::local ? "local" : "user";
    if (who.kind == Actor::Kind::user) {
        const auto user = directory_.find(who.name);
        out.totp = user && user->totp_confirmed;
        out.passkeys = static_cast<std::uint32_t>(directory_.confirmed_passkeys(who.name).size());
    }
    for (const jit::Operation op : jit::kOperations) {
        const jit::OperationPolicy& rules = authority_.policy().for_operation(op);
        ipc::OperationFactors f{std::string(jit::to_string(op)), {}};
        if (rules.accepts_totp) {
            f.factors.emplace_back("totp");
        }
        if (rules.accepts_webauthn && passkeys_enabled_) {
            f.factors.emplace_back("webauthn");
        }
        out.factors.push_back(std::move(f));
    }
    out.permissions =
        permissions_of(who, out.totp, passkeys_enabled_ && out.passkeys > 0, authority_.policy());
    if (!r.auth.token.empty()) {
        if (const auto token = directory_.token_info(r.auth.token)) {
            out.token_kind = token->kind == jit::TokenKind::api ? "api" : "session";
            out.token_id = token->id;
            out.token_expires_ms = token->expires ? to_unix_ms(*token->expires) : 0;
        }
    }
    return out;
}

ipc::Reply IdentityHandlers::operate(const Actor& who, ipc::SessionEnd& r, TimePoint now) {
    const auto token = r.auth.token.empty() ? std::nullopt : directory_.token_info(r.auth.token);
    if (!token || token->kind != jit::TokenKind::session) {
        return error_reply(ipc::ErrorCode::invalid, "only a session token can end its session");
    }
    auto revoked = directory_.revoke_token(who, token->id, now);
    if (!revoked) {
        return error_reply(revoked.error());
    }
    return ipc::OkReply{"session ended", token->id, ""};
}

}  // namespace dkim::signerd

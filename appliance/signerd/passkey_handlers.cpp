#include "passkey_handlers.hpp"

#include <algorithm>

#include "dkim/crypto/sha256.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/webauthn.hpp"

namespace dkim::signerd {

using jit::Actor;
namespace webauthn = jit::webauthn;

namespace {

constexpr std::int64_t kCeremonyTimeoutMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(jit::ChallengeBook::kLifetime).count();

std::int64_t seconds_of(Duration d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

ipc::PasskeyView passkey_view(const jit::Passkey& p) {
    return {p.credential_id,
            p.user,
            p.name,
            p.algorithm,
            to_unix_ms(p.created),
            p.last_used ? to_unix_ms(*p.last_used) : 0,
            p.backup_eligible,
            p.confirmed};
}

bool may_see_others(const Actor& who) {
    return who.kind == Actor::Kind::local || jit::has_role(who.roles, jit::Role::admin) ||
           jit::has_role(who.roles, jit::Role::auditor);
}

}  // namespace

jit::DecisionSubject request_subject(const std::string& action, const jit::Request& request,
                                     const std::string& reason, const std::string& actor) {
    return {action,
            request.id,
            request.scope.to_string(),
            seconds_of(request.duration),
            request.budget,
            reason,
            actor,
            {}};
}

jit::DecisionSubject grant_subject(const jit::Grant& grant, const std::string& reason,
                                   const std::string& actor) {
    return {"revoke",
            grant.id,
            grant.scope.to_string(),
            seconds_of(grant.expires - grant.starts),
            grant.budget,
            reason,
            actor,
            {}};
}

std::optional<jit::DecisionSubject> break_glass_subject(
    const std::string& operation, const std::string& domain, const std::string& selector,
    const std::string& client, std::int64_t duration_seconds, std::optional<std::uint64_t> budget,
    const std::string& reason, const std::string& actor) {
    const auto op = jit::parse_operation(operation);
    if (!op) {
        return std::nullopt;
    }
    jit::Scope scope{*op, domain, selector.empty() ? "*" : selector, client.empty() ? "*" : client};
    if (jit::validate_scope(scope)) {
        return std::nullopt;  // a message: the scope is invalid
    }
    // As ElevationHandlers::operate(ElevationRequest) bounds it.
    const std::int64_t seconds =
        std::max<std::int64_t>(0, std::min<std::int64_t>(duration_seconds, 366LL * 86400));
    return jit::DecisionSubject{"break_glass", 0, scope.to_string(), seconds, budget, reason,
                                actor,         {}};
}

jit::DecisionSubject passkey_subject(const std::string& action, const std::string& target,
                                     const std::string& actor) {
    return {action, 0, "", 0, std::nullopt, "", actor, target};
}

std::string attestation_digest(std::string_view attestation_object) {
    return jit::to_hex(crypto::Sha256::hash(attestation_object));
}

std::vector<std::string> PasskeyHandlers::credential_ids(const std::string& user,
                                                         bool pending_too) const {
    std::vector<std::string> ids;
    for (const jit::Passkey& p :
         pending_too ? directory_.passkeys(user) : directory_.confirmed_passkeys(user)) {
        ids.push_back(p.credential_id);
    }
    return ids;
}

ipc::Reply PasskeyHandlers::login_challenge(TimePoint now) {
    if (!factors_.config().enabled()) {
        return error_reply(ipc::ErrorCode::invalid,
                           "passkeys are not configured ([webauthn] rp_id and origins)");
    }
    ipc::PasskeyChallengeReply out;
    out.challenge = factors_.challenges().issue(jit::ChallengeBook::Purpose::login, "", {}, now);
    out.rp_id = factors_.config().rp_id;
    out.rp_name = factors_.config().rp_name;
    out.timeout_ms = kCeremonyTimeoutMs;
    out.user_verification_required = factors_.config().require_user_verification;
    return out;
}

jit::Outcome<std::pair<std::optional<jit::Operation>, jit::DecisionSubject>>
PasskeyHandlers::subject_of(const Actor& who, const ipc::PasskeyChallenge& r, TimePoint now) const {
    using Result = std::pair<std::optional<jit::Operation>, jit::DecisionSubject>;
    if (r.purpose == "approve" || r.purpose == "deny") {
        const auto request = authority_.find_request(r.id);
        if (!request) {
            return jit::refuse(jit::Refusal::Code::not_found, "no request " + std::to_string(r.id));
        }
        // A hopeless decision is refused before the authenticator is asked.
        if (auto allowed = authority_.may_decide(who, r.id, r.purpose == "approve", now);
            !allowed) {
            return unexpected(allowed.error());
        }
        return Result{request->scope.operation,
                      request_subject(r.purpose, *request,
                                      r.purpose == "deny" ? r.reason : std::string(), who.name)};
    }
    if (r.purpose == "revoke") {
        for (const jit::Grant& g : authority_.grants()) {
            if (g.id == r.id) {
                return Result{g.scope.operation, grant_subject(g, r.reason, who.name)};
            }
        }
        return jit::refuse(jit::Refusal::Code::not_found, "no grant " + std::to_string(r.id));
    }
    if (r.purpose == "break_glass") {
        auto subject = break_glass_subject(r.operation, r.domain, r.selector, r.client,
                                           r.duration_seconds, r.budget, r.reason, who.name);
        if (!subject) {
            return jit::refuse(jit::Refusal::Code::invalid, "not a valid break-glass request");
        }
        return Result{jit::parse_operation(r.operation), std::move(*subject)};
    }
    if (r.purpose == "remove") {
        const auto mine = credential_ids(who.name, true);
        if (std::find(mine.begin(), mine.end(), r.credential_id) == mine.end()) {
            return jit::refuse(jit::Refusal::Code::not_found, "no such passkey of " + who.name);
        }
        return Result{std::nullopt,
                      passkey_subject("passkey.remove", webauthn::base64url_encode(r.credential_id),
                                      who.name)};
    }
    if (r.purpose == "register_confirm") {
        if (r.attestation_object.empty()) {
            return jit::refuse(jit::Refusal::Code::invalid,
                               "register_confirm needs the new credential's attestation object");
        }
        return Result{std::nullopt,
                      passkey_subject("passkey.register", attestation_digest(r.attestation_object),
                                      who.name)};
    }
    return jit::refuse(jit::Refusal::Code::invalid,
                       "purpose must be register, register_confirm, approve, deny, revoke, "
                       "break_glass or remove");
}

ipc::Reply PasskeyHandlers::operate(const Actor& who, ipc::PasskeyChallenge& r, TimePoint now) {
    if (!factors_.config().enabled()) {
        return error_reply(ipc::ErrorCode::invalid,
                           "passkeys are not configured ([webauthn] rp_id and origins)");
    }
    if (who.kind != Actor::Kind::user) {
        return error_reply(ipc::ErrorCode::forbidden, "passkeys belong to users");
    }
    ipc::PasskeyChallengeReply out;
    out.rp_id = factors_.config().rp_id;
    out.rp_name = factors_.config().rp_name;
    out.timeout_ms = kCeremonyTimeoutMs;
    out.user_verification_required = factors_.config().require_user_verification;
    out.credentials = credential_ids(who.name);
    if (r.purpose == "register") {
        out.credentials = credential_ids(who.name, true);  // excludeCredentials: pending too
        out.challenge = factors_.challenges().issue(jit::ChallengeBook::Purpose::registration,
                                                    who.name, {}, now);
        out.user_handle = jit::passkey_user_handle(who.name);
        out.user_name = who.name;
        for (const auto a : {webauthn::Algorithm::es256, webauthn::Algorithm::ed25519,
                             webauthn::Algorithm::rs256}) {
            out.algorithms.push_back(webauthn::cose_identifier(a));
        }
        return out;
    }
    auto subject = subject_of(who, r, now);
    if (!subject) {
        return error_reply(subject.error());
    }
    if (out.credentials.empty()) {
        return error_reply(ipc::ErrorCode::conflict, who.name + " has no passkey registered");
    }
    if (subject->first && !authority_.policy().for_operation(*subject->first).accepts_webauthn) {
        return error_reply(jit::Refusal{jit::Refusal::Code::forbidden,
                                        "policy accepts only a TOTP code for " +
                                            std::string(jit::to_string(*subject->first)) +
                                            " decisions",
                                        "factor"});
    }
    out.challenge = factors_.challenges().issue(jit::ChallengeBook::Purpose::decision, who.name,
                                                jit::decision_digest(subject->second), now);
    out.statement = jit::decision_statement(subject->second);
    return out;
}

ipc::Reply PasskeyHandlers::operate(const Actor& who, ipc::PasskeyRegister& r, TimePoint now) {
    if (!factors_.config().enabled()) {
        return error_reply(ipc::ErrorCode::invalid,
                           "passkeys are not configured ([webauthn] rp_id and origins)");
    }
    if (who.kind != Actor::Kind::user) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "a passkey is registered by its user, in the web console");
    }
    // The registration itself first: a wrong one spends the challenge, not the second factor.
    auto taken = factors_.take_challenge(r.client_data_json, now);
    if (!taken || taken->second.purpose != jit::ChallengeBook::Purpose::registration ||
        taken->second.user != who.name) {
        return error_reply(ipc::ErrorCode::invalid,
                           "the registration's challenge was not issued to " + who.name +
                               " for a registration, was used already, or expired: start again");
    }
    auto registration = webauthn::verify_registration(
        factors_.relying_party(), r.client_data_json, r.attestation_object, taken->first,
        factors_.config().require_user_verification,
        {webauthn::Algorithm::es256, webauthn::Algorithm::ed25519, webauthn::Algorithm::rs256});
    if (!registration) {
        return error_reply(ipc::ErrorCode::invalid,
                           "the registration was refused (" +
                               std::string(webauthn::to_string(registration.error().reason)) +
                               "): " + registration.error().message);
    }
    // The user's consent: an existing passkey's, bound to this attestation object; or, for the
    // first one, a TOTP code, which webd sees: so a first passkey counts only once it is
    // confirmed at the CLI (PasskeyConfirm), as a first TOTP is enrolled only there.
    const bool first = directory_.confirmed_passkeys(who.name).empty();
    if (first && !r.auth.passkey.empty()) {
        return error_reply(ipc::ErrorCode::invalid,
                           "a first passkey is confirmed with a TOTP code");
    }
    if (!first && r.auth.passkey.empty()) {
        return error_reply(jit::Refusal{
            jit::Refusal::Code::forbidden,
            "adding a passkey needs the consent of one you have (register_confirm)", "factor"});
    }
    auto consent = factors_.check(
        who, r.auth, std::nullopt,
        passkey_subject("passkey.register", attestation_digest(r.attestation_object), who.name),
        now);
    if (!consent) {
        return error_reply(consent.error());
    }
    auto added = directory_.add_passkey(who, who.name, *registration, r.name, !first, now);
    if (!added) {
        return error_reply(added.error());
    }
    ipc::PasskeysReply out;
    out.passkeys.push_back(passkey_view(*added));
    return out;
}

ipc::Reply PasskeyHandlers::operate(const Actor& who, ipc::PasskeyList& r, TimePoint /*now*/) {
    std::string user = r.user;
    if (user.empty() || user == who.name) {
        if (who.kind != Actor::Kind::user) {
            return error_reply(ipc::ErrorCode::invalid, "name a user (or * for all)");
        }
        user = who.name;
    } else if (!may_see_others(who)) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "listing another user's passkeys needs the admin or auditor role");
    }
    ipc::PasskeysReply out;
    for (const jit::Passkey& p : directory_.passkeys(user == "*" ? "" : user)) {
        out.passkeys.push_back(passkey_view(p));
    }
    return out;
}

ipc::Reply PasskeyHandlers::operate(const Actor& who, ipc::PasskeyRename& r, TimePoint now) {
    if (who.kind != Actor::Kind::user) {
        return error_reply(ipc::ErrorCode::forbidden, "a passkey is renamed by its user");
    }
    auto renamed = directory_.rename_passkey(who, who.name, r.credential_id, r.name, now);
    if (!renamed) {
        return error_reply(renamed.error());
    }
    ipc::PasskeysReply out;
    out.passkeys.push_back(passkey_view(*renamed));
    return out;
}

ipc::Reply PasskeyHandlers::operate(const Peer& peer, const Actor& who, ipc::PasskeyRemove& r,
                                    TimePoint now) {
    const bool own = who.kind == Actor::Kind::user && (r.user.empty() || r.user == who.name);
    if (own) {
        // The user's own, with the consent of another passkey of theirs (a TOTP code, which
        // webd sees, does not take passkeys away); never the last one (that needs the CLI),
        // which is refused before the consent is spent.
        if (const auto mine = credential_ids(who.name);
            mine.size() == 1 && mine.front() == r.credential_id) {
            return error_reply(jit::Refusal{
                jit::Refusal::Code::forbidden,
                "this is your last passkey: only the local operator (root) or an admin under an "
                "admin grant can remove it, never through the web console",
                "passkey-last"});
        }
        if (r.auth.passkey.empty()) {
            return error_reply(jit::Refusal{
                jit::Refusal::Code::forbidden,
                "removing a passkey needs the consent of another passkey of yours (a remove "
                "challenge)",
                "factor"});
        }
        auto consent =
            factors_.check(who, r.auth, std::nullopt,
                           passkey_subject("passkey.remove",
                                           webauthn::base64url_encode(r.credential_id), who.name),
                           now);
        if (!consent) {
            return error_reply(consent.error());
        }
        auto removed = directory_.remove_passkey(who, who.name, r.credential_id, false, now);
        if (!removed) {
            return error_reply(removed.error());
        }
        return ipc::OkReply{"passkey " + removed->name + " of " + who.name + " removed", 0, ""};
    }
    // Another user's (a lost authenticator): the local operator, or an admin under an admin grant,
    // at the CLI only.
    if (peer.kind != PeerKind::admin) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "another user's passkeys are removed only at the CLI (root, or an "
                           "admin under an admin grant), never through the web console");
    }
    if (who.kind != Actor::Kind::local) {
        if (!jit::has_role(who.roles, jit::Role::admin)) {
            return error_reply(ipc::ErrorCode::forbidden, "this needs the admin role");
        }
        if (auto grant = authority_.authorize_operation(who, jit::Operation::admin, "*", "*", now);
            !grant) {
            return error_reply(grant.error());
        }
    }
    const std::string user = r.user.empty() ? who.name : r.user;
    auto removed = directory_.remove_passkey(who, user, r.credential_id, true, now);
    if (!removed) {
        return error_reply(removed.error());
    }
    return ipc::OkReply{"passkey " + removed->name + " of " + user + " removed", 0, ""};
}

ipc::Reply PasskeyHandlers::operate(const Peer& peer, const Actor& who, ipc::PasskeyConfirm& r,
                                    TimePoint now) {
    // Where a first TOTP is enrolled: the admin peer, as root or an admin under an admin grant.
    if (peer.kind != PeerKind::admin) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "a first passkey is confirmed only at the CLI (root, or an admin under "
                           "an admin grant), never through the web console");
    }
    if (who.kind != Actor::Kind::local) {
        if (!jit::has_role(who.roles, jit::Role::admin)) {
            return error_reply(ipc::ErrorCode::forbidden, "this needs the admin role");
        }
        if (auto grant = authority_.authorize_operation(who, jit::Operation::admin, "*", "*", now);
            !grant) {
            return error_reply(grant.error());
        }
    }
    auto confirmed = directory_.confirm_passkey(who, r.user, r.credential_id, now);
    if (!confirmed) {
        return error_reply(confirmed.error());
    }
    return ipc::OkReply{"passkey " + confirmed->name + " of " + r.user +
                            " confirmed: it signs in and decides from now on",
                        0, ""};
}

}  // namespace dkim::signerd

#include "second_factor.hpp"

#include "dkim/jit/audit.hpp"
#include "dkim/jit/webauthn.hpp"

namespace dkim::signerd {

using jit::Refusal;
namespace webauthn = jit::webauthn;

webauthn::Assertion to_assertion(const ipc::PasskeyAssertion& a) {
    return {a.credential_id, a.client_data_json, a.authenticator_data, a.signature, a.user_handle};
}

std::optional<std::pair<std::string, jit::ChallengeBook::Entry>> SecondFactors::take_challenge(
    std::string_view client_data_json, TimePoint now) {
    auto client = webauthn::parse_client_data(client_data_json);
    if (!client) {
        return std::nullopt;
    }
    auto entry = challenges_.take(client->challenge, now);
    if (!entry) {
        return std::nullopt;
    }
    return std::make_pair(std::move(client->challenge), std::move(*entry));
}

jit::Outcome<std::string> SecondFactors::check(const jit::Actor& who, const ipc::Credentials& auth,
                                               std::optional<jit::Operation> operation,
                                               const jit::DecisionSubject& subject, TimePoint now) {
    const jit::OperationPolicy* rules = operation ? &policy_.for_operation(*operation) : nullptr;
    if (auth.passkey.empty()) {
        if (rules != nullptr && !rules->accepts_totp) {
            return jit::refuse(Refusal::Code::forbidden,
                               "policy accepts only a passkey for " +
                                   std::string(jit::to_string(*operation)) +
                                   " decisions: make it in the web console with your passkey",
                               "factor");
        }
        if (auto checked = directory_.check_totp(who, auth.totp, now); !checked) {
            return unexpected(checked.error());
        }
        return std::string("factor=totp");
    }
    if (rules != nullptr && !rules->accepts_webauthn) {
        return jit::refuse(Refusal::Code::forbidden,
                           "policy accepts only a TOTP code for " +
                               std::string(jit::to_string(*operation)) + " decisions",
                           "factor");
    }
    if (!config_.enabled()) {
        return jit::refuse(Refusal::Code::invalid,
                           "passkeys are not configured ([webauthn] rp_id and origins)");
    }
    if (who.kind != jit::Actor::Kind::user) {
        return jit::refuse(Refusal::Code::forbidden, "a passkey needs a user");
    }
    // The challenge must be one signerd issued to this user for exactly this decision. Whatever
    // else is wrong, the assertion is refused by check_passkey, which counts and records why.
    const auto digest = jit::decision_digest(subject);
    auto taken = take_challenge(auth.passkey.client_data_json, now);
    std::string refused;
    if (!taken) {
        refused = "webauthn challenge: not issued, used already, or expired";
    } else if (taken->second.purpose != jit::ChallengeBook::Purpose::decision) {
        refused = "webauthn challenge: issued for a login or a registration, not a decision";
    } else if (taken->second.user != who.name) {
        refused = "webauthn challenge: issued to another user";
    } else if (taken->second.digest != digest) {
        refused = "webauthn challenge: issued for another decision than " + subject.action + " " +
                  std::to_string(subject.id);
    }
    const std::string challenge = taken ? taken->first : std::string();
    auto used =
        directory_.check_passkey(who.name, to_assertion(auth.passkey), challenge, relying_party(),
                                 config_.require_user_verification, "auth.webauthn", now, refused);
    if (!used) {
        return unexpected(used.error());
    }
    // Everything an auditor needs to check the approval later with the credential's public key
    // (on the log since its passkey.register record): the assertion as signed, and the
    // statement's hash that the challenge carries after its 16 random bytes.
    const auto& a = auth.passkey;
    return "factor=webauthn; credential=" + webauthn::base64url_encode(a.credential_id) +
           "; statement_sha256=" + jit::to_hex(digest) +
           "; challenge=" + webauthn::base64url_encode(challenge) +
           "; authenticator_data=" + webauthn::base64url_encode(a.authenticator_data) +
           "; client_data=" + webauthn::base64url_encode(a.client_data_json) +
           "; signature=" + webauthn::base64url_encode(a.signature) + "; rp_id=" + config_.rp_id +
           "; statement=" + webauthn::base64url_encode(jit::decision_statement(subject));
}

jit::Outcome<jit::Actor> SecondFactors::login(const ipc::PasskeyAssertion& assertion,
                                              TimePoint now) {
    if (!config_.enabled()) {
        return jit::refuse(Refusal::Code::unauthenticated,
                           "passkeys are not configured ([webauthn] rp_id and origins)");
    }
    auto taken = take_challenge(assertion.client_data_json, now);
    std::string refused;
    if (!taken) {
        refused = "webauthn challenge: not issued, used already, or expired";
    } else if (taken->second.purpose != jit::ChallengeBook::Purpose::login) {
        refused = "webauthn challenge: not issued for a login";
    }
    auto used = directory_.check_passkey(
        "", to_assertion(assertion), taken ? taken->first : std::string(), relying_party(),
        config_.require_user_verification, "auth.login.webauthn", now, refused);
    if (!used) {
        return unexpected(used.error());
    }
    return used->actor;
}

}  // namespace dkim::signerd

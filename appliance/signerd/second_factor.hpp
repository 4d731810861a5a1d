#pragma once
// The second factor of a decision (approve, deny, revoke, break-glass, and a user's own passkey
// changes), and the WebAuthn challenges and relying party behind the passkey ones.
//
// A TOTP code proves that the approver is there, not what they approve: whoever relays it (a
// compromised dkim-webd) may spend it on another decision within its 30 seconds. A passkey's
// assertion signs a challenge that commits to the decision (dkim/jit/challenges.hpp), issued by
// signerd to that user, used once: it approves that decision and no other. Policy says per
// operation which of the two it accepts ([policy.<operation>] factors).

#include <optional>
#include <string>

#include "config.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/challenges.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/policy.hpp"

namespace dkim::signerd {

class SecondFactors {
  public:
    SecondFactors(jit::Directory& directory, const jit::Policy& policy, WebAuthnConfig config)
        : directory_(directory), policy_(policy), config_(std::move(config)) {}

    const WebAuthnConfig& config() const { return config_; }
    jit::webauthn::RelyingParty relying_party() const { return {config_.rp_id, config_.origins}; }
    jit::ChallengeBook& challenges() { return challenges_; }

    // The second factor `auth` brings for `subject` (an operation's decision when `operation`
    // is given: policy decides which factors it accepts). On success, the audit detail that
    // says how it was proven ("factor=totp", or the passkey, its challenge and assertion), for
    // the decision's record (jit::Actor::factor).
    jit::Outcome<std::string> check(const jit::Actor& who, const ipc::Credentials& auth,
                                    std::optional<jit::Operation> operation,
                                    const jit::DecisionSubject& subject, TimePoint now);

    // A username-less login: the assertion over a login challenge.
    jit::Outcome<jit::Actor> login(const ipc::PasskeyAssertion& assertion, TimePoint now);

    // The challenge clientDataJSON names, taken from the book (none: never issued, used, or
    // expired; or clientDataJSON unreadable).
    std::optional<std::pair<std::string, jit::ChallengeBook::Entry>> take_challenge(
        std::string_view client_data_json, TimePoint now);

  private:
    jit::Directory& directory_;
    const jit::Policy& policy_;
    const WebAuthnConfig config_;
    jit::ChallengeBook challenges_;
};

jit::webauthn::Assertion to_assertion(const ipc::PasskeyAssertion& a);

}  // namespace dkim::signerd

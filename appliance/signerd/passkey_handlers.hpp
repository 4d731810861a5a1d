#pragma once
// Passkeys: the WebAuthn challenges of the console's ceremonies, registering, listing, renaming
// and removing a user's passkeys. The checks of the bytes are dkim/jit/webauthn.hpp's, the
// challenges' binding second_factor.hpp's; here is who may do what:
//   - a user registers passkeys for themselves only (a session of theirs), consenting with a
//     second factor bound to the new credential: an existing passkey's assertion over the
//     "register_confirm" challenge (which commits to the attestation object's hash), or, for a
//     first passkey, a TOTP code;
//   - a first passkey (confirmed by a TOTP code, which webd sees) counts only once the local
//     operator or an admin under an admin grant confirmed it at the CLI, like a first TOTP;
//   - a user removes their own passkeys with a second factor, never their last one through
//     dkim-webd; the local operator, or an admin under an admin grant, at the CLI removes any
//     (the same care as replacing a confirmed TOTP).

#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "handlers.hpp"
#include "second_factor.hpp"

namespace dkim::signerd {

class PasskeyHandlers {
  public:
    PasskeyHandlers(jit::Authority& authority, jit::Directory& directory, SecondFactors& factors)
        : authority_(authority), directory_(directory), factors_(factors) {}

    // No credentials: anyone who reaches webd may start a login.
    ipc::Reply login_challenge(TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::PasskeyChallenge& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::PasskeyRegister& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::PasskeyList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::PasskeyRename& r, TimePoint now);
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, ipc::PasskeyRemove& r,
                       TimePoint now);
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, ipc::PasskeyConfirm& r,
                       TimePoint now);

    // The decision `purpose` of `r` stands for, as its challenge commits to it (and as the
    // elevation handlers rebuild it when the assertion comes back), or why there is none.
    jit::Outcome<std::pair<std::optional<jit::Operation>, jit::DecisionSubject>> subject_of(
        const jit::Actor& who, const ipc::PasskeyChallenge& r, TimePoint now) const;

  private:
    // The user's confirmed passkeys' ids (those that sign in and decide); with `pending_too`,
    // every one registered.
    std::vector<std::string> credential_ids(const std::string& user,
                                            bool pending_too = false) const;

    jit::Authority& authority_;
    jit::Directory& directory_;
    SecondFactors& factors_;
};

// The decisions' subjects, shared with the elevation handlers (which rebuild them from the
// request they are asked to decide, so that a challenge of another decision does not fit).
jit::DecisionSubject request_subject(const std::string& action, const jit::Request& request,
                                     const std::string& reason, const std::string& actor);
jit::DecisionSubject grant_subject(const jit::Grant& grant, const std::string& reason,
                                   const std::string& actor);
// Break-glass: from the request's terms as ElevationRequest carries them (normalised the way
// Authority::request normalises them); none for an invalid scope.
std::optional<jit::DecisionSubject> break_glass_subject(
    const std::string& operation, const std::string& domain, const std::string& selector,
    const std::string& client, std::int64_t duration_seconds, std::optional<std::uint64_t> budget,
    const std::string& reason, const std::string& actor);
jit::DecisionSubject passkey_subject(const std::string& action, const std::string& target,
                                     const std::string& actor);
// The hex SHA-256 of an attestation object: what "register_confirm" commits to.
std::string attestation_digest(std::string_view attestation_object);

}  // namespace dkim::signerd

#pragma once
// Identities and second factors: sessions, users, API tokens, TOTP enrolment, and who a
// credential belongs to. Users and TOTP enrolments are the admin peer's only (the Service
// refuses them from the web peer before they reach these handlers).

#include "dkim/clock.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "handlers.hpp"

namespace dkim::signerd {

class IdentityHandlers {
  public:
    IdentityHandlers(jit::Authority& authority, jit::Directory& directory, bool passkeys_enabled)
        : authority_(authority), directory_(directory), passkeys_enabled_(passkeys_enabled) {}

    ipc::Reply operate(const jit::Actor& who, ipc::SessionCreate& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::UserAdd& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::UserList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::UserSetDisabled& r, TimePoint now);
    // API tokens also look at the peer (through dkim-webd a user makes them for themselves only).
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, ipc::ApiTokenCreate& r,
                       TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::ApiTokenRevoke& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::TotpEnrol& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::TotpConfirm& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::WhoAmI& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::SessionEnd& r, TimePoint now);

  private:
    // The local operator, or an admin under an admin grant.
    Expected<void, jit::Refusal> may_administer(const jit::Actor& actor, TimePoint now);

    jit::Authority& authority_;
    jit::Directory& directory_;
    const bool passkeys_enabled_;  // [webauthn] is configured
};

}  // namespace dkim::signerd

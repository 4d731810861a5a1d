#pragma once
// What signerd's request handlers share: the peer a request came from (its uid checked by the
// server with SO_PEERCRED) and the error replies. The handlers are grouped by subject, each
// group a class over the parts of the engine it needs:
//
//   signing_handlers   the relay's signatures and public keys
//   identity_handlers  users, sessions, API tokens, TOTP enrolment, who am I
//   elevation_handlers elevation requests, decisions, grants and their revocation
//   key_handlers       the DKIM keys' lifecycle and the selectors a relay signs with
//   audit_handlers     reading and verifying the audit log
//   summary_handlers   the signing summary for dkim-reportd (counts per hour, grant intervals)
//
// The Service (service.hpp) authenticates, dispatches to them and wipes the secrets.

#include <cstdint>
#include <string>

#include "config.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"

namespace dkim::signerd {

struct Peer {
    PeerKind kind = PeerKind::relay;
    std::string name;
    std::uint32_t uid = 0;
};

// The engine's refusal as the wire's code (the names are the same).
ipc::ErrorCode error_code(jit::Refusal::Code code);
ipc::ErrorReply error_reply(const jit::Refusal& refusal);
ipc::ErrorReply error_reply(ipc::ErrorCode code, std::string message);

}  // namespace dkim::signerd

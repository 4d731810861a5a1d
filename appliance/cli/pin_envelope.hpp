#pragma once
// The CLI's side of PIN custody's end-to-end encryption (dkim/custody/envelope.hpp): ask signerd
// for a key offered for one purpose, check the offer's statement against signerd's identity key
// (and against the fingerprint the operator expects, when given), and seal a PIN or a share to
// it. The CLI talks to signerd's socket directly, so no webd is in between; it seals anyway, so
// that signerd accepts a PIN or a share in one form only.

#include <optional>
#include <string>

#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/ipc/protocol.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

// `auth` is used for the offer only (its TOTP code is not sent: the decision that follows
// carries it). `fingerprint`: "SHA256:..." as `pin status` prints it; empty: not checked.
Expected<ipc::PinEnvelope, std::string> seal_to_signerd(
    const Common& c, const ipc::Credentials& auth, const std::string& purpose,
    const std::string& subject, const hsm::Secret& plaintext, const std::string& fingerprint);

}  // namespace dkim::cli

#pragma once
// The demo token: a SoftHSM2 token under the state folder with an RSA-2048 and an Ed25519 key
// for the domain, made inside the token with the PIN before signerd starts (they are active and
// unmanaged: signerd signs with them inside grants). A second run reuses token, PINs and keys.

#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"
#include "up_dns_zone.hpp"
#include "up_settings.hpp"
#include "up_state_folder.hpp"

namespace dkim::cli::up {

// softhsm2.conf (written at every start: it names this folder's tokens/, so a copied or moved
// folder does not reach back to the old one, and SOFTHSM2_CONF points at it), the SO PIN
// (secrets/so.pin), the token with `user_pin` (kept where the PIN's custody wants it:
// up_pin_custody.hpp) and the keys; the token's files are handed to signerd's user. Returns the
// keys' DKIM records. A cluster's other nodes have their own token (`label`) in the same
// folder, and their selectors begin with `prefix` (up_cluster.hpp). With `audit_key`: signerd's
// audit key is made in the token now (signerd would make it at its first checkpoint) and its
// public half returned there, for the other nodes to pin.
Expected<std::vector<TxtRecord>, std::string> prepare_demo_token(
    const Settings& settings, const StatePaths& paths, const DaemonUsers& users,
    const hsm::Secret& user_pin, const std::string& label = kTokenLabel,
    const std::string& prefix = "", std::string* audit_key = nullptr);

}  // namespace dkim::cli::up

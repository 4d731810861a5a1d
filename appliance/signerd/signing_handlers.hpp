#pragma once
// The relay's requests: a signature over a header block, and a key's public half. signerd signs
// only what it can check: the block must fit the signing profile (dkim/dkim/signing_profile.hpp)
// and its d=/s= must fall inside an active grant for that relay, within its budget; every
// signature and every refusal is on the audit log (and counted in the signing summary, in the
// same commit, once the request names a key signerd knows), and a signature leaves only once its
// record is durable.

#include <cstddef>

#include "dkim/clock.hpp"
#include "dkim/dkim/signing_profile.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/keys.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "token_gate.hpp"
#include "token_lifecycle.hpp"

namespace dkim::signerd {

class SigningHandlers {
  public:
    SigningHandlers(jit::Authority& authority, jit::KeyRegistry& keys, TokenGate& gate,
                    Metrics& metrics, TokenLifecycle& lifecycle, std::size_t max_sign_data,
                    SigningProfile profile)
        : authority_(authority),
          keys_(keys),
          gate_(gate),
          metrics_(metrics),
          lifecycle_(lifecycle),
          max_sign_data_(max_sign_data),
          profile_(std::move(profile)) {}

    // From a relay peer only (the Service checks).
    ipc::Reply sign(const Peer& peer, const ipc::SignRequest& request, TimePoint now);
    // Readable without a login, by any peer.
    ipc::Reply public_key(const ipc::PublicKeyRequest& request);
    const SigningProfile& profile() const { return profile_; }

  private:
    jit::Authority& authority_;
    jit::KeyRegistry& keys_;
    TokenGate& gate_;
    Metrics& metrics_;
    TokenLifecycle& lifecycle_;
    const std::size_t max_sign_data_;
    const SigningProfile profile_;
};

}  // namespace dkim::signerd

#pragma once
// dkim::Signer over a key in a PKCS#11 token (hsm::SigningPool). Linked only by processes
// that may load the module: dkim-signerd and the operator CLI, never dkim-relayd.

#include "dkim/dkim/signer.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/signing_pool.hpp"

namespace dkim::signing {

class TokenSigner final : public Signer {
  public:
    TokenSigner(hsm::SigningPool& pool, hsm::KeyInfo key) : pool_(pool), key_(std::move(key)) {}

    SigningAlgorithm algorithm() const override;
    // Errors carry the CKR name and the call, never a PIN (hsm::Error holds none).
    Expected<std::string, std::string> sign(std::string_view data) override;

    const hsm::KeyInfo& key() const { return key_; }

  private:
    hsm::SigningPool& pool_;
    hsm::KeyInfo key_;
};

}  // namespace dkim::signing

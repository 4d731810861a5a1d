#include "dkim/signing/token_signer.hpp"

namespace dkim::signing {

SigningAlgorithm TokenSigner::algorithm() const {
    return key_.type == hsm::KeyType::ed25519 ? SigningAlgorithm::ed25519_sha256
                                              : SigningAlgorithm::rsa_sha256;
}

Expected<std::string, std::string> TokenSigner::sign(std::string_view data) {
    auto signature = pool_.sign(
        key_, std::span(reinterpret_cast<const unsigned char*>(data.data()), data.size()));
    if (!signature) {
        return unexpected(signature.error().to_string());
    }
    return std::string(signature->begin(), signature->end());
}

}  // namespace dkim::signing

#pragma once
// A DKIM verification key, parsed once from its DNS p= value and then shared by every
// verification that uses it (thread-safe: verifying does not modify the key).

#include <memory>
#include <string>
#include <string_view>

#include "dkim/crypto/sha256.hpp"
#include "dkim/dkim/key_record.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/expected.hpp"

namespace dkim::crypto {

class PublicKey {
  public:
    // rsa: DER SubjectPublicKeyInfo, or a bare PKCS#1 RSAPublicKey as some publishers use;
    // ed25519: the 32-byte key (RFC 8463 §4.2: "the base64-encoded public key").
    static Expected<PublicKey, std::string> parse(KeyType type, std::string_view key_bytes);

    // An audit key's public half as `dkim-appliance audit key` prints it: the 32-byte Ed25519
    // key, or the DER SubjectPublicKeyInfo of the RSA-2048 audit key that signerd makes on a
    // token without EdDSA (openCryptoki 3.8.1), of 2048 bits at least with e = 65537.
    static Expected<PublicKey, std::string> parse_audit_key(std::string_view key_bytes);

    KeyType type() const { return type_; }
    // What this key's signatures are: ed25519-sha256 or rsa-sha256.
    SigningAlgorithm signing_algorithm() const {
        return type_ == KeyType::ed25519 ? SigningAlgorithm::ed25519_sha256
                                         : SigningAlgorithm::rsa_sha256;
    }
    unsigned bits() const { return bits_; }

    // rsa-sha256: RSASSA-PKCS1-v1_5 over the SHA-256 `digest`; ed25519-sha256: PureEdDSA
    // over the 32 digest bytes (RFC 8463 §3). False for any other algorithm or a mismatch.
    bool verify(SigningAlgorithm algorithm, const Sha256Digest& digest,
                std::string_view signature) const;

  private:
    bool verify_once(SigningAlgorithm algorithm, const Sha256Digest& digest,
                     std::string_view signature) const;

    struct Key;
    std::shared_ptr<const Key> key_;
    KeyType type_ = KeyType::rsa;
    unsigned bits_ = 0;
};

}  // namespace dkim::crypto

// libFuzzer target: DKIM key records from DNS (§3.6.1), including the public key bytes that
// go to OpenSSL's DER parser. Every refusal says why; a key that parses can be asked to
// verify without crashing.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dkim/crypto/public_key.hpp"
#include "dkim/dkim/key_record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto record = dkim::parse_key_record(text);
    if (!record) {
        if (record.error().empty()) {
            std::abort();
        }
        return 0;
    }
    if (record->revoked) {
        return 0;
    }
    auto key = dkim::crypto::PublicKey::parse(record->type, record->public_key);
    if (!key) {
        if (key.error().empty()) {
            std::abort();
        }
        return 0;
    }
    const dkim::crypto::Sha256Digest digest{};
    if (key->bits() <= 4096) {  // bigger keys are valid but slow to exercise
        (void)key->verify(dkim::SigningAlgorithm::rsa_sha256, digest, text.substr(0, 64));
        (void)key->verify(dkim::SigningAlgorithm::ed25519_sha256, digest, text.substr(0, 64));
    }
    return 0;
}

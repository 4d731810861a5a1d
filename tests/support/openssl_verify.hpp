#pragma once
// Independent oracle for signatures made in the token: OpenSSL, with the public key that
// hsm/ exported as SubjectPublicKeyInfo.

#include <span>
#include <string>
#include <vector>

namespace dkim::test {

// rsa-sha256: RSASSA-PKCS1-v1_5 with SHA-256 over data.
// ed25519-sha256: PureEdDSA over SHA-256(data) (RFC 8463).
bool openssl_verify(std::span<const unsigned char> spki_der, bool ed25519,
                    std::span<const unsigned char> data, std::span<const unsigned char> signature);

std::vector<unsigned char> base64_decode(const std::string& text);

}  // namespace dkim::test

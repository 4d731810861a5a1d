#pragma once
// OpenSSL's SHA-256 implementation, fetched once for the life of the process (OpenSSL 3 looks
// algorithms up again on every implicit fetch). Private to appliance/src/crypto.

#include <openssl/evp.h>

namespace dkim::crypto {

const EVP_MD* sha256_md();

}  // namespace dkim::crypto

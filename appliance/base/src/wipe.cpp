#include "dkim/base/wipe.hpp"

#include <openssl/crypto.h>

namespace dkim::base {

void secure_wipe(void* data, std::size_t size) noexcept {
    if (data != nullptr && size != 0) {
        OPENSSL_cleanse(data, size);
    }
}

void wipe(std::string& secret) noexcept {
    // The whole capacity: a secret that shrank leaves its old bytes past size().
    secret.resize(secret.capacity());
    secure_wipe(secret.data(), secret.size());
    secret.clear();
}

void wipe(std::vector<std::uint8_t>& secret) noexcept {
    secret.resize(secret.capacity());
    secure_wipe(secret.data(), secret.size());
    secret.clear();
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && (a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0);
}

}  // namespace dkim::base

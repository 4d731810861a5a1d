#include "dkim/dkim/body_hash.hpp"

namespace dkim {

void BodyHasher::write(const char* data, std::size_t size) {
    std::size_t hashed = size;
    if (limit_) {
        const std::uint64_t room = *limit_ > length_ ? *limit_ - length_ : 0;
        hashed = room < size ? static_cast<std::size_t>(room) : size;
    }
    sha_.update(data, hashed);
    length_ += size;
}

crypto::Sha256Digest BodyHasher::finish() {
    canonicalizer_.finish();
    return sha_.finish();
}

}  // namespace dkim

#include "dkim/crypto/sha256.hpp"

#include <openssl/evp.h>

#include <cstdlib>

#include "openssl_digest.hpp"

namespace dkim::crypto {

const EVP_MD* sha256_md() {
    // Fetched once and kept for the life of the process.
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (md == nullptr) {
        std::abort();  // OpenSSL without SHA-256: nothing here can work
    }
    return md;
}

struct Sha256::Ctx {
    EVP_MD_CTX* md_ctx = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
    ctx_->md_ctx = EVP_MD_CTX_new();
    if (ctx_->md_ctx == nullptr || EVP_DigestInit_ex(ctx_->md_ctx, sha256_md(), nullptr) != 1) {
        std::abort();  // out of memory
    }
}

Sha256::~Sha256() {
    if (ctx_) {
        EVP_MD_CTX_free(ctx_->md_ctx);
    }
}

Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&& other) noexcept {
    if (this != &other) {
        if (ctx_) {
            EVP_MD_CTX_free(ctx_->md_ctx);
        }
        ctx_ = std::move(other.ctx_);
    }
    return *this;
}

void Sha256::update(const void* data, std::size_t size) {
    if (size > 0 && EVP_DigestUpdate(ctx_->md_ctx, data, size) != 1) {
        std::abort();
    }
}

Sha256Digest Sha256::finish() {
    Sha256Digest out{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_->md_ctx, out.data(), &len) != 1 || len != out.size() ||
        EVP_DigestInit_ex(ctx_->md_ctx, sha256_md(), nullptr) != 1) {
        std::abort();
    }
    return out;
}

Sha256Digest Sha256::hash(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.finish();
}

}  // namespace dkim::crypto

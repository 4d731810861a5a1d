#include "openssl_verify.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <array>
#include <memory>

namespace dkim::test {

bool openssl_verify(std::span<const unsigned char> spki_der, bool ed25519,
                    std::span<const unsigned char> data, std::span<const unsigned char> signature) {
    const unsigned char* p = spki_der.data();
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())), EVP_PKEY_free);
    if (!key) {
        return false;
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    std::span<const unsigned char> input = data;
    if (ed25519) {
        SHA256(data.data(), data.size(), digest.data());
        input = digest;
    }
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, ed25519 ? nullptr : EVP_sha256(), nullptr,
                             key.get()) != 1) {
        return false;
    }
    return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), input.data(),
                            input.size()) == 1;
}

std::vector<unsigned char> base64_decode(const std::string& text) {
    std::vector<unsigned char> out(text.size());
    const int size =
        EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                        static_cast<int>(text.size()));
    if (size < 0) {
        return {};
    }
    std::size_t length = static_cast<std::size_t>(size);
    // EVP_DecodeBlock counts the padding bytes as zeros.
    for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) {
        --length;
    }
    out.resize(length);
    return out;
}

}  // namespace dkim::test

#include "dkim/crypto/public_key.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "openssl_digest.hpp"

namespace dkim::crypto {
namespace {

struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};

}  // namespace

struct PublicKey::Key {
    explicit Key(EVP_PKEY* p) : pkey(p) {
        // RSA: a verification context set up once (padding, digest); each verification
        // works on a copy, which costs less than setting one up (OpenSSL 3 looks the
        // algorithms up again on every init) and keeps the key shareable across threads.
        if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
            rsa_template = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
            if (rsa_template != nullptr &&
                (EVP_PKEY_verify_init(rsa_template) != 1 ||
                 EVP_PKEY_CTX_set_rsa_padding(rsa_template, RSA_PKCS1_PADDING) != 1 ||
                 EVP_PKEY_CTX_set_signature_md(rsa_template, sha256_md()) != 1)) {
                EVP_PKEY_CTX_free(rsa_template);
                rsa_template = nullptr;
            }
        }
    }
    ~Key() {
        EVP_PKEY_CTX_free(rsa_template);
        EVP_PKEY_free(pkey);
    }
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;
    EVP_PKEY* pkey;
    EVP_PKEY_CTX* rsa_template = nullptr;
};

Expected<PublicKey, std::string> PublicKey::parse_audit_key(std::string_view key_bytes) {
    auto key = parse(key_bytes.size() == 32 ? KeyType::ed25519 : KeyType::rsa, key_bytes);
    if (!key || key->type() == KeyType::ed25519) {
        return key;
    }
    // What signerd makes (RSA-2048, e = 65537) and no less: a DNS key record may be weak, an
    // audit key that vouches for a log may not (e = 1 or 512 bits let anyone sign).
    BIGNUM* e = nullptr;
    const bool exponent_ok =
        EVP_PKEY_get_bn_param(key->key_->pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
        BN_is_word(e, RSA_F4) == 1;
    BN_free(e);
    ERR_clear_error();
    if (key->bits() < 2048 || !exponent_ok) {
        return unexpected(
            std::string("an RSA audit key must have at least 2048 bits and the exponent 65537"));
    }
    return key;
}

Expected<PublicKey, std::string> PublicKey::parse(KeyType type, std::string_view key_bytes) {
    const auto* der = reinterpret_cast<const unsigned char*>(key_bytes.data());
    const auto len = static_cast<long>(key_bytes.size());
    EVP_PKEY* pkey = nullptr;
    if (type == KeyType::ed25519) {
        if (key_bytes.size() != 32) {
            return unexpected(std::string("ed25519 key is not 32 bytes"));
        }
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, der, key_bytes.size());
    } else {
        const unsigned char* p = der;
        pkey = d2i_PUBKEY(nullptr, &p, len);
        if (pkey != nullptr && p != der + len) {
            EVP_PKEY_free(pkey);
            pkey = nullptr;
        }
        if (pkey == nullptr) {
            p = der;
            pkey = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, len);
            if (pkey != nullptr && p != der + len) {
                EVP_PKEY_free(pkey);
                pkey = nullptr;
            }
        }
        if (pkey != nullptr && EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
            EVP_PKEY_free(pkey);
            return unexpected(std::string("key record k=rsa holds a key that is not RSA"));
        }
    }
    if (pkey == nullptr) {
        ERR_clear_error();
        return unexpected(std::string("key record p= is not a valid public key"));
    }
    PublicKey key;
    key.key_ = std::make_shared<const Key>(pkey);
    key.type_ = type;
    key.bits_ = static_cast<unsigned>(EVP_PKEY_get_bits(pkey));
    return key;
}

bool PublicKey::verify(SigningAlgorithm algorithm, const Sha256Digest& digest,
                       std::string_view signature) const {
    const bool ok = verify_once(algorithm, digest, signature);
    if (!ok) {
        ERR_clear_error();  // a bad signature leaves OpenSSL errors on this thread's queue
    }
    return ok;
}

bool PublicKey::verify_once(SigningAlgorithm algorithm, const Sha256Digest& digest,
                            std::string_view signature) const {
    if (!key_) {
        return false;
    }
    const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
    if (algorithm == SigningAlgorithm::rsa_sha256 && type_ == KeyType::rsa) {
        if (key_->rsa_template == nullptr) {
            return false;
        }
        const std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_dup(key_->rsa_template));
        return ctx &&
               EVP_PKEY_verify(ctx.get(), sig, signature.size(), digest.data(), digest.size()) == 1;
    }
    if (algorithm == SigningAlgorithm::ed25519_sha256 && type_ == KeyType::ed25519) {
        const std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
        return ctx &&
               EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key_->pkey,
                                       nullptr) == 1 &&
               EVP_DigestVerify(ctx.get(), sig, signature.size(), digest.data(), digest.size()) ==
                   1;
    }
    return false;
}

}  // namespace dkim::crypto

// PublicKey::parse_audit_key: the public half of signerd's audit key (`audit key`, `audit verify
// --node-key`, [cluster] node_keys): Ed25519's 32 bytes, or an RSA key of at least 2048 bits
// with e = 65537 (the one signerd makes on a token without EdDSA). Weaker RSA keys are refused:
// with e = 1 or 512 bits anyone could sign checkpoints that verify.

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <string>

#include "dkim/crypto/public_key.hpp"

namespace dkim::crypto {
namespace {

// The SubjectPublicKeyInfo of a new RSA key of `bits` with public exponent `e`.
std::string rsa_spki(unsigned bits, unsigned e) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
    EXPECT_EQ(EVP_PKEY_keygen_init(ctx), 1);
    size_t bits_param = bits;
    unsigned exponent = e;
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_PKEY_PARAM_RSA_BITS, &bits_param),
                                 OSSL_PARAM_construct_uint(OSSL_PKEY_PARAM_RSA_E, &exponent),
                                 OSSL_PARAM_construct_end()};
    EXPECT_EQ(EVP_PKEY_CTX_set_params(ctx, params), 1);
    EVP_PKEY* key = nullptr;
    EXPECT_EQ(EVP_PKEY_generate(ctx, &key), 1);
    EVP_PKEY_CTX_free(ctx);
    unsigned char* der = nullptr;
    const int size = i2d_PUBKEY(key, &der);
    std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(size));
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    return out;
}

TEST(AuditKeyTest, TakesEd25519AndStrongRsaKeys) {
    auto ed = PublicKey::parse_audit_key(std::string(32, '\x11'));
    ASSERT_TRUE(ed) << ed.error();
    EXPECT_EQ(ed->signing_algorithm(), SigningAlgorithm::ed25519_sha256);
    auto rsa = PublicKey::parse_audit_key(rsa_spki(2048, 65537));
    ASSERT_TRUE(rsa) << rsa.error();
    EXPECT_EQ(rsa->signing_algorithm(), SigningAlgorithm::rsa_sha256);
}

TEST(AuditKeyTest, RefusesRsaKeysAnyoneCouldSignWith) {
    for (const auto& [bits, e] : {std::pair{1024U, 65537U}, std::pair{2048U, 3U}}) {
        auto weak = PublicKey::parse_audit_key(rsa_spki(bits, e));
        ASSERT_FALSE(weak) << bits << " bits, e = " << e;
        EXPECT_NE(weak.error().find("at least 2048 bits and the exponent 65537"), std::string::npos)
            << weak.error();
    }
    EXPECT_FALSE(PublicKey::parse_audit_key("not a key"));
}

}  // namespace
}  // namespace dkim::crypto

// KeyStore::import (C_CreateObject from a key made outside the token, as OpenDKIM's
// opendkim-genkey makes them) and KeyStore::destroy_private (retirement).

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/signing_pool.hpp"
#include "hsm_test_tokens.hpp"
#include "openssl_verify.hpp"
#include "raw_pkcs11.hpp"

namespace dkim::hsm {
namespace {

using test::key_name;
using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Pkey rsa_key(unsigned bits) {
    return Pkey(EVP_RSA_gen(bits), EVP_PKEY_free);
}

Pkey ed25519_key() {
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), EVP_PKEY_free);
}

enum class Form { pkcs1_pem, pkcs8_pem, pkcs8_der };

std::string encode(EVP_PKEY* key, Form form) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    switch (form) {
        case Form::pkcs1_pem:
            PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr,
                                                 nullptr);
            break;
        case Form::pkcs8_pem:
            PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
            break;
        case Form::pkcs8_der:
            i2d_PKCS8PrivateKey_bio(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
            break;
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::vector<unsigned char> spki(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    const int size = i2d_PUBKEY(key, &der);
    std::vector<unsigned char> out(der, der + size);
    OPENSSL_free(der);
    return out;
}

std::span<const unsigned char> key_bytes(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

class KeyImportTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        token_ = test::open_token(test::kKeygenToken);
        login_ = std::make_unique<Login>(test::login(token_));
    }
    static void TearDownTestSuite() {
        login_.reset();
        token_.reset();
    }

    // Imports `pem`, checks the protection and that the token signs verifiably with the
    // original key's public half.
    void import_and_sign(const std::string& selector, EVP_PKEY* original,
                         const std::string& encoded, bool ed25519) {
        KeyStore store(token_);
        auto key = store.import(key_name("import.example", selector), key_bytes(encoded));
        ASSERT_TRUE(key) << key.error().to_string();
        EXPECT_EQ(key->type, ed25519 ? KeyType::ed25519 : KeyType::rsa);
        ASSERT_TRUE(key->private_half);
        EXPECT_TRUE(key->private_half->as_imported());
        EXPECT_FALSE(key->private_half->as_generated())
            << "the token knows the key was outside it once";
        EXPECT_TRUE(key->private_half->sensitive);
        EXPECT_FALSE(key->private_half->extractable);

        auto exported = store.public_key(*key);
        ASSERT_TRUE(exported) << exported.error().to_string();
        EXPECT_EQ(exported->spki_der, spki(original)) << "the public half is the original's";

        SigningPool pool(token_);
        const std::string data = "from:a@import.example\r\nsubject:imported\r\n";
        auto signature = pool.sign(*key, key_bytes(data));
        ASSERT_TRUE(signature) << signature.error().to_string();
        EXPECT_TRUE(test::openssl_verify(spki(original), ed25519, key_bytes(data), *signature));

        // The secret part cannot be read back.
        test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
        const CK_SESSION_HANDLE session = raw.open_session(raw.slot(test::kKeygenToken));
        const CK_OBJECT_HANDLE priv = raw.find(session, CKO_PRIVATE_KEY, key->id);
        if (priv != CK_INVALID_HANDLE) {  // private objects need a login of this session
            EXPECT_EQ(raw.attribute_rv(session, priv, ed25519 ? CKA_VALUE : CKA_PRIVATE_EXPONENT),
                      CKR_ATTRIBUTE_SENSITIVE);
        }
        raw.fn().C_CloseSession(session);
    }

    static inline std::shared_ptr<Token> token_;
    static inline std::unique_ptr<Login> login_;
};

TEST_F(KeyImportTest, ImportsRsaInPkcs1PemAsOpendkimGenkeyWritesIt) {
    auto key = rsa_key(2048);
    import_and_sign("pkcs1", key.get(), encode(key.get(), Form::pkcs1_pem), false);
}

TEST_F(KeyImportTest, ImportsRsaInPkcs8PemAndDer) {
    auto key = rsa_key(1024);
    import_and_sign("pkcs8pem", key.get(), encode(key.get(), Form::pkcs8_pem), false);
    auto other = rsa_key(3072);
    import_and_sign("pkcs8der", other.get(), encode(other.get(), Form::pkcs8_der), false);
}

TEST_F(KeyImportTest, ImportsEd25519) {
    if (!test::token_traits().ed25519) {
        GTEST_SKIP() << "this token has no EdDSA";
    }
    auto key = ed25519_key();
    import_and_sign("ed", key.get(), encode(key.get(), Form::pkcs8_pem), true);
}

TEST_F(KeyImportTest, RefusesWhatDkimCannotUseAndNamesNoKeyMaterial) {
    KeyStore store(token_);
    const auto refused = [&](const std::string& selector, const std::string& encoded) {
        auto key = store.import(key_name("import.example", selector), key_bytes(encoded));
        EXPECT_FALSE(key) << selector;
        if (!key) {
            EXPECT_EQ(key.error().message.find("PRIVATE KEY"), std::string::npos)
                << key.error().message;
        }
        EXPECT_FALSE(store.find(key_name("import.example", selector))) << "nothing left behind";
        return key ? std::string() : key.error().message;
    };
    auto small = rsa_key(512);
    EXPECT_NE(refused("small", encode(small.get(), Form::pkcs8_pem)).find("at least 1024"),
              std::string::npos);
    Pkey ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
    EXPECT_NE(refused("ecdsa", encode(ec.get(), Form::pkcs8_pem)).find("neither RSA nor Ed25519"),
              std::string::npos);
    EXPECT_NE(refused("garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                  .find("not a private key"),
              std::string::npos);
    // An encrypted PKCS#8 file is refused (no prompt), with a hint.
    auto rsa = rsa_key(2048);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), rsa.get(), EVP_aes_256_cbc(), nullptr, 0,
                                            nullptr, const_cast<char*>("secret")),
              1);
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    EXPECT_NE(
        refused("encrypted", std::string(data, static_cast<std::size_t>(size))).find("encrypted"),
        std::string::npos);
}

TEST_F(KeyImportTest, RefusesAnExistingName) {
    KeyStore store(token_);
    const auto name = key_name("import.example", "taken");
    ASSERT_TRUE(store.generate(name, test::small_key()));
    auto key = ed25519_key();
    auto again = store.import(name, key_bytes(encode(key.get(), Form::pkcs8_pem)));
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, ErrorCode::key_exists);
}

TEST_F(KeyImportTest, DestroyingThePrivateHalfKeepsThePublicOneAndIsSafeToRepeat) {
    KeyStore store(token_);
    const auto name = key_name("retire.example", "old");
    auto key = store.generate(name, KeyAlgorithm::rsa2048);
    ASSERT_TRUE(key) << key.error().to_string();
    auto destroyed = store.destroy_private(name);
    ASSERT_TRUE(destroyed) << destroyed.error().to_string();
    EXPECT_EQ(*destroyed, 1U);
    auto again = store.destroy_private(name);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, 0U) << "rerunning a retirement is a no-op";
    auto found = store.find(name);
    ASSERT_TRUE(found) << found.error().to_string();
    EXPECT_TRUE(found->has_public);
    EXPECT_FALSE(found->private_half) << "the private half is gone";
    SigningPool pool(token_);
    EXPECT_FALSE(pool.sign(*found, key_bytes("data")));
}

TEST(KeyImportLoginTest, ImportAndDestroyNeedALogin) {
    auto token = test::open_token(test::kKeygenToken);
    KeyStore store(token);
    auto key = ed25519_key();
    auto imported = store.import(key_name("import.example", "nologin"),
                                 key_bytes(encode(key.get(), Form::pkcs8_pem)));
    ASSERT_FALSE(imported);
    EXPECT_EQ(imported.error().code, ErrorCode::locked);
    auto destroyed = store.destroy_private(key_name("import.example", "nologin"));
    ASSERT_FALSE(destroyed);
    EXPECT_EQ(destroyed.error().code, ErrorCode::locked);
}

}  // namespace
}  // namespace dkim::hsm

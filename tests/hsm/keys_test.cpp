#include "dkim/hsm/keys.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <thread>

#include "dkim/hsm/signing_pool.hpp"
#include "hsm_test_tokens.hpp"
#include "openssl_verify.hpp"
#include "raw_pkcs11.hpp"

namespace dkim::hsm {
namespace {

using test::key_name;

class KeygenTest : public ::testing::TestWithParam<KeyAlgorithm> {
  protected:
    static void SetUpTestSuite() {
        token_ = test::open_token(test::kKeygenToken);
        login_ = std::make_unique<Login>(test::login(token_));
    }
    static void TearDownTestSuite() {
        login_.reset();
        token_.reset();
    }
    static std::string selector() {
        std::string name(to_string(GetParam()));
        name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
        return name;
    }

    static inline std::shared_ptr<Token> token_;
    static inline std::unique_ptr<Login> login_;
};

TEST_P(KeygenTest, GeneratesAProtectedKeyThatSignsVerifiably) {
    if (GetParam() == KeyAlgorithm::ed25519 && !test::token_traits().ed25519) {
        GTEST_SKIP() << "this token has no EdDSA (Ed25519OnATokenWithoutItIsAClearError)";
    }
    KeyStore store(token_);
    const KeyName name = key_name("Example.COM.", selector());
    EXPECT_EQ(name.domain, "example.com");
    auto key = store.generate(name, GetParam());
    ASSERT_TRUE(key) << key.error().to_string();
    EXPECT_EQ(key->algorithm_name(), to_string(GetParam()));
    EXPECT_EQ(key->id.size(), 16U);
    EXPECT_TRUE(key->has_public);
    ASSERT_TRUE(key->private_half);
    EXPECT_TRUE(key->private_half->as_generated());

    // Read the private key's attributes back directly, behind hsm/'s back.
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SESSION_HANDLE session = raw.open_session(raw.slot(test::kKeygenToken));
    const CK_OBJECT_HANDLE priv = raw.find(session, CKO_PRIVATE_KEY, key->id);
    const CK_OBJECT_HANDLE pub = raw.find(session, CKO_PUBLIC_KEY, key->id);
    ASSERT_NE(priv, CK_INVALID_HANDLE);
    ASSERT_NE(pub, CK_INVALID_HANDLE);
    const auto read_bool = [&](CK_ATTRIBUTE_TYPE type) {
        CK_BBOOL value = CK_FALSE;
        CK_ATTRIBUTE query{type, &value, sizeof value};
        EXPECT_EQ(raw.fn().C_GetAttributeValue(session, priv, &query, 1), CKR_OK);
        return value == CK_TRUE;
    };
    EXPECT_TRUE(read_bool(CKA_TOKEN));
    EXPECT_TRUE(read_bool(CKA_PRIVATE));
    EXPECT_TRUE(read_bool(CKA_SENSITIVE));
    EXPECT_FALSE(read_bool(CKA_EXTRACTABLE));
    EXPECT_TRUE(read_bool(CKA_SIGN));
    EXPECT_FALSE(read_bool(CKA_DECRYPT));
    EXPECT_FALSE(read_bool(CKA_UNWRAP));
    EXPECT_FALSE(read_bool(CKA_DERIVE));
    EXPECT_FALSE(read_bool(CKA_SIGN_RECOVER));
    const bool ed25519 = GetParam() == KeyAlgorithm::ed25519;
    const test::TokenTraits& traits = test::token_traits();
    if (traits.allowed_mechanisms) {
        CK_MECHANISM_TYPE allowed[4] = {};
        CK_ATTRIBUTE mechanisms{CKA_ALLOWED_MECHANISMS, allowed, sizeof allowed};
        ASSERT_EQ(raw.fn().C_GetAttributeValue(session, priv, &mechanisms, 1), CKR_OK);
        ASSERT_EQ(mechanisms.ulValueLen, sizeof(CK_MECHANISM_TYPE));
        EXPECT_EQ(allowed[0], ed25519 ? CKM_EDDSA : traits.rsa_mechanism);
        EXPECT_FALSE(key->private_half->token_lacks_allowed_mechanisms);
    } else {
        // openCryptoki 3.8.1: the attribute is unknown to the token, and the key says so.
        EXPECT_EQ(raw.attribute_rv(session, priv, CKA_ALLOWED_MECHANISMS),
                  CKR_ATTRIBUTE_TYPE_INVALID);
        EXPECT_TRUE(key->private_half->token_lacks_allowed_mechanisms);
    }

    // The secret part cannot be read.
    const CK_ATTRIBUTE_TYPE secret = ed25519 ? CKA_VALUE : CKA_PRIVATE_EXPONENT;
    EXPECT_EQ(raw.attribute_rv(session, priv, secret), CKR_ATTRIBUTE_SENSITIVE);
    if (!ed25519) {
        EXPECT_EQ(raw.attribute_rv(session, priv, CKA_PRIME_1), CKR_ATTRIBUTE_SENSITIVE);
    }
    // The key cannot decrypt, and cannot sign with any other mechanism.
    CK_MECHANISM decrypt{ed25519 ? CKM_ECDH1_DERIVE : CKM_RSA_PKCS, nullptr, 0};
    EXPECT_NE(raw.fn().C_DecryptInit(session, &decrypt, priv), CKR_OK);
    // (A token without CKA_ALLOWED_MECHANISMS cannot refuse other signature mechanisms.)
    CK_MECHANISM other{ed25519                                ? CKM_ECDSA
                       : traits.rsa_mechanism == CKM_RSA_PKCS ? CKM_SHA1_RSA_PKCS
                                                              : CKM_RSA_PKCS,
                       nullptr, 0};
    if (traits.allowed_mechanisms) {
        EXPECT_NE(raw.fn().C_SignInit(session, &other, priv), CKR_OK);
    }
    // Both halves carry the DNS name of the key record as their label.
    char label[64] = {};
    CK_ATTRIBUTE label_query{CKA_LABEL, label, sizeof label - 1};
    ASSERT_EQ(raw.fn().C_GetAttributeValue(session, pub, &label_query, 1), CKR_OK);
    EXPECT_EQ(std::string(label, label_query.ulValueLen), selector() + "._domainkey.example.com");
    raw.fn().C_CloseSession(session);

    // The signature verifies with OpenSSL against the exported public key.
    auto public_key = store.public_key(*key);
    ASSERT_TRUE(public_key) << public_key.error().to_string();
    SigningPool pool(token_);
    const std::string data = "from:Joe <joe@example.com>\r\nsubject:hello\r\n";
    const std::span<const unsigned char> bytes(reinterpret_cast<const unsigned char*>(data.data()),
                                               data.size());
    auto signature = pool.sign(*key, bytes);
    ASSERT_TRUE(signature) << signature.error().to_string();
    EXPECT_EQ(signature->size(), ed25519 ? 64U : key->bits / 8);
    EXPECT_TRUE(test::openssl_verify(public_key->spki_der, ed25519, bytes, *signature));
    std::string tampered = data;
    tampered[0] = 'F';
    EXPECT_FALSE(test::openssl_verify(
        public_key->spki_der, ed25519,
        std::span(reinterpret_cast<const unsigned char*>(tampered.data()), tampered.size()),
        *signature));

    // p= is the SPKI for RSA and the bare 32-byte key for Ed25519 (RFC 8463).
    const auto p = test::base64_decode(public_key->dkim_p_value());
    if (ed25519) {
        EXPECT_EQ(p.size(), 32U);
        EXPECT_EQ(p, public_key->raw);
        EXPECT_EQ(public_key->spki_der.size(), 44U);
        EXPECT_TRUE(std::equal(p.begin(), p.end(), public_key->spki_der.end() - 32));
    } else {
        EXPECT_EQ(p, public_key->spki_der);
    }
}

TEST_P(KeygenTest, RefusesASecondKeyWithTheSameName) {
    if (GetParam() == KeyAlgorithm::ed25519 && !test::token_traits().ed25519) {
        GTEST_SKIP() << "this token has no EdDSA";
    }
    // Self-contained: ctest runs every test in a process of its own, with fresh tokens.
    KeyStore store(token_);
    const KeyName name = key_name("twice.example", selector());
    if (!store.find(name)) {
        ASSERT_TRUE(store.generate(name, GetParam()));
    }
    auto again = store.generate(name, GetParam());
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, ErrorCode::key_exists);
    EXPECT_NE(again.error().message.find("already holds a key " + selector() +
                                         "._domainkey.twice.example"),
              std::string::npos);
    auto keys = store.list();
    ASSERT_TRUE(keys);
    EXPECT_EQ(std::count_if(keys->begin(), keys->end(),
                            [&](const KeyInfo& key) { return key.name == name; }),
              1)
        << "the refused generation left nothing behind";
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, KeygenTest,
                         ::testing::Values(KeyAlgorithm::rsa2048, KeyAlgorithm::rsa3072,
                                           KeyAlgorithm::rsa4096, KeyAlgorithm::ed25519),
                         [](const auto& param_info) {
                             std::string name(to_string(param_info.param));
                             name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                             return name;
                         });

TEST(KeyStoreTest, Ed25519OnATokenWithoutItIsAClearError) {
    if (test::token_traits().ed25519) {
        GTEST_SKIP() << "this token has EdDSA (KeygenTest covers it)";
    }
    auto token = test::open_token(test::kKeygenToken);
    auto login = test::login(token);
    KeyStore store(token);
    const KeyName name = key_name("example.org", "noed");
    auto key = store.generate(name, KeyAlgorithm::ed25519);
    ASSERT_FALSE(key);
    EXPECT_EQ(key.error().code, ErrorCode::unsupported) << key.error().to_string();
    EXPECT_EQ(key.error().rv_name(), "CKR_MECHANISM_INVALID");
    EXPECT_NE(key.error().message.find("generating ed25519 key noed._domainkey.example.org"),
              std::string::npos)
        << key.error().message;
    EXPECT_FALSE(store.find(name)) << "nothing was left behind";
}

TEST(KeyStoreTest, KeygenNeedsALogin) {
    auto token = test::open_token(test::kKeygenToken);
    KeyStore store(token);
    auto key = store.generate(key_name("example.org", "nologin"), test::small_key());
    ASSERT_FALSE(key);
    EXPECT_EQ(key.error().code, ErrorCode::locked);
}

TEST(KeyStoreTest, ListsAndFindsKeysPublicHalvesWithoutLogin) {
    auto token = test::open_token(test::kKeygenToken);
    {
        auto login = test::login(token);
        KeyStore store(token);
        ASSERT_TRUE(store.generate(key_name("b.example", "s2"), test::small_key()));
        ASSERT_TRUE(store.generate(key_name("a.example", "s1"), test::small_key()));
        auto keys = store.list();
        ASSERT_TRUE(keys) << keys.error().to_string();
        ASSERT_GE(keys->size(), 2U);
        EXPECT_EQ((*keys)[0].name, key_name("a.example", "s1")) << "sorted by domain";
        for (const auto& key : *keys) {
            EXPECT_TRUE(key.private_half.has_value()) << key.name.label();
        }
    }
    KeyStore store(token);
    auto keys = store.list();
    ASSERT_TRUE(keys) << keys.error().to_string();
    ASSERT_GE(keys->size(), 2U);
    for (const auto& key : *keys) {
        EXPECT_TRUE(key.has_public);
        EXPECT_FALSE(key.private_half.has_value()) << "private objects are invisible logged out";
    }
    auto found = store.find(key_name("b.example", "s2"));
    ASSERT_TRUE(found) << found.error().to_string();
    EXPECT_EQ(found->type, test::small_key_type());
    EXPECT_EQ(found->uri("keygen").rfind("pkcs11:token=keygen;object=s2._domainkey.b.example;"
                                         "type=private;id=%",
                                         0),
              0U)
        << found->uri("keygen");
    auto public_key = store.public_key(*found);
    ASSERT_TRUE(public_key) << "the public half is readable without a login";

    auto missing = store.find(key_name("b.example", "nope"));
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ErrorCode::key_not_found);
    EXPECT_EQ(missing.error().message,
              "no key for selector 'nope' of domain 'b.example' (nope._domainkey.b.example) in "
              "token 'keygen'; private keys are visible only after login");
}

TEST(KeyStoreTest, FindsKeysByUri) {
    auto token = test::open_token(test::kKeygenToken);
    auto login = test::login(token);
    KeyStore store(token);
    auto first = store.generate(key_name("uri.example", "one"), test::small_key());
    auto second = store.generate(key_name("uri.example", "two"), test::small_key());
    ASSERT_TRUE(first && second);

    const auto find = [&](const std::string& text) {
        auto uri = Pkcs11Uri::parse(text);
        EXPECT_TRUE(uri) << uri.error();
        return store.find(*uri);
    };
    auto by_object = find("pkcs11:token=keygen;object=two._domainkey.uri.example;type=private");
    ASSERT_TRUE(by_object) << by_object.error().to_string();
    EXPECT_EQ(by_object->id, second->id);

    auto by_id = find(first->uri("keygen"));
    ASSERT_TRUE(by_id) << by_id.error().to_string();
    EXPECT_EQ(by_id->name, key_name("uri.example", "one"));

    Pkcs11Uri mismatch;
    mismatch.object = "two._domainkey.uri.example";
    mismatch.id = first->id;
    auto none = store.find(mismatch);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, ErrorCode::key_not_found);

    auto no_key = find("pkcs11:token=keygen");
    ASSERT_FALSE(no_key);
    EXPECT_NE(no_key.error().message.find("needs object= or id="), std::string::npos);
    auto cert = find("pkcs11:object=one._domainkey.uri.example;type=cert");
    ASSERT_FALSE(cert);
    EXPECT_NE(cert.error().message.find("names a cert, not a key"), std::string::npos);
}

TEST(KeyStoreTest, ConcurrentKeyGenerationIsSerializedAndAllSucceed) {
    auto token = test::open_token(test::kKeygenToken);
    auto login = test::login(token);
    constexpr int kThreads = 6;
    std::vector<std::thread> threads;
    std::atomic<int> generated{0};
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            KeyStore store(token);  // one store per thread, as separate callers would have
            const auto algorithm = t % 2 == 0 ? test::small_key() : KeyAlgorithm::rsa2048;
            auto key =
                store.generate(key_name("parallel.example", "k" + std::to_string(t)), algorithm);
            if (key && key->private_half && key->private_half->as_generated()) {
                ++generated;
            } else if (!key) {
                ADD_FAILURE() << key.error().to_string();
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(generated.load(), kThreads);
    KeyStore store(token);
    auto keys = store.list();
    ASSERT_TRUE(keys);
    EXPECT_EQ(
        std::count_if(keys->begin(), keys->end(),
                      [](const KeyInfo& key) { return key.name.domain == "parallel.example"; }),
        kThreads);
}

TEST(KeyStoreTest, TwoKeysUnderOneNameAreAnErrorNotAChoice) {
    auto token = test::open_token(test::kKeygenToken);
    auto login = test::login(token);
    KeyStore store(token);
    const KeyName name = key_name("twins.example", "s1");
    auto key = store.generate(name, test::small_key());
    ASSERT_TRUE(key) << key.error().to_string();

    // Another tool puts a second public key with the same label but another CKA_ID.
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SESSION_HANDLE session = raw.open_session(raw.slot(test::kKeygenToken), true);
    CK_OBJECT_CLASS klass = CKO_PUBLIC_KEY;
    const bool ed25519 = key->type == KeyType::ed25519;
    CK_KEY_TYPE type = ed25519 ? CKK_EC_EDWARDS : CKK_RSA;
    CK_BBOOL yes = CK_TRUE;
    const std::string label = name.label();
    unsigned char id[] = {0xAB, 0xCD};
    unsigned char params[] = {0x06, 0x03, 0x2B, 0x65, 0x70};
    std::vector<unsigned char> point{0x04, 0x20};
    auto public_key = store.public_key(*key);
    ASSERT_TRUE(public_key);
    point.insert(point.end(), public_key->raw.begin(), public_key->raw.end());
    std::vector<CK_ATTRIBUTE> object = {
        {CKA_CLASS, &klass, sizeof klass},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
        {CKA_ID, id, sizeof id},
    };
    // RSA (a token without EdDSA): the same modulus and exponent, read from the SPKI.
    std::vector<unsigned char> modulus;
    std::vector<unsigned char> exponent;
    if (ed25519) {
        object.push_back({CKA_EC_PARAMS, params, sizeof params});
        object.push_back({CKA_EC_POINT, point.data(), point.size()});
    } else {
        const unsigned char* der = public_key->spki_der.data();
        EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &der, static_cast<long>(public_key->spki_der.size()));
        ASSERT_NE(pkey, nullptr);
        for (auto [param, out] : {std::pair{"n", &modulus}, std::pair{"e", &exponent}}) {
            BIGNUM* bn = nullptr;
            ASSERT_EQ(EVP_PKEY_get_bn_param(pkey, param, &bn), 1);
            out->resize(static_cast<std::size_t>(BN_num_bytes(bn)));
            BN_bn2bin(bn, out->data());
            BN_free(bn);
        }
        EVP_PKEY_free(pkey);
        object.push_back({CKA_MODULUS, modulus.data(), modulus.size()});
        object.push_back({CKA_PUBLIC_EXPONENT, exponent.data(), exponent.size()});
    }
    CK_OBJECT_HANDLE twin = CK_INVALID_HANDLE;
    ASSERT_EQ(raw.fn().C_CreateObject(session, object.data(), object.size(), &twin), CKR_OK);

    auto found = store.find(name);
    ASSERT_FALSE(found);
    EXPECT_EQ(found.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(found.error().message.find("token 'keygen' holds 2 keys labelled "
                                         "s1._domainkey.twins.example (CKA_ID "),
              std::string::npos)
        << found.error().message;
    EXPECT_NE(found.error().message.find("abcd"), std::string::npos) << found.error().message;

    // The id= of a URI still picks one of them.
    Pkcs11Uri uri;
    uri.object = label;
    uri.id = key->id;
    auto chosen = store.find(uri);
    ASSERT_TRUE(chosen) << chosen.error().to_string();
    EXPECT_EQ(chosen->id, key->id);

    EXPECT_EQ(raw.fn().C_DestroyObject(session, twin), CKR_OK);
    raw.fn().C_CloseSession(session);
}

TEST(KeyNameTest, ValidatesDomainAndSelector) {
    EXPECT_TRUE(KeyName::make("mail.example.co.uk", "2026-11.rsa"));
    EXPECT_FALSE(KeyName::make("localhost", "s1")) << "a bare label is not a mail domain";
    EXPECT_FALSE(KeyName::make("exa mple.com", "s1"));
    EXPECT_FALSE(KeyName::make("example.com", "s_1"));
    EXPECT_FALSE(KeyName::make("example.com", ""));
    EXPECT_FALSE(KeyName::make("example.com", "-s1"));
    EXPECT_FALSE(KeyName::make("example..com", "s1"));
    EXPECT_FALSE(KeyName::make("example.com", std::string(64, 'a')));
    EXPECT_FALSE(KeyName::make("_x.example.com", "s1")) << "RFC 6376 d=: no '_' (dns/name.hpp)";
    EXPECT_FALSE(KeyName::make("example-.com", "s1"));
    auto absolute = KeyName::make("Example.COM.", "S1");
    ASSERT_TRUE(absolute) << absolute.error().to_string();
    EXPECT_EQ(absolute->label(), "s1._domainkey.example.com") << "lower case, no final dot";
    auto wrong = KeyName::make("example.com", "Bad_Sel");
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().message,
              "selector 'Bad_Sel' is not a valid selector (letters, digits, '-', '.')")
        << "the message quotes what was given";
    EXPECT_EQ(KeyName::from_label("s1._domainkey.example.com"), key_name("example.com", "s1"));
    EXPECT_FALSE(KeyName::from_label("audit-key"));
    EXPECT_FALSE(KeyName::from_label("S1._domainkey.example.com")) << "labels are canonical";
}

TEST(KeyAlgorithmTest, ParsesNames) {
    EXPECT_EQ(parse_key_algorithm("rsa-2048"), KeyAlgorithm::rsa2048);
    EXPECT_EQ(parse_key_algorithm("ed25519"), KeyAlgorithm::ed25519);
    EXPECT_FALSE(parse_key_algorithm("rsa-1024")) << "RFC 8301: no keys under 1024 bits, and we "
                                                     "generate nothing under 2048";
    EXPECT_FALSE(parse_key_algorithm("RSA-2048"));
}

}  // namespace
}  // namespace dkim::hsm

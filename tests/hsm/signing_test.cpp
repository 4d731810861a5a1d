#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "dkim/base/hex.hpp"
#include "dkim/hsm/signing_pool.hpp"
#include "hsm_test_tokens.hpp"
#include "openssl_verify.hpp"
#include "raw_pkcs11.hpp"
#include "test_paths.hpp"

namespace dkim::hsm {
namespace {

std::span<const unsigned char> bytes(const std::string& text) {
    return {reinterpret_cast<const unsigned char*>(text.data()), text.size()};
}

// A key on `label`, generated once per token and process.
struct SigningKey {
    KeyInfo info;
    PublicKey public_key;
};

SigningKey make_key(const std::shared_ptr<Token>& token, const std::string& selector,
                    KeyAlgorithm algorithm) {
    KeyStore store(token);
    auto key = store.find(test::key_name("example.net", selector));
    if (!key) {
        key = store.generate(test::key_name("example.net", selector), algorithm);
    }
    EXPECT_TRUE(key) << key.error().to_string();
    auto public_key = store.public_key(*key);
    EXPECT_TRUE(public_key) << public_key.error().to_string();
    return {*key, *public_key};
}

TEST(SigningPoolTest, SignsFromEightThreadsAtOnce) {
    auto token = test::open_token(test::kSigningToken);
    auto login = test::login(token);
    const SigningKey rsa = make_key(token, "rsa", KeyAlgorithm::rsa2048);
    const SigningKey ed = make_key(token, "ed", test::small_key());
    SigningPool pool(token, {.max_sessions = 8});

    constexpr int kThreads = 8;
    constexpr int kPerThread = 25;
    std::atomic<int> verified{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                const std::string data =
                    "thread " + std::to_string(t) + " message " + std::to_string(i);
                const SigningKey& key = (i % 2 == 0) ? rsa : ed;
                auto signature = pool.sign(key.info, bytes(data));
                if (signature &&
                    test::openssl_verify(key.public_key.spki_der, key.info.type == KeyType::ed25519,
                                         bytes(data), *signature)) {
                    ++verified;
                } else {
                    ++failed;
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(verified.load(), kThreads * kPerThread);
    EXPECT_LE(pool.open_sessions(), 8U);
    EXPECT_GE(pool.open_sessions(), 1U);
}

TEST(SigningPoolTest, LockedWhileLoggedOutAndSignsAgainAfterLogin) {
    auto token = test::open_token(test::kSigningToken);
    auto first = test::login(token);
    const SigningKey key = make_key(token, "rsa", KeyAlgorithm::rsa2048);
    SigningPool pool(token);
    ASSERT_TRUE(pool.sign(key.info, bytes("before")));

    // The raw key handle, as a compromised component of this process might keep it.
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SESSION_HANDLE session = raw.open_session(raw.slot(test::kSigningToken));
    const CK_OBJECT_HANDLE handle = raw.find(session, CKO_PRIVATE_KEY, key.info.id);
    ASSERT_NE(handle, CK_INVALID_HANDLE);

    ASSERT_TRUE(first.release());
    EXPECT_FALSE(token->logged_in());
    auto locked = pool.sign(key.info, bytes("while locked"));
    ASSERT_FALSE(locked);
    EXPECT_EQ(locked.error().code, ErrorCode::locked);
    EXPECT_EQ(locked.error().rv_name(), "CKR_USER_NOT_LOGGED_IN");
    EXPECT_NE(locked.error().message.find("token 'signing' is locked"), std::string::npos);

    // The logout really happened: the token itself refuses a direct C_SignInit.
    CK_MECHANISM mechanism{test::token_traits().rsa_mechanism, nullptr, 0};
    const CK_RV rv = raw.fn().C_SignInit(session, &mechanism, handle);
    EXPECT_TRUE(rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_KEY_HANDLE_INVALID ||
                rv == CKR_OBJECT_HANDLE_INVALID)
        << ck_rv_name(rv);
    raw.fn().C_CloseSession(session);

    auto second = test::login(token);
    auto signature = pool.sign(key.info, bytes("after"));
    ASSERT_TRUE(signature) << signature.error().to_string();
    EXPECT_TRUE(test::openssl_verify(key.public_key.spki_der, false, bytes("after"), *signature));
}

TEST(LoginTest, TheLastPinTryBeforeTheTokenLocksIsNeverSpent) {
    // openCryptoki locks its user PIN at the third wrong one in a row (SoftHSM2 never does,
    // nor does it set CKF_USER_PIN_FINAL_TRY).
    if (std::string(test::token_traits().implementation) != "openCryptoki") {
        GTEST_SKIP() << "only a token that locks sets CKF_USER_PIN_FINAL_TRY";
    }
    auto token = test::open_token(test::kSigningToken);
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SLOT_ID slot = raw.slot(test::kSigningToken);
    const CK_SESSION_HANDLE session = raw.open_session(slot);
    const auto raw_login = [&](std::string pin) {
        return raw.fn().C_Login(session, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()),
                                pin.size());
    };
    const auto flags = [&] {
        CK_TOKEN_INFO info{};
        EXPECT_EQ(raw.fn().C_GetTokenInfo(slot, &info), CKR_OK);
        return info.flags;
    };
    ASSERT_EQ(raw_login("wrong-1"), CKR_PIN_INCORRECT);
    ASSERT_EQ(raw_login("wrong-2"), CKR_PIN_INCORRECT);
    ASSERT_NE(flags() & CKF_USER_PIN_FINAL_TRY, 0U);

    auto refused = Login::acquire(token, Secret::from_string("wrong-3"));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::pin_locked);
    EXPECT_NE(refused.error().message.find("one more wrong PIN would lock the token"),
              std::string::npos)
        << refused.error().message;
    EXPECT_EQ(flags() & CKF_USER_PIN_LOCKED, 0U) << "the PIN was not tried";

    // The token's own tool (here: a raw login with the right PIN) resets the count.
    ASSERT_EQ(raw_login(test::kUserPin), CKR_OK);
    ASSERT_EQ(raw.fn().C_Logout(session), CKR_OK);
    raw.fn().C_CloseSession(session);
    auto login = Login::acquire(token, Secret::from_string(test::kUserPin));
    EXPECT_TRUE(login) << login.error().to_string();
}

TEST(SigningPoolTest, RecoversAfterAllSessionsWereClosedBehindItsBack) {
    auto token = test::open_token(test::kRecoveryToken);
    auto login = test::login(token);
    const SigningKey key = make_key(token, "ed", test::small_key());
    SigningPool pool(token, {.max_sessions = 4});
    // Fill the pool with several idle sessions.
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] { EXPECT_TRUE(pool.sign(key.info, bytes("warm up"))); });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    const auto epoch_before = token->login_epoch();

    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    ASSERT_EQ(raw.fn().C_CloseAllSessions(raw.slot(test::kRecoveryToken)), CKR_OK);

    auto signature = pool.sign(key.info, bytes("after the loss"));
    ASSERT_TRUE(signature) << signature.error().to_string();
    EXPECT_TRUE(test::openssl_verify(key.public_key.spki_der, key.info.type == KeyType::ed25519,
                                     bytes("after the loss"), *signature));
    EXPECT_NE(token->login_epoch(), epoch_before) << "logged in again, key looked up again";
    EXPECT_TRUE(token->logged_in());
    EXPECT_EQ(pool.open_sessions(), 1U) << "the closed sessions were dropped";
}

TEST(SigningPoolTest, WithoutReloginALoginLostBehindItsBackStaysLocked) {
    auto token = test::open_token(test::kRecoveryToken);
    auto login = test::login(token, Login::Relogin::forbidden);
    const SigningKey key = make_key(token, "ed", test::small_key());
    SigningPool pool(token);
    ASSERT_TRUE(pool.sign(key.info, bytes("one")));
    // The same loss that RecoversAfterAllSessionsWereClosedBehindItsBack recovers from.
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    ASSERT_EQ(raw.fn().C_CloseAllSessions(raw.slot(test::kRecoveryToken)), CKR_OK);
    auto locked = pool.sign(key.info, bytes("two"));
    ASSERT_FALSE(locked);
    EXPECT_EQ(locked.error().code, ErrorCode::locked);
    EXPECT_NE(locked.error().message.find("may not log in again by itself"), std::string::npos)
        << locked.error().message;
    EXPECT_FALSE(token->logged_in());
}

TEST(SigningPoolTest, CloseAllSessionsIsAForcedLogoutEvenWhenReloginIsAllowed) {
    auto token = test::open_token(test::kRecoveryToken);
    auto login = test::login(token, Login::Relogin::allowed);
    const SigningKey key = make_key(token, "ed", test::small_key());
    SigningPool pool(token);
    ASSERT_TRUE(pool.sign(key.info, bytes("one")));
    ASSERT_TRUE(token->close_all_sessions());
    EXPECT_FALSE(token->logged_in());
    for (int i = 0; i < 2; ++i) {
        auto locked = pool.sign(key.info, bytes("two"));
        ASSERT_FALSE(locked);
        EXPECT_EQ(locked.error().code, ErrorCode::locked);
    }
    // The token agrees: a new session of this application is not logged in.
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SESSION_HANDLE session = raw.open_session(raw.slot(test::kRecoveryToken));
    CK_SESSION_INFO info{};
    ASSERT_EQ(raw.fn().C_GetSessionInfo(session, &info), CKR_OK);
    EXPECT_EQ(info.state, CKS_RO_PUBLIC_SESSION);
    raw.fn().C_CloseSession(session);

    ASSERT_TRUE(login.release());
    auto again = test::login(token);
    EXPECT_TRUE(pool.sign(key.info, bytes("three")));
}

// --- with the fault-injecting module in front of SoftHSM2 -------------------------------

class FaultModuleTest : public ::testing::Test {
  protected:
    void SetUp() override {
        setenv("DKIM_FAULT_MODULE_TARGET", test::SoftHsmEnvironment::module_path().c_str(), 1);
        auto module = Module::load(dkim::test::test_path("fault_module").string());
        ASSERT_TRUE(module) << module.error().to_string();
        module_ = *module;
        void* handle =
            dlopen(dkim::test::test_path("fault_module").c_str(), RTLD_NOW | RTLD_NOLOAD);
        ASSERT_NE(handle, nullptr);
        login_calls_ =
            reinterpret_cast<unsigned long (*)()>(dlsym(handle, "dkim_fault_login_calls"));
        initialize_calls_ =
            reinterpret_cast<unsigned long (*)()>(dlsym(handle, "dkim_fault_initialize_calls"));
        finalize_calls_ =
            reinterpret_cast<unsigned long (*)()>(dlsym(handle, "dkim_fault_finalize_calls"));
        ASSERT_NE(initialize_calls_, nullptr);
        ASSERT_NE(finalize_calls_, nullptr);
        fail_next_sign_init_ = reinterpret_cast<void (*)(unsigned long)>(
            dlsym(handle, "dkim_fault_fail_next_sign_init"));
        ASSERT_NE(login_calls_, nullptr);
        ASSERT_NE(fail_next_sign_init_, nullptr);
        token_ = test::open_token(test::kFaultToken, module_);
    }

    std::shared_ptr<Module> module_;
    std::shared_ptr<Token> token_;
    unsigned long (*login_calls_)() = nullptr;
    unsigned long (*initialize_calls_)() = nullptr;
    unsigned long (*finalize_calls_)() = nullptr;
    void (*fail_next_sign_init_)(unsigned long) = nullptr;
};

TEST_F(FaultModuleTest, InitializesOnceAndFinalizesWhenTheLastUserGoes) {
    const unsigned long initialized = initialize_calls_();
    const unsigned long finalized = finalize_calls_();
    {
        auto again = Module::load(dkim::test::test_path("fault_module").string());
        ASSERT_TRUE(again);
        EXPECT_EQ(again->get(), module_.get());
        SigningPool pool(token_);  // holds the token, which holds the module
        token_.reset();
        module_.reset();
        EXPECT_EQ(finalize_calls_(), finalized) << "the pool still uses the module";
    }
    EXPECT_EQ(initialize_calls_(), initialized) << "one C_Initialize for all users";
    EXPECT_EQ(finalize_calls_(), finalized + 1) << "C_Finalize when the last user went";

    auto fresh = Module::load(dkim::test::test_path("fault_module").string());
    ASSERT_TRUE(fresh) << fresh.error().to_string();
    EXPECT_EQ(initialize_calls_(), initialized + 1) << "a new user initialises it again";
    auto token = Token::open(*fresh, TokenSelector::by_label(test::kFaultToken));
    ASSERT_TRUE(token) << token.error().to_string();
}

TEST_F(FaultModuleTest, ExportsEd25519KeysFromARawEcPoint) {
    void* handle = dlopen(dkim::test::test_path("fault_module").c_str(), RTLD_NOW | RTLD_NOLOAD);
    auto raw_ec_point = reinterpret_cast<void (*)(int)>(dlsym(handle, "dkim_fault_raw_ec_point"));
    ASSERT_NE(raw_ec_point, nullptr);
    auto login = test::login(token_);
    const SigningKey key = make_key(token_, "ed", KeyAlgorithm::ed25519);  // DER-wrapped point
    KeyStore store(token_);
    raw_ec_point(1);
    auto from_raw = store.public_key(key.info);
    raw_ec_point(0);
    ASSERT_TRUE(from_raw) << from_raw.error().to_string();
    EXPECT_EQ(from_raw->raw, key.public_key.raw);
    EXPECT_EQ(from_raw->spki_der, key.public_key.spki_der);
    EXPECT_EQ(from_raw->dkim_p_value(), key.public_key.dkim_p_value());
}

TEST_F(FaultModuleTest, WrongPinIsReportedAndNeverRetried) {
    const unsigned long before = login_calls_();
    auto login = Login::acquire(token_, Secret::from_string("wrong-pin"));
    ASSERT_FALSE(login);
    EXPECT_EQ(login_calls_() - before, 1U) << "exactly one C_Login";
    const Error& error = login.error();
    EXPECT_EQ(error.code, ErrorCode::pin_incorrect);
    EXPECT_EQ(error.rv_name(), "CKR_PIN_INCORRECT");
    EXPECT_EQ(error.function, "C_Login");
    EXPECT_EQ(error.to_string(),
              "token 'fault': the token rejected the PIN; it is not retried, because tokens lock "
              "after a few wrong PINs (CKR_PIN_INCORRECT from C_Login)");
    EXPECT_EQ(error.to_string().find("wrong-pin"), std::string::npos);
    EXPECT_FALSE(token_->logged_in());
}

TEST_F(FaultModuleTest, DeviceRemovedDuringSignIsRecoveredOnce) {
    auto login = test::login(token_);
    const SigningKey key = make_key(token_, "rsa", KeyAlgorithm::rsa2048);
    SigningPool pool(token_);
    ASSERT_TRUE(pool.sign(key.info, bytes("warm")));

    fail_next_sign_init_(CKR_DEVICE_REMOVED);
    auto signature = pool.sign(key.info, bytes("retried"));
    ASSERT_TRUE(signature) << signature.error().to_string();
    EXPECT_TRUE(test::openssl_verify(key.public_key.spki_der, false, bytes("retried"), *signature));

    // A failure that is not a lost session is reported, not retried.
    fail_next_sign_init_(CKR_DEVICE_ERROR);
    auto failed = pool.sign(key.info, bytes("device error"));
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().code, ErrorCode::device);
    EXPECT_EQ(failed.error().to_string(),
              "token 'fault': signing with key rsa._domainkey.example.net: the token failed "
              "(CKR_DEVICE_ERROR from C_SignInit)");
}

TEST_F(FaultModuleTest, APinChangedBehindOurBackIsTriedOnceOnRecoveryNeverAgain) {
    auto login = test::login(token_);
    const SigningKey key = make_key(token_, "ed", KeyAlgorithm::ed25519);
    SigningPool pool(token_);
    ASSERT_TRUE(pool.sign(key.info, bytes("warm")));

    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SLOT_ID slot = raw.slot(test::kFaultToken);
    const std::string old_pin = test::kUserPin;
    const std::string new_pin = "changed-pin-5678";
    const auto set_pin = [&](const std::string& from, const std::string& to) {
        const CK_SESSION_HANDLE session = raw.open_session(slot, true);
        const CK_RV rv = raw.fn().C_SetPIN(
            session, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(from.data())), from.size(),
            reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(to.data())), to.size());
        raw.fn().C_CloseSession(session);
        return rv;
    };
    ASSERT_EQ(set_pin(old_pin, new_pin), CKR_OK);
    ASSERT_EQ(raw.fn().C_CloseAllSessions(slot), CKR_OK);

    const unsigned long before = login_calls_();
    auto first = pool.sign(key.info, bytes("after loss"));
    ASSERT_FALSE(first);
    EXPECT_EQ(first.error().code, ErrorCode::pin_incorrect);
    EXPECT_EQ(login_calls_() - before, 1U) << "the kept PIN was tried once";

    auto second = pool.sign(key.info, bytes("again"));
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, ErrorCode::locked);
    EXPECT_EQ(login_calls_() - before, 1U) << "and never again";

    // Put the token back as it was for other tests.
    const CK_SESSION_HANDLE session = raw.open_session(slot, true);
    ASSERT_EQ(raw.fn().C_Login(session, CKU_USER,
                               reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(new_pin.data())),
                               new_pin.size()),
              CKR_OK);
    raw.fn().C_CloseSession(session);
    ASSERT_EQ(set_pin(new_pin, old_pin), CKR_OK);
    raw.fn().C_CloseAllSessions(slot);
}

// Only the wrapper writes `fn.C_`, and no C_DestroyObject result is dropped: a key whose public
// half cannot be made loses its private half, and when that fails too the error says so.
TEST_F(FaultModuleTest, AHalfImportedKeyIsRemovedOrNamedNeverLeftSilently) {
    void* handle = dlopen(dkim::test::test_path("fault_module").c_str(), RTLD_NOW | RTLD_NOLOAD);
    auto fail_create = reinterpret_cast<void (*)(unsigned long, unsigned long)>(
        dlsym(handle, "dkim_fault_fail_create_object"));
    auto fail_destroy = reinterpret_cast<void (*)(unsigned long)>(
        dlsym(handle, "dkim_fault_fail_next_destroy_object"));
    ASSERT_NE(fail_create, nullptr);
    ASSERT_NE(fail_destroy, nullptr);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), EVP_PKEY_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr),
              1);
    char* pem_data = nullptr;
    const long pem_size = BIO_get_mem_data(bio.get(), &pem_data);
    const std::string pem(pem_data, static_cast<std::size_t>(pem_size));
    auto login = test::login(token_);
    KeyStore store(token_);

    // The second C_CreateObject (the public half) fails: the private half is destroyed.
    const KeyName gone = test::key_name("example.net", "half-gone");
    fail_create(2, CKR_DEVICE_MEMORY);
    auto first = store.import(gone, bytes(pem));
    ASSERT_FALSE(first);
    EXPECT_EQ(first.error().function, "C_CreateObject");
    EXPECT_EQ(first.error().rv_name(), "CKR_DEVICE_MEMORY");
    EXPECT_EQ(first.error().message.find("still holds"), std::string::npos)
        << first.error().message;
    EXPECT_FALSE(store.find(gone)) << "nothing of it is left";
    auto imported = store.import(gone, bytes(pem));
    EXPECT_TRUE(imported) << "nothing is left to refuse the name: " << imported.error().to_string();

    // And the private half's C_DestroyObject fails too: the error says what is left, and where.
    const KeyName left = test::key_name("example.net", "half-left");
    fail_create(2, CKR_DEVICE_MEMORY);
    fail_destroy(CKR_DEVICE_ERROR);
    auto second = store.import(left, bytes(pem));
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().rv_name(), "CKR_DEVICE_MEMORY") << "the cause stays the error";
    const std::string& message = second.error().message;
    EXPECT_NE(message.find("CKR_DEVICE_ERROR from C_DestroyObject"), std::string::npos) << message;
    EXPECT_NE(message.find("token 'fault' still holds its private half (label "
                           "half-left._domainkey.example.net, CKA_ID "),
              std::string::npos)
        << message;
    auto found = store.find(left);
    ASSERT_TRUE(found) << "the leftover is really there";
    ASSERT_TRUE(found->private_half);
    EXPECT_FALSE(found->has_public);
    EXPECT_NE(message.find(base::hex_encode(found->id)), std::string::npos) << message;
    auto destroyed = store.destroy_private(left);
    ASSERT_TRUE(destroyed) << destroyed.error().to_string();
    EXPECT_EQ(*destroyed, 1U);
    EXPECT_FALSE(store.find(left));
}

// --- fork -------------------------------------------------------------------------------

TEST(ForkTest, ChildMustNotUseTheParentsSessionsButMayStartAfresh) {
    auto token = test::open_token(test::kForkToken);
    auto login = test::login(token);
    const SigningKey key = make_key(token, "ed", test::small_key());
    SigningPool pool(token);
    ASSERT_TRUE(pool.sign(key.info, bytes("parent before fork")));

    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // No gtest assertions here: report through the exit status.
        auto inherited = pool.sign(key.info, bytes("child with parent's pool"));
        if (inherited || inherited.error().code != ErrorCode::forked) {
            _exit(10);
        }
        auto module = Module::load(test::SoftHsmEnvironment::module_path());
        if (!module || module->get() == token->module().get()) {
            _exit(11);
        }
        auto child_token = Token::open(*module, TokenSelector::by_label(test::kForkToken));
        if (!child_token) {
            _exit(12);
        }
        auto child_login = Login::acquire(*child_token, Secret::from_string(test::kUserPin));
        if (!child_login) {
            _exit(13);
        }
        SigningPool child_pool(*child_token);
        auto signature = child_pool.sign(key.info, bytes("child"));
        if (!signature ||
            !test::openssl_verify(key.public_key.spki_der, key.info.type == KeyType::ed25519,
                                  bytes("child"), *signature)) {
            _exit(14);
        }
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "see the _exit codes in the child branch";

    auto signature = pool.sign(key.info, bytes("parent after fork"));
    ASSERT_TRUE(signature) << signature.error().to_string();
    EXPECT_TRUE(test::openssl_verify(key.public_key.spki_der, key.info.type == KeyType::ed25519,
                                     bytes("parent after fork"), *signature));
}

}  // namespace
}  // namespace dkim::hsm

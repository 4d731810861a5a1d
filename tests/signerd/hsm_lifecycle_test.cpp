// The login lifecycle against SoftHSM2: the token is logged in only while a grant is
// active, and after the last grant ends the token itself refuses a direct signature on a new
// session of this process: the session is a public one, the private key cannot be found, and
// C_SignInit with the handle kept from before fails. (SoftHSM2 answers that C_SignInit with
// CKR_OBJECT_HANDLE_INVALID rather than CKR_USER_NOT_LOGGED_IN: at logout it drops the
// handles of all private objects, so the check fails one step earlier. Either code proves
// that the logout happened; any other, CKR_OK above all, fails the test.)

#include <gtest/gtest.h>

#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/module.hpp"
#include "openssl_verify.hpp"
#include "raw_pkcs11.hpp"
#include "signerd_fixture.hpp"
#include "softhsm_environment.hpp"
#include "token_gate.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "signerd";
constexpr const char* kPin = "user-pin-1234";

std::string ck_name(CK_RV rv) {
    return hsm::ck_rv_name(rv);
}

class HsmLifecycleTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { SoftHsmEnvironment::create({{kToken, "so-pin-1234", kPin}}); }

    void SetUp() override {
        auto module = hsm::Module::load(SoftHsmEnvironment::module_path());
        ASSERT_TRUE(module) << module.error().to_string();
        auto token = hsm::Token::open(*module, hsm::TokenSelector::by_label(kToken));
        ASSERT_TRUE(token) << token.error().to_string();
        token_ = *token;
        {
            auto login = hsm::Login::acquire(token_, hsm::Secret::from_string(kPin));
            ASSERT_TRUE(login);
            hsm::KeyStore store(token_);
            auto existing = store.find(hsm::KeyName{"example.com", "s1"});
            key_ = existing ? *existing
                            : *store.generate(hsm::KeyName{"example.com", "s1"},
                                              hsm::KeyAlgorithm::rsa2048);
            ASSERT_TRUE(login->release());
        }
        gate_ = std::make_unique<signerd::HsmTokenGate>(token_);
        signerd::ServiceOptions options;
        options.pin_source = signerd::PinSourceKind::file;
        options.pin_path = SoftHsmEnvironment::get().write_pin_file("signerd-pin", kPin);
        harness_ = std::make_unique<SignerdHarness>(*gate_, options);
    }

    // C_SignInit and C_Sign with the key's handle on a new session of this process, as a
    // compromised component of signerd could try. Also checks the session's login state and
    // that the private key is not even visible while logged out.
    CK_RV direct_sign_init(CK_OBJECT_HANDLE handle) {
        RawPkcs11 raw(SoftHsmEnvironment::module_path());
        const CK_SESSION_HANDLE session = raw.open_session(raw.slot(kToken));
        CK_SESSION_INFO info{};
        EXPECT_EQ(raw.fn().C_GetSessionInfo(session, &info), CKR_OK);
        const bool logged_in =
            info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS;
        EXPECT_EQ(logged_in, token_->logged_in()) << "session state " << info.state;
        EXPECT_EQ(raw.find(session, CKO_PRIVATE_KEY, key_.id) != CK_INVALID_HANDLE, logged_in);
        CK_MECHANISM mechanism{CKM_SHA256_RSA_PKCS, nullptr, 0};
        CK_RV rv = raw.fn().C_SignInit(session, &mechanism, handle);
        if (rv == CKR_OK) {
            unsigned char data[] = "x";
            unsigned char signature[512];
            CK_ULONG size = sizeof signature;
            rv = raw.fn().C_Sign(session, data, 1, signature, &size);
        }
        raw.fn().C_CloseSession(session);
        return rv;
    }

    CK_OBJECT_HANDLE private_handle() {
        RawPkcs11 raw(SoftHsmEnvironment::module_path());
        const CK_SESSION_HANDLE session = raw.open_session(raw.slot(kToken));
        const CK_OBJECT_HANDLE handle = raw.find(session, CKO_PRIVATE_KEY, key_.id);
        raw.fn().C_CloseSession(session);
        return handle;
    }

    std::int64_t grant(SignerdHarness& h, std::int64_t seconds) {
        const auto id = h.request_sign("example.com", "s1", seconds);
        const auto reply = h.decide("bob", "approve", id);
        EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(reply)) << error_message(reply);
        return std::get<ipc::OkReply>(reply).id;
    }

    std::shared_ptr<hsm::Token> token_;
    hsm::KeyInfo key_;
    std::unique_ptr<signerd::HsmTokenGate> gate_;
    std::unique_ptr<SignerdHarness> harness_;
};

TEST_F(HsmLifecycleTest, AfterRevokeAndAfterExpiryTheTokenRefusesADirectSign) {
    SignerdHarness& h = *harness_;
    const std::string block = header_block("example.com", "s1");
    EXPECT_EQ(error_code(h.sign(block)), "locked");
    EXPECT_FALSE(token_->logged_in());

    const auto g = grant(h, 3600);
    ASSERT_TRUE(token_->logged_in());
    auto reply = h.sign(block);
    ASSERT_TRUE(std::holds_alternative<ipc::SignReply>(reply)) << error_message(reply);
    hsm::KeyStore store(token_);
    auto public_key = store.public_key(key_);
    ASSERT_TRUE(public_key);
    const std::string& signature = std::get<ipc::SignReply>(reply).signature;
    EXPECT_TRUE(openssl_verify(
        public_key->spki_der, false,
        {reinterpret_cast<const unsigned char*>(block.data()), block.size()},
        {reinterpret_cast<const unsigned char*>(signature.data()), signature.size()}))
        << "OpenSSL verifies what signerd signed";
    const CK_OBJECT_HANDLE handle = private_handle();
    ASSERT_NE(handle, CK_INVALID_HANDLE);
    EXPECT_EQ(direct_sign_init(handle), CKR_OK) << "while a grant is active, the key works";

    auto revoked =
        h.call(h.admin_peer, ipc::GrantRevoke{h.password_of("carol", true), g, "incident"});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(revoked)) << error_message(revoked);
    EXPECT_FALSE(token_->logged_in());
    const CK_RV after_revoke = direct_sign_init(handle);
    EXPECT_TRUE(after_revoke == CKR_USER_NOT_LOGGED_IN || after_revoke == CKR_OBJECT_HANDLE_INVALID)
        << ck_name(after_revoke);

    grant(h, 60);
    ASSERT_TRUE(token_->logged_in());
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
    const CK_OBJECT_HANDLE again = private_handle();
    h.clock.advance(61s);
    EXPECT_EQ(error_code(h.sign(block)), "locked");
    h.service->tick();
    EXPECT_FALSE(token_->logged_in());
    const CK_RV after_expiry = direct_sign_init(again);
    EXPECT_TRUE(after_expiry == CKR_USER_NOT_LOGGED_IN || after_expiry == CKR_OBJECT_HANDLE_INVALID)
        << ck_name(after_expiry);

    // The checkpoints taken before each logout are records of the chain, right before the
    // token.logout, and carry valid signatures of the audit key.
    auto log = h.engine.store().audit_records(1, 100'000);
    ASSERT_TRUE(log);
    std::vector<jit::Checkpoint> checkpoints;
    for (std::size_t i = 0; i < log->size(); ++i) {
        if (auto c = jit::parse_checkpoint_record((*log)[i]); c && c->kind == "logout") {
            EXPECT_EQ((*log)[i].outcome, "ok") << (*log)[i].reason;
            ASSERT_LT(i + 1, log->size());
            EXPECT_EQ((*log)[i + 1].action, "token.logout");
            EXPECT_EQ(c->seq, (*log)[i].seq - 1);
            checkpoints.push_back(*c);
        }
    }
    ASSERT_EQ(checkpoints.size(), 2U);
    auto audit_key = store.find(signerd::audit_key_name());
    ASSERT_TRUE(audit_key) << audit_key.error().to_string();
    auto audit_public = store.public_key(*audit_key);
    ASSERT_TRUE(audit_public);
    for (const jit::Checkpoint& c : checkpoints) {
        // Ed25519 over SHA-256(message), as DKIM's ed25519-sha256 (openssl_verify hashes).
        const std::string message = jit::checkpoint_message(c);
        EXPECT_TRUE(openssl_verify(
            audit_public->spki_der, true,
            {reinterpret_cast<const unsigned char*>(message.data()), message.size()},
            {reinterpret_cast<const unsigned char*>(c.signature.data()), c.signature.size()}))
            << "checkpoint at " << c.seq;
    }
}

// The kind of a key signerd has no lifecycle record of, asked before each of its signatures:
// from the public half while logged out, from the gate's key cache while logged in (not a
// search of the whole token per signature, which serialized concurrent signers), the same
// either way; a key the token does not hold is no_key either way.
TEST_F(HsmLifecycleTest, AnUnmanagedKeysKindIsTheSameLoggedInOrOut) {
    {
        auto login = hsm::Login::acquire(token_, hsm::Secret::from_string(kPin));
        ASSERT_TRUE(login);
        hsm::KeyStore store(token_);
        if (!store.find(hsm::KeyName{"example.com", "ed1"})) {
            ASSERT_TRUE(
                store.generate(hsm::KeyName{"example.com", "ed1"}, hsm::KeyAlgorithm::ed25519));
        }
        ASSERT_TRUE(login->release());
    }
    const auto kind = [this](const std::string& selector) -> std::string {
        auto found = gate_->key_kind("example.com", selector);
        if (!found) {
            return found.error().kind == signerd::GateError::Kind::no_key ? "no_key"
                                                                          : found.error().message;
        }
        return *found;
    };
    ASSERT_FALSE(gate_->logged_in());
    EXPECT_EQ(kind("s1"), "rsa");
    EXPECT_EQ(kind("ed1"), "ed25519");
    EXPECT_EQ(kind("none"), "no_key");

    ASSERT_TRUE(gate_->login(hsm::Secret::from_string(kPin), false));
    for (int round = 0; round < 2; ++round) {  // the second round from the cache
        EXPECT_EQ(kind("s1"), "rsa") << round;
        EXPECT_EQ(kind("ed1"), "ed25519") << round;
        EXPECT_EQ(kind("none"), "no_key") << round;
    }
    gate_->logout();
    EXPECT_EQ(kind("ed1"), "ed25519");
}

}  // namespace
}  // namespace dkim::test

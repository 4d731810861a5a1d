// Credentials: RFC 6238 test vectors, Argon2id, API tokens, and the Directory's refusals.

#include "dkim/jit/credentials.hpp"

#include <gtest/gtest.h>

#include "dkim/base/wipe.hpp"
#include "jit_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

TEST(TotpTest, Rfc6238Sha1Vectors) {
    // RFC 6238 Appendix B, SHA-1 seed "12345678901234567890"; six digits are the low six of
    // the published eight.
    const std::string seed = "12345678901234567890";
    EXPECT_EQ(jit::totp_code(seed, jit::totp_step(59)), 287082U);
    EXPECT_EQ(jit::totp_code(seed, jit::totp_step(1111111109)), 81804U);
    EXPECT_EQ(jit::totp_code(seed, jit::totp_step(1111111111)), 50471U);
    EXPECT_EQ(jit::totp_code(seed, jit::totp_step(1234567890)), 5924U);
    EXPECT_EQ(jit::totp_code(seed, jit::totp_step(2000000000)), 279037U);
    EXPECT_EQ(jit::totp_code(seed, jit::totp_step(20000000000)), 353130U);
    EXPECT_EQ(jit::totp_match(seed, "287082", jit::totp_step(59)), jit::totp_step(59));
    EXPECT_EQ(jit::totp_match(seed, "287082", jit::totp_step(59) + 1), jit::totp_step(59))
        << "one step of skew";
    EXPECT_FALSE(jit::totp_match(seed, "287082", jit::totp_step(59) + 2));
    EXPECT_FALSE(jit::totp_match(seed, "28708", jit::totp_step(59)));
    EXPECT_FALSE(jit::totp_match(seed, "28708x", jit::totp_step(59)));
    EXPECT_EQ(jit::base32_encode("12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

TEST(PasswordTest, Argon2idHashesVerifyAndDiffer) {
    const auto a = jit::hash_password("correct horse battery", jit::PasswordCost::minimal());
    const auto b = jit::hash_password("correct horse battery", jit::PasswordCost::minimal());
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->rfind("$argon2id$", 0), 0U);
    EXPECT_NE(*a, *b) << "salted";
    EXPECT_TRUE(jit::verify_password(*a, "correct horse battery"));
    EXPECT_FALSE(jit::verify_password(*a, "correct horse batterx"));
    EXPECT_FALSE(jit::verify_password("", ""));
}

TEST(TokenTest, RandomTokensAndHashes) {
    const auto t1 = jit::random_token();
    const auto t2 = jit::random_token();
    EXPECT_EQ(t1.size(), 4U + 43U);
    EXPECT_NE(t1, t2);
    EXPECT_EQ(jit::token_hash(t1).size(), 32U);
    EXPECT_TRUE(base::constant_time_equal(jit::token_hash(t1), jit::token_hash(t1)));
    EXPECT_FALSE(base::constant_time_equal(jit::token_hash(t1), jit::token_hash(t2)));
}

class DirectoryTest : public ::testing::Test {
  protected:
    JitEngine engine;
    TimePoint t0 = test_epoch();
    jit::Actor local{
        jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
};

TEST_F(DirectoryTest, PasswordsTokensAndDisabledUsers) {
    auto& d = engine.directory();
    EXPECT_FALSE(d.add_user(local, "Bad Name", 1, "", t0));
    EXPECT_FALSE(d.add_user(local, "alice", 1, "short", t0));
    ASSERT_TRUE(d.add_user(local, "alice", static_cast<jit::RoleSet>(jit::Role::requester),
                           "correct horse battery", t0));
    EXPECT_EQ(d.add_user(local, "alice", 1, "", t0).error().code, jit::Refusal::Code::conflict);
    EXPECT_TRUE(d.authenticate_password("alice", "correct horse battery", t0));
    const auto wrong = d.authenticate_password("alice", "wrong password!!", t0);
    ASSERT_FALSE(wrong);
    const auto unknown = d.authenticate_password("nobody", "wrong password!!", t0);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(wrong.error().message, unknown.error().message) << "no hint which part was wrong";

    auto token = d.create_token(local, "alice", jit::TokenKind::api, "ci", 1h, t0);
    ASSERT_TRUE(token);
    EXPECT_TRUE(token->token.hash.empty()) << "the hash is not handed out either";
    EXPECT_TRUE(d.authenticate_token(token->secret, t0));
    EXPECT_FALSE(d.authenticate_token(token->secret, t0 + 1h)) << "expired";
    engine.restart();
    EXPECT_TRUE(engine.directory().authenticate_token(token->secret, t0)) << "kept as a hash";
    ASSERT_TRUE(engine.directory().set_disabled(local, "alice", true, t0));
    EXPECT_FALSE(engine.directory().authenticate_token(token->secret, t0));
    EXPECT_FALSE(engine.directory().authenticate_password("alice", "correct horse battery", t0));
    // The store holds no token and no password in clear.
    auto state = engine.store().load();
    for (const auto& t : state->tokens) {
        EXPECT_EQ(t.hash, jit::token_hash(token->secret));
    }
    EXPECT_EQ(state->users[0].password_hash.rfind("$argon2id$", 0), 0U);
}

// Issue 18, finding 6: webd sends a Bearer token as "api" and a cookie's as "session"; a token
// of the other kind is refused like an unknown one (a session token cannot be replayed as a
// Bearer token around webd's idle timeout).
TEST_F(DirectoryTest, ATokenIsAcceptedOnlyAsItsOwnKindWhenOneIsAskedFor) {
    auto& d = engine.directory();
    ASSERT_TRUE(d.add_user(local, "carol", static_cast<jit::RoleSet>(jit::Role::requester),
                           "correct horse battery", t0));
    auto session = d.create_token(local, "carol", jit::TokenKind::session, "session", 1h, t0);
    auto api = d.create_token(local, "carol", jit::TokenKind::api, "ci", 1h, t0);
    ASSERT_TRUE(session);
    ASSERT_TRUE(api);
    EXPECT_TRUE(d.authenticate_token(session->secret, t0, jit::TokenKind::session));
    EXPECT_TRUE(d.authenticate_token(session->secret, t0)) << "the CLI asks for no kind";
    const auto as_api = d.authenticate_token(session->secret, t0, jit::TokenKind::api);
    ASSERT_FALSE(as_api) << "a session token is not an API token";
    const auto unknown = d.authenticate_token("dkt_unknown", t0, jit::TokenKind::api);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(as_api.error().message, unknown.error().message) << "the same answer";
    EXPECT_TRUE(d.authenticate_token(api->secret, t0, jit::TokenKind::api));
    EXPECT_FALSE(d.authenticate_token(api->secret, t0, jit::TokenKind::session));
}

TEST_F(DirectoryTest, FiveFailuresLockAUserOut) {
    auto& d = engine.directory();
    ASSERT_TRUE(d.add_user(local, "bob", static_cast<jit::RoleSet>(jit::Role::approver),
                           "correct horse battery", t0));
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(
            d.authenticate_password("bob", "guess guess guess", t0 + std::chrono::seconds(i)));
    }
    EXPECT_FALSE(d.authenticate_password("bob", "correct horse battery", t0 + 10s)) << "locked out";
    EXPECT_TRUE(d.authenticate_password("bob", "correct horse battery", t0 + 16min));
}

TEST_F(DirectoryTest, TotpMustBeConfirmedAndACodeWorksOnce) {
    auto& d = engine.directory();
    ASSERT_TRUE(d.add_user(local, "bob", static_cast<jit::RoleSet>(jit::Role::approver),
                           "correct horse battery", t0));
    const auto approver = user("bob", {jit::Role::approver});
    EXPECT_EQ(d.check_totp(approver, "123456", t0).error().code, jit::Refusal::Code::forbidden);
    auto enrolment = d.enrol_totp(local, "bob", t0);
    ASSERT_TRUE(enrolment);
    EXPECT_EQ(enrolment->uri.rfind("otpauth://totp/dkim-appliance:bob?secret=", 0), 0U);
    const std::string secret = base32_decode(enrolment->secret_base32);
    auto code_at = [&](TimePoint t) { return totp_at(secret, t); };
    EXPECT_EQ(d.check_totp(approver, code_at(t0), t0).error().code, jit::Refusal::Code::forbidden)
        << "not confirmed yet";
    ASSERT_TRUE(d.confirm_totp(approver, "bob", code_at(t0), t0));
    EXPECT_FALSE(d.check_totp(approver, code_at(t0), t0)) << "the confirming code was used";
    ASSERT_TRUE(d.check_totp(approver, code_at(t0 + 30s), t0 + 30s));
    EXPECT_FALSE(d.check_totp(approver, code_at(t0 + 30s), t0 + 31s)) << "replay";
    engine.restart();
    EXPECT_FALSE(engine.directory().check_totp(approver, code_at(t0 + 30s), t0 + 32s))
        << "replay after restart";
    EXPECT_TRUE(engine.directory().check_totp(approver, code_at(t0 + 60s), t0 + 60s));
    EXPECT_FALSE(engine.directory().check_totp(approver, "000000", t0 + 90s));
}

}  // namespace
}  // namespace dkim::test

// SMTP AUTH's exchanges (auth.hpp) without a session: PLAIN and LOGIN, their refusals, and
// the Argon2id check that costs the same for an unknown client.

#include "auth.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

namespace dkim::relayd {
namespace {

using Kind = AuthExchange::Step::Kind;

TEST(AuthExchangeTest, PlainWithAnInitialResponse) {
    AuthExchange a;
    const auto s = a.start("PLAIN AGFsaWNlAHMzY3JldA==");  // "\0alice\0s3cret"
    ASSERT_EQ(s.kind, Kind::verify);
    EXPECT_EQ(s.user, "alice");
    EXPECT_EQ(s.password, "s3cret");
}

TEST(AuthExchangeTest, PlainAfterAPromptAndTheMechanismInAnyCase) {
    AuthExchange a;
    const auto prompt = a.start("plain");
    ASSERT_EQ(prompt.kind, Kind::prompt);
    EXPECT_EQ(prompt.reply.code, 334);
    EXPECT_EQ(prompt.reply.text, "");
    const auto s = a.next("YWxpY2UAYWxpY2UAczNjcmV0");  // "alice\0alice\0s3cret"
    ASSERT_EQ(s.kind, Kind::verify);
    EXPECT_EQ(s.user, "alice");
}

TEST(AuthExchangeTest, LoginAsksForTheNameThenThePassword) {
    AuthExchange a;
    EXPECT_EQ(a.start("LOGIN").reply.text, "VXNlcm5hbWU6");
    EXPECT_EQ(a.next("YWxpY2U=").reply.text, "UGFzc3dvcmQ6");
    const auto s = a.next("czNjcmV0");
    ASSERT_EQ(s.kind, Kind::verify);
    EXPECT_EQ(s.user, "alice");
    EXPECT_EQ(s.password, "s3cret");
    EXPECT_EQ(a.next("x").reply.code, 503) << "the exchange is over";

    AuthExchange b;
    EXPECT_EQ(b.start("LOGIN YWxpY2U=").reply.text, "UGFzc3dvcmQ6");
    EXPECT_EQ(b.next("=").kind, Kind::verify) << "'=' is an empty response";
}

TEST(AuthExchangeTest, Refusals) {
    struct Case {
        const char* start;
        const char* next;
        int code;
        const char* enhanced;
    };
    const Case cases[] = {
        {"CRAM-MD5", nullptr, 504, "5.5.4"},
        {"PLAIN !!!", nullptr, 501, "5.5.2"},
        {"PLAIN", "*", 501, "5.0.0"},
        {"LOGIN", "*", 501, "5.0.0"},
        {"PLAIN Ym9i", nullptr, 501, "5.5.2"},                          // "bob": no NULs
        {"PLAIN bWFsbG9yeQBhbGljZQBzM2NyZXQ=", nullptr, 535, "5.7.8"},  // authzid != authcid
    };
    for (const auto& c : cases) {
        AuthExchange a;
        auto s = a.start(c.start);
        if (c.next != nullptr) {
            s = a.next(c.next);
        }
        EXPECT_EQ(s.kind, Kind::refuse) << c.start;
        EXPECT_EQ(s.reply.code, c.code) << c.start;
        EXPECT_EQ(s.reply.enhanced, c.enhanced) << c.start;
        EXPECT_TRUE(s.password.empty()) << c.start;
    }
}

TEST(AuthPasswordTest, OnlyTheRightPasswordOfAClientWithAHashPasses) {
    ASSERT_GE(sodium_init(), 0);
    std::array<char, crypto_pwhash_STRBYTES> hash{};
    ASSERT_EQ(crypto_pwhash_str(hash.data(), "s3cret", 6, crypto_pwhash_OPSLIMIT_MIN,
                                crypto_pwhash_MEMLIMIT_MIN),
              0);
    Client alice;
    alice.name = "alice";
    alice.password_hash = hash.data();
    EXPECT_TRUE(verify_client_password(&alice, "s3cret"));
    EXPECT_FALSE(verify_client_password(&alice, "s3cret "));
    EXPECT_FALSE(verify_client_password(nullptr, "s3cret"));
    Client network_only;
    network_only.name = "apps";
    EXPECT_FALSE(verify_client_password(&network_only, ""));
}

}  // namespace
}  // namespace dkim::relayd

// What dkim-webd keeps between requests (the session table, the login limiter) and its strict
// JSON bodies.

#include "sessions.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "dkim/clock.hpp"
#include "json_body.hpp"

namespace dkim::test {
namespace {

TEST(JsonBodyTest, NestingIsParsedWithoutRecursion) {
    const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
    EXPECT_FALSE(web::JsonBody::parse(deep)) << "not an object, and no stack overflow";
    auto empty = web::JsonBody::parse("  ");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->finish());
}

TEST(LoginLimiterTest, PerAddressAndPerUser) {
    web::LoginLimiter limiter({3, 2, std::chrono::minutes(1)});
    const auto t0 = from_unix_ms(0);
    EXPECT_FALSE(limiter.attempt("a", "u1", t0));
    EXPECT_FALSE(limiter.attempt("a", "u1", t0));
    EXPECT_TRUE(limiter.attempt("b", "u1", t0)) << "per user, from any address";
    EXPECT_FALSE(limiter.attempt("a", "u2", t0));
    EXPECT_TRUE(limiter.attempt("a", "u3", t0)) << "per address, for any user";
    limiter.succeeded("u1");
    EXPECT_FALSE(limiter.attempt("c", "u1", t0)) << "a success clears the user's count";
    EXPECT_FALSE(limiter.attempt("a", "u3", t0 + std::chrono::minutes(1)));
}

TEST(SessionTableTest, BoundedAndKeyedByHash) {
    web::SessionTable table(std::chrono::minutes(30), 2);
    const auto t0 = from_unix_ms(0);
    web::BrowserSession s;
    s.expires = t0 + std::chrono::hours(1);
    const auto a = table.add("token-a", s, t0);
    table.add("token-b", s, t0 + std::chrono::seconds(1));
    EXPECT_EQ(a.size(), 64U);
    EXPECT_TRUE(table.find("token-a", t0 + std::chrono::seconds(2)));
    table.add("token-c", s, t0 + std::chrono::seconds(3));
    EXPECT_EQ(table.size(t0 + std::chrono::seconds(3)), 2U);
    EXPECT_FALSE(table.find("token-b", t0 + std::chrono::seconds(4))) << "least recently used";
    EXPECT_FALSE(table.find("token-a", t0 + std::chrono::hours(1))) << "expired";
}

}  // namespace
}  // namespace dkim::test

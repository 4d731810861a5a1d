// The policy file: parsing (every error named with its line), and durations.

#include "dkim/jit/policy.hpp"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include "jit_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;
using jit::Operation;

TEST(PolicyTest, ParsesAndNamesTheLineOfEveryError) {
    const char* good = R"(
[sign]
max_duration = "4h"
quorum = 2
approvers = ["role:approver", "carol"]
ticket_pattern = "^CHG-"
[key.retire]
quorum = 3
[[auto_approve]]
name = "low"
operation = "sign"
domain = "*.example.com"
max_duration = "15m"
window = "22:00-06:00"
)";
    auto policy = jit::parse_policy(toml::parse(good), "policy.toml");
    ASSERT_TRUE(policy) << policy.error();
    EXPECT_EQ(policy->for_operation(Operation::sign).quorum, 2U);
    EXPECT_EQ(policy->for_operation(Operation::sign).max_duration, 4h);
    EXPECT_EQ(policy->for_operation(Operation::key_retire).quorum, 3U);
    ASSERT_EQ(policy->auto_approve.size(), 1U);
    EXPECT_TRUE(policy->auto_approve[0].window->contains(test_epoch() - 11h));  // 01:00
    EXPECT_FALSE(policy->auto_approve[0].window->contains(test_epoch()));       // 12:00

    auto bad = jit::parse_policy(toml::parse("[sign]\nquorum = 0\n"), "p.toml");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), "p.toml:2:10: key 'policy.sign.quorum': must be between 1 and 16");
    auto typo = jit::parse_policy(toml::parse("[sign]\nmax_duraton = \"1h\"\n"), "p.toml");
    ASSERT_FALSE(typo);
    EXPECT_NE(typo.error().find("p.toml:2:15: key 'policy.sign.max_duraton': unknown key"),
              std::string::npos)
        << typo.error();
    auto admin_auto = jit::parse_policy(
        toml::parse("[[auto_approve]]\nname = \"x\"\noperation = \"admin\"\n"), "p.toml");
    ASSERT_FALSE(admin_auto);
    EXPECT_NE(admin_auto.error().find("never auto-approved"), std::string::npos);
    EXPECT_FALSE(jit::parse_policy(toml::parse("[sign]\nmax_duration = \"soon\"\n"), "p.toml"));
}

TEST(PolicyTest, Durations) {
    EXPECT_EQ(jit::parse_duration("90s"), 90s);
    EXPECT_EQ(jit::parse_duration("1h30m"), 90min);
    EXPECT_EQ(jit::parse_duration("2d"), 48h);
    EXPECT_FALSE(jit::parse_duration(""));
    EXPECT_FALSE(jit::parse_duration("10"));
    EXPECT_FALSE(jit::parse_duration("0s"));
    EXPECT_FALSE(jit::parse_duration("-1h"));
    EXPECT_EQ(jit::format_duration(90min), "1h30m");
}

}  // namespace
}  // namespace dkim::test

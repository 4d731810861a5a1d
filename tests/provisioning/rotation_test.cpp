// The rotation state machine: one next step from the keys' states alone, so that a rerun after
// an interruption at any point continues the same rotation instead of starting another.

#include "dkim/provisioning/rotation.hpp"

#include <gtest/gtest.h>

namespace dkim::provisioning {
namespace {

using Kind = RotationStep::Kind;

constexpr std::int64_t kNow = 1'795'694'400'000;  // 2026-11-26T12:00:00Z
constexpr std::int64_t kDay = 86'400'000;

KeyStatus key(const std::string& selector, const std::string& state,
              const std::string& algorithm = "rsa-2048", std::int64_t retire_after = 0) {
    return {selector, algorithm, state, true, 0, retire_after, "v=DKIM1; k=rsa; p=" + selector};
}

RotationRequest at(std::int64_t now = kNow) {
    RotationRequest r;
    r.domain = "example.com";
    r.now_ms = now;
    return r;
}

TEST(RotationTest, WalksEveryStepFromTheStatesAlone) {
    std::vector<KeyStatus> keys{key("s2026-05", "active")};
    auto step = next_rotation_step(keys, at());
    ASSERT_TRUE(step) << step.error();
    EXPECT_EQ(step->kind, Kind::generate);
    EXPECT_EQ(step->key.selector, "s2026-11");
    EXPECT_EQ(step->key.algorithm, "rsa-2048") << "the current key's algorithm";

    keys.push_back(key("s2026-11", "generating"));  // interrupted while generating
    step = next_rotation_step(keys, at());
    EXPECT_EQ(step->kind, Kind::wait_for_publication) << "the rerun finds the key it started";
    EXPECT_EQ(step->key.selector, "s2026-11");

    keys.back().state = "pending-publish";
    step = next_rotation_step(keys, at(kNow + 40 * kDay));
    EXPECT_EQ(step->kind, Kind::wait_for_publication)
        << "the month changed meanwhile: still the same rotation";
    EXPECT_EQ(step->key.selector, "s2026-11");

    keys[0] = key("s2026-05", "retiring", "rsa-2048", kNow + 7 * kDay);
    keys[1].state = "active";
    step = next_rotation_step(keys, at());
    EXPECT_EQ(step->kind, Kind::wait_for_grace);
    EXPECT_EQ(step->not_before_ms, kNow + 7 * kDay);
    EXPECT_NE(step->describe().find("retiring until 2026-12-03T12:00:00Z"), std::string::npos);

    step = next_rotation_step(keys, at(kNow + 7 * kDay));
    EXPECT_EQ(step->kind, Kind::retire);
    EXPECT_EQ(step->key.selector, "s2026-05");

    keys[0].state = "retired";
    keys[0].retired_ms = kNow + 7 * kDay;
    keys[1].activated_ms = kNow;
    step = next_rotation_step(keys, at(kNow + 7 * kDay + 60'000));
    EXPECT_EQ(step->kind, Kind::done)
        << "a rerun right after the last step starts nothing new, though December began";
    EXPECT_EQ(step->key.selector, "s2026-11");
    step = next_rotation_step(keys, at(kNow + 2 * kDay));
    EXPECT_EQ(step->kind, Kind::done) << "this period's key signs already";

    step = next_rotation_step(keys, at(kNow + 60 * kDay));
    EXPECT_EQ(step->kind, Kind::generate) << "the next period starts the next rotation";
    EXPECT_EQ(step->key.selector, "s2027-01");
}

TEST(RotationTest, KindsAlgorithmsAndSelectors) {
    std::vector<KeyStatus> keys{key("rsa1", "active"), key("ed1", "active", "ed25519")};
    auto step = next_rotation_step(keys, at());
    ASSERT_FALSE(step) << "two kinds sign: which one?";
    EXPECT_NE(step.error().find("--algorithm"), std::string::npos);

    auto request = at();
    request.algorithm = "ed25519";
    step = next_rotation_step(keys, request);
    ASSERT_TRUE(step) << step.error();
    EXPECT_EQ(step->kind, Kind::generate);
    EXPECT_EQ(step->key.algorithm, "ed25519");

    keys.push_back(key("s2026-11", "active"));  // this period's name taken by the RSA key
    step = next_rotation_step(keys, request);
    EXPECT_EQ(step->key.selector, "s2026-11-ed25519");

    request.algorithm = "rsa-4096";  // a stronger key of the same kind
    request.selector = "big";
    step = next_rotation_step({key("rsa1", "active")}, request);
    EXPECT_EQ(step->key.selector, "big");
    EXPECT_EQ(step->key.algorithm, "rsa-4096");

    request.selector = "old";
    step = next_rotation_step({key("rsa1", "active"), key("old", "retired")}, request);
    ASSERT_FALSE(step);
    EXPECT_NE(step.error().find("was used before"), std::string::npos);

    step = next_rotation_step({key("p", "pending-publish")}, at());
    EXPECT_EQ(step->kind, Kind::wait_for_publication) << "a first key waiting to be published";
    EXPECT_FALSE(next_rotation_step({}, at())) << "no key: nothing to rotate";
}

TEST(RotationTest, SelectorFormats) {
    EXPECT_EQ(*format_selector("s%Y-%m", kNow, "rsa"), "s2026-11");
    EXPECT_EQ(*format_selector("%k%Y%m%d", kNow, "ed25519"), "ed2551920261126");
    EXPECT_EQ(*format_selector("S%Y", kNow, "rsa"), "s2026");
    EXPECT_FALSE(format_selector("s%q", kNow, "rsa"));
    EXPECT_FALSE(format_selector("s%", kNow, "rsa"));
    EXPECT_FALSE(format_selector("s_%Y", kNow, "rsa")) << "not a valid selector";
    EXPECT_FALSE(format_selector("%%", kNow, "rsa"));
}

}  // namespace
}  // namespace dkim::provisioning

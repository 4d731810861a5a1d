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

// --- a cluster's rotation: every node's key, in step ---------------------------------------

using CKind = ClusterRotationStep::Kind;

ClusterRotationPlan plan(const std::string& phase, std::vector<std::string> checked = {},
                         const std::string& pattern = "s2026-11-%n") {
    return {"rsa", "rsa-2048", pattern, phase, kNow, std::move(checked)};
}

// A node's key made active at `at`, and the one it replaced, retiring since then.
void switched(NodeKeys& n, const std::string& old_selector, const std::string& new_selector,
              std::int64_t at, std::int64_t grace_end) {
    n.keys.clear();
    KeyStatus old = key(old_selector, "retiring", "rsa-2048", grace_end);
    old.retiring_since_ms = at;
    KeyStatus now = key(new_selector, "active");
    now.activated_ms = at;
    n.keys = {old, now};
}

TEST(ClusterRotationTest, NodeSelectorsComeFromOnePattern) {
    EXPECT_EQ(cluster_selector("s2026-11-%n", "mx1"), "s2026-11-mx1");
    EXPECT_EQ(cluster_selector("%n-s2026", "Node_2.east"), "node-2-east-s2026");
    auto pattern = format_selector("s%Y-%m", kNow, "rsa", true);
    ASSERT_TRUE(pattern) << pattern.error();
    EXPECT_EQ(*pattern, "s2026-11-%n") << "a format without %n gets one at the end";
    pattern = format_selector("%n-%k%Y", kNow, "rsa", true);
    ASSERT_TRUE(pattern) << pattern.error();
    EXPECT_EQ(*pattern, "%n-rsa2026");
    EXPECT_FALSE(format_selector("s%Y_%n!", kNow, "rsa", true)) << "not a selector";
}

TEST(ClusterRotationTest, WalksEveryNodeThroughEachPhaseFromTheStatesAlone) {
    std::vector<NodeKeys> nodes{{"mx1", false, {key("rsa2048", "active")}},
                                {"mx2", false, {key("n2-rsa2048", "active")}}};
    std::vector<ClusterRotationPlan> plans;
    auto step = next_cluster_rotation_step(nodes, plans, at());
    ASSERT_TRUE(step) << step.error();
    EXPECT_EQ(step->kind, CKind::start);
    EXPECT_EQ(step->selector, "s2026-11-%n");
    EXPECT_EQ(step->algorithm, "rsa-2048");
    EXPECT_EQ(step->nodes, (std::vector<std::string>{"mx1", "mx2"}));

    plans.push_back(plan("generate"));
    step = next_cluster_rotation_step(nodes, plans, at());
    EXPECT_EQ(step->kind, CKind::wait_for_nodes) << "no node has made its key yet";
    EXPECT_EQ(step->nodes, (std::vector<std::string>{"mx1", "mx2"}));

    nodes[0].keys.push_back(key("s2026-11-mx1", "pending-publish"));
    nodes[1].keys.push_back(key("s2026-11-mx2", "generating"));
    step = next_cluster_rotation_step(nodes, plans, at());
    EXPECT_EQ(step->kind, CKind::wait_for_nodes) << "mx2 is still generating";
    EXPECT_EQ(step->nodes, (std::vector<std::string>{"mx2"}));

    nodes[1].keys.back().state = "pending-publish";
    step = next_cluster_rotation_step(nodes, plans, at());
    EXPECT_EQ(step->kind, CKind::wait_for_publication);
    ASSERT_EQ(step->keys.size(), 2U) << "every node's record is checked before any activates";
    EXPECT_EQ(step->keys[0].second.selector, "s2026-11-mx1");
    EXPECT_EQ(step->keys[1].first, "mx2");
    EXPECT_EQ(step->selector, "s2026-11-%n") << "the plan's pattern, for the activation";

    plans[0] = plan("activate", {"s2026-11-mx1", "s2026-11-mx2"});
    step = next_cluster_rotation_step(nodes, plans, at());
    EXPECT_EQ(step->kind, CKind::wait_for_nodes) << "activated in the shared state, not yet here";

    switched(nodes[0], "rsa2048", "s2026-11-mx1", kNow, kNow + 2 * kDay);
    switched(nodes[1], "n2-rsa2048", "s2026-11-mx2", kNow + 1, kNow + 3 * kDay);
    step = next_cluster_rotation_step(nodes, plans, at());
    EXPECT_EQ(step->kind, CKind::wait_for_grace);
    EXPECT_EQ(step->not_before_ms, kNow + 3 * kDay) << "the last node's grace period";

    step = next_cluster_rotation_step(nodes, plans, at(kNow + 3 * kDay));
    EXPECT_EQ(step->kind, CKind::retire);
    EXPECT_EQ(step->keys.size(), 2U);

    plans[0].phase = "retire";
    step = next_cluster_rotation_step(nodes, plans, at(kNow + 3 * kDay));
    EXPECT_EQ(step->kind, CKind::wait_for_nodes) << "the old keys still retiring";

    nodes[0].keys[0].state = "retired";
    nodes[1].keys[0].state = "retired";
    step = next_cluster_rotation_step(nodes, plans, at(kNow + 3 * kDay));
    EXPECT_EQ(step->kind, CKind::finish) << "every part done: the rotation is closed";

    plans[0].phase = "done";
    step = next_cluster_rotation_step(nodes, plans, at(kNow + 3 * kDay));
    EXPECT_EQ(step->kind, CKind::done) << "this period's rotation is over";
    step = next_cluster_rotation_step(nodes, plans, at(kNow + 40 * kDay));
    EXPECT_EQ(step->kind, CKind::start) << "the next period's";
    EXPECT_EQ(step->selector, "s2027-01-%n");
}

TEST(ClusterRotationTest, ANodeBackFromBeingGoneHasItsRecordCheckedBeforeItSwitches) {
    // mx2 was gone when the records were checked: only mx1's was, and only mx1 switched.
    std::vector<NodeKeys> nodes{
        {"mx1", false, {}},
        {"mx2", false, {key("n2-rsa2048", "active"), key("s2026-11-mx2", "pending-publish")}}};
    switched(nodes[0], "rsa2048", "s2026-11-mx1", kNow, kNow + kDay);
    std::vector<ClusterRotationPlan> plans{plan("activate", {"s2026-11-mx1"})};
    auto step = next_cluster_rotation_step(nodes, plans, at());
    ASSERT_TRUE(step) << step.error();
    EXPECT_EQ(step->kind, CKind::wait_for_publication);
    ASSERT_EQ(step->keys.size(), 1U);
    EXPECT_EQ(step->keys[0].second.selector, "s2026-11-mx2");

    // A key retiring by hand (not replaced by this rotation) is not the rotation's to retire.
    nodes = {{"mx1", false, {}}};
    switched(nodes[0], "rsa2048", "s2026-11-mx1", kNow, kNow + kDay);
    KeyStatus other = key("manual", "retiring", "rsa-2048", kNow + kDay);
    other.retiring_since_ms = kNow + 5;
    nodes[0].keys[0].state = "retired";
    nodes[0].keys.push_back(other);
    plans = {plan("retire", {"s2026-11-mx1"})};
    step = next_cluster_rotation_step(nodes, plans, at(kNow + 2 * kDay));
    EXPECT_EQ(step->kind, CKind::finish);
}

TEST(ClusterRotationTest, NodeNamesThatMakeOneSelectorAreRefused) {
    std::vector<NodeKeys> nodes{{"mx_1", false, {key("a", "active")}},
                                {"MX-1", false, {key("b", "active")}}};
    auto step = next_cluster_rotation_step(nodes, {}, at());
    ASSERT_FALSE(step);
    EXPECT_NE(step.error().find("for two nodes"), std::string::npos) << step.error();
}

TEST(ClusterRotationTest, AGoneNodeIsNotWaitedForAndUsedSelectorsAreRefused) {
    std::vector<NodeKeys> nodes{{"mx1", false, {key("rsa2048", "active")}},
                                {"mx2", true, {key("n2-rsa2048", "active")}}};
    std::vector<ClusterRotationPlan> plans{plan("generate")};
    nodes[0].keys.push_back(key("s2026-11-mx1", "pending-publish"));
    auto step = next_cluster_rotation_step(nodes, plans, at());
    ASSERT_TRUE(step) << step.error();
    EXPECT_EQ(step->kind, CKind::wait_for_publication) << "mx2 is gone: not waited for";
    EXPECT_EQ(step->keys.size(), 1U);

    std::vector<NodeKeys> used{
        {"mx1", false, {key("rsa2048", "active"), key("again-mx1", "retired")}}};
    auto again = at();
    again.selector = "again";
    EXPECT_FALSE(next_cluster_rotation_step(used, {}, again)) << "a selector used before";
    again.selector = "bad_selector!";
    EXPECT_FALSE(next_cluster_rotation_step(used, {}, again));

    std::vector<NodeKeys> none{{"mx1", false, {key("ed", "active", "ed25519")}}};
    auto rsa = at();
    rsa.algorithm = "rsa-2048";
    EXPECT_FALSE(next_cluster_rotation_step(none, {}, rsa)) << "no RSA key signs anywhere";
}

}  // namespace
}  // namespace dkim::provisioning

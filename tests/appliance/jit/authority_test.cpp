// The grant state machine with a fake clock: every transition, every refusal. Supersession (a
// grant closing the pending requests it covers) is in supersession_test.cpp, the policy file in
// policy_test.cpp.

#include <gtest/gtest.h>

#include <thread>

#include "authority_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;
using jit::Operation;
using jit::Refusal;
using jit::RequestState;
using jit::Role;

TEST_F(AuthorityTest, RequestNeedsRequesterRoleReasonScopeAndDurationWithinPolicy) {
    auto& a = engine.authority();
    EXPECT_EQ(code_of(a.request(bob, sign_request("example.com", "s1", 1h), t0)),
              Refusal::Code::forbidden);
    auto no_reason = sign_request("example.com", "s1", 1h);
    no_reason.reason = "";
    EXPECT_EQ(code_of(a.request(alice, no_reason, t0)), Refusal::Code::invalid);
    auto control = sign_request("example.com", "s1", 1h);
    control.reason = "line\nbreak";
    EXPECT_EQ(code_of(a.request(alice, control, t0)), Refusal::Code::invalid);
    EXPECT_EQ(code_of(a.request(alice, sign_request("not a domain", "s1", 1h), t0)),
              Refusal::Code::invalid);
    EXPECT_EQ(code_of(a.request(alice, sign_request("example.com", "bad selector", 1h), t0)),
              Refusal::Code::invalid);
    EXPECT_EQ(code_of(a.request(alice, sign_request("example.com", "s1", 9h), t0)),
              Refusal::Code::invalid);
    EXPECT_EQ(code_of(a.request(alice, sign_request("example.com", "s1", 0ms), t0)),
              Refusal::Code::invalid);
    EXPECT_EQ(code_of(a.request(alice, sign_request("example.com", "s1", 1h, 0), t0)),
              Refusal::Code::invalid);
    jit::Actor service{jit::Actor::Kind::service, "relay", 0, {}};
    EXPECT_EQ(code_of(a.request(service, sign_request("example.com", "s1", 1h), t0)),
              Refusal::Code::forbidden);
    EXPECT_TRUE(a.requests().empty());
    EXPECT_EQ(engine.journal().seq(), 0) << "refusals of malformed requests change nothing";
}

TEST_F(AuthorityTest, TicketPatternIsEnforced) {
    engine.policy().operations[Operation::sign].ticket_pattern = "CHG-[0-9]+";
    engine.policy().operations[Operation::sign].ticket_regex.emplace("CHG-[0-9]+");
    engine.restart();
    auto in = sign_request("example.com", "s1", 1h);
    in.reason = "because";
    EXPECT_EQ(code_of(engine.authority().request(alice, in, t0)), Refusal::Code::invalid);
    in.reason = "see CHG-42";
    EXPECT_TRUE(engine.authority().request(alice, in, t0));
}

TEST_F(AuthorityTest, NobodyApprovesTheirOwnRequestAndOnePersonCountsOnce) {
    engine.policy().operations[Operation::sign].quorum = 2;
    engine.restart();
    auto& a = engine.authority();
    const auto id = pending(sign_request("example.com", "s1", 1h), dave);
    EXPECT_EQ(code_of(a.approve(dave, id, t0)), Refusal::Code::forbidden);
    EXPECT_EQ(a.approve(dave, id, t0).error().rule, "self_approval");
    EXPECT_EQ(code_of(a.approve(alice, id, t0)), Refusal::Code::forbidden) << "not an approver";
    EXPECT_EQ(a.approve(alice, id, t0).error().rule, "role");
    auto first = a.approve(bob, id, t0);
    ASSERT_TRUE(first);
    EXPECT_FALSE(first->grant);
    EXPECT_EQ(first->request.state, RequestState::pending);
    const auto again = a.approve(bob, id, t0 + 1s);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Refusal::Code::forbidden) << "one person counts once";
    EXPECT_EQ(again.error().rule, "duplicate_approver");
    EXPECT_FALSE(can_sign(t0 + 1s));
    auto second = a.approve(carol, id, t0 + 2s);
    ASSERT_TRUE(second);
    ASSERT_TRUE(second->grant);
    EXPECT_EQ(second->request.state, RequestState::approved);
    EXPECT_EQ(second->grant->starts, t0 + 2s) << "a grant starts when approved";
    EXPECT_EQ(second->grant->expires, t0 + 2s + 1h);
    EXPECT_TRUE(can_sign(t0 + 3s));
    const auto late = a.approve(carol, id, t0 + 3s);
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().code, Refusal::Code::forbidden);
    EXPECT_EQ(late.error().rule, "quorum_met");
}

TEST_F(AuthorityTest, NamedApproversOnly) {
    engine.policy().operations[Operation::sign].approvers = {"carol"};
    engine.restart();
    const auto id = pending(sign_request("example.com", "s1", 1h));
    EXPECT_EQ(code_of(engine.authority().approve(bob, id, t0)), Refusal::Code::forbidden);
    EXPECT_TRUE(engine.authority().approve(carol, id, t0));
}

TEST_F(AuthorityTest, DenyNeedsAReasonAndEndsTheRequest) {
    auto& a = engine.authority();
    const auto id = pending(sign_request("example.com", "s1", 1h));
    EXPECT_EQ(code_of(a.deny(bob, id, "", t0)), Refusal::Code::invalid);
    EXPECT_EQ(code_of(a.deny(alice, id, "mine", t0)), Refusal::Code::forbidden);
    auto denied = a.deny(bob, id, "not this quarter", t0);
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->request.state, RequestState::denied);
    EXPECT_EQ(code_of(a.approve(carol, id, t0)), Refusal::Code::conflict);
    EXPECT_FALSE(can_sign(t0));
}

TEST_F(AuthorityTest, CancelByRequesterOrAdminOnly) {
    auto& a = engine.authority();
    const auto id = pending(sign_request("example.com", "s1", 1h));
    EXPECT_EQ(code_of(a.cancel(bob, id, t0)), Refusal::Code::forbidden);
    EXPECT_TRUE(a.cancel(alice, id, t0));
    EXPECT_EQ(code_of(a.approve(bob, id, t0)), Refusal::Code::conflict);
    const auto id2 = pending(sign_request("example.com", "s2", 1h));
    EXPECT_TRUE(a.cancel(root, id2, t0));
    EXPECT_EQ(code_of(a.cancel(root, 999, t0)), Refusal::Code::not_found);
}

TEST_F(AuthorityTest, PendingRequestsExpire) {
    auto& a = engine.authority();
    const auto id = pending(sign_request("example.com", "s1", 1h));
    const auto limit = engine.policy().for_operation(Operation::sign).pending_expiry;
    EXPECT_EQ(code_of(a.approve(bob, id, t0 + limit)), Refusal::Code::conflict);
    EXPECT_TRUE(a.approve(bob, id, t0 + limit - 1ms));
}

TEST_F(AuthorityTest, GrantCoversItsScopeUntilExpiryExactly) {
    granted(sign_request("example.com", "s1", 1h));
    EXPECT_TRUE(can_sign(t0));
    EXPECT_TRUE(can_sign(t0 + 1h - 1ms));
    EXPECT_FALSE(can_sign(t0 + 1h)) << "expiry is checked on every signature";
    EXPECT_FALSE(can_sign(t0, "example.com", "s2"));
    EXPECT_FALSE(can_sign(t0, "example.org", "s1"));
    EXPECT_TRUE(can_sign(t0, "EXAMPLE.com", "S1"))
        << "domains and selectors compare case-insensitively";
}

TEST_F(AuthorityTest, SelectorWildcardAndClientScope) {
    auto in = sign_request("example.com", "*", 1h);
    in.scope.client = "relay-a";
    granted(in);
    EXPECT_TRUE(can_sign(t0, "example.com", "any", "relay-a"));
    EXPECT_FALSE(can_sign(t0, "example.com", "any", "relay-b"));
}

TEST_F(AuthorityTest, BudgetIsSpentExactlyOnceEvenConcurrently) {
    granted(sign_request("example.com", "s1", 1h, 200));
    std::atomic<int> permits{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i) {
                if (auto p = engine.authority().authorize_sign("relay", "example.com", "s1", t0)) {
                    ++permits;
                    EXPECT_TRUE(engine.authority().record_signature(*p, "relay", "issued", "", t0));
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(permits.load(), 200);
    const auto grants = engine.authority().grants();
    ASSERT_EQ(grants.size(), 1U);
    EXPECT_EQ(grants[0].state_at(t0), jit::GrantState::exhausted);
    engine.restart();
    EXPECT_EQ(engine.authority().grants()[0].uses, 200U) << "uses are durable";
    EXPECT_FALSE(can_sign(t0));
}

TEST_F(AuthorityTest, LockedSignatureFilesOnePendingRequestPerScope) {
    auto first = engine.authority().authorize_sign("relay", "example.com", "s1", t0);
    ASSERT_FALSE(first);
    EXPECT_EQ(first.error().kind, jit::SignRefusal::Kind::locked);
    ASSERT_GT(first.error().request_id, 0);
    for (int i = 0; i < 5; ++i) {
        auto again = engine.authority().authorize_sign("relay", "example.com", "s1", t0 + 1s);
        ASSERT_FALSE(again);
        EXPECT_EQ(again.error().request_id, first.error().request_id);
    }
    auto other = engine.authority().authorize_sign("relay", "example.com", "s2", t0);
    EXPECT_NE(other.error().request_id, first.error().request_id);
    EXPECT_EQ(engine.authority().requests().size(), 2U);
    // The filed request is a normal pending request: approving it unlocks the scope.
    auto req = engine.authority().find_request(first.error().request_id);
    ASSERT_TRUE(req);
    EXPECT_TRUE(req->filed_by_signer);
    EXPECT_EQ(req->scope.client, "relay");
    ASSERT_TRUE(engine.authority().approve(bob, req->id, t0 + 2s));
    EXPECT_TRUE(can_sign(t0 + 3s));
    EXPECT_FALSE(can_sign(t0 + 3s, "example.com", "s1", "other-relay"));
}

TEST_F(AuthorityTest, RevokeIsDurableAndImmediate) {
    const auto grant = granted(sign_request("example.com", "s1", 1h));
    auto& a = engine.authority();
    EXPECT_EQ(a.revoke(alice, grant, "", t0).error().code, Refusal::Code::invalid);
    EXPECT_EQ(a.revoke(user("eve", {Role::requester}), grant, "x", t0).error().code,
              Refusal::Code::forbidden);
    ASSERT_TRUE(a.revoke(bob, grant, "incident 7", t0 + 1s));
    EXPECT_FALSE(can_sign(t0 + 1s));
    EXPECT_EQ(a.revoke(bob, grant, "again", t0 + 2s).error().code, Refusal::Code::conflict);
    engine.restart();
    EXPECT_FALSE(can_sign(t0 + 2s)) << "a revoke survives a restart";
    EXPECT_EQ(engine.authority().grants()[0].revoke_reason, "incident 7");
}

TEST_F(AuthorityTest, RestartRestoresActiveGrantsAndNeverRevivesExpiredOnes) {
    granted(sign_request("example.com", "s1", 1h));
    granted(sign_request("example.com", "s2", 2h));
    engine.restart();
    EXPECT_TRUE(can_sign(t0 + 30min, "example.com", "s1"));
    EXPECT_FALSE(can_sign(t0 + 61min, "example.com", "s1"));
    EXPECT_TRUE(can_sign(t0 + 61min, "example.com", "s2"));
    EXPECT_EQ(engine.authority().active_count(t0 + 61min), 1U);
}

TEST_F(AuthorityTest, AutoApprovalRules) {
    jit::AutoApproveRule rule;
    rule.name = "newsletters";
    rule.operation = Operation::sign;
    rule.domain_pattern = "*.example.com";
    rule.requesters = {"alice"};
    rule.max_duration = 30min;
    rule.window = jit::TimeWindow{9 * 60, 17 * 60};
    engine.policy().auto_approve.push_back(rule);
    engine.restart();
    auto& a = engine.authority();
    const auto noon = t0;  // 12:00 UTC
    auto ok = a.request(alice, sign_request("news.example.com", "s1", 30min), noon);
    ASSERT_TRUE(ok);
    EXPECT_TRUE(ok->grant);
    EXPECT_EQ(ok->request.decided_by, "rule:newsletters");
    // Each condition of the rule, one at a time (other selectors: the grant just made covers
    // news.example.com/s1, and a request it covers is refused):
    EXPECT_FALSE(a.request(alice, sign_request("example.com", "s1", 30min), noon)->grant)
        << "domain";
    EXPECT_FALSE(a.request(dave, sign_request("news.example.com", "s2", 30min), noon)->grant)
        << "requester";
    EXPECT_FALSE(a.request(alice, sign_request("news.example.com", "s3", 31min), noon)->grant)
        << "duration";
    EXPECT_FALSE(a.request(alice, sign_request("news.example.com", "s1", 30min), noon + 6h)->grant)
        << "window";
}

TEST_F(AuthorityTest, BreakGlassIsAdminOnlyCappedAndFlagged) {
    auto& a = engine.authority();
    auto in = sign_request("example.com", "s1", 20min);
    in.break_glass = true;
    EXPECT_EQ(code_of(a.request(alice, in, t0)), Refusal::Code::forbidden);
    in.duration = 31min;
    EXPECT_EQ(code_of(a.request(root, in, t0)), Refusal::Code::invalid);
    in.duration = 20min;
    auto d = a.request(root, in, t0);
    ASSERT_TRUE(d);
    ASSERT_TRUE(d->grant);
    EXPECT_TRUE(d->grant->break_glass);
    EXPECT_TRUE(can_sign(t0 + 1s));
    auto records = engine.store().audit_records(1, 100);
    ASSERT_TRUE(records);
    ASSERT_FALSE(records->empty());
    EXPECT_EQ(records->front().action, "elevation.break_glass");
    EXPECT_EQ(records->front().outcome, "alert");
    EXPECT_NE(records->front().detail.find("BREAK-GLASS"), std::string::npos);
}

TEST_F(AuthorityTest, AnUnwritableAuditLogStopsGrantsAndSignatures) {
    const auto id = pending(sign_request("example.com", "s1", 1h));
    engine.store().failing = true;
    auto approved = engine.authority().approve(bob, id, t0);
    ASSERT_FALSE(approved);
    EXPECT_EQ(approved.error().code, Refusal::Code::unavailable);
    EXPECT_NE(approved.error().message.find("disk I/O error"), std::string::npos);
    EXPECT_EQ(engine.authority().active_count(t0), 0U) << "no grant without its record";
    EXPECT_EQ(engine.authority().find_request(id)->state, RequestState::pending);
    engine.store().failing = false;
    ASSERT_TRUE(engine.authority().approve(bob, id, t0));
    auto permit = engine.authority().authorize_sign("relay", "example.com", "s1", t0);
    ASSERT_TRUE(permit);
    engine.store().failing = true;
    EXPECT_FALSE(engine.authority().record_signature(*permit, "relay", "issued", "", t0))
        << "the caller withholds the signature";
    auto locked = engine.authority().authorize_sign("relay", "example.org", "s1", t0);
    ASSERT_FALSE(locked);
    EXPECT_EQ(locked.error().kind, jit::SignRefusal::Kind::unavailable);
    EXPECT_TRUE(engine.journal().failure().has_value());
    engine.store().failing = false;
    engine.restart();
    // The chain has no hole where the failed batches were.
    auto records = engine.store().audit_records(1, 1000);
    ASSERT_TRUE(records);
    EXPECT_TRUE(jit::verify_chain(*records, {}).ok);
}

TEST_F(AuthorityTest, SweepRecordsEndsOnceAndNextDeadlineIsTheEarliestExpiry) {
    // Without renewals (renewal_test.cpp: they are deadlines too, and the sweep files them).
    engine.policy().operations[jit::Operation::sign].renew_before = {};
    engine.restart();
    granted(sign_request("example.com", "s1", 1h));
    granted(sign_request("example.com", "s2", 2h));
    EXPECT_EQ(engine.authority().next_deadline(t0), t0 + 1h);
    EXPECT_TRUE(engine.authority().sweep(t0 + 30min).empty());
    auto events = engine.authority().sweep(t0 + 1h);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].type, "grant.expired");
    EXPECT_TRUE(engine.authority().sweep(t0 + 1h + 1s).empty()) << "recorded once";
    EXPECT_EQ(engine.authority().next_deadline(t0 + 1h), t0 + 2h);
}

TEST_F(AuthorityTest, PendingRequestsAreBoundedPerRequester) {
    // A compromised relay (or a user) cannot flood the approvers: 16 pending at most.
    auto& a = engine.authority();
    const std::size_t cap = jit::Authority::kMaxPendingPerRequester;
    for (std::size_t i = 0; i < cap; ++i) {
        auto r = a.authorize_sign("relay", "example.com", "s" + std::to_string(i), t0);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().kind, jit::SignRefusal::Kind::locked);
        EXPECT_GT(r.error().request_id, 0) << "filed for selector " << i;
    }
    auto over = a.authorize_sign("relay", "example.com", "one-more", t0);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().kind, jit::SignRefusal::Kind::locked);
    EXPECT_EQ(over.error().request_id, 0) << "no request filed past the bound";
    EXPECT_NE(over.error().message.find("no request was filed"), std::string::npos);
    // The same scope again reuses its pending request.
    auto again = a.authorize_sign("relay", "example.com", "s0", t0);
    ASSERT_FALSE(again);
    EXPECT_GT(again.error().request_id, 0);
    // Another relay client, and users, have bounds of their own.
    EXPECT_GT(a.authorize_sign("other-relay", "example.com", "s0", t0).error().request_id, 0);
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < cap; ++i) {
        ids.push_back(pending(sign_request("example.com", "u" + std::to_string(i), 1h)));
    }
    EXPECT_EQ(code_of(a.request(alice, sign_request("example.com", "u-more", 1h), t0)),
              Refusal::Code::conflict);
    EXPECT_TRUE(a.request(dave, sign_request("example.com", "u-more", 1h), t0));
    // Once one is decided, there is room again.
    ASSERT_TRUE(a.approve(bob, ids.front(), t0));
    EXPECT_TRUE(a.request(alice, sign_request("example.com", "u-more", 1h), t0));
}

}  // namespace
}  // namespace dkim::test

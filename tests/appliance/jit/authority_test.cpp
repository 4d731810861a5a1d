// The grant state machine with a fake clock: every transition, every refusal.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <toml++/toml.h>

#include <thread>

#include "jit_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;
using jit::Operation;
using jit::Refusal;
using jit::RequestState;
using jit::Role;

const jit::Actor alice = user("alice", {Role::requester});
const jit::Actor bob = user("bob", {Role::approver});
const jit::Actor carol = user("carol", {Role::approver});
const jit::Actor dave = user("dave", {Role::requester, Role::approver});
const jit::Actor root = user("root-admin", {Role::admin});

class AuthorityTest : public ::testing::Test {
  protected:
    JitEngine engine;
    TimePoint t0 = test_epoch();

    std::int64_t pending(const jit::RequestInput& in, const jit::Actor& who = alice) {
        auto r = engine.authority().request(who, in, t0);
        EXPECT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->request.state, RequestState::pending);
        return r->request.id;
    }
    std::int64_t granted(const jit::RequestInput& in) {
        const auto id = pending(in);
        auto d = engine.authority().approve(bob, id, t0);
        EXPECT_TRUE(d) << d.error().message;
        EXPECT_TRUE(d->grant.has_value());
        return d->grant ? d->grant->id : 0;
    }
    bool can_sign(TimePoint at, const std::string& d = "example.com", const std::string& s = "s1",
                  const std::string& client = "relay") {
        return engine.authority().authorize_sign(client, d, s, at).has_value();
    }
};

Refusal::Code code_of(const jit::Outcome<jit::Decision>& d) {
    return d.error().code;
}

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
    jit::Actor service{jit::Actor::Kind::service, "relay", 0};
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

// --- supersession: a pending request that an active grant covers is closed ------------------

// The audit log as written (all of it), and whether its chain verifies.
std::vector<jit::AuditRecord> supersession_log(JitEngine& engine) {
    auto records = engine.store().audit_records(1, 100'000);
    EXPECT_TRUE(records);
    if (!records) {
        return {};
    }
    const auto report = jit::verify_chain(*records, {});
    EXPECT_TRUE(report.ok) << report.problem;
    return *records;
}

std::vector<jit::AuditRecord> supersede_records(const std::vector<jit::AuditRecord>& log) {
    std::vector<jit::AuditRecord> out;
    std::copy_if(log.begin(), log.end(), std::back_inserter(out),
                 [](const jit::AuditRecord& r) { return r.action == "elevation.supersede"; });
    return out;
}

// The relay's request (one selector, for itself) is closed when an approver grants the whole
// domain: in the approval's own write, with one record naming the grant, and an event.
TEST_F(AuthorityTest, TheRelaysNarrowRequestIsSupersededByAWiderGrantAsItBecomesActive) {
    auto& a = engine.authority();
    const auto relay = a.authorize_sign("relay", "example.com", "s1", t0).error().request_id;
    const auto other_relay =
        a.authorize_sign("other-relay", "example.com", "s2", t0).error().request_id;
    const auto other_domain = a.authorize_sign("relay", "example.org", "s1", t0).error().request_id;
    ASSERT_GT(relay, 0);
    ASSERT_GT(other_relay, 0);
    ASSERT_GT(other_domain, 0);
    const auto wide = pending(sign_request("example.com", "*", 1h));
    const auto before = engine.journal().seq();
    std::vector<jit::Event> events;
    a.on_event([&events](const jit::Event& e) { events.push_back(e); });
    auto approved = a.approve(bob, wide, t0 + 1s);
    ASSERT_TRUE(approved) << approved.error().message;
    ASSERT_TRUE(approved->grant);
    const auto grant = approved->grant->id;
    ASSERT_EQ(approved->superseded.size(), 2U) << "both relays' requests for example.com";
    EXPECT_EQ(approved->superseded[0].id, relay);
    EXPECT_EQ(approved->superseded[1].id, other_relay);

    const auto closed = a.find_request(relay);
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->state, RequestState::superseded);
    EXPECT_EQ(closed->state_at(t0 + 1s), RequestState::superseded);
    EXPECT_EQ(closed->superseded_by, grant);
    EXPECT_EQ(closed->decided_by, "signerd");
    EXPECT_EQ(closed->decided_at, t0 + 1s);
    EXPECT_NE(closed->decision_reason.find("grant " + std::to_string(grant)), std::string::npos)
        << closed->decision_reason;
    EXPECT_EQ(jit::to_string(closed->state), "superseded");
    EXPECT_EQ(a.find_request(other_relay)->state, RequestState::superseded);
    EXPECT_EQ(a.find_request(other_domain)->state_at(t0 + 1s), RequestState::pending)
        << "another domain is not covered";
    EXPECT_EQ(a.next_deadline(t0 + 1s), t0 + 1s + 1h)
        << "the grant's expiry: example.org's request expires after 24h";

    // One write: the approval and the two supersessions, each one record naming the grant.
    EXPECT_EQ(engine.journal().seq(), before + 3);
    const auto log = supersession_log(engine);
    const auto records = supersede_records(log);
    ASSERT_EQ(records.size(), 2U);
    for (const auto& r : records) {
        EXPECT_EQ(r.actor, "signerd");
        EXPECT_EQ(r.outcome, "superseded");
        EXPECT_EQ(r.grant_id, grant);
        EXPECT_EQ(r.time, t0 + 1s);
        EXPECT_NE(r.reason.find("grant " + std::to_string(grant)), std::string::npos);
    }
    EXPECT_EQ(records[0].request_id, relay);
    EXPECT_EQ(records[0].scope, "sign example.com/s1 for relay");
    EXPECT_EQ(records[1].request_id, other_relay);
    ASSERT_EQ(events.size(), 3U);
    EXPECT_EQ(events[0].type, "request.approved");
    EXPECT_EQ(events[1].type, "request.superseded");
    EXPECT_EQ(events[1].request_id, relay);
    EXPECT_EQ(events[1].grant_id, grant);

    // The relay signs under the wider grant, and files nothing more while it lasts.
    EXPECT_TRUE(can_sign(t0 + 2s, "example.com", "s1", "relay"));
    EXPECT_TRUE(can_sign(t0 + 2s, "example.com", "s9", "relay"));
    EXPECT_EQ(a.requests().size(), 4U);
    // Once the grant has ended, the relay's next locked signature files a new request.
    auto after = a.authorize_sign("relay", "example.com", "s1", t0 + 1s + 1h);
    ASSERT_FALSE(after);
    EXPECT_GT(after.error().request_id, wide);
    EXPECT_EQ(a.find_request(after.error().request_id)->state, RequestState::pending);
}

// Only a grant that authorises everything the request asks for, and is active, supersedes it.
TEST_F(AuthorityTest, ANarrowerOrNotYetActiveGrantSupersedesNothing) {
    engine.policy().operations[Operation::sign].quorum = 2;
    engine.restart();
    auto& a = engine.authority();
    // (First: a pending request that covers it would be reused instead.)
    const auto relay_s2 = a.authorize_sign("relay", "example.com", "s2", t0).error().request_id;
    ASSERT_GT(relay_s2, 0);
    const auto all_selectors = pending(sign_request("example.com", "*", 1h));
    auto for_relay_in = sign_request("example.com", "*", 1h);
    for_relay_in.scope.client = "relay";
    const auto for_relay = pending(for_relay_in);
    auto rotate_in = sign_request("example.com", "*", 1h);
    rotate_in.scope.operation = Operation::key_rotate;
    const auto rotate = pending(rotate_in);

    // One selector: narrower than example.com/*.
    const auto s1 = pending(sign_request("example.com", "s1", 1h), dave);
    ASSERT_TRUE(a.approve(bob, s1, t0));
    auto one = a.approve(carol, s1, t0);
    ASSERT_TRUE(one && one->grant);
    EXPECT_TRUE(one->superseded.empty());
    // Another relay client only: narrower than any client, and not the relay.
    auto other_in = sign_request("example.com", "*", 1h);
    other_in.scope.client = "other-relay";
    const auto other = pending(other_in, dave);
    ASSERT_TRUE(a.approve(bob, other, t0));
    auto two = a.approve(carol, other, t0);
    ASSERT_TRUE(two && two->grant);
    EXPECT_TRUE(two->superseded.empty());
    // Someone else's key.rotate grant: it serves its holder only.
    auto dave_rotate_in = rotate_in;
    const auto dave_rotate = pending(dave_rotate_in, dave);
    auto three = a.approve(bob, dave_rotate, t0);
    ASSERT_TRUE(three && three->grant);
    EXPECT_TRUE(three->superseded.empty());
    // Not yet active: one approval of the two the quorum needs.
    const auto wide = pending(sign_request("example.com", "*", 1h), dave);
    auto first = a.approve(bob, wide, t0);
    ASSERT_TRUE(first);
    EXPECT_FALSE(first->grant);
    EXPECT_TRUE(first->superseded.empty());

    for (const auto id : {all_selectors, for_relay, relay_s2, rotate, wide}) {
        EXPECT_EQ(a.find_request(id)->state_at(t0), RequestState::pending) << "request " << id;
    }
    EXPECT_TRUE(supersede_records(supersession_log(engine)).empty());

    // The quorum met: now it is active and covers them (not dave's key.rotate request, and
    // not alice's: key.rotate grants serve their holder).
    auto second = a.approve(carol, wide, t0 + 1s);
    ASSERT_TRUE(second && second->grant);
    std::vector<std::int64_t> closed;
    for (const auto& r : second->superseded) {
        closed.push_back(r.id);
    }
    EXPECT_EQ(closed, (std::vector<std::int64_t>{relay_s2, all_selectors, for_relay}));
    EXPECT_EQ(a.find_request(rotate)->state_at(t0 + 1s), RequestState::pending);
    EXPECT_EQ(supersede_records(supersession_log(engine)).size(), 3U);
}

// A request that an active grant covers already would be superseded at once: it is refused,
// naming the grant, and recorded nowhere (like any refused request). The relay never files
// one: it signs under the grant.
TEST_F(AuthorityTest, ARequestThatAnActiveGrantCoversIsRefused) {
    auto& a = engine.authority();
    const auto grant = granted(sign_request("example.com", "*", 1h));
    const auto seq = engine.journal().seq();
    const auto count = a.requests().size();
    auto covered = a.request(alice, sign_request("example.com", "s1", 30min), t0 + 1s);
    ASSERT_FALSE(covered);
    EXPECT_EQ(covered.error().code, Refusal::Code::conflict);
    EXPECT_NE(covered.error().message.find("grant " + std::to_string(grant)), std::string::npos)
        << covered.error().message;
    auto for_relay_in = sign_request("example.com", "s1", 30min);
    for_relay_in.scope.client = "relay";
    EXPECT_EQ(code_of(a.request(dave, for_relay_in, t0 + 1s)), Refusal::Code::conflict)
        << "the grant is for any relay client";
    EXPECT_EQ(a.requests().size(), count);
    EXPECT_EQ(engine.journal().seq(), seq) << "nothing filed, nothing recorded";
    EXPECT_TRUE(a.authorize_sign("relay", "example.com", "s1", t0 + 1s));
    EXPECT_EQ(a.requests().size(), count) << "the relay signed instead of filing";

    // Not covered: another domain; and break-glass (never pending) is not affected.
    EXPECT_TRUE(a.request(alice, sign_request("example.org", "s1", 1h), t0 + 1s));
    auto glass = sign_request("example.com", "s1", 20min);
    glass.break_glass = true;
    auto broke = a.request(root, glass, t0 + 1s);
    ASSERT_TRUE(broke) << broke.error().message;
    EXPECT_TRUE(broke->superseded.empty()) << "nothing pending for example.com";
    // When the grant ends, a request for the scope is filed again.
    ASSERT_TRUE(a.revoke(bob, grant, "done", t0 + 2s));
    ASSERT_TRUE(a.revoke(bob, broke->grant->id, "done", t0 + 2s));
    auto again = a.request(alice, sign_request("example.com", "s1", 1h), t0 + 3s);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->request.state, RequestState::pending);
}

// The attacker: a requester whose short requests an auto-approval rule takes files one for the
// whole domain, for a few minutes and one use, and revokes it at once (holders revoke their
// own). That grant must not close someone else's longer pending request (with the approvals
// it has so far), nor make signerd refuse their request while it lasts: it does not cover
// what they asked for. A grant that lasts as long and has the uses does.
TEST_F(AuthorityTest, AShortOrSmallGrantClosesNobodysLongerRequest) {
    engine.policy().operations[Operation::sign].quorum = 2;
    jit::AutoApproveRule rule;
    rule.name = "quick";
    rule.operation = Operation::sign;
    rule.domain_pattern = "*";
    rule.requesters = {"dave"};
    rule.max_duration = 5min;
    engine.policy().auto_approve.push_back(rule);
    engine.restart();
    auto& a = engine.authority();
    const auto victim = pending(sign_request("example.com", "s1", 4h));
    ASSERT_TRUE(a.approve(bob, victim, t0));  // one of two approvals
    const auto unlimited = pending(sign_request("example.com", "s2", 4h));
    const auto relay = a.authorize_sign("relay", "example.com", "s3", t0).error().request_id;
    ASSERT_GT(relay, 0);

    auto attack = a.request(dave, sign_request("example.com", "*", 5min, 1), t0 + 1s);
    ASSERT_TRUE(attack) << attack.error().message;
    ASSERT_TRUE(attack->grant) << "auto-approved";
    std::vector<std::int64_t> closed;
    for (const auto& r : attack->superseded) {
        closed.push_back(r.id);
    }
    EXPECT_EQ(closed, (std::vector<std::int64_t>{relay}))
        << "only the relay's request (filed again when the grant ends)";
    ASSERT_TRUE(a.revoke(dave, attack->grant->id, "oops", t0 + 2s));
    EXPECT_EQ(a.find_request(victim)->state_at(t0 + 2s), RequestState::pending);
    EXPECT_EQ(a.find_request(unlimited)->state_at(t0 + 2s), RequestState::pending);
    auto second = a.approve(carol, victim, t0 + 3s);
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_TRUE(second->grant) << "the approval so far was kept";

    // While a short or small grant is active, a request for more is filed, not refused; one
    // for no more than it gives is refused (it would be superseded at once).
    auto small = a.request(dave, sign_request("example.net", "*", 5min, 1), t0 + 4s);
    ASSERT_TRUE(small && small->grant);
    auto longer = a.request(alice, sign_request("example.net", "s1", 1h, 1), t0 + 5s);
    ASSERT_TRUE(longer) << longer.error().message;
    EXPECT_EQ(longer->request.state, RequestState::pending);
    auto unbudgeted = a.request(alice, sign_request("example.net", "s2", 4min), t0 + 5s);
    ASSERT_TRUE(unbudgeted) << unbudgeted.error().message;
    EXPECT_EQ(unbudgeted->request.state, RequestState::pending);
    EXPECT_EQ(code_of(a.request(alice, sign_request("example.net", "s3", 4min, 1), t0 + 5s)),
              Refusal::Code::conflict);
}

// Supersession never widens anything: a superseded request is never approved, denied or
// withdrawn afterwards (an approval in flight is refused, before a TOTP code would be spent,
// with a message that says why), and it stays superseded across a restart.
TEST_F(AuthorityTest, ASupersededRequestCannotBeApprovedAndStaysSupersededAfterARestart) {
    engine.policy().operations[Operation::sign].quorum = 2;
    engine.restart();
    auto& a = engine.authority();
    const auto narrow = a.authorize_sign("relay", "example.com", "s1", t0).error().request_id;
    ASSERT_TRUE(a.approve(carol, narrow, t0)) << "one approval in flight";
    const auto wide = pending(sign_request("example.com", "*", 30min), dave);
    ASSERT_TRUE(a.approve(bob, wide, t0 + 1s));
    auto active = a.approve(carol, wide, t0 + 1s);
    ASSERT_TRUE(active && active->grant);
    const auto grant = active->grant->id;
    ASSERT_EQ(active->superseded.size(), 1U);
    EXPECT_EQ(active->superseded[0].approvals.size(), 1U) << "carol's approval is kept on record";

    const auto grants_before = a.grants().size();
    for (int pass = 0; pass < 2; ++pass) {
        SCOPED_TRACE(pass == 0 ? "before the restart" : "after the restart");
        auto& auth = engine.authority();
        const auto refusal = auth.may_decide(bob, narrow, true, t0 + 2s);
        ASSERT_FALSE(refusal);
        EXPECT_EQ(refusal.error().code, Refusal::Code::conflict);
        auto approving = auth.approve(bob, narrow, t0 + 2s);
        ASSERT_FALSE(approving);
        EXPECT_EQ(approving.error().code, Refusal::Code::conflict);
        EXPECT_NE(approving.error().message.find("superseded"), std::string::npos)
            << approving.error().message;
        EXPECT_NE(approving.error().message.find("grant " + std::to_string(grant)),
                  std::string::npos)
            << approving.error().message;
        EXPECT_EQ(code_of(auth.deny(bob, narrow, "no", t0 + 2s)), Refusal::Code::conflict);
        EXPECT_EQ(code_of(auth.cancel(root, narrow, t0 + 2s)), Refusal::Code::conflict);
        EXPECT_EQ(auth.grants().size(), grants_before) << "no grant for the superseded request";
        const auto r = auth.find_request(narrow);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->state, RequestState::superseded);
        EXPECT_EQ(r->superseded_by, grant);
        EXPECT_EQ(r->decided_by, "signerd");
        EXPECT_EQ(r->decided_at, t0 + 1s);
        EXPECT_TRUE(r->filed_by_signer);
        ASSERT_EQ(r->approvals.size(), 1U);
        // Long after the grant ended it is still superseded: it neither expires nor reopens.
        EXPECT_EQ(r->state_at(t0 + 48h), RequestState::superseded);
        EXPECT_FALSE(auth.approve(bob, narrow, t0 + 48h));
        EXPECT_TRUE(auth.sweep(t0 + 2s).empty()) << "nothing left for the sweep";
        engine.restart();
    }
    EXPECT_EQ(supersede_records(supersession_log(engine)).size(), 1U);
}

// A store written before grants superseded what they cover may hold a pending request that an
// active grant covers: the sweep closes it, with the same record.
TEST_F(AuthorityTest, TheSweepSupersedesWhatAnOlderStoreLeftPending) {
    jit::Request old;
    old.id = 7;
    old.requester = "service:relay";
    old.scope = jit::Scope{Operation::sign, "example.com", "s1", "relay"};
    old.duration = 1h;
    old.reason = "signature requested by relay client relay for d=example.com s=s1";
    old.created = t0;
    old.pending_until = t0 + 24h;
    old.filed_by_signer = true;
    jit::Grant g;
    g.id = 3;
    g.request_id = 6;
    g.holder = "alice";
    g.scope = jit::Scope{Operation::sign, "example.com", "*", "*"};
    g.starts = t0;
    g.expires = t0 + 1h;
    ASSERT_TRUE(engine.store().commit({old, g}, {}));
    engine.restart();
    auto& a = engine.authority();
    EXPECT_EQ(a.find_request(7)->state_at(t0 + 1s), RequestState::pending);
    const auto events = a.sweep(t0 + 1s);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].type, "request.superseded");
    EXPECT_EQ(events[0].request_id, 7);
    EXPECT_EQ(events[0].grant_id, 3);
    EXPECT_EQ(a.find_request(7)->state, RequestState::superseded);
    EXPECT_EQ(a.find_request(7)->superseded_by, 3);
    const auto records = supersede_records(supersession_log(engine));
    ASSERT_EQ(records.size(), 1U);
    EXPECT_EQ(records[0].request_id, 7);
    EXPECT_EQ(records[0].grant_id, 3);
    EXPECT_TRUE(a.sweep(t0 + 2s).empty());
    engine.restart();
    EXPECT_EQ(engine.authority().find_request(7)->state, RequestState::superseded);
}

bool authority_store_sql(const std::filesystem::path& db, const std::string& sql) {
    sqlite3* handle = nullptr;
    const bool ok = sqlite3_open(db.c_str(), &handle) == SQLITE_OK &&
                    sqlite3_exec(handle, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
    sqlite3_close(handle);
    return ok;
}

// A schema-3 store (no requests.superseded_by) opens: its requests keep their states, and a
// request superseded afterwards is stored with its grant.
TEST_F(AuthorityTest, ASchemaThreeStoreIsMigratedWithItsRequests) {
    const auto relay = engine.authority().authorize_sign("relay", "example.com", "s1", t0);
    ASSERT_FALSE(relay);
    const auto id = relay.error().request_id;
    ASSERT_TRUE(authority_store_sql(engine.db(),
                                    "ALTER TABLE requests DROP COLUMN superseded_by; "
                                    "UPDATE meta SET value = '3' WHERE key = 'schema';"));
    engine.restart();
    EXPECT_EQ(engine.authority().find_request(id)->state_at(t0), RequestState::pending);
    EXPECT_EQ(engine.authority().find_request(id)->superseded_by, 0);
    const auto grant = granted(sign_request("example.com", "*", 1h));
    engine.restart();
    EXPECT_EQ(engine.authority().find_request(id)->state, RequestState::superseded);
    EXPECT_EQ(engine.authority().find_request(id)->superseded_by, grant);
}

}  // namespace
}  // namespace dkim::test

// Supersession: a pending request that an active grant covers is closed, as the grant becomes
// active (or by the sweep, for what an older store left pending), with its record and event.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <iterator>

#include "authority_fixture.hpp"
#include "dkim/jit/audit.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;
using jit::Operation;
using jit::Refusal;
using jit::RequestState;
using jit::Role;

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
    EXPECT_EQ(a.next_deadline(t0 + 1s), t0 + 1s + 48min)
        << "the grant's renewal (20% before its expiry): example.org's request expires after 24h";

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

// The shared PostgreSQL store (dkim/jit/shared_store.hpp) against a real server: the ctest
// fixture cluster.postgres starts one (tests/integration/pg_server.py: its own initdb, TLS
// verified, a password role) and each test makes a database of its own. Two "nodes" are two
// stores, journals and authorities on that database, as two signerd would be.
//
// Without the fixture (DKIM_TEST_PG unset: the binary run by hand) the tests are skipped.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include "cluster.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/shared_store.hpp"
#include "jit_fixture.hpp"
#include "pg_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

using pg::Node;
using pg::PgFixture;
using pg::query;

class PgStoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!PgFixture::get().present) {
            GTEST_SKIP() << "no PostgreSQL fixture (DKIM_TEST_PG)";
        }
        db = PgFixture::get().create_database();
        a = std::make_unique<Node>(db, "node-a", jit::Policy::defaults());
        b = std::make_unique<Node>(db, "node-b", jit::Policy::defaults());
    }

    // A sign grant for example.com/* approved on `on`.
    std::int64_t grant(Node& on, std::optional<std::uint64_t> budget = std::nullopt,
                       Duration duration = 30min) {
        auto requested =
            on.authority->request(alice, sign_request("example.com", "*", duration, budget), t0);
        EXPECT_TRUE(requested) << requested.error().message;
        auto approved = on.authority->approve(bob, requested->request.id, t0);
        EXPECT_TRUE(approved) << approved.error().message;
        return approved->grant ? approved->grant->id : 0;
    }

    // authorize_sign, the record submitted with its claim, and its outcome.
    Expected<void, std::string> sign(Node& on, const std::string& selector, TimePoint now) {
        auto permit = on.authority->authorize_sign("relay", "example.com", selector, now);
        if (!permit) {
            return unexpected(permit.error().message);
        }
        return on.authority->begin_signature(*permit, "relay", "a=rsa-sha256", now)->wait();
    }

    std::vector<jit::AuditRecord> log(Node& on) {
        auto records = on.store->audit_records(1, 1'000'000);
        EXPECT_TRUE(records) << records.error();
        return records ? *records : std::vector<jit::AuditRecord>{};
    }

    const TimePoint t0 = std::chrono::time_point_cast<Duration>(SystemClock().now());
    const jit::Actor alice = user("alice", {jit::Role::requester});
    const jit::Actor bob = user("bob", {jit::Role::approver});
    std::string db;
    std::unique_ptr<Node> a;
    std::unique_ptr<Node> b;
};

TEST_F(PgStoreTest, RecordsOfBothNodesFormOneChainThatNamesTheirWriters) {
    for (int i = 0; i < 5; ++i) {
        jit::AuditRecord r;
        r.time = t0;
        r.actor = "signerd";
        r.action = "test.a";
        r.outcome = "ok";
        ASSERT_TRUE(a->journal->write({}, r));
        r.action = "test.b";
        ASSERT_TRUE(b->journal->write({}, r));
    }
    const auto records = log(*a);
    ASSERT_EQ(records.size(), 10U);
    for (std::size_t i = 0; i < records.size(); ++i) {
        EXPECT_EQ(records[i].seq, static_cast<std::int64_t>(i + 1));
        EXPECT_EQ(records[i].node, i % 2 == 0 ? "node-a" : "node-b");
        EXPECT_EQ(records[i].action, i % 2 == 0 ? "test.a" : "test.b");
    }
    const auto report = jit::verify_chain(records, {});
    EXPECT_TRUE(report.ok) << report.problem;
    // The node is part of what the hash covers: a record moved to another node's name breaks.
    auto moved = records;
    moved[3].node = "node-a";
    EXPECT_FALSE(jit::verify_chain(moved, {}).ok);
    // Both journals know the end of the log only as far as their own last commit; a reload
    // (the next start) finds the one end.
    auto state = b->store->load();
    ASSERT_TRUE(state);
    EXPECT_EQ(state->audit_seq, 10);
    EXPECT_EQ(state->audit_head, records.back().hash);
}

TEST_F(PgStoreTest, AGrantApprovedOnOneNodeSignsOnTheOtherAfterItsReload) {
    const auto id = grant(*a);
    ASSERT_NE(id, 0);
    EXPECT_FALSE(b->authority->any_active(t0)) << "B has not read the state yet";
    b->reload();
    EXPECT_TRUE(b->authority->any_active(t0));
    EXPECT_TRUE(sign(*b, "s1", t0 + 1s));
    EXPECT_EQ(query(db, "SELECT uses FROM grants WHERE id = " + std::to_string(id)), "1");
}

TEST_F(PgStoreTest, ARevokeOnOneNodeStopsTheOthersNextSignatureBeforeItHearsOfIt) {
    const auto id = grant(*a);
    b->reload();
    ASSERT_TRUE(sign(*b, "s1", t0 + 1s));
    ASSERT_TRUE(a->authority->revoke(bob, id, "INC-7 key suspected", t0 + 2s));
    // B's memory still holds the grant: its commit is what refuses.
    EXPECT_TRUE(b->authority->any_active(t0 + 3s));
    const auto after = sign(*b, "s1", t0 + 3s);
    ASSERT_FALSE(after);
    EXPECT_NE(after.error().find("no longer in force"), std::string::npos) << after.error();
    // The refused signature left no record: the last record is the revoke.
    const auto records = log(*a);
    ASSERT_FALSE(records.empty());
    EXPECT_EQ(records.back().action, "grant.revoke");
    EXPECT_EQ(records.back().node, "node-a");
}

TEST_F(PgStoreTest, ABudgetOfAHundredSpentByTwoNodesAtOnceGivesExactlyAHundred) {
    const auto id = grant(*a, 100);
    b->reload();
    std::atomic<int> issued{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> signers;
    for (Node* node : {a.get(), b.get()}) {
        for (int t = 0; t < 4; ++t) {
            signers.emplace_back([&, node] {
                for (int i = 0; i < 40; ++i) {
                    auto permit =
                        node->authority->authorize_sign("relay", "example.com", "s1", t0 + 1s);
                    if (!permit) {
                        ++refused;
                        continue;
                    }
                    if (node->authority->begin_signature(*permit, "relay", "a=x", t0 + 1s)
                            ->wait()) {
                        ++issued;
                    } else {
                        ++refused;
                    }
                }
            });
        }
    }
    for (auto& t : signers) {
        t.join();
    }
    EXPECT_EQ(issued.load(), 100);
    EXPECT_EQ(refused.load(), 220);
    EXPECT_EQ(query(db, "SELECT uses FROM grants WHERE id = " + std::to_string(id)), "100");
    EXPECT_EQ(query(db, "SELECT count(*) FROM audit WHERE action = 'sign' AND outcome = 'issued'"),
              "100")
        << "one record per signature issued, none for the refused";
    EXPECT_EQ(query(db,
                    "SELECT count(DISTINCT split_part(detail, ';', 1)) || ' ' || "
                    "min(split_part(split_part(detail, ';', 1), ' ', 2)::int) || ' ' || "
                    "max(split_part(split_part(detail, ';', 1), ' ', 2)::int) FROM audit "
                    "WHERE action = 'sign' AND outcome = 'issued'"),
              "100 1 100")
        << "each record names its use of the grant in the cluster: use 1 to use 100, once each";
    EXPECT_EQ(
        query(db, "SELECT exhausted_at IS NOT NULL FROM grants WHERE id = " + std::to_string(id)),
        "t");
    EXPECT_TRUE(jit::verify_chain(log(*a), {}).ok);
}

TEST_F(PgStoreTest, ADecisionOnAStaleStateIsRefusedAndGoesThroughAfterAReload) {
    const auto first = a->authority->request(alice, sign_request("example.com", "s1", 1h), t0);
    ASSERT_TRUE(first);
    // B never read it: its next request would take the same id.
    const auto stale = b->authority->request(alice, sign_request("example.com", "s2", 1h), t0);
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code, jit::Refusal::Code::unavailable);
    EXPECT_NE(stale.error().message.find("try again"), std::string::npos) << stale.error().message;
    b->reload();
    const auto fresh = b->authority->request(alice, sign_request("example.com", "s2", 1h), t0);
    ASSERT_TRUE(fresh) << fresh.error().message;
    EXPECT_EQ(fresh->request.id, first->request.id + 1);
}

TEST_F(PgStoreTest, AnotherNodesDecisionWakesAWaiterAndMarksItBehind) {
    auto before = b->store->wait_for_change(10ms);
    ASSERT_TRUE(before);
    EXPECT_FALSE(*before);
    std::atomic<bool> woke{false};
    std::thread waiter([&] {
        auto behind = b->store->wait_for_change(10s);
        woke = behind && *behind;
    });
    const auto started = std::chrono::steady_clock::now();
    ASSERT_TRUE(a->authority->request(alice, sign_request("example.com", "s1", 1h), t0));
    waiter.join();
    EXPECT_TRUE(woke);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "woken, not timed out";
}

TEST_F(PgStoreTest, EachNodeLoadsItsOwnKeysAndTheRegistryListsAll) {
    jit::KeyRecord k;
    k.domain = "example.com";
    k.selector = "a1";
    k.algorithm = "rsa-2048";
    k.state = jit::KeyState::active;
    k.origin = "generated";
    k.created = t0;
    k.dkim_record = "v=DKIM1; k=rsa; p=AAAA";
    ASSERT_TRUE(a->journal->write({k}, jit::AuditRecord{}));
    b->reload();
    k.selector = "b1";
    ASSERT_TRUE(b->journal->write({k}, jit::AuditRecord{}));
    auto state_a = a->store->load();
    auto state_b = b->store->load();
    ASSERT_TRUE(state_a && state_b);
    ASSERT_EQ(state_a->keys.size(), 1U);
    EXPECT_EQ(state_a->keys[0].selector, "a1");
    ASSERT_EQ(state_b->keys.size(), 1U);
    EXPECT_EQ(state_b->keys[0].selector, "b1");
    auto all = a->store->all_keys();
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2U);
    EXPECT_EQ((*all)[0].first, "node-a");
    EXPECT_EQ((*all)[1].first, "node-b");
    const std::string attestation("\x00\xffsig\n", 6);  // raw signature bytes, any of them
    ASSERT_TRUE(a->store->heartbeat(
        {"ignored", "0.1.0", t0, t0 + 1s, "logged-in", 1, "x/a1", "x a1 v=DKIM1\n", attestation}));
    auto nodes = b->store->nodes();
    ASSERT_TRUE(nodes);
    ASSERT_EQ(nodes->size(), 1U);
    EXPECT_EQ((*nodes)[0].name, "node-a");
    EXPECT_EQ((*nodes)[0].token, "logged-in");
    EXPECT_EQ((*nodes)[0].last_seen, t0 + 1s);
    EXPECT_EQ((*nodes)[0].records, "x a1 v=DKIM1\n");
    EXPECT_EQ((*nodes)[0].attestation, attestation);
}

TEST_F(PgStoreTest, EveryKindOfStateRoundTrips) {
    ASSERT_TRUE(a->directory->add_user(jit::Actor{jit::Actor::Kind::local, "root", 0, {}}, "dave",
                                       static_cast<jit::RoleSet>(jit::Role::approver),
                                       "dave-correct-horse", t0));
    const auto id = grant(*a, 5);
    ASSERT_TRUE(sign(*a, "s1", t0 + 1s));
    jit::PinShareSet set;
    set.set_id = "set1";
    set.threshold = 2;
    set.holders = {{"bob", 1, "c1"}, {"carol", 2, "c2"}};
    set.created = t0;
    set.created_by = "local:root";
    ASSERT_TRUE(a->journal->write({set}, jit::AuditRecord{}));
    b->reload();
    auto state = b->store->load();
    ASSERT_TRUE(state);
    ASSERT_EQ(state->users.size(), 1U);
    EXPECT_EQ(state->users[0].name, "dave");
    EXPECT_FALSE(state->users[0].password_hash.empty());
    ASSERT_EQ(state->grants.size(), 1U);
    EXPECT_EQ(state->grants[0].id, id);
    EXPECT_EQ(state->grants[0].uses, 1U);
    EXPECT_EQ(state->grants[0].budget, std::optional<std::uint64_t>(5));
    ASSERT_EQ(state->requests.size(), 1U);
    ASSERT_EQ(state->requests[0].approvals.size(), 1U);
    EXPECT_EQ(state->requests[0].approvals[0].approver, "bob");
    ASSERT_TRUE(state->pin_share_set);
    EXPECT_EQ(state->pin_share_set->holders.size(), 2U);
    EXPECT_EQ(state->pin_share_set->holders[1].commitment, "c2");
    auto hours = b->store->signing_hours(0, INT64_MAX, "", 10);
    ASSERT_TRUE(hours);
    ASSERT_EQ(hours->rows.size(), 1U);
    EXPECT_EQ(hours->rows[0].signatures, 1);
    EXPECT_EQ(hours->rows[0].selector, "s1");
}

TEST_F(PgStoreTest, TheConnectionIsTlsAndAWrongPasswordIsNotEchoed) {
    EXPECT_EQ(query(db, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t");
    jit::PostgresOptions o;
    o.conninfo = db;
    o.password = "a-wrong-password-7781";
    o.node = "node-c";
    auto refused = jit::open_postgres_store(o);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("password authentication failed"), std::string::npos)
        << refused.error();
    EXPECT_EQ(refused.error().find("7781"), std::string::npos) << refused.error();
    // Without TLS the server refuses (pg_hba: hostnossl reject): the nodes' link is TLS only.
    std::string plain = db;
    plain.replace(plain.find("sslmode=verify-full"), std::string("sslmode=verify-full").size(),
                  "sslmode=disable");
    o.conninfo = plain;
    o.password = PgFixture::get().password;
    EXPECT_FALSE(jit::open_postgres_store(o));
    EXPECT_FALSE(jit::open_postgres_store({db, "", "bad name!", false, 2, 0}));
}

TEST_F(PgStoreTest, TheAuditTableRefusesUpdatesAndDeletesButTheChainIsWhatDetects) {
    jit::AuditRecord r;
    r.time = t0;
    r.actor = "signerd";
    r.action = "test";
    r.outcome = "ok";
    ASSERT_TRUE(a->journal->write({}, r));
    EXPECT_NE(query(db, "UPDATE audit SET outcome = 'x'").find("append-only"), std::string::npos);
    EXPECT_NE(query(db, "DELETE FROM audit").find("append-only"), std::string::npos);
}

// Two ClusterNodes (signerd's coordination, cluster.hpp) on the shared store: the listener's
// reload after another node's decision, and the fence.
TEST_F(PgStoreTest, AClusterNodeReloadsWhenAnotherDecidesAndFencesWithoutTheDatabase) {
    SystemClock clock;
    signerd::ClusterOptions options;
    options.lease = 1500ms;
    options.poll = 200ms;
    signerd::ClusterNode node_b(*b->store, *b->authority, *b->directory, *b->keys, clock, options);
    std::atomic<int> changes{0};
    node_b.start([&] { ++changes; }, [] { return jit::NodeStatus{}; });
    const auto approved_at = std::chrono::steady_clock::now();
    grant(*a);
    // The node tells its owner (changes) after it adopted the state and exchanged its heartbeat:
    // under load, a while after the authority holds the grant.
    bool seen = false;
    while ((!seen || changes.load() == 0) && std::chrono::steady_clock::now() - approved_at < 10s) {
        seen = b->authority->any_active(SystemClock().now());
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(seen) << "B learnt of the grant by the wake-up";
    EXPECT_GE(changes.load(), 1);
    EXPECT_FALSE(node_b.fenced());
    // A decision through the node: under the lock, on the latest state.
    bool ran = false;
    ASSERT_TRUE(node_b.decide([&] { ran = true; }));
    EXPECT_TRUE(ran);
    // The database's connections are cut (as a failover or a partition would): the node's
    // exchanges fail; the fence goes up after the lease and down once they work again.
    const auto at = db.find("dbname=") + 7;
    const std::string name = db.substr(at, db.find(' ', at) - at);
    const std::string& admin = PgFixture::get().conninfo;
    EXPECT_EQ(query(admin, "ALTER DATABASE " + name + " ALLOW_CONNECTIONS false"), "");
    query(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name +
                     "' AND application_name LIKE 'dkim-signerd node-b%'");
    bool fenced = false;
    const auto cut = std::chrono::steady_clock::now();
    while (!fenced && std::chrono::steady_clock::now() - cut < 10s) {
        fenced = node_b.fenced();
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(fenced);
    EXPECT_FALSE(node_b.decide([] {})) << "no decision without the database";
    // Back: the next exchange lifts the fence.
    EXPECT_EQ(query(admin, "ALTER DATABASE " + name + " ALLOW_CONNECTIONS true"), "");
    const auto back = std::chrono::steady_clock::now();
    while (fenced && std::chrono::steady_clock::now() - back < 10s) {
        fenced = node_b.fenced();
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_FALSE(fenced) << "the node resumes by itself";
    node_b.stop();
}

}  // namespace
}  // namespace dkim::test

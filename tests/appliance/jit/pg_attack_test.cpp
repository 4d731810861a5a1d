// Red-team tests of the cluster's shared PostgreSQL store (issue 24): a database writer, a stale
// or stalled node, a relay racing a reload. Each test states what must hold; the comment above
// each says what the review found and how it was fixed. The fixture is pg_fixture.hpp's (the
// ctest fixture cluster.postgres, DKIM_TEST_PG); skipped without it.

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sodium.h>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "cluster.hpp"
#include "dkim/base/hex.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/shared_store.hpp"
#include "jit_fixture.hpp"
#include "pg_fixture.hpp"

// A namespace of its own: the unity build pastes this file after pg_store_test.cpp.
namespace dkim::test::pg_attack {
namespace {

using namespace std::chrono_literals;

using pg::Node;
using pg::PgFixture;
using pg::query;
using pg::Session;

// Each node's audit key (ed25519, as in the nodes' tokens): signs its checkpoints; the verifier
// checks each checkpoint with the key of its record's node, as `audit verify --node-key` does.
struct AuditKey {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES]{};
    unsigned char sk[crypto_sign_SECRETKEYBYTES]{};
    AuditKey() { crypto_sign_keypair(pk, sk); }
};

class PgAttackTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!PgFixture::get().present) {
            GTEST_SKIP() << "no PostgreSQL fixture (DKIM_TEST_PG)";
        }
        ASSERT_GE(sodium_init(), 0);
        db = PgFixture::get().create_database("atk");
        a = std::make_unique<Node>(db, "node-a", jit::Policy::defaults());
        b = std::make_unique<Node>(db, "node-b", jit::Policy::defaults());
    }

    std::int64_t grant(Node& on, const std::string& selector = "*",
                       std::optional<std::uint64_t> budget = std::nullopt) {
        auto requested =
            on.authority->request(alice, sign_request("example.com", selector, 30min, budget), t0);
        EXPECT_TRUE(requested) << requested.error().message;
        auto approved = on.authority->approve(bob, requested->request.id, t0);
        EXPECT_TRUE(approved) << approved.error().message;
        return approved->grant ? approved->grant->id : 0;
    }

    Expected<void, std::string> sign(Node& on, const std::string& domain,
                                     const std::string& selector, TimePoint now) {
        auto permit = on.authority->authorize_sign("relay", domain, selector, now);
        if (!permit) {
            return unexpected(permit.error().message);
        }
        return on.authority
            ->begin_signature(*permit, "relay", "d=" + domain + " s=" + selector, now)
            ->wait();
    }

    // What the lifecycle writes: a login (with its checkpoint interval), a signed checkpoint.
    void login(Node& on, TimePoint at) {
        jit::AuditRecord r;
        r.time = at;
        r.actor = "signerd";
        r.action = "token.login";
        r.outcome = "ok";
        r.reason = "a grant is active";
        r.detail = jit::checkpoint_interval_detail(300'000, 1000);
        ASSERT_TRUE(on.journal->write({}, r));
    }
    Expected<void, std::string> checkpoint(Node& on, TimePoint at,
                                           std::string_view kind = jit::kCheckpointPeriodic) {
        const AuditKey& key = keys_[on.store->node()];
        auto make = [&key, at, kind](std::int64_t seq, const jit::ChainHash& head,
                                     TimePoint not_before) {
            jit::Checkpoint c;
            c.seq = seq;
            c.head = head;
            c.time = std::max(at, not_before);
            c.kind = std::string(kind);
            c.every_ms = 300'000;
            c.every_records = 1000;
            const std::string message = jit::checkpoint_message(c);
            std::string signature(crypto_sign_BYTES, '\0');
            crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                                 reinterpret_cast<const unsigned char*>(message.data()),
                                 message.size(), key.sk);
            c.key_label = "audit";
            c.algorithm = "ed25519-sha256";
            c.signature = signature;
            return jit::checkpoint_record(c);
        };
        std::vector<jit::AuditRecord> none;
        return on.journal->write_checkpoint(make, none);
    }

    // `audit verify --database` with every node's key: the records as a read-only store reads
    // them, the checkpoint rules, and the signature-without-decision check.
    jit::LogReport verify(TimePoint now, std::vector<jit::AuditRecord>* out = nullptr) {
        jit::PostgresOptions o;
        o.conninfo = db;
        o.password = PgFixture::get().password;
        o.node = "audit-verify";
        o.read_only = true;
        auto store = jit::open_postgres_store(o);
        EXPECT_TRUE(store) << (store ? "" : store.error());
        auto records = (*store)->audit_records(1, 1'000'000);
        EXPECT_TRUE(records);
        jit::LogCheckOptions options;
        options.now = now;
        options.signature_valid = [this](const jit::Checkpoint& c) {
            const auto it = keys_.find(c.node);
            if (it == keys_.end()) {
                return false;
            }
            const std::string message = jit::checkpoint_message(c);
            return c.signature.size() == crypto_sign_BYTES &&
                   crypto_sign_verify_detached(
                       reinterpret_cast<const unsigned char*>(c.signature.data()),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       it->second.pk) == 0;
        };
        if (out != nullptr) {
            *out = *records;
        }
        return jit::verify_log(*records, {}, {}, options);
    }

    std::vector<jit::AuditRecord> log() {
        auto records = a->store->audit_records(1, 1'000'000);
        EXPECT_TRUE(records) << records.error();
        return records ? *records : std::vector<jit::AuditRecord>{};
    }

    // The writer replaces the log from `from` on by `tail` (renumbered and rehashed after the
    // record before it) and moves the chain's end row: what SECURITY.md's threat row grants
    // (the audit table with its triggers dropped, the chain's end).
    void rewrite_from(std::int64_t from, std::vector<jit::AuditRecord> tail) {
        auto records = log();
        ASSERT_GE(static_cast<std::int64_t>(records.size()), from - 1);
        jit::ChainHash head =
            from > 1 ? records[static_cast<std::size_t>(from - 2)].hash : jit::ChainHash{};
        std::int64_t seq = from - 1;
        TimePoint time = from > 1 ? records[static_cast<std::size_t>(from - 2)].time : TimePoint{};
        Session w(db);
        ASSERT_EQ(w.run("ALTER TABLE audit DISABLE TRIGGER USER"), "");
        ASSERT_EQ(w.run("DELETE FROM audit WHERE seq >= " + std::to_string(from)), "");
        for (jit::AuditRecord& r : tail) {
            r.seq = ++seq;
            r.hash = jit::chain_hash(head, r);
            head = r.hash;
            time = r.time;
            ASSERT_EQ(w.run("INSERT INTO audit(seq, time, actor, action, scope, outcome, reason, "
                            "request_id, grant_id, detail, node, hash) VALUES "
                            "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,decode($12, 'hex'))",
                            {std::to_string(r.seq), std::to_string(to_unix_ms(r.time)), r.actor,
                             r.action, r.scope, r.outcome, r.reason, std::to_string(r.request_id),
                             std::to_string(r.grant_id), r.detail, r.node, jit::to_hex(r.hash)}),
                      "");
        }
        ASSERT_EQ(w.run("ALTER TABLE audit ENABLE TRIGGER USER"), "");
        ASSERT_EQ(w.run("UPDATE cluster_state SET seq = $1, head = decode($2, 'hex'), time = $3",
                        {std::to_string(seq), jit::to_hex(head), std::to_string(to_unix_ms(time))}),
                  "");
    }

    const TimePoint t0 = std::chrono::time_point_cast<Duration>(SystemClock().now());
    const jit::Actor alice = user("alice", {jit::Role::requester});
    const jit::Actor bob = user("bob", {jit::Role::approver});
    std::map<std::string, AuditKey> keys_{{"node-a", {}}, {"node-b", {}}};
    std::string db;
    std::unique_ptr<Node> a;
    std::unique_ptr<Node> b;
};

// Found by the red team (database writer + a running node): a node took the chain's end (seq,
// head) from the cluster_state row and signed its next checkpoint over it without checking that
// the chain still leads there from the end it last committed. Fixed: every commit first checks,
// record by record, that the table's chain leads from the node's last commit to the end row,
// and writes nothing otherwise (PgStore::check_chain_from). A writer erases a signature record that
// node-a's signed checkpoint covers (and that checkpoint with it), recomputes the chain, moves the
// end row; node-a's next periodic checkpoint signs the rewritten chain and `audit verify` with
// every key passes. SECURITY.md: "every record before a node's signed checkpoint ... cannot be
// edited, deleted or reordered unnoticed". (The single appliance chains after its journal's own
// end, so its checkpoint does not countersign a rewrite: attack_database.running.)
TEST_F(PgAttackTest, ARunningNodeDoesNotCountersignAChainRewrittenUnderItsSignedCheckpoint) {
    grant(*a);  // records 1-2: request, approve
    login(*a, t0);
    ASSERT_TRUE(sign(*a, "example.com", "s1", t0 + 1s));
    ASSERT_TRUE(sign(*a, "example.com", "s1", t0 + 2s));
    ASSERT_TRUE(checkpoint(*a, t0 + 3s));
    ASSERT_TRUE(sign(*a, "example.com", "s1", t0 + 4s));
    auto before = log();
    ASSERT_EQ(before.size(), 7U);
    ASSERT_EQ(before[5].action, "audit.checkpoint");
    const auto honest = verify(t0 + 10s);
    ASSERT_TRUE(honest.chain.ok) << honest.chain.problem;
    ASSERT_EQ(honest.covered_through, 5);
    // Record 5 (the second signature, covered by node-a's checkpoint at 6) is erased with the
    // checkpoint; the rest is rechained.
    const std::int64_t erased = before[4].seq;
    ASSERT_EQ(before[4].action, "sign");
    rewrite_from(5, {before[6]});
    // node-a keeps running: its next periodic checkpoint.
    const auto signed_again = checkpoint(*a, t0 + 5s);
    std::vector<jit::AuditRecord> after;
    const auto report = verify(t0 + 10s, &after);
    EXPECT_FALSE(signed_again && report.chain.ok)
        << "node-a signed a checkpoint over a chain from which record " << erased
        << " (a signature under its own earlier signed checkpoint) was erased, and audit verify "
           "with every node's key passes: "
        << after.size() << " records, covered through " << report.covered_through;
}

// Found by the red team (database writer): a "token.logout" of a node whose reason says it was
// cut off from the shared store was accepted without the signed checkpoint before it, and
// nothing later had to cover it. Fixed: such a logout is an unclean end, as a crash's start
// (jit::is_fenced_logout): a later signed checkpoint must cover it. A writer cuts the log anywhere
// (here: after the first of two signed checkpoints, dropping the second and the signatures around
// it) and appends such a record for the node that was logged in: `audit verify` passes ("written
// while the token was logged out"). Without the forged record the same cut is reported (the node's
// checkpoint is overdue). SECURITY.md: "the log can be cut right after any [checkpoint,
// token.logout] pair ... Any other cut is reported".
TEST_F(PgAttackTest, AForgedFencedLogoutDoesNotHideALogCutAfterASignedCheckpoint) {
    grant(*a);
    login(*a, t0);
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 3; ++i) {
            ASSERT_TRUE(sign(*a, "example.com", "s1", t0 + std::chrono::seconds(10 * round + i)));
        }
        ASSERT_TRUE(checkpoint(*a, t0 + std::chrono::seconds(10 * round + 5)));
    }
    ASSERT_TRUE(sign(*a, "example.com", "s1", t0 + 30s));
    const auto records = log();
    std::int64_t first_checkpoint = 0;
    for (const auto& r : records) {
        if (r.action == "audit.checkpoint" && first_checkpoint == 0) {
            first_checkpoint = r.seq;
        }
    }
    ASSERT_NE(first_checkpoint, 0);
    // The verifier runs an hour later.
    const TimePoint later = t0 + 1h;
    ASSERT_FALSE(verify(later).chain.ok) << "node-a's session, checkpoint overdue: reported";
    // The plain cut after the first checkpoint (and one signature): reported.
    const jit::AuditRecord kept = records[static_cast<std::size_t>(first_checkpoint)];
    rewrite_from(first_checkpoint + 1, {kept});
    const auto cut = verify(later);
    ASSERT_FALSE(cut.chain.ok) << "a plain cut inside a login session is reported";
    // The same cut, with a fenced logout of node-a appended.
    jit::AuditRecord fenced;
    fenced.time = kept.time;
    fenced.actor = "signerd";
    fenced.action = "token.logout";
    fenced.outcome = "ok";
    fenced.reason = "cut off from the cluster's shared store for longer than the lease at " +
                    std::to_string(to_unix_ms(kept.time)) +
                    " (unix ms): logged out without a checkpoint";
    fenced.node = "node-a";
    rewrite_from(first_checkpoint + 1, {kept, fenced});
    const auto forged = verify(later);
    EXPECT_FALSE(forged.chain.ok)
        << "a log cut inside node-a's session (a signed checkpoint and "
        << records.size() - static_cast<std::size_t>(first_checkpoint) - 1
        << " records dropped) passes audit verify once a fenced token.logout is appended: "
        << forged.tail;
}

// Found by the red team (relay on B racing another node's decision): the listener's reload
// reads a snapshot and then applies it; a relay's SignRequest that filed a signer request in
// between committed as "current" (load() had stored the snapshot's version) and was then wiped
// from memory by the older snapshot, and the next request on the node took the same id. Now a
// snapshot is the memory's version only once applied (adopt): a request filed on B's older
// memory meanwhile is refused (try again), or, filed after the snapshot was read, leaves B
// behind so that its next decision reloads. Either way no id is taken twice.
TEST_F(PgAttackTest, AReloadOverlappingASignerFiledRequestDoesNotLetAnIdBeTakenTwice) {
    // A decides something; B's listener starts its reload: the snapshot is read...
    ASSERT_TRUE(a->authority->request(alice, sign_request("example.com", "s9", 1h), t0));
    b->store->begin_reload();
    auto snapshot = b->store->load();
    ASSERT_TRUE(snapshot);
    // ...a relay asks B for a signature without a grant: B tries to file a request...
    auto filed = b->authority->authorize_sign("relay", "example.com", "s1", t0 + 1s);
    ASSERT_FALSE(filed);
    const std::int64_t id = filed.error().request_id;
    EXPECT_EQ(id, 0) << "a request filed on B while its memory was being replaced";
    // ...and the reload applies the snapshot.
    b->apply(*snapshot);
    // Once more without the reload flag (a snapshot read by anyone): a filing commits on B's
    // memory, which then holds an older version than the database.
    auto again = b->store->load();
    ASSERT_TRUE(again);
    auto refiled = b->authority->authorize_sign("relay", "example.com", "s1", t0 + 2s);
    ASSERT_FALSE(refiled);
    const std::int64_t refiled_id = refiled.error().request_id;
    b->apply(*again);
    // The next decision on B: decide() takes the lock and reloads only when behind.
    auto behind = b->store->lock_decisions();
    ASSERT_TRUE(behind);
    b->store->unlock_decisions();
    if (*behind) {
        b->reload();
    }
    auto next = b->authority->request(alice, sign_request("example.com", "s2", 1h), t0 + 3s);
    ASSERT_TRUE(next) << next.error().message;
    for (const std::int64_t taken : {std::int64_t{1}, refiled_id}) {
        if (taken == 0) {
            continue;
        }
        EXPECT_NE(next->request.id, taken) << "request " << taken << " was filed twice";
        EXPECT_EQ(query(db,
                        "SELECT count(*) FROM audit WHERE action = 'elevation.request' AND "
                        "request_id = " +
                            std::to_string(taken)),
                  "1")
            << "the log holds two different requests numbered " << taken
            << " (node-b behind=" << *behind << ")";
    }
}

// Found by the red team (one node stalls the cluster); fixed: the decision lock has a connection
// of its own and the writing sessions a lock_timeout. It was a session advisory lock taken
// with no timeout while holding the reader's mutex; the listener's heartbeat and registry read
// wait for that mutex, so a node whose decide() waits stops renewing its lease and fences
// itself. Every node's tick runs decide() each second: one session that keeps the lock (a node
// paused or stuck inside a decision, e.g. a token login; or any session of the role) fences
// every node within `lease`, and signing stops cluster-wide until it is released.
TEST_F(PgAttackTest, ASessionHoldingTheDecisionLockDoesNotFenceTheOtherNodes) {
    SystemClock clock;
    signerd::ClusterOptions options;
    options.lease = 1500ms;
    options.poll = 200ms;
    signerd::ClusterNode node_b(*b->store, *b->authority, *b->directory, *b->keys, clock, options);
    node_b.start([] {}, [] { return jit::NodeStatus{}; });
    Session holder(db);
    ASSERT_EQ(holder.run("SELECT pg_advisory_lock(7340030001)"), "");
    std::atomic<bool> returned{false};
    std::thread tick([&] {
        (void)node_b.decide([] {});  // Service::tick's sweep
        returned = true;
    });
    bool fenced = false;
    const auto started = std::chrono::steady_clock::now();
    while (!fenced && std::chrono::steady_clock::now() - started < 3 * options.lease) {
        fenced = node_b.fenced();
        std::this_thread::sleep_for(20ms);
    }
    const bool decide_returned = returned.load();
    holder.close();  // releases the lock: the tick goes through
    tick.join();
    node_b.stop();
    EXPECT_FALSE(fenced) << "node-b fenced itself (signing refused) while another session held "
                            "the decision lock; its database connections all worked";
    EXPECT_TRUE(decide_returned) << "decide() waited " << (3 * options.lease).count()
                                 << " ms for the lock without giving up";
}

// Found by a flaky run of appliance_up.cluster-rotation (node 2 SIGSTOPped while it held the
// decision lock): the lock was a session's, and a stopped process's session lives on with its TCP
// connection, so every other node's decisions failed (lock_timeout) for as long as it stayed
// stopped. The lock is now a transaction's, and the writing sessions have an
// idle_in_transaction_session_timeout of their answer timeout: the server ends a stopped node's
// session, and with it the lock, after that long.
TEST_F(PgAttackTest, ANodeStoppedInsideADecisionFreesTheLockAfterItsAnswerTimeout) {
    const auto open = [this](const std::string& name) {
        jit::PostgresOptions o;
        o.conninfo = db;
        o.password = PgFixture::get().password;
        o.node = name;
        o.lock_timeout_ms = 200;
        o.answer_timeout_ms = 1000;
        auto opened = jit::open_postgres_store(o);
        EXPECT_TRUE(opened) << (opened ? "" : opened.error());
        return opened ? std::move(*opened) : nullptr;
    };
    auto stopped = open("node-x");
    auto other = open("node-y");
    ASSERT_TRUE(stopped && other);
    ASSERT_TRUE(stopped->load() && other->load());
    ASSERT_TRUE(stopped->lock_decisions()) << "node-x decides, and stops there";
    ASSERT_FALSE(other->lock_decisions()) << "the lock is held: node-y's decision fails at once";
    const auto started = std::chrono::steady_clock::now();
    bool locked = false;
    while (!locked && std::chrono::steady_clock::now() - started < 6s) {
        locked = other->lock_decisions().has_value();
        std::this_thread::sleep_for(50ms);
    }
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    EXPECT_TRUE(locked) << "node-y could not decide for 6 s while node-x was stopped in a decision";
    EXPECT_LT(waited, 4s) << "the server ends node-x's idle transaction after 1 s";
    other->unlock_decisions();
    stopped->unlock_decisions();  // its session is gone: dropped, and taken again afresh
    ASSERT_TRUE(stopped->lock_decisions()) << "node-x, running again, reconnects and decides";
    stopped->unlock_decisions();
}

// Found by the red team (same class; fixed by the writer's lock_timeout): a session holding the
// cluster_state row (a node paused in the middle of
// its commit, where its token signs a checkpoint under that lock) holds every other node's
// commits: a signature waits without bound (no lock_timeout, statement_timeout unused).
TEST_F(PgAttackTest, ASessionHoldingTheChainsEndRowDoesNotHangSignaturesWithoutBound) {
    grant(*a);
    Session holder(db);
    ASSERT_EQ(holder.run("BEGIN"), "");
    ASSERT_NE(holder.run("SELECT seq FROM cluster_state WHERE id = 1 FOR UPDATE"), "");
    std::atomic<bool> returned{false};
    std::thread signer([&] {
        (void)sign(*a, "example.com", "s1", t0 + 1s);
        returned = true;
    });
    const auto started = std::chrono::steady_clock::now();
    while (!returned && std::chrono::steady_clock::now() - started < 8s) {
        std::this_thread::sleep_for(20ms);
    }
    const bool answered = returned.load();
    (void)holder.run("ROLLBACK");
    holder.close();
    signer.join();
    EXPECT_TRUE(answered) << "a signature waited 8 s (without bound) for another session's "
                             "transaction on cluster_state";
}

// Found by the red team (database writer): `audit verify` named a signature under a grant that
// no decision made, but not one under a grant that a decision made for another scope or that
// the log says was revoked. Fixed: jit::first_unauthorized_signature. A writer un-revokes a grant
// and widens its domain; a node signs another domain under it; the approval record of that grant id
// satisfies the check.
TEST_F(PgAttackTest, ASignatureUnderARevivedAndWidenedGrantIsNamedByAuditVerify) {
    const auto id = grant(*a, "s1");
    ASSERT_NE(id, 0);
    ASSERT_TRUE(sign(*a, "example.com", "s1", t0 + 1s));
    ASSERT_TRUE(a->authority->revoke(bob, id, "INC-9", t0 + 2s));
    EXPECT_EQ(query(db,
                    "UPDATE grants SET revoked_at = NULL, revoked_by = '', revoke_reason = '', "
                    "domain = 'victim.example', selector = '*' WHERE id = " +
                        std::to_string(id) + "; UPDATE cluster_state SET version = version + 1"),
              "");
    b->reload();
    ASSERT_TRUE(sign(*b, "victim.example", "k1", t0 + 3s))
        << "the nodes sign under the edited row (the database is trusted)";
    std::vector<jit::AuditRecord> records;
    const auto report = verify(t0 + 10s, &records);
    const std::int64_t named = jit::first_signature_without_decision(records);
    EXPECT_FALSE(report.chain.ok && named == 0)
        << "a signature for victim.example under grant " << id
        << " (approved for example.com/s1, then revoked in the log) passes audit verify";
}

// Found by the red team (a node whose clock lags): the shared counter checked a grant's expiry
// against the claiming node's own clock (claim_at), not the database's (fixed: the later of
// the two): a node 15 minutes behind signs
// under a grant that expired 10 minutes ago by the cluster's clock.
TEST_F(PgAttackTest, AGrantExpiredByTheClustersClockIsRefusedToANodeWhoseClockLags) {
    auto requested =
        a->authority->request(alice, sign_request("example.com", "*", 30min), t0 - 40min);
    ASSERT_TRUE(requested) << requested.error().message;
    ASSERT_TRUE(a->authority->approve(bob, requested->request.id, t0 - 40min));
    b->reload();
    const auto lagging = sign(*b, "example.com", "s1", t0 - 15min);
    EXPECT_FALSE(lagging) << "grant expired at t0-10min (the database's clock says t0); node-b "
                             "(clock at t0-15min) signed under it";
}

// Found by the red team (password guesser, low): a login failure was a version-checked
// "decision"; one noted on a node that is behind was refused by the commit and not counted
// anywhere. Fixed: failures are merged into the table's (Directory::merge_failures), and a
// merge that adds what the node did not know announces a change. (Every request that checks
// a password, ClusterStatusRequest included, runs under ClusterNode::decide.)
TEST_F(PgAttackTest, APasswordFailureNotedOnANodeBehindTheClusterIsStillCounted) {
    const jit::Actor root{jit::Actor::Kind::local, "root", 0, {}};
    ASSERT_TRUE(a->directory->add_user(root, "dave", static_cast<jit::RoleSet>(jit::Role::approver),
                                       "dave-correct-horse", t0));
    b->reload();
    EXPECT_FALSE(a->directory->authenticate_password("dave", "guess-number-one", t0 + 1s));
    // B has not reloaded since (its listener is a few ms behind, or the request is not a
    // decision): the guess is checked on B's memory.
    EXPECT_FALSE(b->directory->authenticate_password("dave", "guess-number-two", t0 + 2s));
    EXPECT_EQ(query(db,
                    "SELECT array_length(string_to_array(recent, ' '), 1) FROM login_failures "
                    "WHERE username = 'dave'"),
              "2")
        << "two failures, one per node; the cluster counted "
        << query(db, "SELECT recent FROM login_failures WHERE username = 'dave'");
}

// Found by attack_cluster.py (lockout bypass, high): five wrong passwords spread over two
// nodes, each attempt a decision on its node's current state. The fifth, on A, locked the user
// in A's memory, and its merge into the table equalled what A noted, so no change was
// announced: B, not behind by the version, kept accepting the right password. Fixed: a merge
// that changes the table's lockout (or adds what the node did not know) announces a change.
TEST_F(PgAttackTest, FiveFailuresSpreadOverTwoNodesLockTheUserOnBoth) {
    const jit::Actor root{jit::Actor::Kind::local, "root", 0, {}};
    ASSERT_TRUE(a->directory->add_user(root, "erin", static_cast<jit::RoleSet>(jit::Role::approver),
                                       "erin-correct-horse", t0));
    b->reload();
    for (int i = 0; i < 5; ++i) {
        // Each node current before its attempt (as its listener keeps it): the fifth locks in
        // A's memory, and the table's merge adds nothing to what A noted.
        Node& node = i % 2 == 0 ? *a : *b;
        node.reload();
        EXPECT_FALSE(node.directory->authenticate_password("erin", "wrong-guess",
                                                           t0 + std::chrono::seconds(1 + i)));
    }
    for (Node* node : {a.get(), b.get()}) {
        node->sync();
        EXPECT_FALSE(node->directory->authenticate_password("erin", "erin-correct-horse", t0 + 10s))
            << "the right password was accepted on " << node->store->node()
            << " after five failures spread over both nodes";
    }
}

// Refused (kept as regression checks): a TOTP code used on A is refused on a stale B (the User
// write is a decision: B's commit is refused), and a revoke on A stops B's next signature.
TEST_F(PgAttackTest, ATotpCodeUsedOnOneNodeIsRefusedOnAStaleOther) {
    const jit::Actor root{jit::Actor::Kind::local, "root", 0, {}};
    ASSERT_TRUE(a->directory->add_user(
        root, "carol", static_cast<jit::RoleSet>(jit::Role::approver), "carol-correct-horse", t0));
    auto enrolled = a->directory->enrol_totp(root, "carol", t0);
    ASSERT_TRUE(enrolled) << enrolled.error().message;
    const std::string secret = base32_decode(enrolled->secret_base32);
    ASSERT_TRUE(a->directory->confirm_totp(root, "carol", totp_at(secret, t0), t0));
    b->reload();
    const jit::Actor carol = user("carol", {jit::Role::approver});
    const TimePoint later = t0 + 60s;
    ASSERT_TRUE(a->directory->check_totp(carol, totp_at(secret, later), later));
    EXPECT_FALSE(b->directory->check_totp(carol, totp_at(secret, later), later + 1s));
    b->reload();
    EXPECT_FALSE(b->directory->check_totp(carol, totp_at(secret, later), later + 1s));
}

}  // namespace
}  // namespace dkim::test::pg_attack

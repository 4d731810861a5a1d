// The checkpoint rules of the audit log (verify_log): what a signed checkpoint covers, what a cut,
// a forged or moved checkpoint, a crash and its recovery look like to the verifier; the
// checkpoint record's encoding; and the journal's placing of a checkpoint among other writers.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dkim/crypto/sha256.hpp"
#include "dkim/jit/audit.hpp"
#include "jit_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

// A log built record by record as signerd writes it, with a stand-in for the audit key: the
// "signature" is SHA-256 of the message under a secret the attacker does not have.

std::string fake_sign(const jit::Checkpoint& c) {
    return jit::to_hex(crypto::Sha256::hash("audit-key-secret" + jit::checkpoint_message(c)));
}

class LogBuilder {
  public:
    LogBuilder() : now_(test_epoch()) {}

    jit::AuditRecord& add(const std::string& actor, const std::string& action,
                          const std::string& outcome = "ok", const std::string& detail = {}) {
        jit::AuditRecord r;
        r.time = now_;
        r.actor = actor;
        r.action = action;
        r.outcome = outcome;
        r.detail = detail;
        return push(std::move(r));
    }
    void start() { add("signerd", "signerd.start"); }
    void login() {
        add("signerd", "token.login", "ok", jit::checkpoint_interval_detail(60'000, 100));
    }
    void logout() { add("signerd", "token.logout"); }
    void work(int n) {
        for (int i = 0; i < n; ++i) {
            add("service:relay", "sign", "ok", "a=ed25519-sha256 #" + std::to_string(i));
        }
    }
    void checkpoint(std::string_view kind, const std::string& why = {}, std::int64_t crash = 0) {
        jit::Checkpoint c;
        c.seq = static_cast<std::int64_t>(records.size());
        c.head = records.back().hash;
        c.time = now_;
        c.kind = std::string(kind);
        c.every_ms = 60'000;
        c.every_records = 100;
        c.crash = crash;
        if (why.empty()) {
            c.key_label = "audit._domainkey.signerd.invalid";
            c.algorithm = "ed25519-sha256";
            c.signature = fake_sign(c);
        }
        push(jit::checkpoint_record(c, why));
    }
    void advance(Duration d) { now_ += d; }
    TimePoint now() const { return now_; }

    // The attacker's tool: recompute every hash from `from` (a seq) on.
    void rechain(std::size_t from = 1) {
        jit::ChainHash previous = from > 1 ? records[from - 2].hash : jit::ChainHash{};
        for (std::size_t i = from - 1; i < records.size(); ++i) {
            records[i].seq = static_cast<std::int64_t>(i) + 1;
            records[i].hash = jit::chain_hash(previous, records[i]);
            previous = records[i].hash;
        }
    }
    void erase(std::int64_t seq) {
        records.erase(records.begin() + (seq - 1));
        rechain(static_cast<std::size_t>(seq));
    }

    jit::LogReport verify(std::optional<TimePoint> at = std::nullopt,
                          const std::vector<jit::Checkpoint>& table = {}, bool signatures = true) {
        jit::LogCheckOptions o;
        o.now = at.value_or(now_);
        if (signatures) {
            o.signature_valid = [](const jit::Checkpoint& c) {
                return c.signature == fake_sign(c);
            };
        }
        return jit::verify_log(records, table, {}, o);
    }

    std::vector<jit::AuditRecord> records;

  private:
    jit::AuditRecord& push(jit::AuditRecord r) {
        r.seq = static_cast<std::int64_t>(records.size()) + 1;
        r.hash = jit::chain_hash(records.empty() ? jit::ChainHash{} : records.back().hash, r);
        records.push_back(std::move(r));
        return records.back();
    }
    TimePoint now_;
};

// start, login, 6 signatures, periodic checkpoint (9), 3 signatures, logout checkpoint (13),
// logout (14), then a refused request while logged out (15).
class CheckpointRulesTest : public ::testing::Test {
  protected:
    void SetUp() override {
        log.start();
        log.login();
        log.work(6);
        log.advance(30s);
        log.checkpoint(jit::kCheckpointPeriodic);
        log.work(3);
        log.checkpoint(jit::kCheckpointLogout);
        log.logout();
        log.add("service:relay", "elevation.request", "pending");
        ASSERT_EQ(log.records.size(), 15U);
        ASSERT_EQ(log.records[8].action, "audit.checkpoint");
        ASSERT_EQ(log.records[12].action, "audit.checkpoint");
    }
    static void expect_broken(const jit::LogReport& r, std::int64_t at, const std::string& words) {
        EXPECT_FALSE(r.chain.ok);
        EXPECT_EQ(r.chain.first_broken, at) << r.chain.problem;
        EXPECT_NE(r.chain.problem.find(words), std::string::npos) << r.chain.problem;
    }
    LogBuilder log;
};

TEST_F(CheckpointRulesTest, AnHonestLogVerifiesAndNamesItsUncoveredTail) {
    const auto r = log.verify(log.now() + 24h);
    ASSERT_TRUE(r.chain.ok) << r.chain.problem;
    EXPECT_EQ(r.checkpoints, 2);
    EXPECT_EQ(r.signatures_valid, 2);
    EXPECT_EQ(r.covered_through, 12);
    EXPECT_EQ(r.uncovered, 3) << "the logout checkpoint itself, the logout, the request";
    EXPECT_FALSE(r.logged_in);
    EXPECT_NE(r.tail.find("logged out"), std::string::npos) << r.tail;
}

TEST_F(CheckpointRulesTest, TheFindingsRewriteWithoutCheckpointsIsBroken) {
    // Finding 4: records removed, the chain recomputed, the checkpoints deleted.
    log.erase(13);  // the logout checkpoint
    log.erase(9);   // the periodic one
    log.erase(4);   // a signature
    EXPECT_TRUE(jit::verify_chain(log.records, {}).ok) << "the chain alone is consistent";
    expect_broken(log.verify(), 11, "does not follow a signed checkpoint");
}

TEST_F(CheckpointRulesTest, AnEditBeforeACheckpointIsCaughtByItsHeadOrItsSignature) {
    log.records[3].actor = "mallory";
    log.rechain(4);
    expect_broken(log.verify(), 9, "not the hash of record 8");
    // The attacker also rewrites the head in the checkpoint's detail: the signature fails.
    auto c = *jit::parse_checkpoint_record(log.records[8]);
    c.head = log.records[7].hash;
    auto forged = jit::checkpoint_record(c);
    forged.time = log.records[8].time;
    log.records[8].detail = forged.detail;
    log.rechain(9);
    expect_broken(log.verify(), 9, "does not carry a valid signature");
}

TEST_F(CheckpointRulesTest, AMovedCheckpointIsBroken) {
    std::swap(log.records[8], log.records[9]);  // a record slipped in before it
    log.rechain(9);
    expect_broken(log.verify(), 10, "not the record before it");
}

TEST_F(CheckpointRulesTest, DroppingTheLogoutCheckpointIsBroken) {
    log.erase(13);
    expect_broken(log.verify(), 13, "token.logout at record 13 does not follow");
}

TEST_F(CheckpointRulesTest, ACutToAPeriodicCheckpointLooksLoggedInAndGoesStale) {
    // Everything after the periodic checkpoint removed: the log now ends logged in.
    log.records.resize(9);
    const auto fresh = log.verify(log.now() + 30s);
    ASSERT_TRUE(fresh.chain.ok) << fresh.chain.problem;
    EXPECT_TRUE(fresh.logged_in);
    EXPECT_NE(fresh.tail.find("not yet covered"), std::string::npos) << fresh.tail;
    EXPECT_EQ(fresh.uncovered, 1);
    expect_broken(log.verify(log.now() + 60s + 11s), 9, "no checkpoint has covered");
}

TEST_F(CheckpointRulesTest, ACutThatAddsAForgedLogoutIsBroken) {
    log.records.resize(9);
    log.logout();
    expect_broken(log.verify(), 10, "does not follow a signed checkpoint");
}

TEST_F(CheckpointRulesTest, TooManyRecordsWithoutACheckpointWhileLoggedInIsBroken) {
    log.records.resize(12);  // before the logout checkpoint: logged in, 3 uncovered
    log.work(200);
    expect_broken(log.verify(), 9, "without a checkpoint");
}

TEST_F(CheckpointRulesTest, AFailedCheckpointBeforeTheLogoutIsReported) {
    log.records.resize(12);
    log.checkpoint(jit::kCheckpointLogout, "the audit key cannot sign: CKR_DEVICE_ERROR");
    log.logout();
    expect_broken(log.verify(), 14, "follows a checkpoint that failed (the audit key cannot sign");
}

TEST_F(CheckpointRulesTest, AnHonestCrashIsBrokenUntilItsSignedRecoveryCheckpoint) {
    log.records.resize(12);  // kill -9 after record 12, logged in since record 2
    log.advance(5s);
    log.start();  // 13: an unclean end
    auto r = log.verify();
    expect_broken(r, 13, "follows a login session (token.login at record 2) that has no");
    EXPECT_NE(r.chain.problem.find("records 9..12 may be the end of a longer log"),
              std::string::npos)
        << r.chain.problem;
    // The restart logs in again (an active grant): until its recovery checkpoint is written,
    // the log cannot tell the crash from a cut, and says so.
    log.login();  // 14
    expect_broken(log.verify(), 13, "no signed checkpoint covers it");
    log.checkpoint(jit::kCheckpointRecovery, {}, 13);  // 15, covers 1..14
    r = log.verify();
    ASSERT_TRUE(r.chain.ok) << r.chain.problem;
    EXPECT_EQ(r.unclean_ends, std::vector<std::int64_t>{13});
    EXPECT_EQ(r.covered_through, 14);
    EXPECT_TRUE(r.logged_in);
    EXPECT_NE(r.tail.find("not yet covered"), std::string::npos) << r.tail;
    r = log.verify(log.now() + 24h);
    EXPECT_FALSE(r.chain.ok) << "logged in for a day without a checkpoint";
    log.checkpoint(jit::kCheckpointLogout);
    log.logout();
    r = log.verify(log.now() + 24h);
    ASSERT_TRUE(r.chain.ok) << r.chain.problem;
    EXPECT_EQ(r.covered_through, 15);
    EXPECT_EQ(r.unclean_ends, std::vector<std::int64_t>{13});
}

TEST_F(CheckpointRulesTest, ACrashCoveredByAnyLaterSignedCheckpointIsCoveredAndNamed) {
    // The recovery could not be signed at the login; the next periodic one covers it.
    log.records.resize(12);
    log.start();                                                                // 13
    log.login();                                                                // 14
    log.checkpoint(jit::kCheckpointRecovery, "the audit key cannot sign", 13);  // 15, failed
    expect_broken(log.verify(), 13, "no signed checkpoint covers it");
    log.work(2);
    log.checkpoint(jit::kCheckpointRecovery, {}, 13);  // 18
    const auto r = log.verify();
    ASSERT_TRUE(r.chain.ok) << r.chain.problem;
    EXPECT_EQ(r.failed_checkpoints, 1);
    EXPECT_EQ(r.unclean_ends, std::vector<std::int64_t>{13});
}

// Red-team finding F3 [A]: the log cut right after a periodic checkpoint (hiding what the
// later signed checkpoints covered) and a copy of a signerd.start appended: a forged crash.
TEST_F(CheckpointRulesTest, F3ACutAtAPeriodicCheckpointWithAForgedStartIsBroken) {
    const jit::AuditRecord start = log.records[0];
    log.records.resize(9);
    log.records.push_back(start);
    log.records.back().time = log.records[8].time + 1ms;
    log.rechain(10);
    EXPECT_TRUE(jit::verify_chain(log.records, {}).ok) << "the chain alone is consistent";
    expect_broken(log.verify(log.now() + 1s), 10, "no signed checkpoint covers it");
    expect_broken(log.verify(log.now() + 1s), 10, "the log was cut after record 9");
    // Nor does a forged login after it help, dated now: the unclean end stays uncovered.
    log.advance(1s);
    log.login();
    expect_broken(log.verify(log.now() + 1s), 10, "no signed checkpoint covers it");
}

// F3 [B]: the same with a token.login dated a year ahead, to keep the "not yet covered"
// interval open: the time rule refuses it whatever the cut.
TEST_F(CheckpointRulesTest, F3BAForgedLoginDatedAheadIsBroken) {
    log.records.resize(9);
    log.start();  // 10
    log.advance(24h * 365);
    log.login();  // 11
    expect_broken(log.verify(log.now() - 24h * 365 + 1s), 11,
                  "after the verifier's clock (more than the 300.0 s allowed");
}

TEST_F(CheckpointRulesTest, ARecoveryCheckpointCannotBeForgedNorNameAnotherRecord) {
    log.records.resize(9);
    log.start();                                       // 10, forged
    log.login();                                       // 11
    log.checkpoint(jit::kCheckpointRecovery, {}, 10);  // 12
    auto forged = log.records;
    auto c = *jit::parse_checkpoint_record(forged[11]);
    c.signature[0] ^= 1;  // without the audit key
    forged[11].detail = jit::checkpoint_record(c).detail;
    log.records = forged;
    log.rechain(12);
    expect_broken(log.verify(), 12, "does not carry a valid signature of the audit key");
    // A validly signed recovery must name an uncovered unclean end of this log (signerd and
    // the verifier agree on what one is).
    log.records.resize(11);
    log.checkpoint(jit::kCheckpointRecovery, {}, 9);
    expect_broken(log.verify(), 12, "names an unclean end at record 9 that the log does not hold");
    jit::Checkpoint moved = c;
    moved.crash = 11;
    EXPECT_NE(jit::checkpoint_message(moved), jit::checkpoint_message(c))
        << "the named start record is signed";
}

TEST_F(CheckpointRulesTest, ACutAfterARecoveryCheckpointIsBrokenLikeAnyOther) {
    log.records.resize(12);
    log.start();                                       // 13
    log.login();                                       // 14
    log.checkpoint(jit::kCheckpointRecovery, {}, 13);  // 15
    log.work(3);
    log.checkpoint(jit::kCheckpointPeriodic);  // 19
    log.checkpoint(jit::kCheckpointLogout);    // 20
    log.logout();                              // 21
    ASSERT_TRUE(log.verify().chain.ok) << log.verify().chain.problem;
    // Cut right after the recovery: a logged-in log that goes stale.
    auto cut = log;
    cut.records.resize(15);
    ASSERT_TRUE(cut.verify().chain.ok);
    expect_broken(cut.verify(log.now() + 60s + 11s), 15, "no checkpoint has covered");
    // Cut there and a start appended: a forged unclean end, uncovered.
    cut.start();  // 16
    expect_broken(cut.verify(), 16, "no signed checkpoint covers it");
    // Cut before the recovery: the honest crash is uncovered again.
    cut.records.resize(14);
    expect_broken(cut.verify(), 13, "no signed checkpoint covers it");
}

TEST_F(CheckpointRulesTest, RecordTimesNeverGoBackNorComeFromTheFuture) {
    log.records[5].time = log.records[4].time - 1ms;
    log.rechain(6);
    expect_broken(log.verify(log.now() + 24h), 6, "is dated 0.0 s before record 5");
    log.records[5].time = log.records[4].time;
    log.rechain(6);
    ASSERT_TRUE(log.verify(log.now() + 24h).chain.ok) << "equal times are in order";
    // The last record dated ahead of the verifier's clock: within the skew, then beyond.
    log.records.back().time = log.now() + 4min;
    log.rechain(15);
    EXPECT_TRUE(log.verify().chain.ok) << log.verify().chain.problem;
    log.records.back().time = log.now() + 5min + 1ms;
    log.rechain(15);
    expect_broken(log.verify(), 15, "is dated 300.0 s after the verifier's clock");
}

TEST_F(CheckpointRulesTest, TheLogEndTellsSignerdWhatToRecover) {
    const auto tail_after_last_checkpoint = [](const std::vector<jit::AuditRecord>& all) {
        std::vector<jit::AuditRecord> tail;
        for (auto it = all.rbegin(); it != all.rend(); ++it) {
            if (jit::is_lifecycle_record(*it)) {
                tail.insert(tail.begin(), *it);
                if (it->action == jit::kCheckpointAction && it->outcome == "ok") {
                    break;
                }
            }
        }
        return tail;
    };
    auto end = jit::log_end(tail_after_last_checkpoint(log.records));
    EXPECT_FALSE(end.logged_in) << "a clean logout";
    EXPECT_EQ(end.unrecovered, 0);
    log.records.resize(12);  // a crash
    end = jit::log_end(tail_after_last_checkpoint(log.records));
    EXPECT_TRUE(end.logged_in) << "this start is an unclean end";
    log.start();  // 13, no grant: no login
    log.start();  // 14, a clean restart while logged out
    end = jit::log_end(tail_after_last_checkpoint(log.records));
    EXPECT_FALSE(end.logged_in);
    EXPECT_EQ(end.unrecovered, 13) << "the first unclean end still waits for its recovery";
    log.login();  // 15, and a crash before the recovery
    log.start();  // 16
    end = jit::log_end(tail_after_last_checkpoint(log.records));
    EXPECT_EQ(end.unrecovered, 13);
    log.login();                                       // 17
    log.checkpoint(jit::kCheckpointRecovery, {}, 13);  // 18: covers both
    const auto r = log.verify();
    ASSERT_TRUE(r.chain.ok) << r.chain.problem;
    EXPECT_EQ(r.unclean_ends, (std::vector<std::int64_t>{13, 16}));
    end = jit::log_end(tail_after_last_checkpoint(log.records));
    EXPECT_TRUE(end.logged_in);
    EXPECT_EQ(end.unrecovered, 0);
}

TEST_F(CheckpointRulesTest, WithoutTheKeyTheRulesStillHoldButSignaturesAreNotCounted) {
    const auto r = log.verify(std::nullopt, {}, false);
    ASSERT_TRUE(r.chain.ok) << r.chain.problem;
    EXPECT_FALSE(r.signatures_checked);
    EXPECT_EQ(r.signatures_valid, 0);
    log.erase(13);
    EXPECT_FALSE(log.verify(std::nullopt, {}, false).chain.ok);
}

TEST(CheckpointLegacyTest, AnEarlierVersionsLogIsCoveredByItsSignedTableCheckpoints) {
    LogBuilder log;
    log.start();
    log.add("signerd", "token.login");  // no declared interval
    log.work(4);
    jit::Checkpoint table;
    table.seq = 6;
    table.head = log.records.back().hash;
    table.time = log.now();
    table.key_label = "audit";
    table.algorithm = "ed25519-sha256";
    table.signature = fake_sign(table);
    log.logout();
    const auto ok = log.verify(std::nullopt, {table});
    ASSERT_TRUE(ok.chain.ok) << ok.chain.problem;
    EXPECT_EQ(ok.table_checkpoints, 1);
    EXPECT_EQ(ok.covered_through, 6);
    EXPECT_FALSE(log.verify(std::nullopt, {}).chain.ok) << "its table checkpoint deleted";
    table.signature[0] ^= 1;
    EXPECT_FALSE(log.verify(std::nullopt, {table}).chain.ok) << "a forged table checkpoint";
}

TEST(CheckpointRecordTest, RoundTripsAndRefusesMalformedDetails) {
    jit::Checkpoint c;
    c.seq = 41;
    c.head[0] = 7;
    c.time = test_epoch();
    c.kind = "logout";
    c.every_ms = 300'000;
    c.every_records = 10'000;
    c.key_label = "audit._domainkey.signerd.invalid";
    c.algorithm = "ed25519-sha256";
    c.signature = std::string("\x00\x01\x02 signature bytes", 19);
    const auto r = jit::checkpoint_record(c);
    EXPECT_EQ(r.outcome, "ok");
    const auto back = jit::parse_checkpoint_record(r);
    ASSERT_TRUE(back);
    EXPECT_EQ(jit::checkpoint_message(*back), jit::checkpoint_message(c));
    EXPECT_EQ(back->signature, c.signature);
    auto bad = r;
    bad.detail.replace(bad.detail.find("kind=logout"), 11, "kind=nothing");
    EXPECT_FALSE(jit::parse_checkpoint_record(bad));
    jit::Checkpoint v1 = c;
    v1.kind.clear();
    EXPECT_NE(jit::checkpoint_message(v1), jit::checkpoint_message(c))
        << "kind and interval are signed in v2";
}

TEST(JournalCheckpointTest, ACheckpointCoversTheRecordJustBeforeItWhateverWasQueued) {
    JitEngine engine;
    jit::AuditRecord first;
    first.time = test_epoch();
    first.actor = "writer";
    first.action = "noise";
    ASSERT_TRUE(engine.journal().write({}, first));
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        while (!stop) {
            jit::AuditRecord r;
            r.time = test_epoch();
            r.actor = "writer";
            r.action = "noise";
            (void)engine.journal().write({}, r);
        }
    });
    for (int i = 0; i < 50; ++i) {
        jit::AuditRecord logout;
        logout.time = test_epoch();
        logout.actor = "signerd";
        logout.action = "token.logout";
        std::vector<jit::AuditRecord> records{logout};
        auto written = engine.journal().write_checkpoint(
            [](std::int64_t seq, const jit::ChainHash& head, TimePoint) {
                jit::Checkpoint c;
                c.seq = seq;
                c.head = head;
                c.time = test_epoch();
                c.kind = "logout";
                c.every_ms = 1000;
                c.every_records = 10;
                c.key_label = "k";
                c.algorithm = "ed25519-sha256";
                c.signature = fake_sign(c);
                return jit::checkpoint_record(c);
            },
            records);
        ASSERT_TRUE(written);
        ASSERT_EQ(records.size(), 2U);
        EXPECT_EQ(records[1].seq, records[0].seq + 1) << "the logout directly follows";
    }
    stop = true;
    writer.join();
    auto all = engine.store().audit_records(1, 1'000'000);
    ASSERT_TRUE(all);
    jit::LogCheckOptions o;
    o.now = test_epoch();
    o.signature_valid = [](const jit::Checkpoint& c) { return c.signature == fake_sign(c); };
    const auto report = jit::verify_log(*all, {}, {}, o);
    EXPECT_TRUE(report.chain.ok) << report.chain.problem;
    EXPECT_EQ(report.checkpoints, 50);
}

}  // namespace
}  // namespace dkim::test

// Group commit across clients (Journal::Writer, set_commit_delay): with two writers on their way
// the committer waits for both before it commits, so their records share one commit; a writer
// alone is never held back.
namespace dkim::test {
namespace {

jit::AuditRecord noise_record(const std::string& actor) {
    jit::AuditRecord r;
    r.time = test_epoch();
    r.actor = actor;
    r.action = "noise";
    return r;
}

TEST(JournalGroupCommitTest, TwoWritersOnTheirWayShareOneCommit) {
    JitEngine engine;
    jit::Journal& journal = engine.journal();
    std::vector<std::size_t> batches;
    std::mutex batches_mutex;
    journal.on_commit([&](std::chrono::nanoseconds, std::size_t records, bool) {
        std::lock_guard<std::mutex> lock(batches_mutex);
        batches.push_back(records);
    });
    // Long enough that a wrong decision to wait would hang the test, never needed when right.
    journal.set_commit_delay(std::chrono::minutes(10));
    for (int round = 0; round < 20; ++round) {
        std::optional<jit::Journal::Writer> a(std::in_place, journal);
        std::optional<jit::Journal::Writer> b(std::in_place, journal);
        auto first = journal.submit({}, {noise_record("a")});
        std::thread later([&] {
            auto second = journal.submit({}, {noise_record("b")});
            EXPECT_TRUE(second->wait());
        });
        EXPECT_TRUE(first->wait());
        later.join();
        a.reset();
        b.reset();
        // Neither is on its way any more, but each counts as coming back until the delay
        // passes: two new writers take their places, and share a commit again.
        std::optional<jit::Journal::Writer> c(std::in_place, journal);
        std::optional<jit::Journal::Writer> d(std::in_place, journal);
        auto third = journal.submit({}, {noise_record("c")});
        auto fourth = journal.submit({}, {noise_record("d")});
        EXPECT_TRUE(third->wait());
        EXPECT_TRUE(fourth->wait());
    }
    std::lock_guard<std::mutex> lock(batches_mutex);
    ASSERT_FALSE(batches.empty());
    for (const std::size_t n : batches) {
        EXPECT_EQ(n, 2U) << "every commit holds the records of both writers on their way";
    }
}

TEST(JournalGroupCommitTest, AWriterAloneIsNotHeldBack) {
    JitEngine engine;
    jit::Journal& journal = engine.journal();
    journal.set_commit_delay(std::chrono::minutes(10));
    for (int i = 0; i < 20; ++i) {
        jit::Journal::Writer w(journal);
        // Would wait ten minutes for a second writer that is not there.
        EXPECT_TRUE(journal.submit({}, {noise_record("alone")})->wait());
    }
}

}  // namespace
}  // namespace dkim::test

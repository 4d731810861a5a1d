// The audit chain against tampering done the way an attacker with the database file would:
// plain SQL on signerd.db (after dropping the append-only triggers). The checkpoint rules are in
// checkpoint_test.cpp.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "jit_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

class AuditChainTest : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto requester = user("alice", {jit::Role::requester});
        const auto approver = user("bob", {jit::Role::approver});
        auto t = test_epoch();
        for (int i = 0; i < 4; ++i) {
            auto r = engine.authority().request(
                requester, sign_request("example.com", "s" + std::to_string(i), 1h), t);
            ASSERT_TRUE(r);
            ASSERT_TRUE(engine.authority().approve(approver, r->request.id, t));
        }
        for (int i = 0; i < 4; ++i) {
            auto p = engine.authority().authorize_sign("relay", "example.com", "s1", t);
            ASSERT_TRUE(p);
            ASSERT_TRUE(
                engine.authority().record_signature(*p, "relay", "issued", "a=rsa-sha256", t));
        }
        ASSERT_EQ(engine.journal().seq(), 12);
    }

    void sql(const std::string& statement) {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(engine.db().c_str(), &db), SQLITE_OK);
        char* error = nullptr;
        const std::string all =
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS "
            "audit_no_delete; " +
            statement;
        EXPECT_EQ(sqlite3_exec(db, all.c_str(), nullptr, nullptr, &error), SQLITE_OK)
            << (error ? error : "");
        sqlite3_free(error);
        sqlite3_close(db);
    }

    jit::ChainReport verify(const std::vector<jit::Checkpoint>& checkpoints = {}) {
        engine.restart();
        auto records = engine.store().audit_records(1, 1000);
        EXPECT_TRUE(records);
        return jit::verify_chain(*records, checkpoints);
    }

    JitEngine engine;
};

TEST_F(AuditChainTest, AnIntactLogVerifies) {
    const auto report = verify();
    EXPECT_TRUE(report.ok) << report.problem;
    EXPECT_EQ(report.records, 12);
}

TEST_F(AuditChainTest, TheAppendOnlyTriggersRefuseEdits) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(engine.db().c_str(), &db), SQLITE_OK);
    EXPECT_NE(
        sqlite3_exec(db, "UPDATE audit SET reason = 'x' WHERE seq = 3", nullptr, nullptr, nullptr),
        SQLITE_OK);
    EXPECT_NE(sqlite3_exec(db, "DELETE FROM audit WHERE seq = 3", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
}

TEST_F(AuditChainTest, AnEditedRecordIsReportedAtThatRecord) {
    sql("UPDATE audit SET actor = 'mallory' WHERE seq = 5");
    const auto report = verify();
    EXPECT_FALSE(report.ok);
    EXPECT_EQ(report.first_broken, 5);
    EXPECT_NE(report.problem.find("record 5"), std::string::npos) << report.problem;
}

TEST_F(AuditChainTest, ADeletedRecordIsReportedWhereItIsMissing) {
    sql("DELETE FROM audit WHERE seq = 7");
    const auto report = verify();
    EXPECT_FALSE(report.ok);
    EXPECT_EQ(report.first_broken, 7);
    EXPECT_NE(report.problem.find("missing"), std::string::npos) << report.problem;
}

TEST_F(AuditChainTest, SwappedRecordsAreReportedAtTheFirstOfThem) {
    // Exchange the contents (and stored hashes) of records 4 and 9, keeping their numbers.
    sql("UPDATE audit SET seq = -4 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 9; "
        "UPDATE audit SET seq = 9 WHERE seq = -4;");
    const auto report = verify();
    EXPECT_FALSE(report.ok);
    EXPECT_EQ(report.first_broken, 4);
}

TEST_F(AuditChainTest, AnInsertedRecordIsReported) {
    sql("UPDATE audit SET seq = -(seq + 1) WHERE seq >= 6; UPDATE audit SET seq = -seq WHERE seq < "
        "0; "
        "INSERT INTO audit SELECT 6, time, 'mallory', action, scope, outcome, reason, request_id, "
        "grant_id, detail, hash FROM audit WHERE seq = 5;");
    const auto report = verify();
    EXPECT_FALSE(report.ok);
    EXPECT_EQ(report.first_broken, 6);
}

TEST_F(AuditChainTest, ARewrittenChainIsCaughtByACheckpoint) {
    // The attacker edits record 5 and recomputes every hash after it: the chain is
    // consistent again, but no longer ends in the head a checkpoint recorded.
    engine.restart();
    auto records = *engine.store().audit_records(1, 1000);
    jit::Checkpoint checkpoint;
    checkpoint.seq = 12;
    checkpoint.head = records.back().hash;
    records[4].actor = "mallory";
    jit::ChainHash previous = records[3].hash;
    for (std::size_t i = 4; i < records.size(); ++i) {
        records[i].hash = jit::chain_hash(previous, records[i]);
        previous = records[i].hash;
    }
    EXPECT_TRUE(jit::verify_chain(records, {}).ok);
    const auto report = jit::verify_chain(records, {checkpoint});
    EXPECT_FALSE(report.ok);
    EXPECT_EQ(report.first_broken, 12);
}

TEST_F(AuditChainTest, TruncationAfterAnExportedCheckpointIsReported) {
    engine.restart();
    const auto records = *engine.store().audit_records(1, 1000);
    jit::Checkpoint exported;
    exported.seq = 12;
    exported.head = records.back().hash;
    sql("DELETE FROM audit WHERE seq > 9");
    const auto report = verify({exported});
    EXPECT_FALSE(report.ok);
    EXPECT_EQ(report.first_broken, 10);
    EXPECT_NE(report.problem.find("truncated after record 9"), std::string::npos) << report.problem;
    EXPECT_TRUE(verify({}).ok) << "without the export, a clean truncation cannot be seen";
}

TEST(AuditEncodingTest, FieldsCannotBeShiftedIntoEachOther) {
    jit::AuditRecord a;
    a.seq = 1;
    a.actor = "ab";
    a.action = "c";
    jit::AuditRecord b = a;
    b.actor = "a";
    b.action = "bc";
    EXPECT_NE(jit::canonical_encoding(a), jit::canonical_encoding(b));
    EXPECT_NE(jit::chain_hash({}, a), jit::chain_hash({}, b));
}

}  // namespace
}  // namespace dkim::test

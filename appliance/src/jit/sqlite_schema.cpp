// The SQLite store's tables (created when missing) and the migrations that bring an older store
// to this binary's schema version. The audit and checkpoints tables refuse UPDATE and DELETE
// through triggers (see sqlite_store.cpp for what that does and does not stop).

#include <sqlite3.h>

#include <iterator>
#include <string>

#include "sqlite_connection.hpp"

namespace dkim::jit {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', '1');
CREATE TABLE IF NOT EXISTS users(
  name TEXT PRIMARY KEY, roles TEXT NOT NULL, password_hash TEXT NOT NULL,
  totp_secret BLOB NOT NULL, totp_confirmed INTEGER NOT NULL, totp_last_step INTEGER NOT NULL,
  disabled INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_tokens(
  id INTEGER PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
  hash BLOB NOT NULL UNIQUE, created INTEGER NOT NULL, expires INTEGER, revoked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS requests(
  id INTEGER PRIMARY KEY, requester TEXT NOT NULL, operation TEXT NOT NULL,
  domain TEXT NOT NULL, selector TEXT NOT NULL, client TEXT NOT NULL,
  duration_ms INTEGER NOT NULL, budget INTEGER, reason TEXT NOT NULL, created INTEGER NOT NULL,
  pending_until INTEGER NOT NULL, state TEXT NOT NULL, decided_by TEXT NOT NULL,
  decision_reason TEXT NOT NULL, decided_at INTEGER, break_glass INTEGER NOT NULL,
  filed_by_signer INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS approvals(
  request_id INTEGER NOT NULL, approver TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY(request_id, approver));
CREATE TABLE IF NOT EXISTS grants(
  id INTEGER PRIMARY KEY, request_id INTEGER NOT NULL, holder TEXT NOT NULL,
  operation TEXT NOT NULL, domain TEXT NOT NULL, selector TEXT NOT NULL, client TEXT NOT NULL,
  starts INTEGER NOT NULL, expires INTEGER NOT NULL, budget INTEGER, uses INTEGER NOT NULL,
  revoked_at INTEGER, revoked_by TEXT NOT NULL, revoke_reason TEXT NOT NULL,
  break_glass INTEGER NOT NULL, end_recorded INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys(
  domain TEXT NOT NULL, selector TEXT NOT NULL, algorithm TEXT NOT NULL, state TEXT NOT NULL,
  origin TEXT NOT NULL, created INTEGER NOT NULL, activated INTEGER, retiring_since INTEGER,
  retire_after INTEGER, retired INTEGER, dkim_record TEXT NOT NULL,
  PRIMARY KEY(domain, selector));
CREATE TABLE IF NOT EXISTS cluster_rotations(
  domain TEXT NOT NULL, kind TEXT NOT NULL, algorithm TEXT NOT NULL, selector TEXT NOT NULL,
  grace_s INTEGER NOT NULL, phase TEXT NOT NULL, requested_by TEXT NOT NULL,
  started INTEGER NOT NULL, updated INTEGER NOT NULL, checked TEXT NOT NULL,
  PRIMARY KEY(domain, kind));
CREATE TABLE IF NOT EXISTS audit(
  seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  scope TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, request_id INTEGER NOT NULL,
  grant_id INTEGER NOT NULL, detail TEXT NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
  seq INTEGER PRIMARY KEY, head BLOB NOT NULL, time INTEGER NOT NULL, key_label TEXT NOT NULL,
  algorithm TEXT NOT NULL, signature BLOB NOT NULL);
-- As schema 2 made it; schema 3 adds the column recent (see kMigrations).
CREATE TABLE IF NOT EXISTS login_failures(
  user TEXT PRIMARY KEY, version INTEGER NOT NULL, count INTEGER NOT NULL, first INTEGER NOT NULL,
  locked_until INTEGER NOT NULL);
-- The signing summary (store.hpp, SigningTally): written in the commits of the audit records it
-- counts. By hour first: a range of every domain reads in key order and stops at its limit; by
-- domain and hour for one domain.
CREATE TABLE IF NOT EXISTS signing_hours(
  hour INTEGER NOT NULL, domain TEXT NOT NULL, selector TEXT NOT NULL,
  signatures INTEGER NOT NULL, refusals INTEGER NOT NULL,
  PRIMARY KEY(hour, domain, selector)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS signing_hours_by_domain ON signing_hours(domain, hour);
-- Schema 8: users' WebAuthn credentials (public keys and signature counters, never a secret).
CREATE TABLE IF NOT EXISTS passkeys(
  credential_id BLOB PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL, public_key BLOB NOT NULL,
  algorithm TEXT NOT NULL, sign_count INTEGER NOT NULL, backup_eligible INTEGER NOT NULL,
  created INTEGER NOT NULL, last_used INTEGER, confirmed INTEGER NOT NULL DEFAULT 1);
-- Schema 9: the PIN's share set (custody "shares"): one row, its holders as lines of
-- "custodian index commitment"; commitments only, never a share.
CREATE TABLE IF NOT EXISTS pin_share_set(
  id INTEGER PRIMARY KEY CHECK (id = 1), set_id TEXT NOT NULL, threshold INTEGER NOT NULL,
  holders TEXT NOT NULL, created INTEGER NOT NULL, created_by TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
  BEGIN SELECT RAISE(ABORT, 'the audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
  BEGIN SELECT RAISE(ABORT, 'the audit checkpoints are append-only'); END;
)sql";

// Schema versions, applied in order to a store that is older (each step in one transaction
// with the version it brings). Tables that are new in a version are created by kSchema above
// (CREATE TABLE IF NOT EXISTS); a step here changes what exists already. A step that adds a
// column runs only while the column is missing (ALTER TABLE ... ADD COLUMN is not idempotent,
// and a store set back to an older version by hand may have it).
//   2: login_failures (lockouts survive a restart)
//   3: login_failures.recent: the times of the last failures (a sliding window), not a count
//      since the first failure of a fixed window
//   4: requests.superseded_by: the grant that superseded a request (state 'superseded')
//   5: grants.exhausted_at: when the use that spent a grant's budget was given
//   6: signing_hours (the signing summary), counting from the end of the log as it was then
//   7: requests.renews: the grant a renewal request renews (0: not a renewal)
//   8: passkeys (users' WebAuthn credentials: public keys and signature counters)
//   9: pin_share_set (who holds which share of the token PIN, and commitments to them)
constexpr int kSchemaVersion = 9;
struct Migration {
    const char* table;  // with column: what the step adds; nullptr: it always runs
    const char* column;
    const char* sql;
};
constexpr Migration kMigrations[] = {
    // 1 -> 2: the table is created by kSchema; nothing existing changes.
    {nullptr, nullptr, ""},
    // 2 -> 3: `recent` holds the times (unix ms, oldest first, space-separated). A schema-2
    // row's failures are all taken to be at `first` (count copies of it: hex(zeroblob(n)) is
    // n '00's): they leave the window when schema 2 would have forgotten them. count and first
    // are still written (count = how many are in recent, first = the oldest), never read.
    {"login_failures", "recent",
     "ALTER TABLE login_failures ADD COLUMN recent TEXT NOT NULL DEFAULT '';"
     "UPDATE login_failures SET recent = "
     "rtrim(replace(hex(zeroblob(min(max(count, 0), 16))), '00', first || ' ')) "
     "WHERE count > 0;"},
    // 3 -> 4: no request of an older store is superseded (0: none).
    {"requests", "superseded_by",
     "ALTER TABLE requests ADD COLUMN superseded_by INTEGER NOT NULL DEFAULT 0;"},
    // 4 -> 5: no older grant knows when its budget was spent (its end reads as its expiry).
    {"grants", "exhausted_at", "ALTER TABLE grants ADD COLUMN exhausted_at INTEGER;"},
    // 5 -> 6: the table is created by kSchema, empty; the summary counts from the last record
    // of the log (unix ms; 0 for a new store), which signerd reports as counted_since. Kept if
    // set already (a store set back to an older version by hand).
    {nullptr, nullptr,
     "INSERT OR IGNORE INTO meta(key, value) "
     "SELECT 'signing_hours_since', CAST(COALESCE(MAX(time), 0) AS TEXT) FROM audit;"},
    // 6 -> 7: no request of an older store renews a grant (0: none).
    {"requests", "renews", "ALTER TABLE requests ADD COLUMN renews INTEGER NOT NULL DEFAULT 0;"},
    // 7 -> 8: the table is created by kSchema, empty: nobody has a passkey yet.
    {nullptr, nullptr, ""},
    // 8 -> 9: the table is created by kSchema, empty: the PIN was never split.
    {nullptr, nullptr, ""},
};
static_assert(static_cast<int>(std::size(kMigrations)) == kSchemaVersion - 1);

// Brings an older store to kSchemaVersion, one step per transaction; a store newer than this
// binary is refused (its columns could mean what this binary does not know).
bool migrate(sqlite3* db, char** err) {
    const auto version = [db]() -> int {
        sqlite3_stmt* stmt = nullptr;
        int v = -1;
        if (sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema'",
                               -1, &stmt, nullptr) == SQLITE_OK &&
            sqlite3_step(stmt) == SQLITE_ROW) {
            v = sqlite3_column_int(stmt, 0);
        }
        sqlite3_finalize(stmt);
        return v;
    };
    int current = version();
    if (current > kSchemaVersion) {
        *err = sqlite3_mprintf("the store has schema version %d, this binary knows %d", current,
                               kSchemaVersion);
        return false;
    }
    const auto has_column = [db](const char* table, const char* column) {
        sqlite3_stmt* stmt = nullptr;
        bool found = false;
        if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1, &stmt,
                               nullptr) == SQLITE_OK) {
            sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
            sqlite3_bind_text(stmt, 2, column, -1, SQLITE_STATIC);
            found = sqlite3_step(stmt) == SQLITE_ROW;
        }
        sqlite3_finalize(stmt);
        return found;
    };
    for (; current >= 1 && current < kSchemaVersion; current = version()) {
        const Migration& m = kMigrations[current - 1];
        const bool run = m.table == nullptr || !has_column(m.table, m.column);
        const std::string next = std::to_string(current + 1);
        const std::string step =
            std::string("BEGIN IMMEDIATE; ") + (run ? m.sql : "") + " UPDATE meta SET value = '" +
            next + "' WHERE key = 'schema' AND CAST(value AS INTEGER) < " + next + "; COMMIT;";
        if (sqlite3_exec(db, step.c_str(), nullptr, nullptr, err) != SQLITE_OK) {
            sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
            return false;
        }
        if (version() <= current) {
            *err = sqlite3_mprintf("schema migration from version %d did not advance", current);
            return false;
        }
    }
    if (current < 1) {
        *err = sqlite3_mprintf("the store has no schema version");
        return false;
    }
    return true;
}

}  // namespace

bool detail::set_up_schema(sqlite3* db, char** err) {
    return sqlite3_exec(db, kSchema, nullptr, nullptr, err) == SQLITE_OK && migrate(db, err);
}

}  // namespace dkim::jit

// The SQLite store. WAL mode with synchronous=FULL: a commit returns after the WAL is
// fsync'd. The audit and checkpoints tables refuse UPDATE and DELETE through triggers; that
// only stops accidents (whoever can write the file can drop a trigger): the hash chain and
// the signed checkpoints inside it are what detect tampering. signerd writes its checkpoints
// as audit records now; the checkpoints table holds those of earlier versions.

#include <sqlite3.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <string>

#include "dkim/jit/store.hpp"
#include "dkim/lock_guarded.hpp"

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
constexpr int kSchemaVersion = 4;
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
};
static_assert(static_cast<int>(std::size(kMigrations)) == kSchemaVersion - 1);

// More than the directory keeps (Directory::kMaxFailures): a row edited by hand stays bounded.
constexpr std::size_t kMaxStoredFailureTimes = 16;

// Failure times as stored in login_failures.recent.
std::string failure_times_text(const std::vector<TimePoint>& times) {
    std::string out;
    for (const TimePoint t : times) {
        out += (out.empty() ? "" : " ") + std::to_string(to_unix_ms(t));
    }
    return out;
}

// At most `limit` of them, the last ones; anything that is not a number is skipped.
std::vector<TimePoint> failure_times_from(const std::string& text, std::size_t limit) {
    std::vector<TimePoint> out;
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t end = std::min(text.find(' ', at), text.size());
        const std::string word = text.substr(at, end - at);
        at = end + 1;
        if (word.empty() || word.size() > 18 ||
            !std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            continue;
        }
        out.push_back(from_unix_ms(std::stoll(word)));
        if (out.size() > limit) {
            out.erase(out.begin());
        }
    }
    return out;
}

class Statement {
  public:
    Statement(sqlite3* db, const char* sql) {
        if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) !=
            SQLITE_OK) {
            stmt_ = nullptr;
        }
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement() { sqlite3_finalize(stmt_); }
    bool ok() const { return stmt_ != nullptr; }

    Statement& reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
        next_ = 1;
        return *this;
    }
    Statement& bind(std::int64_t v) {
        sqlite3_bind_int64(stmt_, next_++, v);
        return *this;
    }
    Statement& bind(std::string_view v) {
        sqlite3_bind_text(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind_blob(std::string_view v) {
        sqlite3_bind_blob(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind_null() {
        sqlite3_bind_null(stmt_, next_++);
        return *this;
    }
    template <class T>
    Statement& bind_optional(const std::optional<T>& v) {
        return v ? bind(static_cast<std::int64_t>(*v)) : bind_null();
    }
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int step() { return sqlite3_step(stmt_); }

    std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
    std::string text(int column) const {
        const auto* p = sqlite3_column_blob(stmt_, column);
        const int n = sqlite3_column_bytes(stmt_, column);
        return p == nullptr ? std::string()
                            : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
    }

  private:
    sqlite3_stmt* stmt_ = nullptr;
    int next_ = 1;
};

std::string hash_text(const ChainHash& h) {
    return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

ChainHash hash_from(const std::string& text) {
    ChainHash h{};
    if (text.size() == h.size()) {
        std::copy(text.begin(), text.end(), h.begin());
    }
    return h;
}

Operation operation_from(const std::string& text) {
    return parse_operation(text).value_or(Operation::admin);
}

RequestState request_state_from(const std::string& text) {
    for (RequestState s :
         {RequestState::pending, RequestState::approved, RequestState::denied,
          RequestState::cancelled, RequestState::expired, RequestState::superseded}) {
        if (to_string(s) == text) {
            return s;
        }
    }
    return RequestState::cancelled;  // unknown: never pending, never approved
}

// The database connection and its cache of prepared statements: used by one thread at a time
// (SqliteStore keeps it inside its lock), so that no read lands inside a commit's transaction and
// no statement is stepped by two threads.
class SqliteConnection {
  public:
    SqliteConnection(sqlite3* db, std::string file) : db_(db), file_(std::move(file)) {}
    SqliteConnection(const SqliteConnection&) = delete;
    SqliteConnection& operator=(const SqliteConnection&) = delete;
    ~SqliteConnection() {
        statements_.clear();
        sqlite3_close(db_);
    }

    std::string error(const std::string& what) const {
        return what + ": " + file_ + ": " + sqlite3_errmsg(db_);
    }
    Statement* statement(const char* sql) {
        auto it = statements_.find(sql);
        if (it == statements_.end()) {
            auto stmt = std::make_unique<Statement>(db_, sql);
            if (!stmt->ok()) {
                return nullptr;
            }
            it = statements_.emplace(sql, std::move(stmt)).first;
        }
        return &it->second->reset();
    }
    bool exec(const char* sql) {
        return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    }
    bool apply(const User& u);
    bool apply(const ApiToken& t);
    bool apply(const Request& r);
    bool apply(const Grant& g);
    bool apply(const GrantUses& g);
    bool apply(const Checkpoint& c);
    bool apply(const KeyRecord& k);
    bool apply(const LoginFailures& f);
    bool append(const AuditRecord& r);

  private:
    sqlite3* db_;
    std::string file_;
    std::map<const char*, std::unique_ptr<Statement>> statements_;
};

class SqliteStore final : public Store {
  public:
    SqliteStore(sqlite3* db, std::string file) : connection_(db, std::move(file)) {}

    Expected<StoredState, std::string> load() override;
    Expected<void, std::string> commit(const std::vector<Mutation>& mutations,
                                       const std::vector<AuditRecord>& records) override;
    Expected<std::vector<AuditRecord>, std::string> audit_records(std::int64_t from,
                                                                  std::int64_t limit) override;
    Expected<std::vector<Checkpoint>, std::string> checkpoints() override;

  private:
    LockGuarded<SqliteConnection> connection_;
};

bool done(Statement* s) {
    return s != nullptr && s->step() == SQLITE_DONE;
}

bool SqliteConnection::apply(const User& u) {
    Statement* s = statement(
        "INSERT OR REPLACE INTO users(name, roles, password_hash, totp_secret, totp_confirmed, "
        "totp_last_step, disabled, created) VALUES (?,?,?,?,?,?,?,?)");
    if (s == nullptr) {
        return false;
    }
    s->bind(u.name).bind(roles_to_string(u.roles)).bind(u.password_hash).bind_blob(u.totp_secret);
    s->bind(u.totp_confirmed ? 1 : 0).bind(u.totp_last_step).bind(u.disabled ? 1 : 0);
    s->bind(to_unix_ms(u.created));
    return done(s);
}

bool SqliteConnection::apply(const ApiToken& t) {
    Statement* s = statement(
        "INSERT OR REPLACE INTO api_tokens(id, user, kind, label, hash, created, expires, revoked) "
        "VALUES (?,?,?,?,?,?,?,?)");
    if (s == nullptr) {
        return false;
    }
    s->bind(t.id).bind(t.user).bind(t.kind == TokenKind::api ? "api" : "session").bind(t.label);
    s->bind_blob(t.hash).bind(to_unix_ms(t.created));
    if (t.expires) {
        s->bind(to_unix_ms(*t.expires));
    } else {
        s->bind_null();
    }
    s->bind(t.revoked ? 1 : 0);
    return done(s);
}

bool SqliteConnection::apply(const Request& r) {
    Statement* s = statement(
        "INSERT OR REPLACE INTO requests(id, requester, operation, domain, selector, client, "
        "duration_ms, budget, reason, created, pending_until, state, decided_by, "
        "decision_reason, decided_at, break_glass, filed_by_signer, superseded_by) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (s == nullptr) {
        return false;
    }
    s->bind(r.id).bind(r.requester).bind(to_string(r.scope.operation)).bind(r.scope.domain);
    s->bind(r.scope.selector).bind(r.scope.client).bind(r.duration.count());
    s->bind_optional(r.budget).bind(r.reason).bind(to_unix_ms(r.created));
    s->bind(to_unix_ms(r.pending_until)).bind(to_string(r.state)).bind(r.decided_by);
    s->bind(r.decision_reason);
    if (r.decided_at) {
        s->bind(to_unix_ms(*r.decided_at));
    } else {
        s->bind_null();
    }
    s->bind(r.break_glass ? 1 : 0).bind(r.filed_by_signer ? 1 : 0).bind(r.superseded_by);
    if (!done(s)) {
        return false;
    }
    for (const Approval& a : r.approvals) {
        Statement* ins =
            statement("INSERT OR IGNORE INTO approvals(request_id, approver, at) VALUES (?,?,?)");
        if (ins == nullptr) {
            return false;
        }
        ins->bind(r.id).bind(a.approver).bind(to_unix_ms(a.at));
        if (!done(ins)) {
            return false;
        }
    }
    return true;
}

bool SqliteConnection::apply(const Grant& g) {
    Statement* s = statement(
        "INSERT INTO grants(id, request_id, holder, operation, domain, selector, client, starts, "
        "expires, budget, uses, revoked_at, revoked_by, revoke_reason, break_glass, "
        "end_recorded) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(id) DO UPDATE SET uses = MAX(uses, excluded.uses), "
        "revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by, "
        "revoke_reason = excluded.revoke_reason, end_recorded = excluded.end_recorded");
    if (s == nullptr) {
        return false;
    }
    s->bind(g.id).bind(g.request_id).bind(g.holder).bind(to_string(g.scope.operation));
    s->bind(g.scope.domain).bind(g.scope.selector).bind(g.scope.client);
    s->bind(to_unix_ms(g.starts)).bind(to_unix_ms(g.expires)).bind_optional(g.budget);
    s->bind(static_cast<std::int64_t>(g.uses));
    if (g.revoked_at) {
        s->bind(to_unix_ms(*g.revoked_at));
    } else {
        s->bind_null();
    }
    s->bind(g.revoked_by).bind(g.revoke_reason).bind(g.break_glass ? 1 : 0);
    s->bind(g.end_recorded ? 1 : 0);
    return done(s);
}

bool SqliteConnection::apply(const GrantUses& g) {
    Statement* s = statement("UPDATE grants SET uses = MAX(uses, ?) WHERE id = ?");
    if (s == nullptr) {
        return false;
    }
    s->bind(static_cast<std::int64_t>(g.uses)).bind(g.grant_id);
    return done(s);
}

bool SqliteConnection::apply(const Checkpoint& c) {
    Statement* s = statement(
        "INSERT OR REPLACE INTO checkpoints(seq, head, time, key_label, algorithm, signature) "
        "VALUES (?,?,?,?,?,?)");
    if (s == nullptr) {
        return false;
    }
    s->bind(c.seq).bind_blob(hash_text(c.head)).bind(to_unix_ms(c.time)).bind(c.key_label);
    s->bind(c.algorithm).bind_blob(c.signature);
    return done(s);
}

bool SqliteConnection::apply(const KeyRecord& k) {
    Statement* s = statement(
        "INSERT OR REPLACE INTO keys(domain, selector, algorithm, state, origin, created, "
        "activated, retiring_since, retire_after, retired, dkim_record) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    if (s == nullptr) {
        return false;
    }
    const auto time = [s](const std::optional<TimePoint>& t) {
        if (t) {
            s->bind(to_unix_ms(*t));
        } else {
            s->bind_null();
        }
    };
    s->bind(k.domain).bind(k.selector).bind(k.algorithm).bind(to_string(k.state)).bind(k.origin);
    s->bind(to_unix_ms(k.created));
    time(k.activated);
    time(k.retiring_since);
    time(k.retire_after);
    time(k.retired);
    s->bind(k.dkim_record);
    return done(s);
}

bool SqliteConnection::apply(const LoginFailures& f) {
    Statement* s = statement(
        "INSERT INTO login_failures(user, version, count, first, locked_until, recent) "
        "VALUES (?,?,?,?,?,?) ON CONFLICT(user) DO UPDATE SET version = excluded.version, "
        "count = excluded.count, first = excluded.first, locked_until = excluded.locked_until, "
        "recent = excluded.recent WHERE excluded.version > login_failures.version");
    if (s == nullptr) {
        return false;
    }
    s->bind(f.user).bind(f.version).bind(static_cast<std::int64_t>(f.recent.size()));
    s->bind(f.recent.empty() ? std::int64_t{0} : to_unix_ms(f.recent.front()));
    s->bind(to_unix_ms(f.locked_until)).bind(failure_times_text(f.recent));
    return done(s);
}

bool SqliteConnection::append(const AuditRecord& r) {
    Statement* s = statement(
        "INSERT INTO audit(seq, time, actor, action, scope, outcome, reason, request_id, "
        "grant_id, detail, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    if (s == nullptr) {
        return false;
    }
    s->bind(r.seq).bind(to_unix_ms(r.time)).bind(r.actor).bind(r.action).bind(r.scope);
    s->bind(r.outcome).bind(r.reason).bind(r.request_id).bind(r.grant_id).bind(r.detail);
    s->bind_blob(hash_text(r.hash));
    return done(s);
}

Expected<void, std::string> SqliteStore::commit(const std::vector<Mutation>& mutations,
                                                const std::vector<AuditRecord>& records) {
    auto connection = connection_.lock();
    if (!connection->exec("BEGIN IMMEDIATE")) {
        return unexpected(connection->error("cannot start a transaction"));
    }
    bool ok = true;
    for (const Mutation& m : mutations) {
        ok = std::visit([&connection](const auto& value) { return connection->apply(value); }, m);
        if (!ok) {
            break;
        }
    }
    for (std::size_t i = 0; ok && i < records.size(); ++i) {
        ok = connection->append(records[i]);
    }
    if (ok && connection->exec("COMMIT")) {
        return {};
    }
    std::string message = connection->error("cannot write the state and audit log");
    connection->exec("ROLLBACK");
    return unexpected(std::move(message));
}

Expected<StoredState, std::string> SqliteStore::load() {
    auto connection = connection_.lock();
    StoredState state;
    if (Statement* s =
            connection->statement("SELECT name, roles, password_hash, totp_secret, totp_confirmed, "
                                  "totp_last_step, disabled, created FROM users ORDER BY name")) {
        while (s->step() == SQLITE_ROW) {
            User u;
            u.name = s->text(0);
            u.roles = parse_roles(s->text(1)).value_or(0);
            u.password_hash = s->text(2);
            u.totp_secret = s->text(3);
            u.totp_confirmed = s->integer(4) != 0;
            u.totp_last_step = s->integer(5);
            u.disabled = s->integer(6) != 0;
            u.created = from_unix_ms(s->integer(7));
            state.users.push_back(std::move(u));
        }
    } else {
        return unexpected(connection->error("cannot read users"));
    }
    if (Statement* s =
            connection->statement("SELECT id, user, kind, label, hash, created, expires, revoked "
                                  "FROM api_tokens ORDER BY id")) {
        while (s->step() == SQLITE_ROW) {
            ApiToken t;
            t.id = s->integer(0);
            t.user = s->text(1);
            t.kind = s->text(2) == "api" ? TokenKind::api : TokenKind::session;
            t.label = s->text(3);
            t.hash = s->text(4);
            t.created = from_unix_ms(s->integer(5));
            if (!s->is_null(6)) {
                t.expires = from_unix_ms(s->integer(6));
            }
            t.revoked = s->integer(7) != 0;
            state.tokens.push_back(std::move(t));
        }
    } else {
        return unexpected(connection->error("cannot read API tokens"));
    }
    std::map<std::int64_t, std::vector<Approval>> approvals;
    if (Statement* s =
            connection->statement("SELECT request_id, approver, at FROM approvals ORDER BY at")) {
        while (s->step() == SQLITE_ROW) {
            approvals[s->integer(0)].push_back({s->text(1), from_unix_ms(s->integer(2))});
        }
    } else {
        return unexpected(connection->error("cannot read approvals"));
    }
    if (Statement* s = connection->statement(
            "SELECT id, requester, operation, domain, selector, client, duration_ms, budget, "
            "reason, created, pending_until, state, decided_by, decision_reason, decided_at, "
            "break_glass, filed_by_signer, superseded_by FROM requests ORDER BY id")) {
        while (s->step() == SQLITE_ROW) {
            Request r;
            r.id = s->integer(0);
            r.requester = s->text(1);
            r.scope = {operation_from(s->text(2)), s->text(3), s->text(4), s->text(5)};
            r.duration = Duration(s->integer(6));
            if (!s->is_null(7)) {
                r.budget = static_cast<std::uint64_t>(s->integer(7));
            }
            r.reason = s->text(8);
            r.created = from_unix_ms(s->integer(9));
            r.pending_until = from_unix_ms(s->integer(10));
            r.state = request_state_from(s->text(11));
            r.decided_by = s->text(12);
            r.decision_reason = s->text(13);
            if (!s->is_null(14)) {
                r.decided_at = from_unix_ms(s->integer(14));
            }
            r.break_glass = s->integer(15) != 0;
            r.filed_by_signer = s->integer(16) != 0;
            r.superseded_by = s->integer(17);
            r.approvals = std::move(approvals[r.id]);
            state.requests.push_back(std::move(r));
        }
    } else {
        return unexpected(connection->error("cannot read requests"));
    }
    if (Statement* s = connection->statement(
            "SELECT id, request_id, holder, operation, domain, selector, client, starts, expires, "
            "budget, uses, revoked_at, revoked_by, revoke_reason, break_glass, end_recorded "
            "FROM grants ORDER BY id")) {
        while (s->step() == SQLITE_ROW) {
            Grant g;
            g.id = s->integer(0);
            g.request_id = s->integer(1);
            g.holder = s->text(2);
            g.scope = {operation_from(s->text(3)), s->text(4), s->text(5), s->text(6)};
            g.starts = from_unix_ms(s->integer(7));
            g.expires = from_unix_ms(s->integer(8));
            if (!s->is_null(9)) {
                g.budget = static_cast<std::uint64_t>(s->integer(9));
            }
            g.uses = static_cast<std::uint64_t>(s->integer(10));
            if (!s->is_null(11)) {
                g.revoked_at = from_unix_ms(s->integer(11));
            }
            g.revoked_by = s->text(12);
            g.revoke_reason = s->text(13);
            g.break_glass = s->integer(14) != 0;
            g.end_recorded = s->integer(15) != 0;
            state.grants.push_back(std::move(g));
        }
    } else {
        return unexpected(connection->error("cannot read grants"));
    }
    if (Statement* s = connection->statement(
            "SELECT domain, selector, algorithm, state, origin, created, activated, "
            "retiring_since, retire_after, retired, dkim_record FROM keys "
            "ORDER BY domain, selector")) {
        const auto time = [s](int column) -> std::optional<TimePoint> {
            if (s->is_null(column)) {
                return std::nullopt;
            }
            return from_unix_ms(s->integer(column));
        };
        while (s->step() == SQLITE_ROW) {
            KeyRecord k;
            k.domain = s->text(0);
            k.selector = s->text(1);
            k.algorithm = s->text(2);
            // Unknown: retired, which never signs.
            k.state = parse_key_state(s->text(3)).value_or(KeyState::retired);
            k.origin = s->text(4);
            k.created = from_unix_ms(s->integer(5));
            k.activated = time(6);
            k.retiring_since = time(7);
            k.retire_after = time(8);
            k.retired = time(9);
            k.dkim_record = s->text(10);
            state.keys.push_back(std::move(k));
        }
    } else {
        return unexpected(connection->error("cannot read the keys' lifecycle"));
    }
    if (Statement* s = connection->statement("SELECT user, version, recent, locked_until "
                                             "FROM login_failures ORDER BY user")) {
        while (s->step() == SQLITE_ROW) {
            LoginFailures f;
            f.user = s->text(0);
            f.version = s->integer(1);
            f.recent = failure_times_from(s->text(2), kMaxStoredFailureTimes);
            f.locked_until = from_unix_ms(s->integer(3));
            state.login_failures.push_back(std::move(f));
        }
    } else {
        return unexpected(connection->error("cannot read the login failures"));
    }
    if (Statement* s =
            connection->statement("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")) {
        if (s->step() == SQLITE_ROW) {
            state.audit_seq = s->integer(0);
            state.audit_head = hash_from(s->text(1));
        }
    } else {
        return unexpected(connection->error("cannot read the audit log"));
    }
    return state;
}

Expected<std::vector<AuditRecord>, std::string> SqliteStore::audit_records(std::int64_t from,
                                                                           std::int64_t limit) {
    auto connection = connection_.lock();
    Statement* s = connection->statement(
        "SELECT seq, time, actor, action, scope, outcome, reason, request_id, grant_id, detail, "
        "hash FROM audit WHERE seq >= ? ORDER BY rowid LIMIT ?");
    if (s == nullptr) {
        return unexpected(connection->error("cannot read the audit log"));
    }
    s->bind(from).bind(limit);
    std::vector<AuditRecord> out;
    int rc = 0;
    while ((rc = s->step()) == SQLITE_ROW) {
        AuditRecord r;
        r.seq = s->integer(0);
        r.time = from_unix_ms(s->integer(1));
        r.actor = s->text(2);
        r.action = s->text(3);
        r.scope = s->text(4);
        r.outcome = s->text(5);
        r.reason = s->text(6);
        r.request_id = s->integer(7);
        r.grant_id = s->integer(8);
        r.detail = s->text(9);
        r.hash = hash_from(s->text(10));
        out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) {
        return unexpected(connection->error("cannot read the audit log"));
    }
    return out;
}

Expected<std::vector<Checkpoint>, std::string> SqliteStore::checkpoints() {
    auto connection = connection_.lock();
    Statement* s = connection->statement(
        "SELECT seq, head, time, key_label, algorithm, signature FROM checkpoints ORDER BY seq");
    if (s == nullptr) {
        return unexpected(connection->error("cannot read the audit checkpoints"));
    }
    std::vector<Checkpoint> out;
    while (s->step() == SQLITE_ROW) {
        Checkpoint c;
        c.seq = s->integer(0);
        c.head = hash_from(s->text(1));
        c.time = from_unix_ms(s->integer(2));
        c.key_label = s->text(3);
        c.algorithm = s->text(4);
        c.signature = s->text(5);
        out.push_back(std::move(c));
    }
    return out;
}

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

Expected<std::unique_ptr<Store>, std::string> open_sqlite_store(const std::filesystem::path& file,
                                                                SqliteOptions options) {
    sqlite3* db = nullptr;
    const int flags =
        (options.read_only ? SQLITE_OPEN_READONLY
                           : SQLITE_OPEN_READWRITE | (options.create ? SQLITE_OPEN_CREATE : 0)) |
        SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(file.c_str(), &db, flags, nullptr) != SQLITE_OK) {
        std::string message = "cannot open the state store " + file.string() + ": " +
                              (db != nullptr ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return unexpected(std::move(message));
    }
    auto store = std::make_unique<SqliteStore>(db, file.string());
    sqlite3_busy_timeout(db, 5000);
    if (!options.read_only) {
        const char* setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
        char* err = nullptr;
        if (sqlite3_exec(db, setup, nullptr, nullptr, &err) != SQLITE_OK ||
            (options.create && sqlite3_exec(db, kSchema, nullptr, nullptr, &err) != SQLITE_OK) ||
            (options.create && !migrate(db, &err))) {
            std::string message = "cannot set up the state store " + file.string() + ": " +
                                  (err != nullptr ? err : sqlite3_errmsg(db));
            sqlite3_free(err);
            return unexpected(std::move(message));
        }
    }
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace dkim::jit

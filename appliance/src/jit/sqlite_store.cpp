// The SQLite store. WAL mode with synchronous=FULL: a commit returns after the WAL is
// fsync'd. The audit and checkpoints tables refuse UPDATE and DELETE through triggers; that
// only stops accidents (whoever can write the file can drop a trigger): the hash chain and
// the signed checkpoints inside it are what detect tampering. signerd writes its checkpoints
// as audit records now; the checkpoints table holds those of earlier versions.
//
// This file: the store (the connection inside its lock), the commit, the reads and
// open_sqlite_store. The tables and their migrations are in sqlite_schema.cpp, the rows each
// mutation writes in sqlite_rows.cpp, the connection they share in sqlite_connection.hpp.

#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <tuple>

#include "dkim/jit/store.hpp"
#include "dkim/lock_guarded.hpp"
#include "sqlite_connection.hpp"
#include "store_text.hpp"

namespace dkim::jit {
namespace {

using detail::failure_times_from;
using detail::kMaxStoredFailureTimes;
using detail::operation_from;
using detail::request_state_from;
using detail::SqliteConnection;
using detail::Statement;

ChainHash hash_from(const std::string& text) {
    ChainHash h{};
    if (text.size() == h.size()) {
        std::copy(text.begin(), text.end(), h.begin());
    }
    return h;
}

class SqliteStore final : public Store {
  public:
    SqliteStore(sqlite3* db, std::string file) : connection_(db, std::move(file)) {}

    Expected<StoredState, std::string> load() override;
    Expected<void, std::string> commit(const std::vector<Mutation>& mutations,
                                       const std::vector<AuditRecord>& records) override;
    Expected<std::vector<AuditRecord>, std::string> audit_records(std::int64_t from,
                                                                  std::int64_t limit) override;
    Expected<std::vector<Checkpoint>, std::string> checkpoints() override;
    Expected<SigningHours, std::string> signing_hours(std::int64_t from, std::int64_t until,
                                                      const std::string& domain,
                                                      std::size_t limit) override;

  private:
    LockGuarded<SqliteConnection> connection_;
};

Expected<void, std::string> SqliteStore::commit(const std::vector<Mutation>& mutations,
                                                const std::vector<AuditRecord>& records) {
    auto connection = connection_.lock();
    if (!connection->exec("BEGIN IMMEDIATE")) {
        return unexpected(connection->error("cannot start a transaction"));
    }
    bool ok = true;
    // The tallies of one key and hour add up first: a batch of a thousand signatures of one
    // selector writes its row once.
    std::map<std::tuple<std::string, std::string, std::int64_t>, SigningTally> tallies;
    for (const Mutation& m : mutations) {
        if (const auto* tally = std::get_if<SigningTally>(&m); tally != nullptr && tally->hour) {
            SigningTally& sum = tallies[{tally->domain, tally->selector, *tally->hour}];
            if (!sum.hour) {
                sum = *tally;
            } else {
                sum.signatures += tally->signatures;
                sum.refusals += tally->refusals;
            }
            continue;
        }
        ok = std::visit([&connection](const auto& value) { return connection->apply(value); }, m);
        if (!ok) {
            break;
        }
    }
    for (auto it = tallies.begin(); ok && it != tallies.end(); ++it) {
        ok = connection->apply(it->second);
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
            "break_glass, filed_by_signer, superseded_by, renews FROM requests ORDER BY id")) {
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
            r.renews = s->integer(18);
            r.approvals = std::move(approvals[r.id]);
            state.requests.push_back(std::move(r));
        }
    } else {
        return unexpected(connection->error("cannot read requests"));
    }
    if (Statement* s = connection->statement(
            "SELECT id, request_id, holder, operation, domain, selector, client, starts, expires, "
            "budget, uses, revoked_at, revoked_by, revoke_reason, break_glass, end_recorded, "
            "exhausted_at FROM grants ORDER BY id")) {
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
            if (!s->is_null(16)) {
                g.exhausted_at = from_unix_ms(s->integer(16));
            }
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
    if (Statement* s = connection->statement(
            "SELECT domain, kind, algorithm, selector, grace_s, phase, requested_by, started, "
            "updated, checked FROM cluster_rotations ORDER BY domain, kind")) {
        while (s->step() == SQLITE_ROW) {
            ClusterRotation c;
            c.domain = s->text(0);
            c.kind = s->text(1);
            c.algorithm = s->text(2);
            c.selector = s->text(3);
            c.grace_s = s->integer(4);
            const auto phase = parse_rotation_phase(s->text(5));
            if (!phase) {
                continue;
            }
            c.phase = *phase;
            c.requested_by = s->text(6);
            c.started = from_unix_ms(s->integer(7));
            c.updated = from_unix_ms(s->integer(8));
            c.checked = s->text(9);
            state.rotations.push_back(std::move(c));
        }
    } else {
        return unexpected(connection->error("cannot read the cluster's rotations"));
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
    if (Statement* s = connection->statement(
            "SELECT credential_id, user, name, public_key, algorithm, sign_count, "
            "backup_eligible, created, last_used, confirmed FROM passkeys ORDER BY user, "
            "created")) {
        while (s->step() == SQLITE_ROW) {
            Passkey p;
            p.credential_id = s->text(0);
            p.user = s->text(1);
            p.name = s->text(2);
            p.public_key = s->text(3);
            p.algorithm = s->text(4);
            p.sign_count = static_cast<std::uint32_t>(s->integer(5));
            p.backup_eligible = s->integer(6) != 0;
            p.created = from_unix_ms(s->integer(7));
            if (!s->is_null(8)) {
                p.last_used = from_unix_ms(s->integer(8));
            }
            p.confirmed = s->integer(9) != 0;
            state.passkeys.push_back(std::move(p));
        }
    } else {
        return unexpected(connection->error("cannot read the passkeys"));
    }
    if (Statement* s = connection->statement(
            "SELECT set_id, threshold, holders, created, created_by FROM pin_share_set")) {
        if (s->step() == SQLITE_ROW) {
            PinShareSet set;
            set.set_id = s->text(0);
            set.threshold = static_cast<std::uint32_t>(s->integer(1));
            set.holders = detail::share_holders_from(s->text(2));
            set.created = from_unix_ms(s->integer(3));
            set.created_by = s->text(4);
            state.pin_share_set = std::move(set);
        }
    } else {
        return unexpected(connection->error("cannot read the PIN share set"));
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

Expected<SigningHours, std::string> SqliteStore::signing_hours(std::int64_t from,
                                                               std::int64_t until,
                                                               const std::string& domain,
                                                               std::size_t limit) {
    auto connection = connection_.lock();
    SigningHours out;
    if (Statement* s = connection->statement(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'signing_hours_since'")) {
        if (s->step() == SQLITE_ROW) {
            out.counted_since = from_unix_ms(s->integer(0));
        }
    } else {
        return unexpected(connection->error("cannot read the signing summary"));
    }
    // In the order of an index (hour; domain and hour), so that LIMIT stops the read. A row
    // whose signature was taken back (the token failed) and that counts nothing else is no row.
    Statement* s =
        domain.empty()
            ? connection->statement(
                  "SELECT domain, selector, hour, signatures, refusals FROM signing_hours "
                  "WHERE hour >= ? AND hour < ? AND (signatures != 0 OR refusals != 0) "
                  "ORDER BY hour LIMIT ?")
            : connection->statement(
                  "SELECT domain, selector, hour, signatures, refusals FROM signing_hours "
                  "WHERE domain = ? AND hour >= ? AND hour < ? "
                  "AND (signatures != 0 OR refusals != 0) ORDER BY hour LIMIT ?");
    if (s == nullptr) {
        return unexpected(connection->error("cannot read the signing summary"));
    }
    if (!domain.empty()) {
        s->bind(domain);
    }
    constexpr auto kMaxLimit = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    s->bind(from).bind(until).bind(static_cast<std::int64_t>(std::min(limit, kMaxLimit)));
    int rc = 0;
    while ((rc = s->step()) == SQLITE_ROW) {
        out.rows.push_back({s->text(0), s->text(1), s->integer(2), s->integer(3), s->integer(4)});
    }
    if (rc != SQLITE_DONE) {
        return unexpected(connection->error("cannot read the signing summary"));
    }
    std::sort(out.rows.begin(), out.rows.end(), [](const SigningHour& a, const SigningHour& b) {
        return std::tie(a.domain, a.selector, a.hour) < std::tie(b.domain, b.selector, b.hour);
    });
    return out;
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
            (options.create && !detail::set_up_schema(db, &err))) {
            std::string message = "cannot set up the state store " + file.string() + ": " +
                                  (err != nullptr ? err : sqlite3_errmsg(db));
            sqlite3_free(err);
            return unexpected(std::move(message));
        }
    }
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace dkim::jit

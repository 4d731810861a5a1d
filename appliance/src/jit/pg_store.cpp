// The PostgreSQL store that several signerd nodes share (shared_store.hpp says what it promises).
//
// Four connections per node, each used by one thread at a time: the journal's (its commits), a
// reader's (loads and reads; behind a mutex), the decision lock's (its own, so that waiting for
// it holds up no read) and the listener's (LISTEN, the version). The writing sessions wait for
// a lock at most lock_timeout_ms. A connection that broke is opened again by the next call; a
// commit whose connection broke fails as a whole (nothing is retried: its writers withhold what
// they wrote, and a client tries again).
//
// Why one lock on the chain's end serialises everything that matters: every transaction that
// writes the log or the state starts with SELECT ... FOR UPDATE on the single cluster_state row,
// which holds the chain's end and the state version. Two such transactions never overlap, so
// the order of commits is the order of the chain, the version read under the lock is the
// latest, and the conditional updates of a signature's use see every committed revoke and use.

#include <poll.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include "dkim/crypto/base64.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/shared_store.hpp"
#include "pg_connection.hpp"
#include "store_text.hpp"

namespace dkim::jit {
namespace {

using detail::pg_bool;
using detail::pg_bytea;
using detail::pg_bytes;
using detail::pg_int;
using detail::pg_null;
using detail::pg_text;
using detail::PgConnection;
using detail::PgParams;
using detail::PgResult;

constexpr int kPgSchemaVersion = 1;
constexpr const char* kChannel = "dkim_state";
// pg_advisory_lock keys: the decisions' lock and the schema's creation. The decisions' lock is
// a transaction's, held open on its own connection for the decision: a node that stops inside
// one (SIGSTOP, a hung thread) leaves its session idle in that transaction, and the server ends
// it after idle_in_transaction_session_timeout, which frees the lock (a session-level lock of a
// stopped process would stay until its TCP connection died, holding every node's decisions).
constexpr const char* kDecisionLock = "SELECT pg_advisory_xact_lock(7340030001)";
constexpr const char* kDecisionUnlock = "COMMIT";

constexpr const char* kPgSchema = R"sql(
CREATE TABLE IF NOT EXISTS dkim_meta(key text PRIMARY KEY, value text NOT NULL);
-- The end of the audit chain and the state version, in one row: every writer locks it first.
CREATE TABLE IF NOT EXISTS cluster_state(
  id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL, seq bigint NOT NULL,
  head bytea NOT NULL, time bigint NOT NULL);
INSERT INTO cluster_state(id, version, seq, head, time)
  VALUES (1, 1, 0, decode(repeat('00', 32), 'hex'), 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS users(
  name text PRIMARY KEY, roles text NOT NULL, password_hash text NOT NULL,
  totp_secret bytea NOT NULL, totp_confirmed boolean NOT NULL, totp_last_step bigint NOT NULL,
  disabled boolean NOT NULL, created bigint NOT NULL);
CREATE TABLE IF NOT EXISTS api_tokens(
  id bigint PRIMARY KEY, owner text NOT NULL, kind text NOT NULL, label text NOT NULL,
  hash bytea NOT NULL UNIQUE, created bigint NOT NULL, expires bigint, revoked boolean NOT NULL);
CREATE TABLE IF NOT EXISTS requests(
  id bigint PRIMARY KEY, requester text NOT NULL, operation text NOT NULL, domain text NOT NULL,
  selector text NOT NULL, client text NOT NULL, duration_ms bigint NOT NULL, budget bigint,
  reason text NOT NULL, created bigint NOT NULL, pending_until bigint NOT NULL,
  state text NOT NULL, decided_by text NOT NULL, decision_reason text NOT NULL,
  decided_at bigint, break_glass boolean NOT NULL, filed_by_signer boolean NOT NULL,
  superseded_by bigint NOT NULL, renews bigint NOT NULL);
CREATE TABLE IF NOT EXISTS approvals(
  request_id bigint NOT NULL, approver text NOT NULL, at bigint NOT NULL,
  PRIMARY KEY(request_id, approver));
CREATE TABLE IF NOT EXISTS grants(
  id bigint PRIMARY KEY, request_id bigint NOT NULL, holder text NOT NULL,
  operation text NOT NULL, domain text NOT NULL, selector text NOT NULL, client text NOT NULL,
  starts bigint NOT NULL, expires bigint NOT NULL, budget bigint, uses bigint NOT NULL,
  revoked_at bigint, revoked_by text NOT NULL, revoke_reason text NOT NULL,
  break_glass boolean NOT NULL, end_recorded boolean NOT NULL, exhausted_at bigint);
CREATE TABLE IF NOT EXISTS keys(
  node text NOT NULL, domain text NOT NULL, selector text NOT NULL, algorithm text NOT NULL,
  state text NOT NULL, origin text NOT NULL, created bigint NOT NULL, activated bigint,
  retiring_since bigint, retire_after bigint, retired bigint, dkim_record text NOT NULL,
  PRIMARY KEY(node, domain, selector));
CREATE TABLE IF NOT EXISTS cluster_rotations(
  domain text NOT NULL, kind text NOT NULL, algorithm text NOT NULL, selector text NOT NULL,
  grace_s bigint NOT NULL, phase text NOT NULL, requested_by text NOT NULL,
  started bigint NOT NULL, updated bigint NOT NULL, checked text NOT NULL,
  PRIMARY KEY(domain, kind));
CREATE TABLE IF NOT EXISTS audit(
  seq bigint PRIMARY KEY, time bigint NOT NULL, actor text NOT NULL, action text NOT NULL,
  scope text NOT NULL, outcome text NOT NULL, reason text NOT NULL, request_id bigint NOT NULL,
  grant_id bigint NOT NULL, detail text NOT NULL, node text NOT NULL, hash bytea NOT NULL);
CREATE TABLE IF NOT EXISTS login_failures(
  username text PRIMARY KEY, version bigint NOT NULL, recent text NOT NULL,
  locked_until bigint NOT NULL);
CREATE TABLE IF NOT EXISTS signing_hours(
  hour bigint NOT NULL, domain text NOT NULL, selector text NOT NULL,
  signatures bigint NOT NULL, refusals bigint NOT NULL, PRIMARY KEY(hour, domain, selector));
CREATE INDEX IF NOT EXISTS signing_hours_by_domain ON signing_hours(domain, hour);
CREATE TABLE IF NOT EXISTS passkeys(
  credential_id bytea PRIMARY KEY, owner text NOT NULL, name text NOT NULL,
  public_key bytea NOT NULL, algorithm text NOT NULL, sign_count bigint NOT NULL,
  backup_eligible boolean NOT NULL, created bigint NOT NULL, last_used bigint,
  confirmed boolean NOT NULL);
CREATE TABLE IF NOT EXISTS pin_share_set(
  id integer PRIMARY KEY CHECK (id = 1), set_id text NOT NULL, threshold integer NOT NULL,
  holders text NOT NULL, created bigint NOT NULL, created_by text NOT NULL);
CREATE TABLE IF NOT EXISTS nodes(
  name text PRIMARY KEY, version text NOT NULL, started bigint NOT NULL,
  last_seen bigint NOT NULL, token text NOT NULL, grants bigint NOT NULL,
  selectors text NOT NULL, records text NOT NULL);
-- The node's Ed25519 signature (base64) over its records, with its audit key.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS attestation text NOT NULL DEFAULT '';
-- Stops accidents only: whoever owns the tables can drop the trigger. The hash chain and the
-- checkpoints signed in the nodes' tokens are what detect an edit.
CREATE OR REPLACE FUNCTION dkim_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_append_only') THEN
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
      FOR EACH ROW EXECUTE FUNCTION dkim_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
      FOR EACH STATEMENT EXECUTE FUNCTION dkim_audit_append_only();
  END IF;
END $$;
INSERT INTO dkim_meta(key, value) VALUES ('schema', '1') ON CONFLICT (key) DO NOTHING;
INSERT INTO dkim_meta(key, value) VALUES ('signing_hours_since', '0') ON CONFLICT (key) DO NOTHING;
)sql";

std::string num(std::int64_t v) {
    return std::to_string(v);
}
std::optional<std::string> num_or_null(const std::optional<TimePoint>& t) {
    if (!t) {
        return std::nullopt;
    }
    return num(to_unix_ms(*t));
}
std::optional<std::string> num_or_null(const std::optional<std::uint64_t>& v) {
    if (!v) {
        return std::nullopt;
    }
    return num(static_cast<std::int64_t>(*v));
}
std::string boolean(bool b) {
    return b ? "true" : "false";
}
std::optional<TimePoint> time_or_null(const PGresult* res, int r, int c) {
    if (pg_null(res, r, c)) {
        return std::nullopt;
    }
    return from_unix_ms(pg_int(res, r, c));
}
ChainHash hash_from(const std::string& bytes) {
    ChainHash h{};
    if (bytes.size() == h.size()) {
        std::copy(bytes.begin(), bytes.end(), h.begin());
    }
    return h;
}
std::string hash_bytes(const ChainHash& h) {
    return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

// A decision: anything that changes the state beyond a signature's use and tally.
// A change made on the node's memory of the state, refused when that memory is behind. A
// signature's uses, its tallies and a login failure are not: they are merged into what the
// table holds (counted, summed, united), whatever the node knew.
bool is_decision(const std::vector<Mutation>& mutations) {
    return std::any_of(mutations.begin(), mutations.end(), [](const Mutation& m) {
        return !std::holds_alternative<GrantUses>(m) && !std::holds_alternative<SigningTally>(m) &&
               !std::holds_alternative<LoginFailures>(m);
    });
}

std::string session_settings(const PostgresOptions& o) {
    if (o.read_only) {
        return {};
    }
    // idle_in_transaction_session_timeout: a node stopped inside a transaction (the decision
    // lock's, or a commit holding the chain's end row) is cut off by the server after its
    // answer timeout (the lease), so that the others' decisions and commits go on.
    return "SET lock_timeout = " + std::to_string(std::max(o.lock_timeout_ms, 0)) +
           "; SET statement_timeout = " + std::to_string(std::max(o.statement_timeout_ms, 0)) +
           "; SET idle_in_transaction_session_timeout = " +
           std::to_string(std::max(o.answer_timeout_ms, 0));
}

class PgStore final : public SharedStore {
  public:
    explicit PgStore(PostgresOptions options)
        : options_(std::move(options)),
          session_(session_settings(options_)),
          writer_(options_.conninfo, &options_.password, options_.connect_timeout_s,
                  "dkim-signerd " + options_.node + " journal", &statements_,
                  options_.answer_timeout_ms),
          reader_(options_.conninfo, &options_.password, options_.connect_timeout_s,
                  "dkim-signerd " + options_.node, &statements_, options_.answer_timeout_ms),
          locker_(options_.conninfo, &options_.password, options_.connect_timeout_s,
                  "dkim-signerd " + options_.node + " decisions", &statements_,
                  options_.answer_timeout_ms),
          listener_(options_.conninfo, &options_.password, options_.connect_timeout_s,
                    "dkim-signerd " + options_.node + " listener", &statements_,
                    options_.answer_timeout_ms) {}
    ~PgStore() override { sodium_memzero(options_.password.data(), options_.password.size()); }
    PgStore(const PgStore&) = delete;
    PgStore& operator=(const PgStore&) = delete;

    Expected<void, std::string> open();

    Expected<StoredState, std::string> load() override;
    Expected<void, std::string> commit(const std::vector<Mutation>& mutations,
                                       const std::vector<AuditRecord>& records) override;
    Expected<ChainEnd, std::string> append(std::vector<CommitEntry>& entries,
                                           const ChainEnd& local) override;
    Expected<std::vector<AuditRecord>, std::string> audit_records(std::int64_t from,
                                                                  std::int64_t limit) override;
    Expected<std::vector<Checkpoint>, std::string> checkpoints() override {
        return std::vector<Checkpoint>{};
    }
    Expected<SigningHours, std::string> signing_hours(std::int64_t from, std::int64_t until,
                                                      const std::string& domain,
                                                      std::size_t limit) override;

    const std::string& node() const override { return options_.node; }
    void begin_reload() override { reloading_.store(true); }
    void adopt(std::int64_t version) override {
        known_version_.store(version);
        reloading_.store(false);
    }
    Expected<bool, std::string> lock_decisions() override;
    void unlock_decisions() override;
    Expected<bool, std::string> wait_for_change(std::chrono::milliseconds timeout) override;
    Expected<void, std::string> heartbeat(const NodeStatus& status) override;
    Expected<std::vector<NodeStatus>, std::string> nodes() override;
    Expected<std::vector<std::pair<std::string, KeyRecord>>, std::string> all_keys() override;
    Counters counters() const override {
        return {statements_.load(std::memory_order_relaxed),
                transactions_.load(std::memory_order_relaxed)};
    }

  private:
    // Applies one mutation inside the writer's transaction.
    Expected<void, std::string> apply(const Mutation& m);
    Expected<void, std::string> apply_tallies(const std::vector<CommitEntry>& entries);
    Expected<void, std::string> insert_records(const std::vector<CommitEntry>& entries);
    // Spends the claims of the batch: refuses the entries whose grant has ended. Returns
    // whether a grant's budget was spent by this batch.
    Expected<bool, std::string> spend_claims(std::vector<CommitEntry>& entries);
    Expected<ChainEnd, std::string> append_locked(std::vector<CommitEntry>& entries,
                                                  const ChainEnd& local);
    // Whether the chain in the table still leads from `local` (this node's last commit, or
    // the end it loaded) to `end` (the cluster_state row), record by record.
    Expected<void, std::string> check_chain_from(const ChainEnd& local, const ChainEnd& end);
    std::vector<AuditRecord> read_records(const PGresult* res);
    Expected<std::int64_t, std::string> read_version(PgConnection& c);
    // Merges a login failure noted on this node into the table's; whether a node must reload:
    // the table's lockout changed, or the result differs from what this node noted.
    Expected<bool, std::string> merge_failures(const LoginFailures& noted);
    const char* session() const { return session_.empty() ? nullptr : session_.c_str(); }

    PostgresOptions options_;
    std::atomic<std::uint64_t> statements_{0};
    std::atomic<std::uint64_t> transactions_{0};
    // The state version this node's memory holds (load() or its own decisions); -1: unknown.
    std::atomic<std::int64_t> known_version_{-1};
    // Between begin_reload() and adopt(): the memory is being replaced, decisions wait.
    std::atomic<bool> reloading_{false};
    std::atomic<bool> loaded_{false};  // load() has run once
    std::string session_;              // the writing sessions' settings (timeouts)
    PgConnection writer_;              // the journal's thread only
    std::mutex reader_mutex_;
    PgConnection reader_;  // behind reader_mutex_
    std::mutex locker_mutex_;
    PgConnection locker_;               // behind locker_mutex_
    bool holds_decision_lock_ = false;  // behind locker_mutex_
    PgConnection listener_;             // the listener's thread only
};

Expected<void, std::string> PgStore::open() {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto ok = reader_.ensure(); !ok) {
        return ok;
    }
    if (!options_.read_only) {
        // Two nodes that start together must not both create the tables.
        const std::string create =
            std::string("BEGIN; SELECT pg_advisory_xact_lock(7340030002); ") + kPgSchema +
            " COMMIT;";
        PgResult res(PQexec(reader_.raw(), create.c_str()));
        if (PQresultStatus(res.get()) != PGRES_COMMAND_OK &&
            PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
            std::string message = PQresultErrorMessage(res.get());
            PgResult rollback(PQexec(reader_.raw(), "ROLLBACK"));
            if (const auto nl = message.find('\n'); nl != std::string::npos) {
                message.resize(nl);
            }
            return unexpected("cannot set up the shared state store: " + message);
        }
    }
    auto schema = reader_.exec("SELECT value FROM dkim_meta WHERE key = 'schema'",
                               "read the shared store's schema version");
    if (!schema) {
        return unexpected(schema.error());
    }
    if (PQntuples(schema->get()) != 1) {
        return unexpected(std::string("the shared state store has no schema version"));
    }
    const std::int64_t version = pg_int(schema->get(), 0, 0);
    if (version != kPgSchemaVersion) {
        return unexpected("the shared state store has schema version " + num(version) +
                          ", this binary knows " + num(kPgSchemaVersion));
    }
    return {};
}

Expected<std::int64_t, std::string> PgStore::read_version(PgConnection& c) {
    auto res = c.exec("SELECT version FROM cluster_state WHERE id = 1", "read the state version");
    if (!res) {
        return unexpected(res.error());
    }
    if (PQntuples(res->get()) != 1) {
        return unexpected(std::string("the shared state store has no cluster_state row"));
    }
    return pg_int(res->get(), 0, 0);
}

Expected<StoredState, std::string> PgStore::load() {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto ok = reader_.ensure(); !ok) {
        return unexpected(ok.error());
    }
    // One snapshot: the state and its version belong together.
    auto begun = reader_.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "read the state");
    if (!begun) {
        return unexpected(begun.error());
    }
    transactions_.fetch_add(1, std::memory_order_relaxed);
    auto result = [this]() -> Expected<StoredState, std::string> {
        StoredState state;
        auto head = reader_.exec("SELECT version, seq, head FROM cluster_state WHERE id = 1",
                                 "read the end of the audit log");
        if (!head || PQntuples(head->get()) != 1) {
            return unexpected(head ? std::string("the shared state store has no cluster_state row")
                                   : head.error());
        }
        const std::int64_t version = pg_int(head->get(), 0, 0);
        state.audit_seq = pg_int(head->get(), 0, 1);
        state.audit_head = hash_from(pg_bytes(PQgetvalue(head->get(), 0, 2)));

        auto users = reader_.exec(
            "SELECT name, roles, password_hash, totp_secret, totp_confirmed, totp_last_step, "
            "disabled, created FROM users ORDER BY name",
            "read users");
        if (!users) {
            return unexpected(users.error());
        }
        for (int i = 0; i < PQntuples(users->get()); ++i) {
            const PGresult* r = users->get();
            User u;
            u.name = pg_text(r, i, 0);
            u.roles = parse_roles(pg_text(r, i, 1)).value_or(0);
            u.password_hash = pg_text(r, i, 2);
            u.totp_secret = pg_bytes(PQgetvalue(r, i, 3));
            u.totp_confirmed = pg_bool(r, i, 4);
            u.totp_last_step = pg_int(r, i, 5);
            u.disabled = pg_bool(r, i, 6);
            u.created = from_unix_ms(pg_int(r, i, 7));
            state.users.push_back(std::move(u));
        }
        auto tokens = reader_.exec(
            "SELECT id, owner, kind, label, hash, created, expires, revoked FROM api_tokens "
            "ORDER BY id",
            "read API tokens");
        if (!tokens) {
            return unexpected(tokens.error());
        }
        for (int i = 0; i < PQntuples(tokens->get()); ++i) {
            const PGresult* r = tokens->get();
            ApiToken t;
            t.id = pg_int(r, i, 0);
            t.user = pg_text(r, i, 1);
            t.kind = pg_text(r, i, 2) == "api" ? TokenKind::api : TokenKind::session;
            t.label = pg_text(r, i, 3);
            t.hash = pg_bytes(PQgetvalue(r, i, 4));
            t.created = from_unix_ms(pg_int(r, i, 5));
            t.expires = time_or_null(r, i, 6);
            t.revoked = pg_bool(r, i, 7);
            state.tokens.push_back(std::move(t));
        }
        std::map<std::int64_t, std::vector<Approval>> approvals;
        auto approved = reader_.exec("SELECT request_id, approver, at FROM approvals ORDER BY at",
                                     "read approvals");
        if (!approved) {
            return unexpected(approved.error());
        }
        for (int i = 0; i < PQntuples(approved->get()); ++i) {
            const PGresult* r = approved->get();
            approvals[pg_int(r, i, 0)].push_back({pg_text(r, i, 1), from_unix_ms(pg_int(r, i, 2))});
        }
        auto requests = reader_.exec(
            "SELECT id, requester, operation, domain, selector, client, duration_ms, budget, "
            "reason, created, pending_until, state, decided_by, decision_reason, decided_at, "
            "break_glass, filed_by_signer, superseded_by, renews FROM requests ORDER BY id",
            "read requests");
        if (!requests) {
            return unexpected(requests.error());
        }
        for (int i = 0; i < PQntuples(requests->get()); ++i) {
            const PGresult* r = requests->get();
            Request q;
            q.id = pg_int(r, i, 0);
            q.requester = pg_text(r, i, 1);
            q.scope = {detail::operation_from(pg_text(r, i, 2)), pg_text(r, i, 3), pg_text(r, i, 4),
                       pg_text(r, i, 5)};
            q.duration = Duration(pg_int(r, i, 6));
            if (!pg_null(r, i, 7)) {
                q.budget = static_cast<std::uint64_t>(pg_int(r, i, 7));
            }
            q.reason = pg_text(r, i, 8);
            q.created = from_unix_ms(pg_int(r, i, 9));
            q.pending_until = from_unix_ms(pg_int(r, i, 10));
            q.state = detail::request_state_from(pg_text(r, i, 11));
            q.decided_by = pg_text(r, i, 12);
            q.decision_reason = pg_text(r, i, 13);
            q.decided_at = time_or_null(r, i, 14);
            q.break_glass = pg_bool(r, i, 15);
            q.filed_by_signer = pg_bool(r, i, 16);
            q.superseded_by = pg_int(r, i, 17);
            q.renews = pg_int(r, i, 18);
            q.approvals = std::move(approvals[q.id]);
            state.requests.push_back(std::move(q));
        }
        auto grants = reader_.exec(
            "SELECT id, request_id, holder, operation, domain, selector, client, starts, expires, "
            "budget, uses, revoked_at, revoked_by, revoke_reason, break_glass, end_recorded, "
            "exhausted_at FROM grants ORDER BY id",
            "read grants");
        if (!grants) {
            return unexpected(grants.error());
        }
        for (int i = 0; i < PQntuples(grants->get()); ++i) {
            const PGresult* r = grants->get();
            Grant g;
            g.id = pg_int(r, i, 0);
            g.request_id = pg_int(r, i, 1);
            g.holder = pg_text(r, i, 2);
            g.scope = {detail::operation_from(pg_text(r, i, 3)), pg_text(r, i, 4), pg_text(r, i, 5),
                       pg_text(r, i, 6)};
            g.starts = from_unix_ms(pg_int(r, i, 7));
            g.expires = from_unix_ms(pg_int(r, i, 8));
            if (!pg_null(r, i, 9)) {
                g.budget = static_cast<std::uint64_t>(pg_int(r, i, 9));
            }
            g.uses = static_cast<std::uint64_t>(pg_int(r, i, 10));
            g.revoked_at = time_or_null(r, i, 11);
            g.revoked_by = pg_text(r, i, 12);
            g.revoke_reason = pg_text(r, i, 13);
            g.break_glass = pg_bool(r, i, 14);
            g.end_recorded = pg_bool(r, i, 15);
            g.exhausted_at = time_or_null(r, i, 16);
            state.grants.push_back(std::move(g));
        }
        auto keys = reader_.exec(
            "SELECT domain, selector, algorithm, state, origin, created, activated, "
            "retiring_since, retire_after, retired, dkim_record FROM keys WHERE node = $1 "
            "ORDER BY domain, selector",
            {options_.node}, "read the keys' lifecycle");
        if (!keys) {
            return unexpected(keys.error());
        }
        for (int i = 0; i < PQntuples(keys->get()); ++i) {
            const PGresult* r = keys->get();
            KeyRecord k;
            k.domain = pg_text(r, i, 0);
            k.selector = pg_text(r, i, 1);
            k.algorithm = pg_text(r, i, 2);
            k.state = parse_key_state(pg_text(r, i, 3)).value_or(KeyState::retired);
            k.origin = pg_text(r, i, 4);
            k.created = from_unix_ms(pg_int(r, i, 5));
            k.activated = time_or_null(r, i, 6);
            k.retiring_since = time_or_null(r, i, 7);
            k.retire_after = time_or_null(r, i, 8);
            k.retired = time_or_null(r, i, 9);
            k.dkim_record = pg_text(r, i, 10);
            state.keys.push_back(std::move(k));
        }
        auto rotations = reader_.exec(
            "SELECT domain, kind, algorithm, selector, grace_s, phase, requested_by, started, "
            "updated, checked FROM cluster_rotations ORDER BY domain, kind",
            "read the cluster's rotations");
        if (!rotations) {
            return unexpected(rotations.error());
        }
        for (int i = 0; i < PQntuples(rotations->get()); ++i) {
            const PGresult* r = rotations->get();
            ClusterRotation c;
            c.domain = pg_text(r, i, 0);
            c.kind = pg_text(r, i, 1);
            c.algorithm = pg_text(r, i, 2);
            c.selector = pg_text(r, i, 3);
            c.grace_s = pg_int(r, i, 4);
            const auto phase = parse_rotation_phase(pg_text(r, i, 5));
            if (!phase) {
                continue;  // unknown: no node acts on it
            }
            c.phase = *phase;
            c.requested_by = pg_text(r, i, 6);
            c.started = from_unix_ms(pg_int(r, i, 7));
            c.updated = from_unix_ms(pg_int(r, i, 8));
            c.checked = pg_text(r, i, 9);
            state.rotations.push_back(std::move(c));
        }
        auto failures = reader_.exec(
            "SELECT username, version, recent, locked_until FROM login_failures ORDER BY username",
            "read the login failures");
        if (!failures) {
            return unexpected(failures.error());
        }
        for (int i = 0; i < PQntuples(failures->get()); ++i) {
            const PGresult* r = failures->get();
            LoginFailures f;
            f.user = pg_text(r, i, 0);
            f.version = pg_int(r, i, 1);
            f.recent = detail::failure_times_from(pg_text(r, i, 2), detail::kMaxStoredFailureTimes);
            f.locked_until = from_unix_ms(pg_int(r, i, 3));
            state.login_failures.push_back(std::move(f));
        }
        auto passkeys = reader_.exec(
            "SELECT credential_id, owner, name, public_key, algorithm, sign_count, "
            "backup_eligible, created, last_used, confirmed FROM passkeys ORDER BY owner, created",
            "read the passkeys");
        if (!passkeys) {
            return unexpected(passkeys.error());
        }
        for (int i = 0; i < PQntuples(passkeys->get()); ++i) {
            const PGresult* r = passkeys->get();
            Passkey p;
            p.credential_id = pg_bytes(PQgetvalue(r, i, 0));
            p.user = pg_text(r, i, 1);
            p.name = pg_text(r, i, 2);
            p.public_key = pg_bytes(PQgetvalue(r, i, 3));
            p.algorithm = pg_text(r, i, 4);
            p.sign_count = static_cast<std::uint32_t>(pg_int(r, i, 5));
            p.backup_eligible = pg_bool(r, i, 6);
            p.created = from_unix_ms(pg_int(r, i, 7));
            p.last_used = time_or_null(r, i, 8);
            p.confirmed = pg_bool(r, i, 9);
            state.passkeys.push_back(std::move(p));
        }
        auto shares = reader_.exec(
            "SELECT set_id, threshold, holders, created, created_by FROM pin_share_set",
            "read the PIN share set");
        if (!shares) {
            return unexpected(shares.error());
        }
        if (PQntuples(shares->get()) == 1) {
            const PGresult* r = shares->get();
            PinShareSet set;
            set.set_id = pg_text(r, 0, 0);
            set.threshold = static_cast<std::uint32_t>(pg_int(r, 0, 1));
            set.holders = detail::share_holders_from(pg_text(r, 0, 2));
            set.created = from_unix_ms(pg_int(r, 0, 3));
            set.created_by = pg_text(r, 0, 4);
            state.pin_share_set = std::move(set);
        }
        // The first load builds the node's memory: that memory holds this version. A later
        // one is a snapshot until the caller has applied it (adopt()).
        if (!loaded_.exchange(true)) {
            known_version_.store(version);
        }
        state.version = version;
        return state;
    }();
    (void)reader_.exec(result ? "COMMIT" : "ROLLBACK", "end the read");
    return result;
}

Expected<void, std::string> PgStore::apply(const Mutation& mutation) {
    struct Visitor {
        PgConnection& c;
        Expected<void, std::string> run(const char* sql, const PgParams& params,
                                        const char* what) const {
            auto res = c.exec(sql, params, what);
            if (!res) {
                return unexpected(res.error());
            }
            return {};
        }
        Expected<void, std::string> operator()(const User& u) const {
            return run(
                "INSERT INTO users(name, roles, password_hash, totp_secret, totp_confirmed, "
                "totp_last_step, disabled, created) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) "
                "ON CONFLICT (name) DO UPDATE SET roles = excluded.roles, "
                "password_hash = excluded.password_hash, totp_secret = excluded.totp_secret, "
                "totp_confirmed = excluded.totp_confirmed, "
                "totp_last_step = GREATEST(users.totp_last_step, excluded.totp_last_step), "
                "disabled = excluded.disabled, created = excluded.created",
                {u.name, roles_to_string(u.roles), u.password_hash, pg_bytea(u.totp_secret),
                 boolean(u.totp_confirmed), num(u.totp_last_step), boolean(u.disabled),
                 num(to_unix_ms(u.created))},
                "write a user");
        }
        Expected<void, std::string> operator()(const ApiToken& t) const {
            return run(
                "INSERT INTO api_tokens(id, owner, kind, label, hash, created, expires, revoked) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id) DO UPDATE SET "
                "owner = excluded.owner, kind = excluded.kind, label = excluded.label, "
                "hash = excluded.hash, created = excluded.created, expires = excluded.expires, "
                "revoked = api_tokens.revoked OR excluded.revoked",
                {num(t.id), t.user, t.kind == TokenKind::api ? "api" : "session", t.label,
                 pg_bytea(t.hash), num(to_unix_ms(t.created)), num_or_null(t.expires),
                 boolean(t.revoked)},
                "write an API token");
        }
        Expected<void, std::string> operator()(const Request& r) const {
            auto ok = run(
                "INSERT INTO requests(id, requester, operation, domain, selector, client, "
                "duration_ms, budget, reason, created, pending_until, state, decided_by, "
                "decision_reason, decided_at, break_glass, filed_by_signer, superseded_by, renews) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) "
                "ON CONFLICT (id) DO UPDATE SET pending_until = excluded.pending_until, "
                "state = excluded.state, decided_by = excluded.decided_by, "
                "decision_reason = excluded.decision_reason, decided_at = excluded.decided_at, "
                "superseded_by = excluded.superseded_by",
                {num(r.id), r.requester, std::string(to_string(r.scope.operation)), r.scope.domain,
                 r.scope.selector, r.scope.client, num(r.duration.count()), num_or_null(r.budget),
                 r.reason, num(to_unix_ms(r.created)), num(to_unix_ms(r.pending_until)),
                 std::string(to_string(r.state)), r.decided_by, r.decision_reason,
                 num_or_null(r.decided_at), boolean(r.break_glass), boolean(r.filed_by_signer),
                 num(r.superseded_by), num(r.renews)},
                "write a request");
            for (std::size_t i = 0; ok && i < r.approvals.size(); ++i) {
                ok =
                    run("INSERT INTO approvals(request_id, approver, at) VALUES ($1,$2,$3) "
                        "ON CONFLICT DO NOTHING",
                        {num(r.id), r.approvals[i].approver, num(to_unix_ms(r.approvals[i].at))},
                        "write an approval");
            }
            return ok;
        }
        Expected<void, std::string> operator()(const Grant& g) const {
            // The use counter and the end of the budget belong to the shared counter: a
            // decision writes them only upwards.
            return run(
                "INSERT INTO grants(id, request_id, holder, operation, domain, selector, client, "
                "starts, expires, budget, uses, revoked_at, revoked_by, revoke_reason, "
                "break_glass, end_recorded, exhausted_at) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) "
                "ON CONFLICT (id) DO UPDATE SET uses = GREATEST(grants.uses, excluded.uses), "
                "revoked_at = COALESCE(grants.revoked_at, excluded.revoked_at), "
                "revoked_by = CASE WHEN grants.revoked_at IS NULL THEN excluded.revoked_by "
                "ELSE grants.revoked_by END, "
                "revoke_reason = CASE WHEN grants.revoked_at IS NULL THEN excluded.revoke_reason "
                "ELSE grants.revoke_reason END, "
                "end_recorded = grants.end_recorded OR excluded.end_recorded, "
                "exhausted_at = COALESCE(grants.exhausted_at, excluded.exhausted_at)",
                {num(g.id), num(g.request_id), g.holder, std::string(to_string(g.scope.operation)),
                 g.scope.domain, g.scope.selector, g.scope.client, num(to_unix_ms(g.starts)),
                 num(to_unix_ms(g.expires)), num_or_null(g.budget),
                 num(static_cast<std::int64_t>(g.uses)), num_or_null(g.revoked_at), g.revoked_by,
                 g.revoke_reason, boolean(g.break_glass), boolean(g.end_recorded),
                 num_or_null(g.exhausted_at)},
                "write a grant");
        }
        Expected<void, std::string> operator()(const GrantUses& g) const {
            return run(
                "UPDATE grants SET uses = GREATEST(uses, $1), "
                "exhausted_at = COALESCE(exhausted_at, $2) WHERE id = $3",
                {num(static_cast<std::int64_t>(g.uses)), num_or_null(g.exhausted_at),
                 num(g.grant_id)},
                "write a grant's uses");
        }
        Expected<void, std::string> operator()(const Checkpoint& /*table checkpoint*/) const {
            // Checkpoints are records of the chain; the table of earlier versions is SQLite's.
            return {};
        }
        Expected<void, std::string> operator()(const KeyRecord& k) const {
            return run(
                "INSERT INTO keys(node, domain, selector, algorithm, state, origin, created, "
                "activated, retiring_since, retire_after, retired, dkim_record) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "
                "ON CONFLICT (node, domain, selector) DO UPDATE SET "
                "algorithm = excluded.algorithm, state = excluded.state, "
                "origin = excluded.origin, created = excluded.created, "
                "activated = excluded.activated, retiring_since = excluded.retiring_since, "
                "retire_after = excluded.retire_after, retired = excluded.retired, "
                "dkim_record = excluded.dkim_record",
                {node, k.domain, k.selector, k.algorithm, std::string(to_string(k.state)), k.origin,
                 num(to_unix_ms(k.created)), num_or_null(k.activated),
                 num_or_null(k.retiring_since), num_or_null(k.retire_after), num_or_null(k.retired),
                 k.dkim_record},
                "write a key's lifecycle");
        }
        Expected<void, std::string> operator()(const LoginFailures& f) const {
            return run(
                "INSERT INTO login_failures(username, version, recent, locked_until) "
                "VALUES ($1,$2,$3,$4) ON CONFLICT (username) DO UPDATE SET "
                "version = excluded.version, recent = excluded.recent, "
                "locked_until = excluded.locked_until "
                "WHERE excluded.version > login_failures.version",
                {f.user, num(f.version), detail::failure_times_text(f.recent),
                 num(to_unix_ms(f.locked_until))},
                "write the login failures");
        }
        Expected<void, std::string> operator()(const SigningTally& /*summed apart*/) const {
            return {};
        }
        Expected<void, std::string> operator()(const Passkey& p) const {
            if (p.removed) {
                return run("DELETE FROM passkeys WHERE credential_id = $1",
                           {pg_bytea(p.credential_id)}, "remove a passkey");
            }
            return run(
                "INSERT INTO passkeys(credential_id, owner, name, public_key, algorithm, "
                "sign_count, backup_eligible, created, last_used, confirmed) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (credential_id) DO UPDATE "
                "SET name = excluded.name, "
                "sign_count = GREATEST(passkeys.sign_count, excluded.sign_count), "
                "last_used = excluded.last_used, confirmed = excluded.confirmed "
                "WHERE passkeys.owner = excluded.owner",
                {pg_bytea(p.credential_id), p.user, p.name, pg_bytea(p.public_key), p.algorithm,
                 num(p.sign_count), boolean(p.backup_eligible), num(to_unix_ms(p.created)),
                 num_or_null(p.last_used), boolean(p.confirmed)},
                "write a passkey");
        }
        Expected<void, std::string> operator()(const PinShareSet& set) const {
            return run(
                "INSERT INTO pin_share_set(id, set_id, threshold, holders, created, created_by) "
                "VALUES (1,$1,$2,$3,$4,$5) ON CONFLICT (id) DO UPDATE SET "
                "set_id = excluded.set_id, threshold = excluded.threshold, "
                "holders = excluded.holders, created = excluded.created, "
                "created_by = excluded.created_by",
                {set.set_id, num(set.threshold), detail::share_holders_text(set),
                 num(to_unix_ms(set.created)), set.created_by},
                "write the PIN share set");
        }
        Expected<void, std::string> operator()(const ClusterRotation& r) const {
            return run(
                "INSERT INTO cluster_rotations(domain, kind, algorithm, selector, grace_s, phase, "
                "requested_by, started, updated, checked) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "
                "ON CONFLICT (domain, kind) DO UPDATE SET algorithm = excluded.algorithm, "
                "selector = excluded.selector, grace_s = excluded.grace_s, "
                "phase = excluded.phase, requested_by = excluded.requested_by, "
                "started = excluded.started, updated = excluded.updated, checked = "
                "excluded.checked",
                {r.domain, r.kind, r.algorithm, r.selector, num(r.grace_s),
                 std::string(to_string(r.phase)), r.requested_by, num(to_unix_ms(r.started)),
                 num(to_unix_ms(r.updated)), r.checked},
                "write the cluster's rotation");
        }
        const std::string& node;
    };
    return std::visit(Visitor{writer_, options_.node}, mutation);
}

namespace {

// "use N; rest" in the signature records of `e` becomes "use <use>; rest".
void renumber_use(CommitEntry& e, std::int64_t use) {
    if (e.records == nullptr) {
        return;
    }
    for (AuditRecord& r : *e.records) {
        const auto semicolon = r.detail.find(';');
        if (r.action == "sign" && r.detail.rfind("use ", 0) == 0 &&
            semicolon != std::string::npos) {
            r.detail = "use " + std::to_string(use) + r.detail.substr(semicolon);
        }
    }
}

}  // namespace

Expected<bool, std::string> PgStore::spend_claims(std::vector<CommitEntry>& entries) {
    // The claims of each grant, in the batch's order: one statement per grant.
    std::map<std::int64_t, std::vector<CommitEntry*>> by_grant;
    for (CommitEntry& e : entries) {
        if (e.claim != 0 && !e.refused) {
            by_grant[e.claim].push_back(&e);
        }
    }
    bool exhausted = false;
    for (auto& [grant, claims] : by_grant) {
        TimePoint at{};
        for (const CommitEntry* e : claims) {
            at = std::max(at, e->claim_at);
        }
        // Grants as many of the claims as the budget has left, if the grant is in force at the
        // latest of their times; reports how many, and whether the budget is now spent. The
        // expiry is the later of the node's clock and the database's: a node whose clock lags
        // does not stretch a grant (the lease bounds the other way round).
        auto res = writer_.exec(
            "WITH g AS (SELECT id, uses, budget FROM grants WHERE id = $1 AND revoked_at IS NULL "
            "AND starts <= $3 AND expires > GREATEST($3::bigint, "
            "(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FOR UPDATE), "
            "n AS (SELECT g.id, CASE WHEN g.budget IS NULL THEN $2::bigint "
            "ELSE LEAST($2::bigint, GREATEST(g.budget - g.uses, 0)) END AS k, "
            "g.budget, g.uses FROM g) "
            "UPDATE grants t SET uses = t.uses + n.k, exhausted_at = CASE WHEN n.budget IS NOT "
            "NULL AND n.uses + n.k >= n.budget AND n.k > 0 THEN COALESCE(t.exhausted_at, $3) "
            "ELSE t.exhausted_at END FROM n WHERE t.id = n.id "
            "RETURNING n.k, n.budget IS NOT NULL AND n.uses + n.k >= n.budget AND n.k > 0, n.uses",
            {num(grant), num(static_cast<std::int64_t>(claims.size())), num(to_unix_ms(at))},
            "spend a grant's use");
        if (!res) {
            return unexpected(res.error());
        }
        std::size_t granted = 0;
        if (PQntuples(res->get()) == 1) {
            granted = static_cast<std::size_t>(pg_int(res->get(), 0, 0));
            exhausted = exhausted || pg_bool(res->get(), 0, 1);
            // Each signature's record says which use of the grant it is in the cluster (the
            // node's memory counts its own uses only): "use N; ..." as the authority wrote it.
            const std::int64_t before = pg_int(res->get(), 0, 2);
            for (std::size_t i = 0; i < granted; ++i) {
                renumber_use(*claims[i], before + static_cast<std::int64_t>(i) + 1);
            }
        }
        for (std::size_t i = granted; i < claims.size(); ++i) {
            claims[i]->refused =
                granted == 0 && PQntuples(res->get()) == 0
                    ? "grant " + num(grant) +
                          " is no longer in force in the cluster (revoked, expired or not started)"
                    : "grant " + num(grant) + "'s budget is spent in the cluster";
        }
    }
    return exhausted;
}

Expected<void, std::string> PgStore::apply_tallies(const std::vector<CommitEntry>& entries) {
    std::map<std::tuple<std::string, std::string, std::int64_t>,
             std::pair<std::int64_t, std::int64_t>>
        sums;
    for (const CommitEntry& e : entries) {
        if (e.refused) {
            continue;
        }
        for (const Mutation& m : *e.mutations) {
            if (const auto* t = std::get_if<SigningTally>(&m); t != nullptr && t->hour) {
                auto& sum = sums[{t->domain, t->selector, *t->hour}];
                sum.first += t->signatures;
                sum.second += t->refusals;
            }
        }
    }
    for (const auto& [key, sum] : sums) {
        auto res = writer_.exec(
            "INSERT INTO signing_hours(hour, domain, selector, signatures, refusals) "
            "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (hour, domain, selector) DO UPDATE SET "
            "signatures = signing_hours.signatures + excluded.signatures, "
            "refusals = signing_hours.refusals + excluded.refusals",
            {num(std::get<2>(key)), std::get<0>(key), std::get<1>(key), num(sum.first),
             num(sum.second)},
            "write the signing summary");
        if (!res) {
            return unexpected(res.error());
        }
    }
    return {};
}

Expected<void, std::string> PgStore::insert_records(const std::vector<CommitEntry>& entries) {
    // Many rows per statement (12 parameters each, well inside the protocol's 65535).
    constexpr std::size_t kRowsPerStatement = 500;
    std::vector<const AuditRecord*> all;
    for (const CommitEntry& e : entries) {
        if (!e.refused) {
            for (const AuditRecord& r : *e.records) {
                all.push_back(&r);
            }
        }
    }
    for (std::size_t at = 0; at < all.size(); at += kRowsPerStatement) {
        const std::size_t n = std::min(kRowsPerStatement, all.size() - at);
        std::string sql =
            "INSERT INTO audit(seq, time, actor, action, scope, outcome, reason, request_id, "
            "grant_id, detail, node, hash) VALUES ";
        PgParams params;
        params.reserve(n * 12);
        for (std::size_t i = 0; i < n; ++i) {
            const AuditRecord& r = *all[at + i];
            const std::size_t p = i * 12;
            sql += (i == 0 ? "(" : ",(");
            for (std::size_t k = 1; k <= 12; ++k) {
                sql += "$" + std::to_string(p + k) + (k == 12 ? ")" : ",");
            }
            params.insert(params.end(),
                          {num(r.seq), num(to_unix_ms(r.time)), r.actor, r.action, r.scope,
                           r.outcome, r.reason, num(r.request_id), num(r.grant_id), r.detail,
                           r.node, pg_bytea(hash_bytes(r.hash))});
        }
        auto res = writer_.exec(sql, params, "write the audit log");
        if (!res) {
            return unexpected(res.error());
        }
    }
    return {};
}

Expected<bool, std::string> PgStore::merge_failures(const LoginFailures& noted) {
    auto row = writer_.exec(
        "SELECT version, recent, locked_until FROM login_failures WHERE username = $1 FOR UPDATE",
        {noted.user}, "read the login failures");
    if (!row) {
        return unexpected(row.error());
    }
    LoginFailures stored;
    stored.user = noted.user;
    if (PQntuples(row->get()) == 1) {
        stored.version = pg_int(row->get(), 0, 0);
        stored.recent =
            detail::failure_times_from(pg_text(row->get(), 0, 1), detail::kMaxStoredFailureTimes);
        stored.locked_until = from_unix_ms(pg_int(row->get(), 0, 2));
    }
    const LoginFailures merged = Directory::merge_failures(stored, noted);
    auto written = writer_.exec(
        "INSERT INTO login_failures(username, version, recent, locked_until) VALUES ($1,$2,$3,$4) "
        "ON CONFLICT (username) DO UPDATE SET version = excluded.version, "
        "recent = excluded.recent, locked_until = excluded.locked_until",
        {merged.user, num(merged.version), detail::failure_times_text(merged.recent),
         num(to_unix_ms(merged.locked_until))},
        "write the login failures");
    if (!written) {
        return unexpected(written.error());
    }
    // The others must reload when the table's lockout changed (the node that locked the user
    // knows, the others would go on checking passwords on their memory: a lockout bypass), and
    // this node when the merge added what it did not know.
    return merged.locked_until != stored.locked_until || merged.recent != noted.recent ||
           merged.locked_until != noted.locked_until;
}

Expected<void, std::string> PgStore::check_chain_from(const ChainEnd& local, const ChainEnd& end) {
    if (local.seq <= 0) {
        return {};  // nothing seen yet: the first load of an empty log
    }
    const auto rewritten = [&local](const std::string& what) {
        return unexpected("the shared audit log no longer leads from record " + num(local.seq) +
                          " (this node's last commit) to its end: " + what +
                          "; the log was rewritten in the database, and this node signs no "
                          "checkpoint over it (nothing is written until an operator looks)");
    };
    if (end.seq < local.seq) {
        return rewritten("it ends at record " + num(end.seq));
    }
    if (end.seq == local.seq) {
        return end.head == local.head ? Expected<void, std::string>{}
                                      : rewritten("record " + num(end.seq) + " changed");
    }
    auto res = writer_.exec(
        "SELECT seq, time, actor, action, scope, outcome, reason, request_id, grant_id, detail, "
        "node, hash FROM audit WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
        {num(local.seq), num(end.seq)}, "read the audit log since this node's last commit");
    if (!res) {
        return unexpected(res.error());
    }
    const std::vector<AuditRecord> since = read_records(res->get());
    if (since.empty() || since.front().seq != local.seq || since.front().hash != local.head) {
        return rewritten("record " + num(local.seq) + " is not the one this node wrote or read");
    }
    ChainHash head = local.head;
    std::int64_t seq = local.seq;
    for (std::size_t i = 1; i < since.size(); ++i) {
        const AuditRecord& r = since[i];
        if (r.seq != seq + 1 || chain_hash(head, r) != r.hash) {
            return rewritten("record " + num(seq + 1) + " is missing or does not chain");
        }
        head = r.hash;
        seq = r.seq;
    }
    if (seq != end.seq || head != end.head) {
        return rewritten("the end row names record " + num(end.seq) +
                         ", which the records do not reach");
    }
    return {};
}

Expected<ChainEnd, std::string> PgStore::append_locked(std::vector<CommitEntry>& entries,
                                                       const ChainEnd& local) {
    auto head = writer_.exec(
        "SELECT version, seq, head, time FROM cluster_state WHERE id = 1 "
        "FOR UPDATE",
        "lock the end of the audit log");
    if (!head) {
        return unexpected(head.error());
    }
    if (PQntuples(head->get()) != 1) {
        return unexpected(std::string("the shared state store has no cluster_state row"));
    }
    const std::int64_t version = pg_int(head->get(), 0, 0);
    ChainEnd end{pg_int(head->get(), 0, 1), hash_from(pg_bytes(PQgetvalue(head->get(), 0, 2))),
                 from_unix_ms(pg_int(head->get(), 0, 3))};
    // Whatever this commit adds (a checkpoint signed in this node's token above all) extends
    // the chain this node committed to before, or nothing is written.
    if (auto ok = check_chain_from(local, end); !ok) {
        return unexpected(ok.error());
    }
    // Decisions made on a state that is behind the cluster's, or while the memory is being
    // replaced by a reload, are refused, alone.
    const bool current = version == known_version_.load() && !reloading_.load();
    bool decided = false;
    for (CommitEntry& e : entries) {
        if (is_decision(*e.mutations)) {
            if (!current) {
                e.refused =
                    "the cluster's state changed meanwhile (another node decided): try again";
                continue;
            }
            decided = true;
            for (const Mutation& m : *e.mutations) {
                // A signature's uses are the shared counter's (spend_claims); a decision's own
                // (authorize_operation) are written upwards.
                if (auto ok = apply(m); !ok) {
                    return unexpected(ok.error());
                }
            }
        }
    }
    auto exhausted = spend_claims(entries);
    if (!exhausted) {
        return unexpected(exhausted.error());
    }
    bool failures_merged = false;
    for (CommitEntry& e : entries) {
        if (!e.refused && !is_decision(*e.mutations)) {
            for (const Mutation& m : *e.mutations) {
                if (std::holds_alternative<GrantUses>(m) && e.claim == 0) {
                    // A record without a claim (a refusal, a checkpoint, a failed signature):
                    // its uses mutation, if any, raises the counter only.
                    if (auto ok = apply(m); !ok) {
                        return unexpected(ok.error());
                    }
                } else if (const auto* f = std::get_if<LoginFailures>(&m)) {
                    auto merged = merge_failures(*f);
                    if (!merged) {
                        return unexpected(merged.error());
                    }
                    failures_merged = failures_merged || *merged;
                }
            }
        }
    }
    end = chain_entries(entries, end, options_.node);
    if (auto ok = apply_tallies(entries); !ok) {
        return unexpected(ok.error());
    }
    if (auto ok = insert_records(entries); !ok) {
        return unexpected(ok.error());
    }
    const bool bump = decided || *exhausted || failures_merged;
    auto moved = writer_.exec(
        "UPDATE cluster_state SET version = version + $1, seq = $2, head = $3, time = $4 "
        "WHERE id = 1",
        {num(bump ? 1 : 0), num(end.seq), pg_bytea(hash_bytes(end.head)),
         num(to_unix_ms(end.time))},
        "move the end of the audit log");
    if (!moved) {
        return unexpected(moved.error());
    }
    if (bump) {
        auto notified = writer_.exec(
            "SELECT pg_notify($1, $2)",
            {std::string(kChannel), options_.node + " " + num(version + 1)}, "announce the change");
        if (!notified) {
            return unexpected(notified.error());
        }
    }
    // This node's memory holds the new version if it held the old one and only its own
    // decisions changed it (a budget spent here may have ended by another node's uses, a
    // failure merged with the others': reload).
    if (decided && current && !*exhausted && !failures_merged) {
        known_version_.store(version + 1);
    }
    return end;
}

Expected<ChainEnd, std::string> PgStore::append(std::vector<CommitEntry>& entries,
                                                const ChainEnd& local) {
    if (options_.read_only) {
        return unexpected(std::string("the shared state store is open read-only"));
    }
    if (auto ok = writer_.ensure(session()); !ok) {
        return unexpected(ok.error());
    }
    auto begun = writer_.exec("BEGIN", "start a transaction");
    if (!begun) {
        writer_.drop();
        return unexpected(begun.error());
    }
    transactions_.fetch_add(1, std::memory_order_relaxed);
    // The checkpoint makers must see the batch's records again if this fails: keep copies.
    std::vector<std::vector<AuditRecord>> originals;
    originals.reserve(entries.size());
    for (const CommitEntry& e : entries) {
        originals.push_back(*e.records);
    }
    auto end = append_locked(entries, local);
    if (end) {
        if (auto committed = writer_.exec("COMMIT", "commit the state and audit log"); committed) {
            return end;
        } else {
            end = unexpected(committed.error());
        }
    }
    if (!writer_.exec("ROLLBACK", "roll back")) {
        writer_.drop();
    }
    // Whether a lost COMMIT took effect is not known here: the memory is reloaded before the
    // next decision.
    known_version_.store(-1);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        *entries[i].records = std::move(originals[i]);
    }
    return end;
}

Expected<void, std::string> PgStore::commit(const std::vector<Mutation>& mutations,
                                            const std::vector<AuditRecord>& records) {
    // Records numbered by a caller cannot join a chain that other nodes extend: everything
    // goes through append(). A direct commit is for state without records.
    if (!records.empty()) {
        return unexpected(std::string("the shared store numbers its records itself (append)"));
    }
    std::vector<Mutation> copy = mutations;
    std::vector<AuditRecord> none;
    std::vector<CommitEntry> entries(1);
    entries[0].mutations = &copy;
    entries[0].records = &none;
    auto end = append(entries, {});
    if (!end) {
        return unexpected(end.error());
    }
    if (entries[0].refused) {
        return unexpected(*entries[0].refused);
    }
    return {};
}

std::vector<AuditRecord> PgStore::read_records(const PGresult* r) {
    std::vector<AuditRecord> out;
    out.reserve(static_cast<std::size_t>(PQntuples(r)));
    for (int i = 0; i < PQntuples(r); ++i) {
        AuditRecord a;
        a.seq = pg_int(r, i, 0);
        a.time = from_unix_ms(pg_int(r, i, 1));
        a.actor = pg_text(r, i, 2);
        a.action = pg_text(r, i, 3);
        a.scope = pg_text(r, i, 4);
        a.outcome = pg_text(r, i, 5);
        a.reason = pg_text(r, i, 6);
        a.request_id = pg_int(r, i, 7);
        a.grant_id = pg_int(r, i, 8);
        a.detail = pg_text(r, i, 9);
        a.node = pg_text(r, i, 10);
        a.hash = hash_from(pg_bytes(PQgetvalue(r, i, 11)));
        out.push_back(std::move(a));
    }
    return out;
}

Expected<std::vector<AuditRecord>, std::string> PgStore::audit_records(std::int64_t from,
                                                                       std::int64_t limit) {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto ok = reader_.ensure(); !ok) {
        return unexpected(ok.error());
    }
    auto res = reader_.exec(
        "SELECT seq, time, actor, action, scope, outcome, reason, request_id, grant_id, detail, "
        "node, hash FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
        {num(from), num(limit)}, "read the audit log");
    if (!res) {
        return unexpected(res.error());
    }
    return read_records(res->get());
}

Expected<SigningHours, std::string> PgStore::signing_hours(std::int64_t from, std::int64_t until,
                                                           const std::string& domain,
                                                           std::size_t limit) {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto ok = reader_.ensure(); !ok) {
        return unexpected(ok.error());
    }
    SigningHours out;
    auto since = reader_.exec("SELECT value FROM dkim_meta WHERE key = 'signing_hours_since'",
                              "read the signing summary");
    if (!since) {
        return unexpected(since.error());
    }
    if (PQntuples(since->get()) == 1) {
        out.counted_since = from_unix_ms(pg_int(since->get(), 0, 0));
    }
    const std::string capped = num(static_cast<std::int64_t>(
        std::min<std::size_t>(limit, static_cast<std::size_t>(INT64_MAX))));
    auto res = domain.empty()
                   ? reader_.exec(
                         "SELECT domain, selector, hour, signatures, refusals FROM signing_hours "
                         "WHERE hour >= $1 AND hour < $2 AND (signatures != 0 OR refusals != 0) "
                         "ORDER BY hour LIMIT $3",
                         {num(from), num(until), capped}, "read the signing summary")
                   : reader_.exec(
                         "SELECT domain, selector, hour, signatures, refusals FROM signing_hours "
                         "WHERE domain = $1 AND hour >= $2 AND hour < $3 "
                         "AND (signatures != 0 OR refusals != 0) ORDER BY hour LIMIT $4",
                         {domain, num(from), num(until), capped}, "read the signing summary");
    if (!res) {
        return unexpected(res.error());
    }
    for (int i = 0; i < PQntuples(res->get()); ++i) {
        const PGresult* r = res->get();
        out.rows.push_back({pg_text(r, i, 0), pg_text(r, i, 1), pg_int(r, i, 2), pg_int(r, i, 3),
                            pg_int(r, i, 4)});
    }
    std::sort(out.rows.begin(), out.rows.end(), [](const SigningHour& a, const SigningHour& b) {
        return std::tie(a.domain, a.selector, a.hour) < std::tie(b.domain, b.selector, b.hour);
    });
    return out;
}

Expected<bool, std::string> PgStore::lock_decisions() {
    std::lock_guard<std::mutex> lock(locker_mutex_);
    if (auto ok = locker_.ensure(session()); !ok) {
        return unexpected(ok.error());
    }
    if (!holds_decision_lock_) {
        // Waits lock_timeout_ms at most (the session's setting): a node stuck inside a
        // decision, or any session of the role holding this lock, delays the others'
        // decisions by that much and fails them, never fences them.
        auto locked = locker_.exec("BEGIN", "take the cluster's decision lock");
        if (locked) {
            locked = locker_.exec(kDecisionLock, "take the cluster's decision lock");
        }
        if (!locked) {
            locker_.drop();
            return unexpected(locked.error());
        }
        holds_decision_lock_ = true;
    }
    auto version = read_version(locker_);
    if (!version) {
        holds_decision_lock_ = false;
        locker_.drop();  // the server releases the lock with the session
        return unexpected(version.error());
    }
    return *version != known_version_.load();
}

void PgStore::unlock_decisions() {
    std::lock_guard<std::mutex> lock(locker_mutex_);
    if (holds_decision_lock_) {
        holds_decision_lock_ = false;
        if (!locker_.exec(kDecisionUnlock, "release the cluster's decision lock")) {
            locker_.drop();  // the server releases it with the session
        }
    }
}

Expected<bool, std::string> PgStore::wait_for_change(std::chrono::milliseconds timeout) {
    const std::string listen = std::string("LISTEN ") + kChannel;
    if (!listener_.connected()) {
        if (auto ok = listener_.ensure(listen.c_str()); !ok) {
            return unexpected(ok.error());
        }
        // Notifications sent while this node was not listening are lost: read the version now.
    } else {
        pollfd fd{PQsocket(listener_.raw()), POLLIN, 0};
        bool notified = false;
        if (PQconsumeInput(listener_.raw()) == 1) {
            while (PGnotify* n = PQnotifies(listener_.raw())) {
                notified = true;
                PQfreemem(n);
            }
        }
        if (!notified && fd.fd >= 0) {
            (void)::poll(&fd, 1, static_cast<int>(timeout.count()));
            if (PQconsumeInput(listener_.raw()) != 1) {
                listener_.drop();
                return unexpected(std::string("lost the connection to PostgreSQL"));
            }
            while (PGnotify* n = PQnotifies(listener_.raw())) {
                PQfreemem(n);
            }
        }
    }
    auto version = read_version(listener_);
    if (!version) {
        listener_.drop();
        return unexpected(version.error());
    }
    return *version != known_version_.load();
}

Expected<void, std::string> PgStore::heartbeat(const NodeStatus& s) {
    if (auto ok = listener_.ensure((std::string("LISTEN ") + kChannel).c_str()); !ok) {
        return ok;
    }
    auto res = listener_.exec(
        "INSERT INTO nodes(name, version, started, last_seen, token, grants, selectors, records, "
        "attestation) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (name) DO UPDATE SET "
        "version = excluded.version, started = excluded.started, last_seen = excluded.last_seen, "
        "token = excluded.token, grants = excluded.grants, selectors = excluded.selectors, "
        "records = excluded.records, attestation = excluded.attestation",
        {options_.node, s.version, num(to_unix_ms(s.started)), num(to_unix_ms(s.last_seen)),
         s.token, num(s.grants), s.selectors, s.records, crypto::base64_encode(s.attestation)},
        "register the node");
    if (!res) {
        listener_.drop();
        return unexpected(res.error());
    }
    return {};
}

Expected<std::vector<NodeStatus>, std::string> PgStore::nodes() {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto ok = reader_.ensure(); !ok) {
        return unexpected(ok.error());
    }
    auto res = reader_.exec(
        "SELECT name, version, started, last_seen, token, grants, selectors, records, attestation "
        "FROM nodes ORDER BY name",
        "read the nodes");
    if (!res) {
        return unexpected(res.error());
    }
    std::vector<NodeStatus> out;
    for (int i = 0; i < PQntuples(res->get()); ++i) {
        const PGresult* r = res->get();
        out.push_back({pg_text(r, i, 0), pg_text(r, i, 1), from_unix_ms(pg_int(r, i, 2)),
                       from_unix_ms(pg_int(r, i, 3)), pg_text(r, i, 4), pg_int(r, i, 5),
                       pg_text(r, i, 6), pg_text(r, i, 7),
                       crypto::base64_decode(pg_text(r, i, 8)).value_or(std::string())});
    }
    return out;
}

Expected<std::vector<std::pair<std::string, KeyRecord>>, std::string> PgStore::all_keys() {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    if (auto ok = reader_.ensure(); !ok) {
        return unexpected(ok.error());
    }
    auto res = reader_.exec(
        "SELECT node, domain, selector, algorithm, state, origin, created, activated, "
        "retiring_since, retire_after, retired, dkim_record FROM keys "
        "ORDER BY node, domain, selector",
        "read the keys' lifecycle");
    if (!res) {
        return unexpected(res.error());
    }
    std::vector<std::pair<std::string, KeyRecord>> out;
    for (int i = 0; i < PQntuples(res->get()); ++i) {
        const PGresult* r = res->get();
        KeyRecord k;
        k.domain = pg_text(r, i, 1);
        k.selector = pg_text(r, i, 2);
        k.algorithm = pg_text(r, i, 3);
        k.state = parse_key_state(pg_text(r, i, 4)).value_or(KeyState::retired);
        k.origin = pg_text(r, i, 5);
        k.created = from_unix_ms(pg_int(r, i, 6));
        k.activated = time_or_null(r, i, 7);
        k.retiring_since = time_or_null(r, i, 8);
        k.retire_after = time_or_null(r, i, 9);
        k.retired = time_or_null(r, i, 10);
        k.dkim_record = pg_text(r, i, 11);
        out.emplace_back(pg_text(r, i, 0), std::move(k));
    }
    return out;
}

}  // namespace

bool valid_node_name(const std::string& name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

Expected<std::unique_ptr<SharedStore>, std::string> open_postgres_store(PostgresOptions options) {
    if (!valid_node_name(options.node)) {
        return unexpected(std::string(
            "the node name must be 1 to 64 letters, digits, dots, dashes or underscores"));
    }
    auto store = std::make_unique<PgStore>(std::move(options));
    if (auto opened = store->open(); !opened) {
        return unexpected(opened.error());
    }
    return std::unique_ptr<SharedStore>(std::move(store));
}

}  // namespace dkim::jit

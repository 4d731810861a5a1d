// The rows the SQLite store writes: one INSERT (or UPDATE) per kind of mutation, and the audit
// record's row, each through the connection's cached statements.

#include <sqlite3.h>

#include <string>

#include "sqlite_connection.hpp"
#include "store_text.hpp"

namespace dkim::jit::detail {
namespace {

std::string hash_text(const ChainHash& h) {
    return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

bool done(Statement* s) {
    return s != nullptr && s->step() == SQLITE_DONE;
}

}  // namespace

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
        "decision_reason, decided_at, break_glass, filed_by_signer, superseded_by, renews) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
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
    s->bind(r.renews);
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
        "end_recorded, exhausted_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(id) DO UPDATE SET uses = MAX(uses, excluded.uses), "
        "revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by, "
        "revoke_reason = excluded.revoke_reason, end_recorded = excluded.end_recorded, "
        "exhausted_at = COALESCE(exhausted_at, excluded.exhausted_at)");
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
    if (g.exhausted_at) {
        s->bind(to_unix_ms(*g.exhausted_at));
    } else {
        s->bind_null();
    }
    return done(s);
}

bool SqliteConnection::apply(const GrantUses& g) {
    Statement* s = statement(
        "UPDATE grants SET uses = MAX(uses, ?), exhausted_at = COALESCE(exhausted_at, ?) "
        "WHERE id = ?");
    if (s == nullptr) {
        return false;
    }
    s->bind(static_cast<std::int64_t>(g.uses));
    if (g.exhausted_at) {
        s->bind(to_unix_ms(*g.exhausted_at));
    } else {
        s->bind_null();
    }
    s->bind(g.grant_id);
    return done(s);
}

bool SqliteConnection::apply(const SigningTally& t) {
    Statement* s = statement(
        "INSERT INTO signing_hours(hour, domain, selector, signatures, refusals) "
        "VALUES (?,?,?,?,?) ON CONFLICT(hour, domain, selector) DO UPDATE SET "
        "signatures = signatures + excluded.signatures, refusals = refusals + excluded.refusals");
    if (s == nullptr || !t.hour) {
        return false;
    }
    s->bind(*t.hour).bind(t.domain).bind(t.selector).bind(t.signatures).bind(t.refusals);
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

bool SqliteConnection::apply(const Passkey& p) {
    if (p.removed) {
        Statement* s = statement("DELETE FROM passkeys WHERE credential_id = ?");
        if (s == nullptr) {
            return false;
        }
        s->bind_blob(p.credential_id);
        return done(s);
    }
    // The counter only grows here too: two writes landing out of order keep the higher.
    Statement* s = statement(
        "INSERT INTO passkeys(credential_id, user, name, public_key, algorithm, sign_count, "
        "backup_eligible, created, last_used, confirmed) VALUES (?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(credential_id) DO UPDATE SET name = excluded.name, "
        "sign_count = max(sign_count, excluded.sign_count), last_used = excluded.last_used, "
        "confirmed = excluded.confirmed WHERE user = excluded.user");
    if (s == nullptr) {
        return false;
    }
    s->bind_blob(p.credential_id).bind(p.user).bind(p.name).bind_blob(p.public_key);
    s->bind(p.algorithm).bind(static_cast<std::int64_t>(p.sign_count));
    s->bind(std::int64_t{p.backup_eligible ? 1 : 0}).bind(to_unix_ms(p.created));
    if (p.last_used) {
        s->bind(to_unix_ms(*p.last_used));
    } else {
        s->bind_null();
    }
    s->bind(std::int64_t{p.confirmed ? 1 : 0});
    return done(s);
}

bool SqliteConnection::apply(const ClusterRotation& c) {
    Statement* s = statement(
        "INSERT OR REPLACE INTO cluster_rotations(domain, kind, algorithm, selector, grace_s, "
        "phase, requested_by, started, updated, checked) VALUES (?,?,?,?,?,?,?,?,?,?)");
    if (s == nullptr) {
        return false;
    }
    s->bind(c.domain).bind(c.kind).bind(c.algorithm).bind(c.selector).bind(c.grace_s);
    s->bind(to_string(c.phase)).bind(c.requested_by).bind(to_unix_ms(c.started));
    s->bind(to_unix_ms(c.updated)).bind(c.checked);
    return done(s);
}

bool SqliteConnection::apply(const PinShareSet& set) {
    const std::string holders = share_holders_text(set);
    Statement* s = statement(
        "INSERT INTO pin_share_set(id, set_id, threshold, holders, created, created_by) "
        "VALUES (1,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET set_id = excluded.set_id, "
        "threshold = excluded.threshold, holders = excluded.holders, created = excluded.created, "
        "created_by = excluded.created_by");
    if (s == nullptr) {
        return false;
    }
    s->bind(set.set_id).bind(static_cast<std::int64_t>(set.threshold)).bind(holders);
    s->bind(to_unix_ms(set.created)).bind(set.created_by);
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

}  // namespace dkim::jit::detail

#pragma once
// The tamper-evident audit log: an append-only sequence of records, each hash-chained to
// the one before (SHA-256 over a canonical encoding), and signed checkpoints of the chain
// head that are themselves records of the chain. verify_chain() walks the chain and reports
// the first record that breaks it: an edited, deleted, inserted or reordered record, or a
// log that ends before an anchor exported from it. verify_log() adds what the log itself
// says must exist (the checkpoint rules below) and checks the checkpoints' signatures.
//
//   hash(n) = SHA-256( "dkim-audit-v1" || hash(n-1) || enc(seq) || enc(time) || enc(actor)
//                      || enc(action) || enc(scope) || enc(outcome) || enc(reason)
//                      || enc(request) || enc(grant) || enc(detail) )
//   hash(0) = 32 zero bytes; enc(x) = 4-byte big-endian length || bytes, integers in decimal.
//
// A checkpoint is the record (actor "signerd", action "audit.checkpoint") at seq n + 1 that
// carries, in its detail, n and hash(n) and the audit key's signature over them (with its
// time, its kind, the interval signerd promises for the next one and, for a recovery, the
// unclean end it recovers from): it covers records 1..n.
// The rules (verify_log):
//   1. A checkpoint covers exactly the record before it, and its signature is valid.
//   2. Every `token.logout` record directly follows a signed checkpoint of kind "logout": the
//      records of a login session are covered when it ends. (When that checkpoint cannot be
//      signed, signerd still logs out, and the failed checkpoint record says why: broken.)
//   3. While the token is logged in, checkpoints come at least every `every_ms` or
//      `every_records` (whichever first, as the last checkpoint or login record declared).
//   4. Every record is covered by a later valid checkpoint, except the tail after the last
//      one: records written while the token was logged out (nothing can sign them until the
//      next login), and, while the log says the token is logged in, the records of the
//      current interval (reported as "not yet covered", with their number). A tail that
//      holds the end of a login session without its [checkpoint, token.logout] is broken:
//      signerd stopped without logging out (a crash), or the log was cut.
//   5. An unclean end (a `signerd.start` while the log says the token is logged in: the
//      session before it has no token.logout) is broken until a later signed checkpoint
//      covers that start record. A crash looks exactly like a cut after any record followed
//      by a copied start record; only the audit key can tell them apart: at its first login
//      after an unclean end, signerd writes a signed checkpoint of kind "recovery" that names
//      the start record (`crash=`), so an honest crash is covered at once and named, and a
//      forged one stays uncovered. A recovery checkpoint must name an uncovered unclean end.
//   6. Record times never decrease along the chain (the journal keeps them in commit order),
//      and no record is dated more than `clock_skew` after the verifier's clock: a login
//      dated in the future cannot stretch the "not yet covered" interval of rule 3.
// Checkpoints in the `checkpoints` table (written by earlier versions, outside the chain)
// are still matched against the chain and, when signed, count as coverage for old logs.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dkim/clock.hpp"

namespace dkim::jit {

using ChainHash = std::array<std::uint8_t, 32>;

struct AuditRecord {
    std::int64_t seq = 0;  // 1, 2, 3, ...; assigned by the journal
    TimePoint time;
    std::string actor;    // "alice", "service:relay", "signerd", "local:root"
    std::string action;   // "sign", "elevation.request", "grant.revoke", ...
    std::string scope;    // Scope::to_string(), or ""
    std::string outcome;  // "ok", "refused", "locked", "failed", "alert"
    std::string reason;
    std::int64_t request_id = 0;
    std::int64_t grant_id = 0;
    std::string detail;  // action-specific, e.g. "a=rsa-sha256 h=<sha256 of header block>"
    // The cluster node that wrote it (several signerd sharing one PostgreSQL log); empty on a
    // single appliance. Hashed only when set, so that a single node's log hashes as before.
    std::string node;
    ChainHash hash{};  // assigned by the journal
};

std::string canonical_encoding(const AuditRecord& record);
ChainHash chain_hash(const ChainHash& previous, const AuditRecord& record);

// A signed statement "the log had `seq` records and its head was `head`".
struct Checkpoint {
    std::int64_t seq = 0;
    ChainHash head{};
    TimePoint time;
    std::string key_label;  // the token key that signed it
    std::string algorithm;  // "ed25519-sha256" / "rsa-sha256"
    std::string signature;  // raw bytes; empty when the token was not logged in
    // In-chain checkpoints (empty kind: a table checkpoint of an earlier version, signed over
    // the v1 message). "periodic" or "logout" (taken just before the token logs out).
    std::string kind;
    std::int64_t every_ms = 0;       // the next checkpoint is due within this time
    std::int64_t every_records = 0;  // or within this many records, whichever first
    // Kind "recovery": the signerd.start record that ended a login session without a
    // token.logout (an unclean end), which this checkpoint is the first to cover.
    std::int64_t crash = 0;
    // The cluster node whose token signed it (its record's node; not part of the message).
    std::string node;
};
// The bytes a checkpoint signature covers: v1 (seq, head, time) for table checkpoints, v2
// (also kind, every_ms, every_records, and crash for a recovery) for in-chain ones.
std::string checkpoint_message(const Checkpoint& checkpoint);
// The bytes a cluster node signs with its audit key over its registry row's DNS records (its
// token's keys, "domain selector record" lines), so that the other nodes can tell its row from
// one a database writer made. Its own prefix: never the bytes of a checkpoint.
std::string node_records_message(std::string_view node, std::string_view records);

inline constexpr std::string_view kCheckpointAction = "audit.checkpoint";
inline constexpr std::string_view kCheckpointPeriodic = "periodic";
inline constexpr std::string_view kCheckpointLogout = "logout";
inline constexpr std::string_view kCheckpointRecovery = "recovery";

// The record that carries `c` (time, seq and hash are set by the journal / the caller). A
// checkpoint that could not be signed is written too, with outcome "failed" and `why`.
AuditRecord checkpoint_record(const Checkpoint& c, const std::string& why = {});
// The checkpoint a record carries; nullopt if it is not a well-formed checkpoint record. Its
// time is the record's time.
std::optional<Checkpoint> parse_checkpoint_record(const AuditRecord& record);
// "checkpoint every=<ms>ms,<n>records", in token.login records: the interval of the session.
std::string checkpoint_interval_detail(std::int64_t every_ms, std::int64_t every_records);

struct ChainReport {
    bool ok = true;
    std::int64_t records = 0;       // records walked
    std::int64_t first_broken = 0;  // seq (or position) of the first bad record; 0 if ok
    std::string problem;            // human-readable, names the record
    std::int64_t checkpoints_checked = 0;
};

// `records` in storage order (by seq). `checkpoints` are matched against the chain: each must
// name a seq that exists and whose hash equals its head. Signatures are checked by the caller
// (they need the token's public key).
ChainReport verify_chain(const std::vector<AuditRecord>& records,
                         const std::vector<Checkpoint>& checkpoints);

struct LogCheckOptions {
    // Checks a checkpoint's signature with the audit key; empty: signatures are not checked
    // (the rules are checked on the records as they are, and the report says so).
    std::function<bool(const Checkpoint&)> signature_valid;
    // The verifier's clock, for the age of a logged-in tail.
    TimePoint now;
    // Slack over the declared interval: signerd's tick (1 s), the token's signature and the
    // commit's fsync, with a margin for a loaded machine.
    Duration grace = std::chrono::seconds(10);
    // How far a record may be dated after `now`: the DKIM signing profile's t= skew. An
    // NTP-synchronised appliance is milliseconds off; an export verified elsewhere, or a clock
    // stepped back a little, stays well inside; a forged record dated ahead does not.
    Duration clock_skew = std::chrono::minutes(5);
    // A session without a declared interval (a log of an earlier version).
    std::int64_t default_every_ms = 300'000;  // 5 minutes
    std::int64_t default_every_records = 10'000;
};

struct LogReport {
    ChainReport chain;                    // ok, records, first_broken, problem
    std::int64_t checkpoints = 0;         // checkpoint records in the chain
    std::int64_t signatures_valid = 0;    // of those and of table checkpoints
    bool signatures_checked = false;      // signature_valid was given
    std::int64_t table_checkpoints = 0;   // matched table checkpoints (earlier versions)
    std::int64_t failed_checkpoints = 0;  // "failed" checkpoint records (reasons in the log)
    std::int64_t covered_through = 0;     // records 1..covered_through are covered
    std::int64_t uncovered = 0;           // records after covered_through
    bool logged_in = false;               // the log ends with the token logged in
    std::string tail;                     // what the uncovered tail is, when ok
    // The signerd.start records of unclean ends (rule 5) that a later signed checkpoint covers.
    std::vector<std::int64_t> unclean_ends;
    // The token.logout records of cluster nodes cut off from the shared store (they logged out
    // after their lease without a checkpoint: unclean ends too, by rule 5) that a later signed
    // checkpoint covers.
    std::vector<std::int64_t> cut_off_ends;
};

// verify_chain over `records` and `anchors` (table checkpoints and an export's anchors),
// then the checkpoint rules above, with the signatures of the in-chain checkpoints and of
// the signed table checkpoints in `table`.
LogReport verify_log(const std::vector<AuditRecord>& records, const std::vector<Checkpoint>& table,
                     const std::vector<Checkpoint>& anchors, const LogCheckOptions& options);

// What signerd must know when it starts, from the end of the log: whether the log ends
// inside a login session (no token.logout: this start is an unclean end), and the first
// earlier unclean end that no signed checkpoint covers yet. The records the state depends on
// are lifecycle records (is_lifecycle_record) after the last signed checkpoint: `tail` holds
// them in order, beginning with that checkpoint when the log has one.
struct LogEnd {
    bool logged_in = false;
    std::int64_t login = 0;        // the token.login of that session (0: before `tail`)
    std::int64_t unrecovered = 0;  // the start record of the first uncovered unclean end
};
bool is_lifecycle_record(const AuditRecord& record);
// A cluster node's token.logout written after it was cut off from the shared store: it logged
// out without the checkpoint it could not write. Like a crash's signerd.start, it ends its
// session uncleanly: a later signed checkpoint (its recovery checkpoint at the next login, or
// any node's checkpoint) must cover it, or `audit verify` reports it. A writer who appends one
// after a cut therefore hides nothing.
bool is_fenced_logout(const AuditRecord& record);

// Every signature issued under a grant that a decision earlier in the log made (an approval that
// completed its quorum, an auto-approval or a break-glass record naming the grant): the first
// "sign" record (outcome "issued") without one, or 0. A grant row written into the store by
// hand (a database writer; several nodes share theirs) signs, and this names it afterwards.
std::int64_t first_signature_without_decision(const std::vector<AuditRecord>& records);
// The same, and more, with the reason: a signature under a grant that a decision made for
// another scope than the one the signature record names (the grant row was widened), or, in a
// cluster's log (records with a node), one under a grant after the log's grant.revoke of it
// (the row was revived: the shared counter refuses a revoked grant in the transaction that
// chains the signature, so an honest log has none).
struct SignatureFinding {
    std::int64_t seq = 0;  // 0: none
    std::string problem;
};
SignatureFinding first_unauthorized_signature(const std::vector<AuditRecord>& records);
LogEnd log_end(const std::vector<AuditRecord>& tail);

std::string to_hex(const ChainHash& hash);
std::optional<ChainHash> chain_hash_from_hex(std::string_view hex);

}  // namespace dkim::jit

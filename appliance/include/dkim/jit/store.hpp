#pragma once
// Durable state of signerd: users, API-token hashes, passkeys (public keys and counters), the PIN
// share set's holders and commitments, elevation
// requests and approvals, grants with their use counters, the DKIM keys' lifecycle, the audit log
// and its checkpoints, and the signing summary (signatures and refusals per domain, selector and
// hour). One commit is one transaction that is durable (fsync'd) before it returns: a state change
// and the audit records that describe it land together or not at all.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/keys.hpp"
#include "dkim/jit/model.hpp"

namespace dkim::jit {

// Raises a grant's persisted use counter to `uses` (never lowers it); with exhausted_at (the use
// that spent its budget), records when the grant ended so (kept once set).
struct GrantUses {
    std::int64_t grant_id = 0;
    std::uint64_t uses = 0;
    std::optional<TimePoint> exhausted_at;
};

// The signing summary: how many signatures signerd issued, and how many sign requests it
// refused, per domain, selector and hour. dkim-reportd (issue 21) joins it with the DMARC and
// TLS reports: receivers that saw more DKIM passes of a selector in an hour than were signed in
// it and in the x= lifetime before it saw a replay.
//
// Why a table of its own, kept in the same commit, and not a query over the audit log: the audit
// table is indexed by seq only, holds records of every kind (a busy relay writes millions of
// sign records a day), and a sign record's scope is the grant's (often selector *), so a year
// of hours would scan and parse the whole log. Instead each audit record that the summary
// counts travels with a SigningTally in the same journal ticket (Authority: begin_signature,
// record_signature, record_sign_refusal, the locked records of authorize_sign), and the store
// applies both in one transaction: after a crash or a failed commit both are there or neither
// (a signature withheld because its record could not be written is not counted). The journal
// dates each tally with the time it gave the record (times never decrease along the chain), so
// the hour of a count is the hour of its record, and recounting the log gives the same numbers
// (SummaryServiceTest.TheSummaryIsARecountOfTheAuditLog): every sign record the summary counts
// names its key in its detail ("d=<domain>; s=<selector>"); "issued" counts a signature in its
// hour, "refused" and "locked" a refusal, and "failed" takes back the signature of the "issued"
// record of the same grant and use, in that record's hour. The table is derived data, like the
// grants' use counters, and not part of the hash chain: the log stays the evidence, the summary
// is its index by key and hour, bounded by keys x hours (refusals are counted only for keys
// signerd knows, so a relay cannot fill it with names of its choosing).
struct SigningTally {
    std::string domain;  // lower case
    std::string selector;
    // The start of the hour (unix seconds, a multiple of 3600). Unset: the journal sets it from
    // the time of the ticket's first record as it commits it (a tally travels with its record).
    std::optional<std::int64_t> hour;
    std::int64_t signatures = 0;  // +1: issued; -1: the token failed after the "issued" record
    std::int64_t refusals = 0;    // +1: a sign request refused (the profile, the key) or locked
};

// The start (unix seconds) of the hour that holds `t`.
inline std::int64_t signing_hour(TimePoint t) {
    return std::chrono::floor<std::chrono::hours>(t).time_since_epoch().count() * 3600;
}

// One row of the summary.
struct SigningHour {
    std::string domain;
    std::string selector;
    std::int64_t hour = 0;  // unix seconds, a multiple of 3600
    std::int64_t signatures = 0;
    std::int64_t refusals = 0;
};

struct SigningHours {
    std::vector<SigningHour> rows;  // by domain, selector, hour
    // The summary counts what was signed and refused from this time on: 0 for a store created
    // with it, the time of the last audit record for a store that an upgrade gave it (what came
    // before was not counted).
    TimePoint counted_since;
};

// A user's recent authentication failures (password and TOTP codes count together) and the
// lockout they caused, kept so that a restart lifts no lockout. `version` grows with every
// change: the store keeps the highest, so two writes that land out of order cannot bring an
// older state back. Only existing users have one (unknown names are never tracked).
struct LoginFailures {
    std::string user;
    std::int64_t version = 0;
    // The times of the failures counted since the last lockout, oldest first; the directory
    // keeps the last Directory::kMaxFailures (a sliding window: the user is locked when the
    // oldest of them is less than the window old).
    std::vector<TimePoint> recent;
    TimePoint locked_until;  // no password or TOTP code is accepted before this
};

using Mutation = std::variant<User, ApiToken, Request, Grant, GrantUses, Checkpoint, KeyRecord,
                              LoginFailures, SigningTally, Passkey, PinShareSet, ClusterRotation>;

struct StoredState {
    std::vector<User> users;
    std::vector<ApiToken> tokens;
    std::vector<Request> requests;  // with their approvals
    std::vector<Grant> grants;
    std::vector<KeyRecord> keys;
    std::vector<ClusterRotation> rotations;  // a cluster's (keys.hpp)
    std::vector<LoginFailures> login_failures;
    std::vector<Passkey> passkeys;
    std::optional<PinShareSet> pin_share_set;  // PIN custody "shares": the current split
    std::int64_t audit_seq = 0;                // records in the log
    ChainHash audit_head{};                    // hash of the last record
    std::int64_t version = 0;  // a shared store's state version (SharedStore::adopt)
};

// The end of the audit log: the last record's number, hash and time.
struct ChainEnd {
    std::int64_t seq = 0;
    ChainHash head{};
    TimePoint time{};
};

// Makes a checkpoint record from the end of the log just before it (journal.hpp).
using CheckpointMaker =
    std::function<AuditRecord(std::int64_t seq, const ChainHash& head, TimePoint not_before)>;

// One writer's part of a group commit (a Journal ticket, as the store sees it).
struct CommitEntry {
    std::vector<Mutation>* mutations = nullptr;
    std::vector<AuditRecord>* records = nullptr;  // numbered and hashed by chain_entries
    CheckpointMaker* make = nullptr;              // a checkpoint record first, if set
    // A signature's use of this grant (0: none). A store shared by several nodes spends it in
    // the shared counter and refuses the entry when the grant has ended there (revoked, expired,
    // budget spent by another node); a store of one node has nothing to add to the
    // authority's own check.
    std::int64_t claim = 0;
    TimePoint claim_at{};
    // Set by the store when this entry, alone, was not committed: why. Its records are then
    // not in the log and its writer must not act on them (fail closed).
    std::optional<std::string> refused;
};

// Numbers and chains the records of the entries that are not refused, after `end` and in
// order: a checkpoint maker's record first, times never decreasing along the chain, a signing
// tally without an hour dated with its entry's first record. Returns the new end. `node`, when
// not empty, is written into each record (a cluster's records name their node).
ChainEnd chain_entries(std::vector<CommitEntry>& entries, ChainEnd end, const std::string& node);

class Store {
  public:
    virtual ~Store() = default;
    virtual Expected<StoredState, std::string> load() = 0;
    // Applies the mutations and appends the records (already numbered and hashed) in one
    // durable transaction.
    virtual Expected<void, std::string> commit(const std::vector<Mutation>& mutations,
                                               const std::vector<AuditRecord>& records) = 0;
    // The journal's group commit: chains the entries' records after the end of the log (as the
    // store holds it inside the transaction: `local`, the journal's own end, for a store only
    // this process writes) and commits them with the mutations in one durable transaction.
    // Returns the new end. An entry the store refuses alone is marked (CommitEntry::refused);
    // an error means nothing of the batch was kept.
    virtual Expected<ChainEnd, std::string> append(std::vector<CommitEntry>& entries,
                                                   const ChainEnd& local);
    // Records with seq in [from, from + limit), in order.
    virtual Expected<std::vector<AuditRecord>, std::string> audit_records(std::int64_t from,
                                                                          std::int64_t limit) = 0;
    virtual Expected<std::vector<Checkpoint>, std::string> checkpoints() = 0;
    // The summary's rows of `domain` (empty: every domain) whose hour starts in [from, until)
    // (unix seconds): the first `limit` of them by hour (ask for one more than you accept to
    // tell whether there are more), sorted by domain, selector and hour.
    virtual Expected<SigningHours, std::string> signing_hours(std::int64_t from, std::int64_t until,
                                                              const std::string& domain,
                                                              std::size_t limit) = 0;
};

struct SqliteOptions {
    bool read_only = false;  // for `audit verify` next to a running signerd
    bool create = true;      // create the schema when the file is new
};

// "<state_dir>/signerd.db", in WAL mode with synchronous=FULL.
Expected<std::unique_ptr<Store>, std::string> open_sqlite_store(const std::filesystem::path& file,
                                                                SqliteOptions options = {});

}  // namespace dkim::jit

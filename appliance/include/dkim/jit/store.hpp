#pragma once
// Durable state of signerd: users, API-token hashes, elevation requests and approvals,
// grants with their use counters, the DKIM keys' lifecycle, the audit log and its checkpoints. One
// commit is one transaction that is durable (fsync'd) before it returns: a state change and the
// audit records that describe it land together or not at all.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/keys.hpp"
#include "dkim/jit/model.hpp"

namespace dkim::jit {

// Raises a grant's persisted use counter to `uses` (never lowers it).
struct GrantUses {
    std::int64_t grant_id = 0;
    std::uint64_t uses = 0;
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

using Mutation =
    std::variant<User, ApiToken, Request, Grant, GrantUses, Checkpoint, KeyRecord, LoginFailures>;

struct StoredState {
    std::vector<User> users;
    std::vector<ApiToken> tokens;
    std::vector<Request> requests;  // with their approvals
    std::vector<Grant> grants;
    std::vector<KeyRecord> keys;
    std::vector<LoginFailures> login_failures;
    std::int64_t audit_seq = 0;  // records in the log
    ChainHash audit_head{};      // hash of the last record
};

class Store {
  public:
    virtual ~Store() = default;
    virtual Expected<StoredState, std::string> load() = 0;
    // Applies the mutations and appends the records (already numbered and hashed) in one
    // durable transaction.
    virtual Expected<void, std::string> commit(const std::vector<Mutation>& mutations,
                                               const std::vector<AuditRecord>& records) = 0;
    // Records with seq in [from, from + limit), in order.
    virtual Expected<std::vector<AuditRecord>, std::string> audit_records(std::int64_t from,
                                                                          std::int64_t limit) = 0;
    virtual Expected<std::vector<Checkpoint>, std::string> checkpoints() = 0;
};

struct SqliteOptions {
    bool read_only = false;  // for `audit verify` next to a running signerd
    bool create = true;      // create the schema when the file is new
};

// "<state_dir>/signerd.db", in WAL mode with synchronous=FULL.
Expected<std::unique_ptr<Store>, std::string> open_sqlite_store(const std::filesystem::path& file,
                                                                SqliteOptions options = {});

}  // namespace dkim::jit

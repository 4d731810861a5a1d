#pragma once
// The state store that several appliances share: PostgreSQL (libpq). Each node's signerd keeps
// the state in memory as on a single appliance and stays in step with the others through the
// database:
//
// - One audit chain. Every transaction that writes the log locks the end of the chain (one row)
//   first, numbers and hashes its records after the end it finds there, and moves the end: the
//   records of all nodes form one totally ordered chain, and a node's group commit batches its
//   concurrent writers into one such transaction.
// - Decisions are serialisable. Every decision (anything but a signature's use and tally) is
//   taken by a node whose state is the cluster's latest: the commit checks, under the chain's
//   lock, that the cluster's state version is the one this node last loaded or wrote, and bumps
//   it; a node that is behind gets its entry refused (CommitEntry::refused), reloads and decides
//   again. An advisory lock (lock_decisions) keeps nodes from deciding at the same moment, so
//   that such refusals are rare; the version check, not the lock, is what makes it safe (a lock
//   lost with its connection lets a stale decision through to the check, not past it).
// - A signature's use is spent in the shared counter in the commit that holds its record: the
//   grant must still be unrevoked, started, unexpired and within its budget there, whatever
//   this node's memory says, or the signature is refused (the caller withholds it). A revoke
//   answered by any node is enforced by every node's next commit; a budget is spent exactly.
// - Wake-ups: each change of the version is announced (NOTIFY); a node waits for them
//   (wait_for_change) and reloads. Notifications are lost when a connection drops, so the wait
//   also reads the version itself, at least once per timeout.
// - Keys are per node: load() returns this node's keys only, and a node writes its own.
// - Nodes register themselves (heartbeat); nodes() lists them for the console and /metrics.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/jit/store.hpp"

namespace dkim::jit {

struct NodeStatus {
    std::string name;
    std::string version;      // the binary's
    TimePoint started{};      // this run of signerd
    TimePoint last_seen{};    // the node's last heartbeat
    std::string token;        // "logged-in", "logged-out", "fenced" (cut off: lease ended)
    std::int64_t grants = 0;  // active grants the node sees
    std::string selectors;    // its token's keys: "domain/selector:algorithm ..."
    // Their DNS records, one line each: "domain selector record" (the other nodes publish
    // them beside their own).
    std::string records;
    // Its Ed25519 signature over node_records_message(name, records) with the node's audit key
    // (raw bytes; empty while it could not sign: logged out since its keys changed). Anyone
    // with the database could write the row: the others show its records only when this
    // verifies with the key they pin for the node.
    std::string attestation;
};

class SharedStore : public Store {
  public:
    virtual const std::string& node() const = 0;
    // Takes the cluster's decision lock (waits while another node decides). Returns whether
    // this node's state is behind the cluster's (reload before deciding).
    virtual Expected<bool, std::string> lock_decisions() = 0;
    virtual void unlock_decisions() = 0;
    // A reload of the node's memory: begin_reload() before load(), adopt(state.version) once
    // the state is applied. Between them this node's decisions are refused (a relay's request
    // filed meanwhile would be wiped by the older snapshot); after, the store knows which
    // version the memory holds (a decision of this node that committed after the snapshot
    // was read leaves the memory behind, and the next decision reloads). The first load(),
    // from which the node builds its memory at start-up, adopts what it read.
    virtual void begin_reload() = 0;
    virtual void adopt(std::int64_t version) = 0;
    // Waits up to `timeout` for a change announced by any node, then reads the version.
    // Returns whether this node's state is behind. An error: the database cannot be reached.
    virtual Expected<bool, std::string> wait_for_change(std::chrono::milliseconds timeout) = 0;
    // Upserts this node's row (status.name is ignored: node()).
    virtual Expected<void, std::string> heartbeat(const NodeStatus& status) = 0;
    virtual Expected<std::vector<NodeStatus>, std::string> nodes() = 0;
    // Every node's keys (load() returns this node's), by node, domain and selector.
    virtual Expected<std::vector<std::pair<std::string, KeyRecord>>, std::string> all_keys() = 0;
    // How many statements and transactions the store has run (the database's cost per
    // signature: the benchmark divides).
    struct Counters {
        std::uint64_t statements = 0;
        std::uint64_t transactions = 0;
    };
    virtual Counters counters() const = 0;
};

struct PostgresOptions {
    // libpq's connection string ("host=... port=... dbname=... user=... sslmode=verify-full
    // sslrootcert=... sslcert=... sslkey=..."), without the password.
    std::string conninfo;
    // Given apart, so that it is in no string that could be logged; wiped by the store.
    std::string password;
    std::string node;              // this node's name: [A-Za-z0-9._-], 1..64
    bool read_only = false;        // `audit verify`: reads only, creates nothing
    int connect_timeout_s = 3;     // per connection attempt
    int statement_timeout_ms = 0;  // of the writing sessions; 0: none
    // The longest a writing session waits for a lock (the decision lock, the chain's end row)
    // before its statement fails: a session that holds one (a node paused inside a decision
    // or a commit, or anyone with the role) stalls the others' commits for this long, never
    // longer. Below the cluster's lease, so that a wait does not look like a partition.
    int lock_timeout_ms = 2000;
    // The longest a node waits for the server's answer to one statement, on its own side: a
    // server that is alive but does not answer (a stuck disk, a stopped process, a stalled
    // pooler) fails the statement then, as a lost connection would, so that no thread of the
    // node (the journal's commit, a decision, the listener) outlasts the cluster's lease inside
    // the database. Above lock_timeout_ms. 0: no bound (libpq's blocking calls).
    int answer_timeout_ms = 0;
};

// Connects, creates the schema when it is missing (unless read_only), and checks its version.
Expected<std::unique_ptr<SharedStore>, std::string> open_postgres_store(PostgresOptions options);

// Whether `name` is acceptable as a node name.
bool valid_node_name(const std::string& name);

}  // namespace dkim::jit

#pragma once
// The tamper-evident audit log: an append-only sequence of records, each hash-chained to
// the one before (SHA-256 over a canonical encoding), and signed checkpoints of the chain
// head. verify_chain() walks it and reports the first record that breaks the chain: an
// edited, deleted, inserted or reordered record, or a log that ends before a checkpoint
// that was exported from it.
//
//   hash(n) = SHA-256( "dkim-audit-v1" || hash(n-1) || enc(seq) || enc(time) || enc(actor)
//                      || enc(action) || enc(scope) || enc(outcome) || enc(reason)
//                      || enc(request) || enc(grant) || enc(detail) )
//   hash(0) = 32 zero bytes; enc(x) = 4-byte big-endian length || bytes, integers in decimal.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dkim/jit/clock.hpp"

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
    ChainHash hash{};    // assigned by the journal
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
};
// The bytes a checkpoint signature covers.
std::string checkpoint_message(const Checkpoint& checkpoint);

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

std::string to_hex(const ChainHash& hash);
std::optional<ChainHash> chain_hash_from_hex(std::string_view hex);

}  // namespace dkim::jit

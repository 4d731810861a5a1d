#include "dkim/jit/audit.hpp"

#include <cstring>

#include "dkim/crypto/sha256.hpp"

namespace dkim::jit {
namespace {

void put(std::string& out, std::string_view field) {
    const auto n = static_cast<std::uint32_t>(field.size());
    out += static_cast<char>((n >> 24) & 0xff);
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 8) & 0xff);
    out += static_cast<char>(n & 0xff);
    out += field;
}

void put(std::string& out, std::int64_t value) {
    put(out, std::to_string(value));
}

}  // namespace

std::string canonical_encoding(const AuditRecord& r) {
    std::string out;
    out.reserve(128 + r.actor.size() + r.action.size() + r.scope.size() + r.reason.size() +
                r.detail.size());
    put(out, r.seq);
    put(out, to_unix_ms(r.time));
    put(out, r.actor);
    put(out, r.action);
    put(out, r.scope);
    put(out, r.outcome);
    put(out, r.reason);
    put(out, r.request_id);
    put(out, r.grant_id);
    put(out, r.detail);
    return out;
}

ChainHash chain_hash(const ChainHash& previous, const AuditRecord& record) {
    crypto::Sha256 sha;
    static constexpr std::string_view domain = "dkim-audit-v1";
    sha.update(domain);
    sha.update(previous.data(), previous.size());
    sha.update(canonical_encoding(record));
    return sha.finish();
}

std::string checkpoint_message(const Checkpoint& c) {
    std::string out = "dkim-audit-checkpoint-v1";
    put(out, c.seq);
    put(out, std::string_view(reinterpret_cast<const char*>(c.head.data()), c.head.size()));
    put(out, to_unix_ms(c.time));
    return out;
}

std::string to_hex(const ChainHash& hash) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (std::uint8_t b : hash) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::optional<ChainHash> chain_hash_from_hex(std::string_view hex) {
    if (hex.size() != 64) {
        return std::nullopt;
    }
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        return -1;
    };
    ChainHash out{};
    for (std::size_t i = 0; i < 32; ++i) {
        const int hi = nibble(hex[2 * i]);
        const int lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return out;
}

ChainReport verify_chain(const std::vector<AuditRecord>& records,
                         const std::vector<Checkpoint>& checkpoints) {
    ChainReport report;
    ChainHash previous{};
    std::vector<ChainHash> hashes;  // hashes[i] = verified hash of seq i+1
    hashes.reserve(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        const AuditRecord& r = records[i];
        const auto expected_seq = static_cast<std::int64_t>(i) + 1;
        report.records = expected_seq;
        if (r.seq != expected_seq) {
            report.ok = false;
            report.first_broken = expected_seq;
            if (r.seq > expected_seq) {
                report.problem = "record " + std::to_string(expected_seq) +
                                 " is missing (the next stored record is " + std::to_string(r.seq) +
                                 "): deleted";
            } else {
                report.problem = "record at position " + std::to_string(expected_seq) +
                                 " has sequence number " + std::to_string(r.seq) +
                                 ": inserted or reordered";
            }
            return report;
        }
        const ChainHash computed = chain_hash(previous, r);
        if (computed != r.hash) {
            report.ok = false;
            report.first_broken = expected_seq;
            report.problem = "record " + std::to_string(expected_seq) +
                             " does not match its chain hash: edited, inserted or reordered";
            return report;
        }
        hashes.push_back(computed);
        previous = computed;
    }
    for (const Checkpoint& c : checkpoints) {
        if (c.seq < 1) {
            continue;
        }
        if (c.seq > static_cast<std::int64_t>(hashes.size())) {
            report.ok = false;
            report.first_broken = static_cast<std::int64_t>(hashes.size()) + 1;
            report.problem = "the log ends at record " + std::to_string(hashes.size()) +
                             " but a checkpoint covers " + std::to_string(c.seq) +
                             " records: truncated after record " + std::to_string(hashes.size());
            return report;
        }
        if (hashes[static_cast<std::size_t>(c.seq - 1)] != c.head) {
            report.ok = false;
            report.first_broken = c.seq;
            report.problem = "the chain head at record " + std::to_string(c.seq) +
                             " differs from the checkpoint taken there: the log was rewritten";
            return report;
        }
        ++report.checkpoints_checked;
    }
    return report;
}

}  // namespace dkim::jit

#include "dkim/jit/audit.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <set>

#include "dkim/base/hex.hpp"
#include "dkim/crypto/base64.hpp"
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
    if (!r.node.empty()) {
        put(out, r.node);
    }
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
    std::string out = c.kind.empty() ? "dkim-audit-checkpoint-v1" : "dkim-audit-checkpoint-v2";
    put(out, c.seq);
    put(out, std::string_view(reinterpret_cast<const char*>(c.head.data()), c.head.size()));
    put(out, to_unix_ms(c.time));
    if (!c.kind.empty()) {
        put(out, c.kind);
        put(out, c.every_ms);
        put(out, c.every_records);
        if (c.kind == kCheckpointRecovery) {
            put(out, c.crash);
        }
    }
    return out;
}

std::string node_records_message(std::string_view node, std::string_view records) {
    std::string out = "dkim-node-records-v1";
    put(out, node);
    put(out, records);
    return out;
}

std::string checkpoint_interval_detail(std::int64_t every_ms, std::int64_t every_records) {
    return "checkpoint every=" + std::to_string(every_ms) + "ms," + std::to_string(every_records) +
           "records";
}

AuditRecord checkpoint_record(const Checkpoint& c, const std::string& why) {
    AuditRecord r;
    r.time = c.time;
    r.actor = "signerd";
    r.action = std::string(kCheckpointAction);
    const bool ok = why.empty() && !c.signature.empty();
    r.outcome = ok ? "ok" : "failed";
    r.reason = ok ? std::string() : (why.empty() ? std::string("no signature") : why);
    r.detail = "covers=" + std::to_string(c.seq) + " head=" + to_hex(c.head) + " kind=" + c.kind +
               " every=" + std::to_string(c.every_ms) + "ms," + std::to_string(c.every_records) +
               "records";
    if (c.kind == kCheckpointRecovery) {
        r.detail += " crash=" + std::to_string(c.crash);
    }
    if (ok) {
        r.detail += " key=" + c.key_label + " alg=" + c.algorithm +
                    " signature=" + crypto::base64_encode(c.signature);
    }
    return r;
}

namespace {

bool parse_int(std::string_view text, std::int64_t& out) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

// "<ms>ms,<n>records"
bool parse_every(std::string_view text, std::int64_t& ms, std::int64_t& records) {
    const auto comma = text.find(',');
    if (comma == std::string_view::npos) {
        return false;
    }
    std::string_view a = text.substr(0, comma);
    std::string_view b = text.substr(comma + 1);
    if (a.size() < 3 || a.substr(a.size() - 2) != "ms" || b.size() < 8 ||
        b.substr(b.size() - 7) != "records") {
        return false;
    }
    return parse_int(a.substr(0, a.size() - 2), ms) &&
           parse_int(b.substr(0, b.size() - 7), records) && ms > 0 && records > 0;
}

std::map<std::string_view, std::string_view> fields_of(std::string_view detail) {
    std::map<std::string_view, std::string_view> out;
    while (!detail.empty()) {
        const auto space = detail.find(' ');
        const std::string_view token = detail.substr(0, space);
        detail = space == std::string_view::npos ? std::string_view() : detail.substr(space + 1);
        const auto eq = token.find('=');
        if (eq != std::string_view::npos) {
            out.emplace(token.substr(0, eq), token.substr(eq + 1));
        }
    }
    return out;
}

}  // namespace

std::optional<Checkpoint> parse_checkpoint_record(const AuditRecord& r) {
    if (r.action != kCheckpointAction || r.actor != "signerd") {
        return std::nullopt;
    }
    const auto f = fields_of(r.detail);
    const auto get = [&f](std::string_view key) -> std::optional<std::string_view> {
        const auto it = f.find(key);
        return it == f.end() ? std::nullopt : std::optional<std::string_view>(it->second);
    };
    Checkpoint c;
    c.time = r.time;
    c.node = r.node;
    const auto covers = get("covers");
    const auto head = get("head");
    const auto kind = get("kind");
    const auto every = get("every");
    if (!covers || !head || !kind || !every || !parse_int(*covers, c.seq) ||
        !parse_every(*every, c.every_ms, c.every_records) ||
        (*kind != kCheckpointPeriodic && *kind != kCheckpointLogout &&
         *kind != kCheckpointRecovery)) {
        return std::nullopt;
    }
    if (*kind == kCheckpointRecovery) {
        const auto crash = get("crash");
        if (!crash || !parse_int(*crash, c.crash) || c.crash < 1 || c.crash > c.seq) {
            return std::nullopt;
        }
    }
    const auto hash = chain_hash_from_hex(*head);
    if (!hash) {
        return std::nullopt;
    }
    c.head = *hash;
    c.kind = std::string(*kind);
    if (r.outcome == "ok") {
        const auto key = get("key");
        const auto alg = get("alg");
        const auto signature = get("signature");
        if (!key || !alg || !signature) {
            return std::nullopt;
        }
        auto raw = crypto::base64_decode(*signature);
        if (!raw || raw->empty()) {
            return std::nullopt;
        }
        c.key_label = std::string(*key);
        c.algorithm = std::string(*alg);
        c.signature = std::move(*raw);
    } else if (r.outcome != "failed") {
        return std::nullopt;
    }
    return c;
}

std::string to_hex(const ChainHash& hash) {
    return base::hex_encode(hash);
}

std::optional<ChainHash> chain_hash_from_hex(std::string_view hex) {
    ChainHash out{};
    if (!base::hex_decode_into(hex, out)) {
        return std::nullopt;
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

namespace {

std::string seconds_text(Duration d) {
    const auto ms = d.count();
    return std::to_string(ms / 1000) + "." + std::to_string((ms % 1000) / 100) + " s";
}

std::string range_text(std::int64_t from, std::int64_t to) {
    return from == to ? "record " + std::to_string(from)
                      : "records " + std::to_string(from) + ".." + std::to_string(to);
}

}  // namespace

LogReport verify_log(const std::vector<AuditRecord>& records, const std::vector<Checkpoint>& table,
                     const std::vector<Checkpoint>& anchors, const LogCheckOptions& options) {
    LogReport out;
    std::vector<Checkpoint> matched = table;
    matched.insert(matched.end(), anchors.begin(), anchors.end());
    out.chain = verify_chain(records, matched);
    out.signatures_checked = static_cast<bool>(options.signature_valid);
    if (!out.chain.ok) {
        return out;
    }
    auto broken = [&out](std::int64_t at, std::string problem) {
        out.chain.ok = false;
        out.chain.first_broken = at;
        out.chain.problem = std::move(problem);
        return out;
    };
    const auto n = static_cast<std::int64_t>(records.size());

    // Table checkpoints (earlier versions): matched by verify_chain; signed, they cover.
    std::int64_t table_covered = 0;
    std::vector<std::int64_t> table_seqs;
    for (const Checkpoint& c : table) {
        if (c.seq < 1) {
            continue;
        }
        if (options.signature_valid && !options.signature_valid(c)) {
            return broken(c.seq, "the checkpoint of record " + std::to_string(c.seq) +
                                     " (checkpoints table) does not carry a valid signature of "
                                     "the audit key");
        }
        if (options.signature_valid) {
            ++out.signatures_valid;
        }
        ++out.table_checkpoints;
        table_seqs.push_back(c.seq);
        table_covered = std::max(table_covered, c.seq);
    }
    std::sort(table_seqs.begin(), table_seqs.end());

    // Any signed checkpoint covers every record before it, whichever node wrote them (the
    // chain is one); the login sessions, their intervals and their ends are each node's own.
    std::int64_t covered = 0;  // records 1..covered are covered so far
    struct Life {
        std::int64_t last_logout_checkpoint = 0;  // seq of its last signed "logout" checkpoint
        std::int64_t last_failed = 0;             // seq of its last failed checkpoint record
        std::string last_failed_reason;
        bool logged_in = false;
        std::int64_t login_seq = 0;
        TimePoint login_time{};
        std::int64_t checkpoint_seq = 0;  // its last signed checkpoint record
        TimePoint checkpoint_time{};
        std::int64_t every_ms = 0;
        std::int64_t every_records = 0;
        std::vector<std::int64_t> recovered;  // its unclean ends another checkpoint covered
    };
    std::map<std::string, Life> lives;  // by node ("" on a single appliance)
    const auto life_of = [&lives, &options](const std::string& node) -> Life& {
        auto [it, added] = lives.try_emplace(node);
        if (added) {
            it->second.every_ms = options.default_every_ms;
            it->second.every_records = options.default_every_records;
        }
        return it->second;
    };
    struct UncleanEnd {
        std::int64_t start;  // the signerd.start record (or a fenced token.logout)
        std::int64_t login;  // the login of the session it ended
        std::string node;
        bool fenced = false;  // a token.logout after the node was cut off from the store
    };
    std::vector<UncleanEnd> unclean;  // rule 5: not yet covered by a signed checkpoint

    for (std::int64_t seq = 1; seq <= n; ++seq) {
        const AuditRecord& r = records[static_cast<std::size_t>(seq - 1)];
        // Rule 6: times in chain order, none from the future.
        if (seq > 1 && r.time < records[static_cast<std::size_t>(seq - 2)].time) {
            return broken(
                seq, "record " + std::to_string(seq) + " is dated " +
                         seconds_text(records[static_cast<std::size_t>(seq - 2)].time - r.time) +
                         " before record " + std::to_string(seq - 1) +
                         ": record times never go back along the chain (the journal "
                         "keeps them in commit order); inserted, reordered or "
                         "back-dated");
        }
        if (r.time > options.now + options.clock_skew) {
            return broken(seq, "record " + std::to_string(seq) + " is dated " +
                                   seconds_text(r.time - options.now) +
                                   " after the verifier's clock (more than the " +
                                   seconds_text(options.clock_skew) +
                                   " allowed for clock skew): forged ahead of time, or a clock "
                                   "is wrong");
        }
        if (r.actor != "signerd") {
            continue;
        }
        Life& life = life_of(r.node);
        const std::string of_node = r.node.empty() ? "" : " (node " + r.node + ")";
        if (r.action == kCheckpointAction) {
            const auto c = parse_checkpoint_record(r);
            if (!c) {
                return broken(seq, "record " + std::to_string(seq) +
                                       " is an audit.checkpoint record that cannot be read");
            }
            if (c->seq != seq - 1 || seq == 1) {
                return broken(seq, "the checkpoint at record " + std::to_string(seq) +
                                       " covers record " + std::to_string(c->seq) +
                                       ", not the record before it: moved or inserted");
            }
            if (c->head != records[static_cast<std::size_t>(seq - 2)].hash) {
                return broken(seq, "the checkpoint at record " + std::to_string(seq) +
                                       " names a head that is not the hash of record " +
                                       std::to_string(seq - 1) + ": the log was rewritten");
            }
            ++out.checkpoints;
            if (r.outcome != "ok") {
                ++out.failed_checkpoints;
                life.last_failed = seq;
                life.last_failed_reason = r.reason;
                continue;
            }
            if (options.signature_valid) {
                if (!options.signature_valid(*c)) {
                    return broken(seq, "the checkpoint at record " + std::to_string(seq) + of_node +
                                           " does not carry a valid signature of the audit key");
                }
                ++out.signatures_valid;
            }
            if (c->kind == kCheckpointRecovery) {
                // It names an unclean end of its own node: one no checkpoint covers yet, or (in
                // a cluster) one that another node's checkpoint covered meanwhile.
                const bool pending =
                    std::any_of(unclean.begin(), unclean.end(), [&c, &r](const UncleanEnd& u) {
                        return u.start == c->crash && u.node == r.node;
                    });
                const bool recovered = std::find(life.recovered.begin(), life.recovered.end(),
                                                 c->crash) != life.recovered.end();
                if (!pending && !recovered) {
                    return broken(seq, "the recovery checkpoint at record " + std::to_string(seq) +
                                           " names an unclean end at record " +
                                           std::to_string(c->crash) +
                                           " that the log does not hold (no signerd.start there "
                                           "after a session without token.logout, or one "
                                           "covered already)");
                }
                if (recovered) {
                    life.recovered.erase(
                        std::find(life.recovered.begin(), life.recovered.end(), c->crash));
                }
            }
            for (const UncleanEnd& u : unclean) {
                (u.fenced ? out.cut_off_ends : out.unclean_ends).push_back(u.start);
                if (u.node != r.node) {
                    life_of(u.node).recovered.push_back(u.start);
                }
            }
            unclean.clear();
            covered = seq - 1;
            life.checkpoint_seq = seq;
            life.checkpoint_time = c->time;
            life.every_ms = c->every_ms;
            life.every_records = c->every_records;
            if (c->kind == kCheckpointLogout) {
                life.last_logout_checkpoint = seq;
            }
        } else if (r.action == "token.logout") {
            // Rule 2: a signed "logout" checkpoint right before it, or (an earlier version's
            // log) a signed table checkpoint taken in this session.
            const bool in_chain = life.last_logout_checkpoint == seq - 1;
            const auto table_it = std::upper_bound(table_seqs.begin(), table_seqs.end(), seq - 1);
            const bool legacy = table_it != table_seqs.begin() &&
                                *(table_it - 1) >= life.login_seq && life.login_seq > 0;
            // A node cut off from the shared store logs out without the checkpoint it could
            // not write (cluster.hpp); the record says so, and it is written when the store is
            // back. It ends the session uncleanly: rule 5 wants a later signed checkpoint.
            const bool fenced = is_fenced_logout(r);
            if (fenced && !in_chain && life.logged_in) {
                unclean.push_back(UncleanEnd{seq, life.login_seq, r.node, true});
            }
            if (!in_chain && !legacy && !fenced) {
                if (life.last_failed == seq - 1 && life.last_failed > 0) {
                    return broken(
                        seq,
                        "the token.logout at record " + std::to_string(seq) + of_node +
                            " follows a checkpoint that failed (" + life.last_failed_reason +
                            "): " + range_text(std::max<std::int64_t>(covered + 1, 1), seq - 1) +
                            " are not covered by a signed checkpoint");
                }
                return broken(seq, "the token.logout at record " + std::to_string(seq) + of_node +
                                       " does not follow a signed checkpoint: a checkpoint was "
                                       "removed from the chain, or records were inserted");
            }
            life.logged_in = false;
        } else if (r.action == "token.login" && r.outcome == "ok") {
            if (!life.logged_in) {
                life.logged_in = true;
                life.login_seq = seq;
                life.login_time = r.time;
                const auto f = fields_of(r.detail);
                std::int64_t ms = 0;
                std::int64_t count = 0;
                if (const auto it = f.find("every");
                    it != f.end() && parse_every(it->second, ms, count)) {
                    life.every_ms = ms;
                    life.every_records = count;
                } else {
                    life.every_ms = options.default_every_ms;
                    life.every_records = options.default_every_records;
                }
            }
        } else if (r.action == "signerd.start") {
            if (life.logged_in) {
                unclean.push_back(UncleanEnd{seq, life.login_seq, r.node, false});
            }
            life.logged_in = false;
        }
    }

    out.covered_through = std::max(covered, table_covered);
    out.uncovered = n - out.covered_through;
    out.chain.checkpoints_checked += out.checkpoints;
    // Rule 5: an unclean end that no signed checkpoint covers (a table checkpoint of an
    // earlier version's log counts).
    for (const UncleanEnd& u : unclean) {
        if (u.start <= table_covered) {
            (u.fenced ? out.cut_off_ends : out.unclean_ends).push_back(u.start);
            continue;
        }
        const std::int64_t last = u.start - 1;
        if (u.fenced) {
            return broken(
                u.start,
                "the token.logout at record " + std::to_string(u.start) + " (node " + u.node +
                    ") says the node was cut off from the shared store and logged out without "
                    "a checkpoint; no signed checkpoint covers it since, so " +
                    range_text(std::max(out.covered_through + 1, u.login), last) +
                    " (its session from the token.login at record " + std::to_string(u.login) +
                    ") may be the end of a longer log that was cut and the logout appended "
                    "(the node's next login writes a signed recovery checkpoint that covers it)");
        }
        return broken(u.start,
                      "the signerd.start at record " + std::to_string(u.start) +
                          (u.node.empty() ? "" : " (node " + u.node + ")") +
                          " follows a login session (token.login at record " +
                          std::to_string(u.login) +
                          ") that has no token.logout: signerd "
                          "stopped without logging out (a crash), or the log was cut after "
                          "record " +
                          std::to_string(last) +
                          " and a start appended; no signed checkpoint covers it, so " +
                          range_text(std::max(out.covered_through + 1, u.login), last) +
                          " may be the end of a longer log (after a crash, signerd's next login "
                          "writes a signed recovery checkpoint that covers it)");
    }
    // Rule 4, per node: a node logged in at the end of the log has checkpointed within its
    // interval (a stalled or stopped node, or a log cut after the last checkpoint, has not).
    std::vector<std::string> logged_in_nodes;
    for (const auto& [node, life] : lives) {
        if (!life.logged_in) {
            continue;
        }
        out.logged_in = true;
        logged_in_nodes.push_back(node);
        const bool own = life.checkpoint_seq > life.login_seq;
        const std::int64_t from =
            std::max(own ? life.checkpoint_seq - 1 : 0, life.login_seq - 1) + 1;
        const std::int64_t count = n - from + 1;
        const TimePoint since = own ? life.checkpoint_time : life.login_time;
        const Duration age = std::chrono::duration_cast<Duration>(options.now - since);
        const Duration allowed = Duration(life.every_ms) + options.grace;
        const std::string who = node.empty() ? "the token is" : "node " + node + "'s token is";
        if (age > allowed) {
            return broken(from, "the log says " + who + " logged in since record " +
                                    std::to_string(life.login_seq) +
                                    " and no checkpoint has covered " + range_text(from, n) +
                                    " for " + seconds_text(age) + " (checkpoints are due every " +
                                    seconds_text(Duration(life.every_ms)) +
                                    "): signerd stopped without logging out or is stalled, or "
                                    "the log was cut after record " +
                                    std::to_string(out.covered_through));
        }
        if (count > 2 * life.every_records) {
            return broken(from, range_text(from, n) + " were written while " + who +
                                    " logged in without a checkpoint (due every " +
                                    std::to_string(life.every_records) +
                                    " records): checkpoints were removed from the chain");
        }
        if (out.tail.empty()) {
            out.tail = std::to_string(out.uncovered) + " records after record " +
                       std::to_string(out.covered_through) + " not yet covered: " + who +
                       " logged in (since record " + std::to_string(life.login_seq) +
                       ") and the next checkpoint is due within " +
                       seconds_text(std::min(allowed - age, allowed));
        }
    }
    if (!out.logged_in && out.uncovered > 0) {
        out.tail = std::to_string(out.uncovered) + " records after record " +
                   std::to_string(out.covered_through) +
                   " not covered: written while the token was logged out (nothing can sign "
                   "them before the next login)";
    }
    return out;
}

SignatureFinding first_unauthorized_signature(const std::vector<AuditRecord>& records) {
    struct Decided {
        std::int64_t seq = 0;  // the decision's record
        std::string scope;
        std::int64_t revoked = 0;  // the grant.revoke record, if any
    };
    std::map<std::int64_t, Decided> grants;
    for (const AuditRecord& r : records) {
        if (r.grant_id == 0) {
            continue;
        }
        if ((r.action == "elevation.approve" || r.action == "elevation.auto_approve" ||
             r.action == "elevation.break_glass") &&
            (r.outcome == "ok" || r.outcome == "alert")) {
            grants.try_emplace(r.grant_id, Decided{r.seq, r.scope, 0});
        } else if (r.action == "grant.revoke" && r.outcome == "ok") {
            if (auto it = grants.find(r.grant_id); it != grants.end() && it->second.revoked == 0) {
                it->second.revoked = r.seq;
            }
        } else if (r.action == "sign" && r.outcome == "issued") {
            const std::string grant = "grant " + std::to_string(r.grant_id);
            const auto it = grants.find(r.grant_id);
            if (it == grants.end()) {
                return {r.seq,
                        "a signature under a grant that no approval, auto-approval or break-glass "
                        "record in the log made (a grant written into the store by hand)"};
            }
            if (r.scope != it->second.scope) {
                return {r.seq, "a signature under " + grant + " for \"" + r.scope +
                                   "\", but the decision at record " +
                                   std::to_string(it->second.seq) + " made it for \"" +
                                   it->second.scope + "\" (the grant was edited in the store)"};
            }
            if (!r.node.empty() && it->second.revoked != 0) {
                return {r.seq, "a signature under " + grant + " after the log revoked it (record " +
                                   std::to_string(it->second.revoked) +
                                   "): the grant was revived in the store"};
            }
        }
    }
    return {};
}

std::int64_t first_signature_without_decision(const std::vector<AuditRecord>& records) {
    return first_unauthorized_signature(records).seq;
}

bool is_lifecycle_record(const AuditRecord& r) {
    return r.actor == "signerd" &&
           (r.action == kCheckpointAction || r.action == "token.logout" ||
            r.action == "signerd.start" || (r.action == "token.login" && r.outcome == "ok"));
}

bool is_fenced_logout(const AuditRecord& r) {
    return r.actor == "signerd" && r.action == "token.logout" && !r.node.empty() &&
           r.detail.empty() && r.reason.find("cut off from the cluster") != std::string::npos;
}

LogEnd log_end(const std::vector<AuditRecord>& tail) {
    LogEnd end;
    for (const AuditRecord& r : tail) {
        if (r.actor != "signerd") {
            continue;
        }
        if (r.action == kCheckpointAction) {
            if (r.outcome == "ok") {
                // Signed only while logged in (a logout checkpoint is followed by its logout),
                // and it covers every earlier unclean end.
                end.logged_in = true;
                end.unrecovered = 0;
            }
        } else if (r.action == "token.logout") {
            if (end.logged_in && end.unrecovered == 0 && is_fenced_logout(r)) {
                end.unrecovered = r.seq;
            }
            end.logged_in = false;
        } else if (r.action == "token.login" && r.outcome == "ok") {
            if (!end.logged_in) {
                end.logged_in = true;
                end.login = r.seq;
            }
        } else if (r.action == "signerd.start") {
            if (end.logged_in && end.unrecovered == 0) {
                end.unrecovered = r.seq;
            }
            end.logged_in = false;
        }
    }
    return end;
}

}  // namespace dkim::jit

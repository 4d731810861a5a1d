#include "audit_handlers.hpp"

#include <algorithm>
#include <iterator>

#include "dkim/crypto/public_key.hpp"
#include "dkim/crypto/sha256.hpp"

namespace dkim::signerd {

using jit::Actor;

bool may_read_audit(const Actor& who) {
    return who.kind != Actor::Kind::user || jit::has_role(who.roles, jit::Role::auditor) ||
           jit::has_role(who.roles, jit::Role::admin);
}

ipc::Reply AuditHandlers::operate(const Actor& who, ipc::AuditShow& r, TimePoint /*now*/) {
    if (!may_read_audit(who)) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "reading the audit log needs the auditor or admin role");
    }
    auto records = journal_.store().audit_records(std::max<std::int64_t>(1, r.from),
                                                  std::clamp<std::int64_t>(r.limit, 1, 10'000));
    if (!records) {
        return error_reply(ipc::ErrorCode::unavailable, records.error());
    }
    ipc::AuditReply out;
    for (const jit::AuditRecord& a : *records) {
        out.records.push_back({a.seq, to_unix_ms(a.time), a.actor, a.action, a.scope, a.outcome,
                               a.reason, a.request_id, a.grant_id, a.detail, jit::to_hex(a.hash)});
    }
    return out;
}

ipc::Reply AuditHandlers::operate(const Actor& who, ipc::AuditVerify& /*r*/, TimePoint now) {
    if (!may_read_audit(who)) {
        return error_reply(ipc::ErrorCode::forbidden,
                           "verifying the audit log needs the auditor or admin role");
    }
    std::vector<jit::AuditRecord> all;
    for (std::int64_t from = 1;;) {
        // By position, not by seq: a gap or a duplicate must reach verify_chain as it is.
        auto page = journal_.store().audit_records(from, 50'000);
        if (!page) {
            return error_reply(ipc::ErrorCode::unavailable, page.error());
        }
        if (page->empty()) {
            break;
        }
        from = page->back().seq + 1;
        const bool last = page->size() < 50'000;
        std::move(page->begin(), page->end(), std::back_inserter(all));
        if (last) {
            break;
        }
    }
    auto checkpoints = journal_.store().checkpoints();
    if (!checkpoints) {
        return error_reply(ipc::ErrorCode::unavailable, checkpoints.error());
    }
    ipc::AuditVerifyReply out;
    out.head = all.empty() ? jit::to_hex(jit::ChainHash{}) : jit::to_hex(all.back().hash);
    // The checkpoints' signatures, with the audit key's public half (no login needed). No
    // audit key yet: no checkpoint can be valid, and every one found is reported.
    const hsm::KeyName audit = audit_key_name();
    std::optional<crypto::PublicKey> public_key;
    if (auto key = gate_.public_key(audit.domain, audit.selector)) {
        auto parsed = crypto::PublicKey::parse_audit_key(key->key);
        if (!parsed) {
            out.ok = false;
            out.problem = "the audit key cannot be read: " + parsed.error();
            return out;
        }
        public_key = std::move(*parsed);
    } else if (key.error().kind != GateError::Kind::no_key) {
        out.ok = false;
        out.problem = "the audit key cannot be read: " + key.error().message;
        return out;
    }
    jit::LogCheckOptions options;
    options.now = now;
    options.default_every_ms = checkpoint_interval_.count();
    options.default_every_records = checkpoint_records_;
    options.signature_valid = [&public_key](const jit::Checkpoint& c) {
        return public_key &&
               public_key->verify(public_key->signing_algorithm(),
                                  crypto::Sha256::hash(jit::checkpoint_message(c)), c.signature);
    };
    const jit::LogReport report = jit::verify_log(all, *checkpoints, {}, options);
    out.ok = report.chain.ok;
    out.records = report.chain.records;
    out.first_broken = report.chain.first_broken;
    out.problem = report.chain.ok ? report.tail : report.chain.problem;
    out.checkpoints = report.checkpoints + report.table_checkpoints;
    out.checkpoint_signatures = report.signatures_valid;
    return out;
}

}  // namespace dkim::signerd

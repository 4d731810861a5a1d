// signerd's key handlers: list, generate, import, activate, retire, and the relay's signing
// keys. (About 620 lines: the five share the key views, the token's refusals and the key
// authorization, which a split would have to export from an internal header.)
#include "key_handlers.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/dkim/signing_profile.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/provisioning/rotation.hpp"

namespace dkim::signerd {

using jit::Actor;
using jit::KeyRecord;
using jit::KeyState;

namespace {

constexpr auto kMaxGrace = std::chrono::hours(24 * 365);

ipc::ErrorReply token_refusal(const GateError& e) {
    switch (e.kind) {
        case GateError::Kind::invalid: return error_reply(ipc::ErrorCode::invalid, e.message);
        case GateError::Kind::exists: return error_reply(ipc::ErrorCode::conflict, e.message);
        case GateError::Kind::no_key: return error_reply(ipc::ErrorCode::not_found, e.message);
        default:
            return error_reply(ipc::ErrorCode::unavailable, "the token cannot do it: " + e.message);
    }
}

std::int64_t ms(const std::optional<TimePoint>& t) {
    return t ? to_unix_ms(*t) : 0;
}

unsigned bits_of(const std::string& algorithm) {
    if (algorithm == "ed25519") {
        return 256;
    }
    return algorithm.rfind("rsa-", 0) == 0
               ? static_cast<unsigned>(std::strtoul(algorithm.c_str() + 4, nullptr, 10))
               : 0;
}

std::string signing_of(const std::string& algorithm) {
    return jit::key_kind(algorithm) == "ed25519" ? "ed25519-sha256" : "rsa-sha256";
}

jit::AuditRecord key_audit(const Actor& who, TimePoint now, std::string action, std::string scope,
                           std::string outcome, std::int64_t grant_id, std::string detail) {
    jit::AuditRecord r;
    r.time = now;
    r.actor = who.audit_name();
    r.action = std::move(action);
    r.scope = std::move(scope);
    r.outcome = std::move(outcome);
    r.grant_id = grant_id;
    r.detail = std::move(detail);
    if (!who.via.empty()) {
        r.detail += (r.detail.empty() ? "" : "; ") + who.via;
    }
    return r;
}

std::string utc_text(TimePoint t) {
    const std::time_t seconds =
        std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char out[32];
    (void)std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

}  // namespace

std::string KeyHandlers::KeyEntry::kind() const {
    if (record) {
        return record->kind();
    }
    return token ? jit::key_kind(token->algorithm) : "";
}

bool KeyHandlers::KeyEntry::signs() const {
    return record ? record->signs() : token.has_value();
}

bool KeyHandlers::KeyEntry::current() const {
    return record ? record->state == KeyState::active : token.has_value();
}

namespace {

ipc::KeyView key_view(const KeyHandlers::KeyEntry& e) {
    ipc::KeyView v;
    if (e.token) {
        v.domain = e.token->domain;
        v.selector = e.token->selector;
        v.algorithm = e.token->algorithm;
        v.signing = e.token->signing;
        v.bits = e.token->bits;
        v.dns_record = e.token->dkim_record;
    }
    if (e.record) {
        const KeyRecord& r = *e.record;
        v.domain = r.domain;
        v.selector = r.selector;
        if (v.algorithm.empty()) {
            v.algorithm = r.algorithm;
            v.signing = signing_of(r.algorithm);
            v.bits = bits_of(r.algorithm);
        }
        // The record only ever from the token: the registry's copy is the store's (a cluster's
        // database), and a key of a writer's own would be listed for publication.
        v.state = std::string(jit::to_string(r.state));
        v.managed = true;
        v.origin = r.origin;
        v.created_ms = to_unix_ms(r.created);
        v.activated_ms = ms(r.activated);
        v.retire_after_ms = ms(r.retire_after);
        v.retired_ms = ms(r.retired);
        v.private_key_present = r.state != KeyState::retired && e.token.has_value();
    } else {
        v.state = "active";
        v.managed = false;
    }
    v.dns_name = v.selector + "._domainkey." + v.domain;
    return v;
}

}  // namespace

Expected<std::vector<KeyHandlers::KeyEntry>, ipc::ErrorReply> KeyHandlers::key_entries(
    const std::string& domain) {
    auto listed = gate_.list_keys();
    if (!listed) {
        return unexpected(token_refusal(listed.error()));
    }
    std::map<std::pair<std::string, std::string>, KeyEntry> entries;
    for (auto& k : *listed) {
        if (domain.empty() || k.domain == domain) {
            entries[{k.domain, k.selector}].token = std::move(k);
        }
    }
    for (auto& r : domain.empty() ? keys_.all() : keys_.of_domain(domain)) {
        entries[{r.domain, r.selector}].record = std::move(r);
    }
    std::vector<KeyEntry> out;
    out.reserve(entries.size());
    for (auto& [name, entry] : entries) {
        out.push_back(std::move(entry));
    }
    return out;
}

Expected<void, std::string> KeyHandlers::commit_keys(std::vector<KeyRecord> records,
                                                     std::vector<jit::AuditRecord> audit_records) {
    std::vector<jit::Mutation> mutations(records.begin(), records.end());
    if (auto written = journal_.write(std::move(mutations), audit_records); !written) {
        return written;
    }
    for (const KeyRecord& r : records) {
        keys_.put(r);
    }
    lifecycle_.notify_change();
    return {};
}

Expected<jit::Grant, jit::Refusal> KeyHandlers::authorize_key(const Actor& who, jit::Operation op,
                                                              const std::string& domain,
                                                              const std::string& selector,
                                                              TimePoint now) {
    auto grant = authority_.authorize_operation(who, op, domain, selector, now);
    if (grant && !gate_.logged_in()) {
        (void)lifecycle_.reconcile(now);  // the grant just became active: the token logs in now
    }
    return grant;
}

ipc::Reply KeyHandlers::signing_keys(const ipc::SigningKeysRequest& request) {
    if (!is_valid_domain(request.domain)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain");
    }
    auto entries = key_entries(mail::ascii_lowercase(request.domain));
    if (!entries) {
        return entries.error();
    }
    ipc::SigningKeysReply out;
    for (const KeyEntry& e : *entries) {
        // Retiring keys still sign (a relay may hold them for a moment) but are not handed out.
        if (e.current() && e.token) {
            out.keys.push_back({e.token->selector, e.token->signing});
        }
    }
    return out;
}

ipc::Reply KeyHandlers::operate(const Actor& /*who*/, ipc::KeyList& /*r*/, TimePoint /*now*/) {
    auto entries = key_entries("");
    if (!entries) {
        return entries.error();
    }
    ipc::KeysReply out;
    for (const KeyEntry& e : *entries) {
        out.keys.push_back(key_view(e));
    }
    return out;
}

ipc::Reply KeyHandlers::operate(const Actor& who, ipc::KeyGenerate& r, TimePoint now) {
    if (!is_valid_domain(r.domain) || !is_valid_selector(r.selector)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain or selector");
    }
    if (!hsm::parse_key_algorithm(r.algorithm)) {
        return error_reply(
            ipc::ErrorCode::invalid,
            "unknown algorithm '" + r.algorithm + "' (rsa-2048, rsa-3072, rsa-4096 or ed25519)");
    }
    const std::string domain = mail::ascii_lowercase(r.domain);
    const std::string selector = mail::ascii_lowercase(r.selector);
    const std::string scope =
        (r.rotation ? "key.rotate " : "key.generate ") + domain + "/" + selector;
    auto entries = key_entries(domain);
    if (!entries) {
        return entries.error();
    }
    const KeyEntry* existing = nullptr;
    bool rotatable = false;
    for (const KeyEntry& e : *entries) {
        if (key_view(e).selector == selector) {
            existing = &e;
        } else if (e.kind() == jit::key_kind(r.algorithm) && e.current()) {
            rotatable = true;
        }
    }
    if (existing != nullptr) {
        const auto state = existing->record ? existing->record->state : KeyState::active;
        if (state != KeyState::generating && state != KeyState::pending_publish) {
            return error_reply(
                ipc::ErrorCode::conflict,
                "the key " + selector + "._domainkey." + domain + " exists and is " +
                    (existing->record ? std::string(jit::to_string(state)) : "active (unmanaged)") +
                    "; choose a new selector");
        }
        if (existing->record->algorithm != r.algorithm) {
            return error_reply(ipc::ErrorCode::conflict,
                               "the key " + existing->record->label() + " is being made as " +
                                   existing->record->algorithm + ", not " + r.algorithm);
        }
    }
    if (r.rotation && !rotatable) {
        return error_reply(ipc::ErrorCode::invalid,
                           domain + " has no " + jit::key_kind(r.algorithm) +
                               " key that signs: there is nothing to rotate (generate one "
                               "under a key.generate grant)");
    }
    auto grant =
        authorize_key(who, r.rotation ? jit::Operation::key_rotate : jit::Operation::key_generate,
                      domain, selector, now);
    if (!grant) {
        return error_reply(grant.error());
    }
    // A key the registry says is made and the token holds: its record again. One the token does
    // not hold is made now (a record without its key is no key; its record is not shown).
    if (existing != nullptr && existing->record->state == KeyState::pending_publish &&
        existing->token) {
        ipc::KeysReply out;
        out.keys.push_back(key_view(*existing));
        out.message = "already generated; publish its record";
        return out;
    }
    KeyRecord record;
    if (existing != nullptr) {
        record = *existing->record;  // an interrupted generation: finish it
    } else {
        record.domain = domain;
        record.selector = selector;
        record.algorithm = r.algorithm;
        record.state = KeyState::generating;
        record.origin = "generated";
        record.created = now;
        if (auto ok = commit_keys({record}, {key_audit(who, now, "key.generating", scope, "ok",
                                                       grant->id, r.algorithm)});
            !ok) {
            return error_reply(ipc::ErrorCode::unavailable,
                               "the audit log cannot be written: " + ok.error());
        }
    }
    auto made = gate_.generate_key(domain, selector, r.algorithm);
    if (!made && made.error().kind == GateError::Kind::exists) {
        // The token made the key before a crash took the record of it.
        auto listed = gate_.list_keys();
        if (listed) {
            for (auto& k : *listed) {
                if (k.domain == domain && k.selector == selector && k.algorithm == r.algorithm) {
                    made = std::move(k);
                }
            }
        }
    }
    if (!made) {
        (void)journal_.write({}, key_audit(who, now, "key.generating", scope, "failed", grant->id,
                                           made.error().message));
        return token_refusal(made.error());
    }
    record.state = KeyState::pending_publish;
    record.dkim_record = made->dkim_record;
    if (auto ok =
            commit_keys({record}, {key_audit(who, now, "key.generated", scope, "ok", grant->id,
                                             made->algorithm + "; " + made->dkim_record)});
        !ok) {
        return error_reply(ipc::ErrorCode::unavailable,
                           "the key was generated but its record could not be written (rerun to "
                           "finish): " +
                               ok.error());
    }
    ipc::KeysReply out;
    out.keys.push_back(key_view(KeyEntry{*made, record}));
    out.message = "generated; publish its record, then activate it";
    return out;
}

ipc::Reply KeyHandlers::operate(const Actor& who, ipc::KeyImport& r, TimePoint now) {
    if (!is_valid_domain(r.domain) || !is_valid_selector(r.selector)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain or selector");
    }
    const std::string domain = mail::ascii_lowercase(r.domain);
    const std::string selector = mail::ascii_lowercase(r.selector);
    const std::string scope = "key.generate " + domain + "/" + selector;
    const std::span<const unsigned char> key_bytes(
        reinterpret_cast<const unsigned char*>(r.private_key.data()),  // NOLINT
        r.private_key.size());
    auto public_half = hsm::public_key_of(key_bytes);
    if (!public_half) {
        return error_reply(ipc::ErrorCode::invalid, public_half.error().message);
    }
    // The test block, when given, must be a DKIM-Signature of this very key.
    std::optional<Signature> test;
    if (!r.test_data.empty()) {
        auto block = parse_signing_block(r.test_data);
        if (!block) {
            return error_reply(ipc::ErrorCode::invalid, "test block: " + block.error().to_string());
        }
        const Signature* parsed = &block->signature;
        const auto expected = public_half->type == hsm::KeyType::ed25519
                                  ? SigningAlgorithm::ed25519_sha256
                                  : SigningAlgorithm::rsa_sha256;
        if (!mail::iequals(parsed->domain, domain) || !mail::iequals(parsed->selector, selector) ||
            parsed->algorithm != expected) {
            return error_reply(ipc::ErrorCode::invalid,
                               "test block: its DKIM-Signature is not one of " + selector +
                                   "._domainkey." + domain +
                                   " with a=" + std::string(to_string(expected)));
        }
        test = *parsed;
    }
    const auto existing = keys_.find(domain, selector);
    if (existing && existing->state != KeyState::generating &&
        existing->state != KeyState::pending_publish) {
        return error_reply(ipc::ErrorCode::conflict,
                           "the key " + existing->label() + " exists and is " +
                               std::string(jit::to_string(existing->state)));
    }
    auto grant = authorize_key(who, jit::Operation::key_generate, domain, selector, now);
    if (!grant) {
        return error_reply(grant.error());
    }
    KeyRecord record;
    if (existing) {
        record = *existing;
    } else {
        record.domain = domain;
        record.selector = selector;
        record.algorithm = public_half->type == hsm::KeyType::ed25519 ? "ed25519" : "rsa";
        record.state = KeyState::generating;
        record.origin = "imported";
        record.created = now;
        if (auto ok = commit_keys(
                {record}, {key_audit(who, now, "key.importing", scope, "ok", grant->id, "")});
            !ok) {
            return error_reply(ipc::ErrorCode::unavailable,
                               "the audit log cannot be written: " + ok.error());
        }
    }
    auto made = gate_.import_key(domain, selector, r.private_key);
    base::wipe(r.private_key);
    if (!made) {
        (void)journal_.write({}, key_audit(who, now, "key.importing", scope, "failed", grant->id,
                                           made.error().message));
        return token_refusal(made.error());
    }
    record.algorithm = made->algorithm;
    record.dkim_record = made->dkim_record;
    record.state = KeyState::pending_publish;
    if (auto ok = commit_keys({record}, {key_audit(who, now, "key.imported", scope, "ok", grant->id,
                                                   made->algorithm + "; " + made->dkim_record)});
        !ok) {
        return error_reply(ipc::ErrorCode::unavailable,
                           "the key was imported but its record could not be written (rerun to "
                           "finish): " +
                               ok.error());
    }
    ipc::KeysReply out;
    out.keys.push_back(key_view(KeyEntry{*made, record}));
    out.message = "imported; publish its record (or check the published one), then activate it";
    if (test) {
        auto signature = gate_.sign(domain, selector, test->algorithm, r.test_data);
        if (!signature) {
            return token_refusal(signature.error());
        }
        // Fail closed: no signature leaves without its audit record.
        if (auto recorded = journal_.write(
                {}, key_audit(
                        who, now, "key.imported.test-signature", scope, "ok", grant->id,
                        "sha256(header block)=" + jit::to_hex(crypto::Sha256::hash(r.test_data))));
            !recorded) {
            base::wipe(*signature);
            return error_reply(
                ipc::ErrorCode::unavailable,
                "the key was imported, but the audit log cannot be written: the test "
                "signature was withheld (" +
                    recorded.error() + ")");
        }
        out.test_signature = std::move(*signature);
    }
    return out;
}

ipc::Reply KeyHandlers::operate(const Actor& who, ipc::KeyActivate& r, TimePoint now) {
    if (!is_valid_domain(r.domain) || !is_valid_selector(r.selector)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain or selector");
    }
    if (r.grace_seconds < 0 || std::chrono::seconds(r.grace_seconds) > kMaxGrace) {
        return error_reply(ipc::ErrorCode::invalid, "the grace period must be 0 to 365 days");
    }
    const std::string domain = mail::ascii_lowercase(r.domain);
    const std::string selector = mail::ascii_lowercase(r.selector);
    auto entries = key_entries(domain);
    if (!entries) {
        return entries.error();
    }
    const KeyEntry* target = nullptr;
    for (const KeyEntry& e : *entries) {
        if (e.record && e.record->selector == selector) {
            target = &e;
        } else if (!e.record && e.token && e.token->selector == selector) {
            return error_reply(
                ipc::ErrorCode::conflict,
                selector + "._domainkey." + domain + " is not managed here; it already signs");
        }
    }
    if (target == nullptr) {
        return error_reply(ipc::ErrorCode::not_found,
                           "no key " + selector + "._domainkey." + domain);
    }
    const KeyRecord& key = *target->record;
    if (key.state != KeyState::pending_publish && key.state != KeyState::active) {
        return error_reply(ipc::ErrorCode::conflict,
                           "the key " + key.label() + " is " +
                               std::string(jit::to_string(key.state)) +
                               "; only a pending-publish key can be activated");
    }
    if (!target->token) {
        return error_reply(ipc::ErrorCode::conflict,
                           "the key " + key.label() + " is not in the token");
    }
    std::vector<const KeyEntry*> displaced;
    for (const KeyEntry& e : *entries) {
        if (&e != target && e.current() && e.kind() == key.kind()) {
            displaced.push_back(&e);
        }
    }
    auto grant = authorize_key(
        who, displaced.empty() ? jit::Operation::key_generate : jit::Operation::key_rotate, domain,
        selector, now);
    if (!grant && displaced.empty()) {
        grant = authorize_key(who, jit::Operation::key_rotate, domain, selector, now);
    }
    if (!grant) {
        return error_reply(grant.error());
    }
    if (key.state == KeyState::active) {
        ipc::KeysReply out;
        out.keys.push_back(key_view(*target));
        out.message = "already active";
        return out;
    }
    std::vector<KeyRecord> changed;
    KeyRecord activated = key;
    activated.state = KeyState::active;
    activated.activated = now;
    changed.push_back(activated);
    std::string detail;
    for (const KeyEntry* e : displaced) {
        KeyRecord old;
        if (e->record) {
            old = *e->record;
        } else {  // an unmanaged key gets its record now
            old.domain = e->token->domain;
            old.selector = e->token->selector;
            old.algorithm = e->token->algorithm;
            old.origin = "adopted";
            old.created = now;
            old.activated = now;
            old.dkim_record = e->token->dkim_record;
        }
        old.state = KeyState::retiring;
        old.retiring_since = now;
        old.retire_after = now + std::chrono::seconds(r.grace_seconds);
        detail += (detail.empty() ? "" : "; ") + old.selector + " retiring until " +
                  utc_text(*old.retire_after);
        changed.push_back(std::move(old));
    }
    const std::string scope = "key.rotate " + domain + "/" + selector;
    if (auto ok =
            commit_keys(changed, {key_audit(who, now, "key.activated", scope, "ok", grant->id,
                                            detail.empty() ? "first key of its kind" : detail)});
        !ok) {
        return error_reply(ipc::ErrorCode::unavailable,
                           "the audit log cannot be written: " + ok.error());
    }
    ipc::KeysReply out;
    auto after = key_entries(domain);
    if (after) {
        for (const KeyEntry& e : *after) {
            out.keys.push_back(key_view(e));
        }
    }
    out.message = "active" + (detail.empty() ? std::string() : "; " + detail);
    return out;
}

ipc::Reply KeyHandlers::operate(const Actor& who, ipc::KeyRetire& r, TimePoint now) {
    if (!is_valid_domain(r.domain) || !is_valid_selector(r.selector)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain or selector");
    }
    const std::string domain = mail::ascii_lowercase(r.domain);
    const std::string selector = mail::ascii_lowercase(r.selector);
    const std::string scope = "key.retire " + domain + "/" + selector;
    auto entries = key_entries(domain);
    if (!entries) {
        return entries.error();
    }
    const KeyEntry* target = nullptr;
    for (const KeyEntry& e : *entries) {
        if (key_view(e).selector == selector) {
            target = &e;
        }
    }
    if (target == nullptr) {
        return error_reply(ipc::ErrorCode::not_found,
                           "no key " + selector + "._domainkey." + domain);
    }
    const KeyState state = target->record ? target->record->state : KeyState::active;
    if (state == KeyState::active && !r.force) {
        return error_reply(ipc::ErrorCode::conflict,
                           selector + "._domainkey." + domain +
                               " is active: activate its successor first (it then retires "
                               "after the grace period), or force the retirement of a "
                               "compromised key");
    }
    if (state == KeyState::retiring && target->record->retire_after &&
        now < *target->record->retire_after && !r.force) {
        return error_reply(ipc::ErrorCode::conflict,
                           "the grace period of " + target->record->label() + " ends at " +
                               utc_text(*target->record->retire_after) +
                               "; mail signed with it may still be in flight");
    }
    auto grant = authorize_key(who, jit::Operation::key_retire, domain, selector, now);
    if (!grant) {
        return error_reply(grant.error());
    }
    KeyRecord record;
    if (target->record) {
        record = *target->record;
    } else {
        record.domain = domain;
        record.selector = selector;
        record.algorithm = target->token->algorithm;
        record.origin = "adopted";
        record.created = now;
        record.dkim_record = target->token->dkim_record;
    }
    std::string message = "retired";
    if (state != KeyState::retired) {
        const std::string was(jit::to_string(state));
        record.state = KeyState::retired;
        record.retired = now;
        if (auto ok =
                commit_keys({record}, {key_audit(who, now, "key.retired", scope, "ok", grant->id,
                                                 "was " + was + (r.force ? "; forced" : ""))});
            !ok) {
            return error_reply(ipc::ErrorCode::unavailable,
                               "the audit log cannot be written: " + ok.error());
        }
    } else {
        message = "already retired";
    }
    auto destroyed = gate_.destroy_private_key(domain, selector);
    if (!destroyed) {
        (void)journal_.write({}, key_audit(who, now, "key.destroyed", scope, "failed", grant->id,
                                           destroyed.error().message));
        return error_reply(ipc::ErrorCode::unavailable,
                           "the key no longer signs, but its private half could not be destroyed "
                           "(rerun to finish): " +
                               destroyed.error().message);
    }
    if (*destroyed > 0) {
        if (auto ok =
                journal_.write({}, key_audit(who, now, "key.destroyed", scope, "ok", grant->id,
                                             "private half destroyed in the token"));
            !ok) {
            return error_reply(ipc::ErrorCode::unavailable,
                               "the audit log cannot be written: " + ok.error());
        }
        message += "; the private key was destroyed in the token";
    } else {
        message += "; no private key left in the token";
    }
    ipc::KeysReply out;
    out.keys.push_back(key_view(KeyEntry{target->token, record}));
    out.keys.back().private_key_present = false;
    out.message = message;
    return out;
}

// --- a cluster's rotation ----------------------------------------------------------------------

ipc::Reply KeyHandlers::operate(const Actor& who, ipc::ClusterRotate& r, TimePoint now) {
    if (node_.empty()) {
        return error_reply(ipc::ErrorCode::invalid,
                           "not a cluster node: rotate with key rotate's own steps");
    }
    if (!is_valid_domain(r.domain)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain");
    }
    if (!hsm::parse_key_algorithm(r.algorithm)) {
        return error_reply(
            ipc::ErrorCode::invalid,
            "unknown algorithm '" + r.algorithm + "' (rsa-2048, rsa-3072, rsa-4096 or ed25519)");
    }
    const std::string pattern = mail::ascii_lowercase(r.selector);
    const std::string mine = provisioning::cluster_selector(pattern, node_);
    if (pattern.find("%n") == std::string::npos || !is_valid_selector(mine)) {
        return error_reply(ipc::ErrorCode::invalid,
                           "the selector pattern must hold %n (each node's name) and make a valid "
                           "selector: '" +
                               r.selector + "'");
    }
    if (r.grace_seconds < 0 || std::chrono::seconds(r.grace_seconds) > kMaxGrace) {
        return error_reply(ipc::ErrorCode::invalid, "the grace period must be 0 to 365 days");
    }
    const auto phase = jit::parse_rotation_phase(r.phase);
    if (!phase) {
        return error_reply(ipc::ErrorCode::invalid,
                           "unknown phase '" + r.phase + "' (generate, activate, retire or done)");
    }
    const std::string domain = mail::ascii_lowercase(r.domain);
    const std::string kind = jit::key_kind(r.algorithm);
    using Phase = jit::ClusterRotation::Phase;
    std::optional<jit::ClusterRotation> existing;
    for (const jit::ClusterRotation& c : keys_.rotations()) {
        if (c.domain != domain) {
            continue;
        }
        if (c.kind == kind) {
            existing = c;
        } else if (c.selector == pattern && c.phase != Phase::done) {
            return error_reply(ipc::ErrorCode::conflict, "the pattern " + pattern + " is the " +
                                                             c.kind +
                                                             " keys' rotation's: choose another");
        }
    }
    const bool same = existing && existing->selector == pattern;
    // The phases go forward only: generate, activate (again, as more records are found
    // published), retire, done; a new rotation only once the last one is done.
    bool allowed = false;
    if (*phase == Phase::generate) {
        allowed = !existing || existing->phase == Phase::done ||
                  (same && existing->phase == Phase::generate);
        if (existing && existing->phase == Phase::done && same) {
            return error_reply(ipc::ErrorCode::conflict,
                               "the selectors of " + pattern + " were used by the last rotation");
        }
    } else if (same) {
        allowed = (*phase == Phase::activate &&
                   (existing->phase == Phase::generate || existing->phase == Phase::activate)) ||
                  (*phase == Phase::retire &&
                   (existing->phase == Phase::activate || existing->phase == Phase::retire)) ||
                  (*phase == Phase::done &&
                   (existing->phase == Phase::activate || existing->phase == Phase::retire));
    }
    if (!allowed) {
        return error_reply(ipc::ErrorCode::conflict,
                           existing
                               ? "the rotation of " + domain + "'s " + kind + " keys to " +
                                     existing->selector + " is in its " +
                                     std::string(jit::to_string(existing->phase)) + " phase: not " +
                                     r.phase + " to " + pattern
                               : "no rotation of " + domain + "'s " + kind + " keys is under way");
    }
    // The grant: key.rotate to start and activate; key.retire for what retires (this node's
    // key that the rotation replaced, else its new selector's scope).
    std::string target = mine;
    auto op = jit::Operation::key_rotate;
    if (*phase == Phase::retire || (*phase == Phase::done && existing->phase == Phase::retire)) {
        op = jit::Operation::key_retire;
        const auto own = keys_.find(domain, mine);
        for (const KeyRecord& k : keys_.of_domain(domain)) {
            if (own && own->activated && k.retiring_since == own->activated && k.kind() == kind &&
                k.selector != mine) {
                target = k.selector;
            }
        }
    }
    auto grant = authorize_key(who, op, domain, target, now);
    if (!grant) {
        return error_reply(grant.error());
    }
    std::set<std::string> checked;
    if (same) {
        std::istringstream words(existing->checked);
        for (std::string w; words >> w;) {
            checked.insert(w);
        }
    }
    for (const std::string& s : r.checked) {
        if (!is_valid_selector(s)) {
            return error_reply(ipc::ErrorCode::invalid, "invalid checked selector '" + s + "'");
        }
        checked.insert(mail::ascii_lowercase(s));
    }
    ipc::OkReply done;
    if (same && existing->phase == *phase && r.checked.empty()) {
        done.message = "the rotation to " + pattern + " is in its " + r.phase + " phase already";
        return done;
    }
    jit::ClusterRotation rotation;
    rotation.domain = domain;
    rotation.kind = kind;
    rotation.algorithm = same ? existing->algorithm : r.algorithm;
    rotation.selector = pattern;
    rotation.grace_s = same ? existing->grace_s : r.grace_seconds;
    rotation.phase = *phase;
    rotation.requested_by = who.name;
    rotation.started = same ? existing->started : now;
    rotation.updated = now;
    for (const std::string& s : checked) {
        rotation.checked += (rotation.checked.empty() ? "" : " ") + s;
    }
    const std::string scope = std::string(jit::to_string(op)) + " " + domain + "/" + pattern;
    if (auto written = journal_.write(
            {rotation}, key_audit(who, now, "key.rotation", scope, "ok", grant->id,
                                  "phase " + r.phase + "; " + rotation.algorithm + "; grace " +
                                      std::to_string(rotation.grace_s) + " s; published: " +
                                      (rotation.checked.empty() ? "-" : rotation.checked) +
                                      "; asked on " + node_));
        !written) {
        return error_reply(ipc::ErrorCode::unavailable,
                           "the audit log cannot be written: " + written.error());
    }
    keys_.put(rotation);
    lifecycle_.notify_change();  // this node's part starts at its next tick
    done.message = "the rotation of " + domain + "'s " + kind + " keys to " + pattern +
                   " is in its " + r.phase + " phase" +
                   (*phase == Phase::done ? "" : "; every node does its part");
    return done;
}

std::vector<KeyHandlers::RotationPart> KeyHandlers::rotation_parts(TimePoint now) {
    std::vector<RotationPart> out;
    if (node_.empty()) {
        return out;
    }
    using Phase = jit::ClusterRotation::Phase;
    for (const jit::ClusterRotation& c : keys_.rotations()) {
        if (c.phase == Phase::done) {
            continue;
        }
        const std::string mine = provisioning::cluster_selector(c.selector, node_);
        if (!is_valid_selector(mine)) {
            continue;  // a name this pattern cannot hold: the CLI says so
        }
        auto entries = key_entries(c.domain);
        if (!entries) {
            continue;  // the token cannot be read: the next tick tries again
        }
        const KeyEntry* own = nullptr;
        bool signs_kind = false;
        for (const KeyEntry& e : *entries) {
            if (key_view(e).selector == mine) {
                own = &e;
            } else if (e.kind() == c.kind && e.current()) {
                signs_kind = true;
            }
        }
        if (own != nullptr && own->kind() != c.kind) {
            continue;  // the selector holds a key of another kind: not this rotation's
        }
        RotationPart part;
        part.key = c.domain + "/" + c.kind;
        part.requester = c.requested_by;
        part.via = "cluster rotation " + c.domain + "/" + c.kind + " to " + c.selector +
                   " (phase " + std::string(jit::to_string(c.phase)) + ") by " + node_ +
                   "'s signerd";
        if (c.phase == Phase::generate) {
            const bool unfinished =
                own != nullptr && own->record && own->record->state == KeyState::generating;
            if ((own == nullptr && signs_kind) || unfinished) {
                part.step = ipc::KeyGenerate{{}, c.domain, mine, c.algorithm, true};
                part.what = "generate " + mine;
                out.push_back(std::move(part));
            }
        } else if (c.phase == Phase::activate) {
            std::istringstream words(c.checked);
            bool published = false;
            for (std::string w; words >> w;) {
                published = published || w == mine;
            }
            if (published && own != nullptr && own->record &&
                own->record->state == KeyState::pending_publish) {
                part.step = ipc::KeyActivate{{}, c.domain, mine, c.grace_s};
                part.what = "activate " + mine;
                out.push_back(std::move(part));
            }
        } else if (own != nullptr && own->record && own->record->activated) {
            // Only the keys this rotation's activation replaced (retiring since that moment).
            for (const KeyEntry& e : *entries) {
                if (e.record && e.kind() == c.kind && e.record->state == KeyState::retiring &&
                    e.record->selector != mine &&
                    e.record->retiring_since == own->record->activated && e.record->retire_after &&
                    now >= *e.record->retire_after) {
                    RotationPart retire = part;
                    retire.step = ipc::KeyRetire{{}, c.domain, e.record->selector, false};
                    retire.what = "retire " + e.record->selector;
                    out.push_back(std::move(retire));
                }
            }
        }
    }
    return out;
}

}  // namespace dkim::signerd

#include "signing_handlers.hpp"

#include <algorithm>
#include <charconv>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::signerd {

ipc::Reply SigningHandlers::public_key(const ipc::PublicKeyRequest& request) {
    if (!is_valid_domain(request.domain) || !is_valid_selector(request.selector)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain or selector");
    }
    auto key = gate_.public_key(mail::ascii_lowercase(request.domain),
                                mail::ascii_lowercase(request.selector));
    if (!key) {
        if (key.error().kind == GateError::Kind::no_key) {
            return error_reply(ipc::ErrorCode::not_found, key.error().message);
        }
        return error_reply(ipc::ErrorCode::unavailable,
                           "the token cannot be read: " + key.error().message);
    }
    return ipc::PublicKeyReply{std::move(key->key_type), std::move(key->key)};
}

ipc::Reply SigningHandlers::sign(const Peer& peer, const ipc::SignRequest& request, TimePoint now) {
    const std::string& client = peer.name;
    const std::string claimed = "sign " + request.domain + "/" + request.selector;
    // Set once the request's key is one signerd knows (its lifecycle record, or the token holds
    // it): the signing summary counts the refusals from there on under that key. What is refused
    // before (an unknown algorithm, bad names or SMTP client, an empty or oversized block, the
    // audit key) is on the audit log only: it names no key for sure, and a relay could
    // otherwise fill the summary with names of its choosing.
    std::optional<jit::CountedKey> counted;
    auto refuse = [&](Metrics::Refusal reason, ipc::ErrorCode code, const std::string& message,
                      const std::string& rule = {}) -> ipc::Reply {
        metrics_.refusal(reason);
        metrics_.signature(Metrics::SignOutcome::refused);
        if (auto recorded = authority_.record_sign_refusal(client, claimed, message, counted, now);
            !recorded) {
            metrics_.signature(Metrics::SignOutcome::unavailable);
            return error_reply(ipc::ErrorCode::unavailable,
                               "the audit log cannot be written: " + recorded.error());
        }
        return ipc::ErrorReply{code, message, 0, rule};
    };

    const auto algorithm = parse_signing_algorithm(request.algorithm);
    if (!algorithm || *algorithm == SigningAlgorithm::rsa_sha1) {
        return refuse(
            Metrics::Refusal::malformed, ipc::ErrorCode::invalid,
            "unsupported algorithm '" + request.algorithm + "' (rsa-sha256 or ed25519-sha256)");
    }
    if (!is_valid_domain(request.domain) || !is_valid_selector(request.selector)) {
        return refuse(Metrics::Refusal::malformed, ipc::ErrorCode::invalid,
                      "invalid domain or selector");
    }
    const bool client_valid =
        request.smtp_client.size() <= 64 &&
        std::all_of(request.smtp_client.begin(), request.smtp_client.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.';
        });
    if (!client_valid) {
        return refuse(Metrics::Refusal::malformed, ipc::ErrorCode::invalid,
                      "invalid SMTP client name");
    }
    const std::string domain = mail::ascii_lowercase(request.domain);
    const std::string selector = mail::ascii_lowercase(request.selector);
    // The audit key signs checkpoints only: never for a relay, whatever a grant's scope says,
    // and no request is filed for it.
    if (const hsm::KeyName audit = audit_key_name();
        domain == audit.domain && selector == audit.selector) {
        return refuse(Metrics::Refusal::reserved, ipc::ErrorCode::forbidden,
                      "the audit key never signs mail");
    }
    if (request.data.empty() || request.data.size() > max_sign_data_) {
        return refuse(Metrics::Refusal::malformed, ipc::ErrorCode::invalid,
                      "the header block must be 1 to " + std::to_string(max_sign_data_) + " bytes");
    }
    // The key: its lifecycle state, and its algorithm, which a= must name. A key the token
    // does not hold is refused here, before a request could be filed for it.
    std::string kind;
    if (const auto key = keys_.find(domain, selector)) {
        counted = jit::CountedKey{domain, selector};
        if (!key->signs()) {
            return refuse(Metrics::Refusal::mismatch, ipc::ErrorCode::forbidden,
                          "the key " + key->label() + " is " +
                              std::string(jit::to_string(key->state)) + ": it does not sign");
        }
        kind = key->kind();
    } else {
        // An unmanaged key (keys.hpp): asked on every signature, so from the gate's key cache
        // while logged in, not by reading the public half (which lists the whole token).
        auto key_kind = gate_.key_kind(domain, selector);
        if (!key_kind) {
            if (key_kind.error().kind == GateError::Kind::no_key) {
                return refuse(Metrics::Refusal::mismatch, ipc::ErrorCode::not_found,
                              "the token holds no key " + selector + "._domainkey." + domain);
            }
            metrics_.refusal(Metrics::Refusal::token);
            metrics_.signature(Metrics::SignOutcome::unavailable);
            return error_reply(ipc::ErrorCode::unavailable,
                               "the token cannot be read: " + key_kind.error().message);
        }
        kind = std::move(*key_kind);
        counted = jit::CountedKey{domain, selector};
    }
    const SigningAlgorithm key_algorithm =
        kind == "ed25519" ? SigningAlgorithm::ed25519_sha256 : SigningAlgorithm::rsa_sha256;
    // Sign only what fits the signing profile (dkim/dkim/signing_profile.hpp): the relay is
    // not trusted with what a signature covers or how long it lives.
    const auto checked =
        check_signing_block(request.data, profile_, key_algorithm, unix_seconds(now));
    if (!checked) {
        metrics_.profile_refusal(static_cast<std::size_t>(checked.error().rule));
        const ProfileRule rule = checked.error().rule;
        const bool malformed = rule == ProfileRule::structure || rule == ProfileRule::b_tag ||
                               rule == ProfileRule::syntax;
        return refuse(Metrics::Refusal::profile,
                      malformed ? ipc::ErrorCode::invalid : ipc::ErrorCode::forbidden,
                      checked.error().to_string(),
                      "profile:" + std::string(to_string(checked.error().rule)));
    }
    const Signature& parsed = checked->signature;
    if (parsed.domain != domain || parsed.selector != selector || parsed.algorithm != *algorithm) {
        return refuse(Metrics::Refusal::mismatch, ipc::ErrorCode::forbidden,
                      "the DKIM-Signature field says d=" + parsed.domain + " s=" + parsed.selector +
                          " a=" + std::string(to_string(parsed.algorithm)) + ", the request " +
                          request.domain + "/" + request.selector + " " + request.algorithm);
    }

    auto permit = authority_.authorize_sign(client, domain, selector, now);
    if (!permit) {
        if (permit.error().kind == jit::SignRefusal::Kind::locked) {
            metrics_.refusal(Metrics::Refusal::no_grant);
            metrics_.signature(Metrics::SignOutcome::locked);
            return ipc::ErrorReply{
                ipc::ErrorCode::locked, permit.error().message, permit.error().request_id, {}};
        }
        metrics_.refusal(Metrics::Refusal::audit);
        metrics_.signature(Metrics::SignOutcome::unavailable);
        return error_reply(ipc::ErrorCode::unavailable, permit.error().message);
    }
    if (!gate_.logged_in()) {
        // A grant just became active and the lifecycle has not logged in yet.
        (void)lifecycle_.reconcile(now);
    }
    std::string detail =
        "d=" + domain + "; s=" + selector + "; a=" + request.algorithm +
        "; t=" + std::to_string(parsed.timestamp.value_or(0)) +
        "; x=" + std::to_string(parsed.expiration.value_or(0)) +
        "; sha256(header block)=" + jit::to_hex(crypto::Sha256::hash(request.data));
    if (!request.smtp_client.empty()) {
        detail += "; smtp client " + request.smtp_client + " (as the relay states)";
    }
    // Write-ahead, overlapped: the record's durable write runs while the token signs, and the
    // signature leaves only once both are done.
    const auto record = authority_.begin_signature(*permit, client, detail, now);
    auto signature = gate_.sign(domain, selector, *algorithm, request.data);
    auto durable = record->wait();
    if (!signature) {
        const std::string why = signature.error().message;
        // Takes back the signature the "issued" record counted, if that record is durable,
        // under the use number that record got (a cluster's commit numbers the uses).
        jit::SignPermit failed = *permit;
        if (durable) {
            const std::string& issued = record->records().front().detail;  // "use N; ..."
            std::uint64_t use = 0;
            const auto* end = issued.data() + issued.size();
            if (issued.rfind("use ", 0) == 0 &&
                std::from_chars(issued.data() + 4, end, use).ec == std::errc()) {
                failed.use = use;
            }
        }
        (void)authority_.record_signature(
            failed, client, "failed", detail + "; " + why, now,
            durable ? std::optional<TimePoint>(record->records().front().time) : std::nullopt);
        metrics_.refusal(Metrics::Refusal::token);
        metrics_.signature(Metrics::SignOutcome::failed);
        return error_reply(ipc::ErrorCode::unavailable, "the token could not sign: " + why);
    }
    if (!durable) {
        base::wipe(*signature);
        metrics_.refusal(Metrics::Refusal::audit);
        metrics_.signature(Metrics::SignOutcome::unavailable);
        // The log could not be written, or (in a cluster) its commit refused the record: the
        // grant ended or its budget was spent on another node meanwhile. The reason says which.
        return error_reply(
            ipc::ErrorCode::unavailable,
            "the signature was withheld, its record is not in the audit log: " + durable.error());
    }
    metrics_.signature(Metrics::SignOutcome::ok);
    if (permit->last_use) {
        (void)lifecycle_.reconcile(now);  // the budget is spent: maybe the last grant ended
        lifecycle_.notify_change();
    }
    return ipc::SignReply{std::move(*signature), permit->grant_id};
}

}  // namespace dkim::signerd

#include "service.hpp"

#include <algorithm>
#include <iostream>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::signerd {

using jit::Actor;
using jit::Refusal;

ipc::ErrorReply error_reply(const Refusal& refusal) {
    return ipc::ErrorReply{std::string(jit::to_string(refusal.code)), refusal.message, 0,
                           refusal.rule};
}

namespace {

ipc::Reply error(const std::string& code, const std::string& message) {
    return ipc::ErrorReply{code, message, 0, {}};
}

bool may_read_audit(const Actor& who) {
    return who.kind != Actor::Kind::user || jit::has_role(who.roles, jit::Role::auditor) ||
           jit::has_role(who.roles, jit::Role::admin);
}

bool may_list_users(const Actor& who) {
    return who.kind != Actor::Kind::user || jit::has_role(who.roles, jit::Role::admin) ||
           jit::has_role(who.roles, jit::Role::auditor);
}

// What `who` may do (WhoAmI), by the rules the operations check: Authority::request (the
// requester role; break-glass: admin, and operate(ElevationRequest) wants a TOTP code),
// Authority::decidable_request and ::revoke (the operation's approvers in the policy; admins
// revoke any grant, holders their own; users confirm each with a TOTP code, which needs a
// confirmed enrolment), Authority::cancel (admins and the local operator cancel any pending
// request), may_read_audit and may_list_users. It grants nothing: every operation checks
// again. PermissionsTest.PermissionsAreWhatTheOperationsAllow holds the two together.
ipc::Permissions permissions_of(const Actor& who, bool totp, const jit::Policy& policy) {
    ipc::Permissions p;
    const bool user = who.kind == Actor::Kind::user;
    const bool admin = jit::has_role(who.roles, jit::Role::admin);
    p.request = user && jit::has_role(who.roles, jit::Role::requester);
    p.break_glass = user && admin && totp;
    if (user && totp) {
        for (const jit::Operation op : jit::kOperations) {
            if (policy.for_operation(op).may_approve(who.name, who.roles)) {
                p.approve.emplace_back(jit::to_string(op));
            }
        }
    }
    p.revoke_own = user && totp;
    p.revoke_any = who.kind == Actor::Kind::local || (user && admin && totp);
    p.cancel_any = who.kind == Actor::Kind::local || admin;
    p.audit = may_read_audit(who);
    p.users = may_list_users(who);
    return p;
}

ipc::RequestView view(const jit::Request& r, const jit::Policy& policy, TimePoint now) {
    ipc::RequestView v;
    v.id = r.id;
    v.requester = r.requester;
    v.scope = r.scope.to_string();
    v.operation = std::string(jit::to_string(r.scope.operation));
    v.domain = r.scope.domain;
    v.selector = r.scope.selector;
    v.client = r.scope.client;
    v.duration_ms = r.duration.count();
    v.budget = r.budget;
    v.reason = r.reason;
    v.created_ms = to_unix_ms(r.created);
    v.pending_until_ms = to_unix_ms(r.pending_until);
    v.state = std::string(jit::to_string(r.state_at(now)));
    for (const jit::Approval& a : r.approvals) {
        v.approvals.push_back(a.approver);
    }
    v.quorum = policy.for_operation(r.scope.operation).quorum;
    v.decided_by = r.decided_by;
    v.decision_reason = r.decision_reason;
    v.break_glass = r.break_glass;
    v.filed_by_signer = r.filed_by_signer;
    v.superseded_by = r.superseded_by;
    return v;
}

// "; it supersedes pending requests 3, 4" (the approver's answer says what else closed).
std::string superseded_note(const std::vector<jit::Request>& superseded) {
    if (superseded.empty()) {
        return "";
    }
    std::string out = "; it supersedes pending request";
    out += superseded.size() == 1 ? " " : "s ";
    for (std::size_t i = 0; i < superseded.size(); ++i) {
        out += (i == 0 ? "" : ", ") + std::to_string(superseded[i].id);
    }
    return out;
}

ipc::GrantView view(const jit::Grant& g, TimePoint now) {
    ipc::GrantView v;
    v.id = g.id;
    v.request_id = g.request_id;
    v.holder = g.holder;
    v.scope = g.scope.to_string();
    v.starts_ms = to_unix_ms(g.starts);
    v.expires_ms = to_unix_ms(g.expires);
    v.budget = g.budget;
    v.uses = g.uses;
    v.state = std::string(jit::to_string(g.state_at(now)));
    v.revoked_by = g.revoked_by;
    v.revoke_reason = g.revoke_reason;
    v.break_glass = g.break_glass;
    return v;
}

}  // namespace

Service::Service(jit::Journal& journal, jit::Authority& authority, jit::Directory& directory,
                 jit::KeyRegistry& keys, TokenGate& gate, const Clock& clock, Metrics& metrics,
                 ServiceOptions options)
    : journal_(journal),
      authority_(authority),
      directory_(directory),
      keys_(keys),
      gate_(gate),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)) {
    checkpoint_seq_ = journal_.seq();
    last_checkpoint_ = clock_.now();
}

void Service::on_change(std::function<void()> wake) {
    std::lock_guard lock(lifecycle_mutex_);
    wake_ = std::move(wake);
}

void Service::notify_change() {
    std::function<void()> wake;
    {
        std::lock_guard lock(lifecycle_mutex_);
        wake = wake_;
    }
    if (wake) {
        wake();
    }
}

Metrics::Gauges Service::gauges() const {
    const auto now = clock_.now();
    Metrics::Gauges g;
    g.active_grants = authority_.active_count(now);
    for (const jit::Request& r : authority_.requests()) {
        if (r.state_at(now) == jit::RequestState::pending) {
            ++g.pending_requests;
        }
    }
    g.logged_in = gate_.logged_in();
    g.audit_failing = journal_.failure().has_value();
    g.login_failure_records = directory_.tracked_failures();
    return g;
}

ipc::Reply Service::handle(const Peer& peer, ipc::Request& request) {
    ipc::Reply reply = std::visit([&](auto& r) { return dispatch(peer, r); }, request);
    // Wipe every secret the request carried, whatever the outcome.
    std::visit(
        [](auto& r) {
            if constexpr (requires { r.auth; }) {
                r.auth.wipe();
            }
            if constexpr (requires { r.password; }) {
                base::wipe(r.password);
            }
            if constexpr (requires { r.pin; }) {
                base::wipe(r.pin);
            }
            if constexpr (requires { r.code; }) {
                base::wipe(r.code);
            }
            if constexpr (requires { r.private_key; }) {
                base::wipe(r.private_key);
            }
        },
        request);
    return reply;
}

// Requests that make a credential (a session, an API token, a TOTP enrolment) need the
// user's password (and TOTP code when enrolled), never a token.
template <class T>
constexpr bool needs_password() {
    return std::is_same_v<T, ipc::SessionCreate> || std::is_same_v<T, ipc::ApiTokenCreate> ||
           std::is_same_v<T, ipc::TotpEnrol>;
}

// User management and TOTP enrolment are the admin peer's only (the local operator, or an admin
// under an admin grant, at the CLI). dkim-webd sees every console user's password and a fresh
// TOTP code at each login: through it, one admin login under an admin grant would add an
// approver whose password and TOTP webd chose, re-enable a disabled one, and any login of a user
// without a confirmed TOTP (a new user, or one an admin has just reset) would let webd enrol a
// second factor it holds. The console offers none of these.
template <class T>
constexpr bool admin_peer_only() {
    return std::is_same_v<T, ipc::UserAdd> || std::is_same_v<T, ipc::UserSetDisabled> ||
           std::is_same_v<T, ipc::TotpEnrol>;
}

template <class T>
ipc::Reply Service::dispatch(const Peer& peer, T& request) {
    if constexpr (std::is_same_v<T, ipc::SignRequest>) {
        if (peer.kind != PeerKind::relay) {
            metrics_.refusal(Metrics::Refusal::peer);
            return error("forbidden", "only relay clients may ask for signatures");
        }
        return sign(peer, request);
    } else if constexpr (std::is_same_v<T, ipc::PublicKeyRequest>) {
        return public_key(request);
    } else if constexpr (std::is_same_v<T, ipc::SigningKeysRequest>) {
        return signing_keys(request);
    } else if constexpr (std::is_same_v<T, ipc::StatusRequest>) {
        return status();
    } else {
        if (peer.kind == PeerKind::relay) {
            metrics_.refusal(Metrics::Refusal::peer);
            return error("forbidden",
                         "relay clients may only sign, read public keys and signing keys, and ask "
                         "for status");
        }
        const auto now = clock_.now();
        auto actor = authenticate(peer, request.auth, needs_password<T>(), now);
        if (!actor) {
            return error_reply(actor.error());
        }
        if constexpr (admin_peer_only<T>()) {
            if (peer.kind != PeerKind::admin) {
                return refuse_web_peer(peer, *actor, request, now);
            }
        }
        if constexpr (std::is_same_v<T, ipc::ApiTokenCreate>) {
            return operate(peer, *actor, request, now);
        } else {
            return operate(*actor, request, now);
        }
    }
}

ipc::Reply Service::status() const {
    ipc::StatusReply s;
    const auto now = clock_.now();
    s.logged_in = gate_.logged_in();
    s.active_grants = static_cast<std::uint32_t>(authority_.active_count(now));
    const auto [seq, head] = journal_.position();
    s.audit_records = seq;
    s.audit_head = jit::to_hex(head);
    s.audit_failure = journal_.failure().value_or("");
    s.pin_source = std::string(to_string(options_.pin_source));
    return s;
}

ipc::Reply Service::public_key(const ipc::PublicKeyRequest& request) {
    if (!is_valid_domain(request.domain) || !is_valid_selector(request.selector)) {
        return error("invalid", "invalid domain or selector");
    }
    auto key = gate_.public_key(mail::ascii_lowercase(request.domain),
                                mail::ascii_lowercase(request.selector));
    if (!key) {
        if (key.error().kind == GateError::Kind::no_key) {
            return error("not_found", key.error().message);
        }
        return error("unavailable", "the token cannot be read: " + key.error().message);
    }
    return ipc::PublicKeyReply{std::move(key->key_type), std::move(key->key)};
}

// --- signing ----------------------------------------------------------------------------------

ipc::Reply Service::sign(const Peer& peer, const ipc::SignRequest& request) {
    const auto now = clock_.now();
    const std::string& client = peer.name;
    const std::string claimed = "sign " + request.domain + "/" + request.selector;
    auto refuse = [&](Metrics::Refusal reason, const std::string& code, const std::string& message,
                      const std::string& rule = {}) -> ipc::Reply {
        metrics_.refusal(reason);
        metrics_.signature(Metrics::SignOutcome::refused);
        if (auto recorded = authority_.record_sign_refusal(client, claimed, message, now);
            !recorded) {
            metrics_.signature(Metrics::SignOutcome::unavailable);
            return error("unavailable", "the audit log cannot be written: " + recorded.error());
        }
        return ipc::ErrorReply{code, message, 0, rule};
    };

    const auto algorithm = parse_signing_algorithm(request.algorithm);
    if (!algorithm || *algorithm == SigningAlgorithm::rsa_sha1) {
        return refuse(
            Metrics::Refusal::malformed, "invalid",
            "unsupported algorithm '" + request.algorithm + "' (rsa-sha256 or ed25519-sha256)");
    }
    if (!is_valid_domain(request.domain) || !is_valid_selector(request.selector)) {
        return refuse(Metrics::Refusal::malformed, "invalid", "invalid domain or selector");
    }
    const bool client_valid =
        request.smtp_client.size() <= 64 &&
        std::all_of(request.smtp_client.begin(), request.smtp_client.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.';
        });
    if (!client_valid) {
        return refuse(Metrics::Refusal::malformed, "invalid", "invalid SMTP client name");
    }
    const std::string domain = mail::ascii_lowercase(request.domain);
    const std::string selector = mail::ascii_lowercase(request.selector);
    // The audit key signs checkpoints only: never for a relay, whatever a grant's scope says,
    // and no request is filed for it.
    if (const hsm::KeyName audit = audit_key_name();
        domain == audit.domain && selector == audit.selector) {
        return refuse(Metrics::Refusal::reserved, "forbidden", "the audit key never signs mail");
    }
    if (request.data.empty() || request.data.size() > options_.max_sign_data) {
        return refuse(
            Metrics::Refusal::malformed, "invalid",
            "the header block must be 1 to " + std::to_string(options_.max_sign_data) + " bytes");
    }
    // The key: its lifecycle state, and its algorithm, which a= must name. A key the token
    // does not hold is refused here, before a request could be filed for it.
    std::string kind;
    if (const auto key = keys_.find(domain, selector)) {
        if (!key->signs()) {
            return refuse(Metrics::Refusal::mismatch, "forbidden",
                          "the key " + key->label() + " is " +
                              std::string(jit::to_string(key->state)) + ": it does not sign");
        }
        kind = key->kind();
    } else {
        auto public_half = gate_.public_key(domain, selector);
        if (!public_half) {
            if (public_half.error().kind == GateError::Kind::no_key) {
                return refuse(Metrics::Refusal::mismatch, "not_found",
                              "the token holds no key " + selector + "._domainkey." + domain);
            }
            metrics_.refusal(Metrics::Refusal::token);
            metrics_.signature(Metrics::SignOutcome::unavailable);
            return error("unavailable", "the token cannot be read: " + public_half.error().message);
        }
        kind = public_half->key_type;
    }
    const SigningAlgorithm key_algorithm =
        kind == "ed25519" ? SigningAlgorithm::ed25519_sha256 : SigningAlgorithm::rsa_sha256;
    // Sign only what fits the signing profile (dkim/dkim/signing_profile.hpp): the relay is
    // not trusted with what a signature covers or how long it lives.
    const auto checked =
        check_signing_block(request.data, options_.profile, key_algorithm, unix_seconds(now));
    if (!checked) {
        metrics_.profile_refusal(static_cast<std::size_t>(checked.error().rule));
        const ProfileRule rule = checked.error().rule;
        const bool malformed = rule == ProfileRule::structure || rule == ProfileRule::b_tag ||
                               rule == ProfileRule::syntax;
        return refuse(Metrics::Refusal::profile, malformed ? "invalid" : "forbidden",
                      checked.error().to_string(),
                      "profile:" + std::string(to_string(checked.error().rule)));
    }
    const Signature& parsed = checked->signature;
    if (parsed.domain != domain || parsed.selector != selector || parsed.algorithm != *algorithm) {
        return refuse(Metrics::Refusal::mismatch, "forbidden",
                      "the DKIM-Signature field says d=" + parsed.domain + " s=" + parsed.selector +
                          " a=" + std::string(to_string(parsed.algorithm)) + ", the request " +
                          request.domain + "/" + request.selector + " " + request.algorithm);
    }

    auto permit = authority_.authorize_sign(client, domain, selector, now);
    if (!permit) {
        if (permit.error().kind == jit::SignRefusal::Kind::locked) {
            metrics_.refusal(Metrics::Refusal::no_grant);
            metrics_.signature(Metrics::SignOutcome::locked);
            return ipc::ErrorReply{"locked", permit.error().message, permit.error().request_id, {}};
        }
        metrics_.refusal(Metrics::Refusal::audit);
        metrics_.signature(Metrics::SignOutcome::unavailable);
        return error("unavailable", permit.error().message);
    }
    if (!gate_.logged_in()) {
        // A grant just became active and the lifecycle has not logged in yet.
        (void)reconcile(now);
    }
    std::string detail =
        "a=" + request.algorithm + "; t=" + std::to_string(parsed.timestamp.value_or(0)) +
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
        (void)authority_.record_signature(*permit, client, "failed", detail + "; " + why, now);
        metrics_.refusal(Metrics::Refusal::token);
        metrics_.signature(Metrics::SignOutcome::failed);
        return error("unavailable", "the token could not sign: " + why);
    }
    if (!durable) {
        base::wipe(*signature);
        metrics_.refusal(Metrics::Refusal::audit);
        metrics_.signature(Metrics::SignOutcome::unavailable);
        return error(
            "unavailable",
            "the audit log cannot be written, the signature was withheld: " + durable.error());
    }
    metrics_.signature(Metrics::SignOutcome::ok);
    if (permit->last_use) {
        (void)reconcile(now);  // the budget is spent: maybe the last grant ended
        notify_change();
    }
    return ipc::SignReply{std::move(*signature), permit->grant_id};
}

// --- the login lifecycle ------------------------------------------------------------------------

Expected<hsm::Secret, std::string> Service::read_pin() const {
    auto pin = hsm::Secret::from_file(options_.pin_path);
    if (!pin) {
        return unexpected("cannot read the token PIN: " + pin.error().to_string());
    }
    return std::move(*pin);
}

Expected<void, std::string> Service::record(TimePoint now, std::string action, std::string outcome,
                                            std::string reason, std::int64_t request_id,
                                            std::string detail) {
    jit::AuditRecord r;
    r.time = now;
    r.actor = "signerd";
    r.action = std::move(action);
    r.outcome = std::move(outcome);
    r.reason = std::move(reason);
    r.request_id = request_id;
    r.detail = std::move(detail);
    return journal_.write({}, std::move(r));
}

// Called with lifecycle_mutex_ held. A failure is recorded once, not at every retry.
void Service::login_failed(TimePoint now, const std::string& why) {
    if (last_login_failure_ != why) {
        last_login_failure_ = why;
        (void)record(now, "token.login", "failed", why);
    }
}

// Called with lifecycle_mutex_ held: the checkpoint while the audit key can still sign and
// the token.logout record right after it, in one commit, then C_Logout and
// C_CloseAllSessions. The token is logged out whatever happened to the records: when the
// checkpoint cannot be signed, its record says why and `audit verify` reports the session as
// not covered; when nothing can be written, the logout is recorded (unchecked) afterwards if
// the log takes it.
void Service::logout(TimePoint now, const std::string& reason) {
    jit::AuditRecord out;
    out.time = now;
    out.actor = "signerd";
    out.action = "token.logout";
    out.outcome = "ok";
    out.reason = reason;
    auto written = checkpoint(now, jit::kCheckpointLogout, {out});
    gate_.logout();
    metrics_.logout();
    if (!written) {
        (void)record(
            now, "token.logout", "ok",
            reason + "; the checkpoint before it could not be written: " + written.error());
    }
}

std::string Service::login_detail() const {
    return jit::checkpoint_interval_detail(options_.checkpoint_interval.count(),
                                           options_.checkpoint_records);
}

Expected<void, std::string> Service::reconcile(TimePoint now) {
    std::lock_guard lock(lifecycle_mutex_);
    return reconcile_locked(now);
}

Expected<void, std::string> Service::reconcile_locked(TimePoint now) {
    const bool active = authority_.any_active(now);
    const bool in = gate_.logged_in();
    if (active && !in) {
        if (options_.pin_source == PinSourceKind::approver) {
            // Logged in only by the approval that brings the PIN (operate(ElevationDecide)).
            return unexpected(
                std::string("the token needs an approver's PIN (PIN source \"approver\")"));
        }
        auto pin = read_pin();
        if (!pin) {
            login_failed(now, pin.error());
            return unexpected(pin.error());
        }
        if (auto logged = gate_.login(std::move(*pin), true); !logged) {
            login_failed(now, logged.error().message);
            return unexpected(logged.error().message);
        }
        last_login_failure_.clear();
        if (auto written = record(now, "token.login", "ok", "a grant is active", 0, login_detail());
            !written) {
            gate_.logout();  // no login without its record
            return unexpected("the audit log cannot be written: " + written.error());
        }
        metrics_.login();
        recover_locked(now);
    } else if (!active && in) {
        logout(now, "no active grant");
    }
    return {};
}

// Called with lifecycle_mutex_ held. The journal numbers the checkpoint record right after
// the head it signs (Journal::write_checkpoint): the token signs on the committer thread.
Expected<bool, std::string> Service::checkpoint(TimePoint now, std::string_view kind,
                                                std::vector<jit::AuditRecord> then) {
    const std::int64_t every_ms = options_.checkpoint_interval.count();
    const std::int64_t every_records = options_.checkpoint_records;
    if (kind == jit::kCheckpointPeriodic && unrecovered_ > 0) {
        kind = jit::kCheckpointRecovery;
    }
    const std::int64_t crash = kind == jit::kCheckpointRecovery ? unrecovered_ : 0;
    auto make = [this, now, kind, every_ms, every_records, crash](
                    std::int64_t seq, const jit::ChainHash& head, TimePoint not_before) {
        jit::Checkpoint c;
        c.seq = seq;
        c.head = head;
        c.time = std::max(now, not_before);  // the journal keeps times in chain order
        c.kind = std::string(kind);
        c.every_ms = every_ms;
        c.every_records = every_records;
        c.crash = crash;
        if (seq == 0) {
            return jit::checkpoint_record(c, "the log is empty");
        }
        auto signature = gate_.sign_checkpoint(jit::checkpoint_message(c));
        if (!signature) {
            return jit::checkpoint_record(
                c, "the audit key cannot sign: " + signature.error().message);
        }
        c.key_label = signature->key_label;
        c.algorithm = signature->algorithm;
        c.signature = std::move(signature->signature);
        return jit::checkpoint_record(c);
    };
    if (auto written = journal_.write_checkpoint(make, then); !written) {
        return unexpected(written.error());
    }
    checkpoint_seq_ = then.front().seq;
    last_checkpoint_ = now;
    const bool signed_ok = then.front().outcome == "ok";
    if (signed_ok) {
        unrecovered_ = 0;  // it covers the unclean end, whatever its kind
    }
    return signed_ok;
}

void Service::recover_locked(TimePoint now) {
    if (unrecovered_ > 0) {
        // A failure is recorded; the periodic checkpoints that follow try again.
        (void)checkpoint(now, jit::kCheckpointRecovery);
    }
}

Expected<jit::LogEnd, std::string> Service::read_log_end() {
    std::vector<jit::AuditRecord> tail;  // newest first
    constexpr std::int64_t page = 4096;
    for (std::int64_t to = journal_.seq(); to >= 1;) {
        const std::int64_t from = std::max<std::int64_t>(1, to - page + 1);
        auto records = journal_.store().audit_records(from, to - from + 1);
        if (!records) {
            return unexpected(records.error());
        }
        for (auto it = records->rbegin(); it != records->rend(); ++it) {
            if (!jit::is_lifecycle_record(*it)) {
                continue;
            }
            tail.push_back(*it);
            if (it->action == jit::kCheckpointAction && it->outcome == "ok") {
                std::reverse(tail.begin(), tail.end());
                return jit::log_end(tail);
            }
        }
        to = from - 1;
    }
    std::reverse(tail.begin(), tail.end());
    return jit::log_end(tail);
}

Expected<void, std::string> Service::start(const std::string& detail) {
    std::lock_guard lock(lifecycle_mutex_);
    auto end = read_log_end();
    if (!end) {
        return unexpected("the end of the audit log cannot be read: " + end.error());
    }
    jit::AuditRecord r;
    r.time = clock_.now();
    r.actor = "signerd";
    r.action = "signerd.start";
    r.outcome = "ok";
    r.detail = detail;
    if (end->logged_in) {
        r.detail += "; unclean end: the log ends in a login session";
        if (end->login > 0) {
            r.detail += " (token.login at record " + std::to_string(end->login) + ")";
        }
        r.detail += " without a token.logout: signerd stopped without logging out";
    } else if (end->unrecovered > 0) {
        r.detail += "; the unclean end at record " + std::to_string(end->unrecovered) +
                    " is not yet covered";
    }
    if (end->logged_in || end->unrecovered > 0) {
        r.detail += "; the next login writes a signed recovery checkpoint";
    }
    std::vector<jit::AuditRecord> records{std::move(r)};
    if (auto written = journal_.write({}, records); !written) {
        return unexpected(written.error());
    }
    unrecovered_ =
        end->unrecovered > 0 ? end->unrecovered : (end->logged_in ? records.front().seq : 0);
    return {};
}

void Service::tick() {
    const auto now = clock_.now();
    authority_.sweep(now);
    (void)reconcile(now);
    std::lock_guard lock(lifecycle_mutex_);
    if (!gate_.logged_in()) {
        return;
    }
    // Also when nothing else was written: a checkpoint is the proof that the log still ends
    // here (a log cut after an earlier checkpoint looks stale to `audit verify`).
    if (now - last_checkpoint_ >= options_.checkpoint_interval ||
        journal_.seq() - checkpoint_seq_ >= options_.checkpoint_records) {
        (void)checkpoint(now, jit::kCheckpointPeriodic);
        last_checkpoint_ = now;  // a failure is recorded, and tried again at the next interval
    }
}

TimePoint Service::next_tick() const {
    const auto now = clock_.now();
    TimePoint next = now + std::chrono::seconds(1);
    if (auto deadline = authority_.next_deadline(now); deadline && *deadline < next) {
        next = *deadline;
    }
    return next;
}

void Service::shutdown() {
    std::lock_guard lock(lifecycle_mutex_);
    const auto now = clock_.now();
    if (gate_.logged_in()) {
        logout(now, "shutdown");
    }
}

// --- operators ----------------------------------------------------------------------------------

Expected<Actor, Refusal> Service::authenticate(const Peer& peer,
                                               const ipc::Credentials& credentials,
                                               bool need_password, TimePoint now) {
    if (!credentials.token.empty()) {
        if (need_password) {
            return jit::refuse(Refusal::Code::unauthenticated,
                               "this needs the user's password, not a token");
        }
        std::optional<jit::TokenKind> kind;
        if (credentials.token_kind == "api") {
            kind = jit::TokenKind::api;
        } else if (credentials.token_kind == "session") {
            kind = jit::TokenKind::session;
        } else if (!credentials.token_kind.empty()) {
            return jit::refuse(Refusal::Code::unauthenticated, "unknown token kind");
        }
        return directory_.authenticate_token(credentials.token, now, kind);
    }
    if (!credentials.user.empty()) {
        auto actor = directory_.authenticate_password(credentials.user, credentials.password, now);
        if (actor && need_password) {
            // A session or API token is as strong as the login that made it: with TOTP
            // enrolled, the code is part of that login.
            const auto user = directory_.find(actor->name);
            if (user && user->totp_confirmed) {
                if (auto checked = directory_.check_totp(*actor, credentials.totp, now); !checked) {
                    return unexpected(checked.error());
                }
            }
        }
        return actor;
    }
    if (peer.kind == PeerKind::admin) {
        return Actor{Actor::Kind::local, peer.name,
                     static_cast<jit::RoleSet>(static_cast<unsigned>(jit::Role::admin) |
                                               static_cast<unsigned>(jit::Role::auditor))};
    }
    return jit::refuse(Refusal::Code::unauthenticated, "credentials are required");
}

Expected<void, Refusal> Service::may_administer(const Actor& actor, TimePoint now) {
    if (actor.kind == Actor::Kind::local) {
        return {};
    }
    if (actor.kind != Actor::Kind::user || !jit::has_role(actor.roles, jit::Role::admin)) {
        return jit::refuse(Refusal::Code::forbidden, "this needs the admin role", "role");
    }
    auto grant = authority_.authorize_operation(actor, jit::Operation::admin, "*", "*", now);
    if (!grant) {
        return unexpected(grant.error());
    }
    return {};
}

template <class T>
ipc::Reply Service::refuse_web_peer(const Peer& peer, const Actor& who, const T& r, TimePoint now) {
    metrics_.refusal(Metrics::Refusal::peer);
    jit::AuditRecord record;
    record.time = now;
    record.actor = who.audit_name();
    record.outcome = "refused";
    record.reason = "only at the CLI (admin peer), never through the web console";
    if constexpr (std::is_same_v<T, ipc::UserAdd>) {
        record.action = "user.add";
        record.detail = "user " + r.name + " roles " + r.roles;
    } else if constexpr (std::is_same_v<T, ipc::UserSetDisabled>) {
        record.action = r.disabled ? "user.disable" : "user.enable";
        record.detail = "user " + r.name;
    } else {
        record.action = "totp.enrol";
        record.detail = "user " + (r.user.empty() ? who.name : r.user);
    }
    record.detail += " from peer " + std::string(to_string(peer.kind)) + " (" + peer.name + ")";
    // The refusal stands whether or not it could be recorded.
    (void)journal_.write({}, std::move(record));
    return error("forbidden",
                 "users and TOTP enrolments are managed only at the CLI (root, or an admin under "
                 "an admin grant), never through the web console");
}

ipc::Reply Service::operate(const Actor& who, ipc::SessionCreate& r, TimePoint now) {
    if (who.kind != Actor::Kind::user) {
        return error("unauthenticated", "a session needs a user name and password");
    }
    const auto ttl =
        std::chrono::seconds(std::clamp<std::int64_t>(r.ttl_seconds, 60, std::int64_t{12} * 3600));
    auto made =
        directory_.create_token(who, who.name, jit::TokenKind::session, "session", ttl, now);
    if (!made) {
        return error_reply(made.error());
    }
    ipc::OkReply ok{"session for " + who.name + " (" + jit::roles_to_string(who.roles) + ")",
                    made->token.id, std::move(made->secret)};
    return ok;
}

ipc::Reply Service::operate(const Actor& who, ipc::UserAdd& r, TimePoint now) {
    if (auto allowed = may_administer(who, now); !allowed) {
        return error_reply(allowed.error());
    }
    const auto roles = jit::parse_roles(r.roles);
    if (!roles) {
        return error("invalid",
                     "unknown role in '" + r.roles + "' (requester, approver, admin, auditor)");
    }
    auto added = directory_.add_user(who, r.name, *roles, r.password, now);
    if (!added) {
        return error_reply(added.error());
    }
    return ipc::OkReply{
        "user " + added->name + " added with roles " + jit::roles_to_string(added->roles), 0, ""};
}

ipc::Reply Service::operate(const Actor& who, ipc::UserList& /*r*/, TimePoint now) {
    if (!may_list_users(who)) {
        return error("forbidden", "listing users needs the admin or auditor role");
    }
    ipc::UsersReply out;
    for (const jit::User& u : directory_.users()) {
        out.users.push_back({u.name, jit::roles_to_string(u.roles), u.disabled,
                             !u.password_hash.empty(), u.totp_confirmed, to_unix_ms(u.created)});
    }
    for (const jit::ApiToken& t : directory_.tokens()) {
        out.tokens.push_back({t.id, t.user, t.kind == jit::TokenKind::api ? "api" : "session",
                              t.label, to_unix_ms(t.created),
                              t.expires ? to_unix_ms(*t.expires) : 0,
                              t.revoked || (t.expires && now >= *t.expires)});
    }
    return out;
}

ipc::Reply Service::operate(const Actor& who, ipc::UserSetDisabled& r, TimePoint now) {
    if (auto allowed = may_administer(who, now); !allowed) {
        return error_reply(allowed.error());
    }
    auto changed = directory_.set_disabled(who, r.name, r.disabled, now);
    if (!changed) {
        return error_reply(changed.error());
    }
    return ipc::OkReply{"user " + r.name + (r.disabled ? " disabled" : " enabled"), 0, ""};
}

ipc::Reply Service::operate(const Peer& peer, const Actor& who, ipc::ApiTokenCreate& r,
                            TimePoint now) {
    // A token is made from a password login (with TOTP when enrolled), never from a token.
    const std::string user = r.user.empty() ? who.name : r.user;
    if (user != who.name || who.kind == Actor::Kind::local) {
        if (peer.kind == PeerKind::web) {
            // dkim-webd sees every console user's password: through it, a user makes tokens for
            // themselves only, whatever grant an admin holds.
            return error("forbidden",
                         "through the web console a user makes API tokens only for "
                         "themselves");
        }
        if (auto allowed = may_administer(who, now); !allowed) {
            return error_reply(allowed.error());
        }
    }
    // 0: the default lifetime; kApiTokenNeverExpires: no expiry, only when asked for explicitly.
    std::optional<Duration> ttl;
    if (r.ttl_seconds == 0) {
        ttl = ipc::kApiTokenDefaultTtl;
    } else if (r.ttl_seconds > 0) {
        ttl = std::chrono::seconds(r.ttl_seconds);
    } else if (r.ttl_seconds != ipc::kApiTokenNeverExpires) {
        return error("invalid", "ttl_seconds is a positive number of seconds, 0 for the default (" +
                                    std::to_string(ipc::kApiTokenDefaultTtl.count() / 86400) +
                                    " days) or -1 for no expiry");
    }
    auto made = directory_.create_token(who, user, jit::TokenKind::api, r.label, ttl, now);
    if (!made) {
        return error_reply(made.error());
    }
    return ipc::OkReply{"API token " + std::to_string(made->token.id) + " for " + user +
                            " (shown once; only its hash is kept)",
                        made->token.id, std::move(made->secret)};
}

ipc::Reply Service::operate(const Actor& who, ipc::ApiTokenRevoke& r, TimePoint now) {
    auto revoked = directory_.revoke_token(who, r.id, now);
    if (!revoked) {
        return error_reply(revoked.error());
    }
    return ipc::OkReply{"token " + std::to_string(r.id) + " revoked", r.id, ""};
}

ipc::Reply Service::operate(const Actor& who, ipc::TotpEnrol& r, TimePoint now) {
    // From the admin peer only (dispatch refuses the others): a user enrols their own first TOTP
    // there with their password; enrolling another user, or replacing a confirmed TOTP (a lost
    // phone), is the local operator's or an admin's under an admin grant.
    const std::string user = r.user.empty() ? who.name : r.user;
    const auto target = directory_.find(user);
    const bool replace = target && target->totp_confirmed;
    if (who.kind != Actor::Kind::local && (user != who.name || replace)) {
        if (auto allowed = may_administer(who, now); !allowed) {
            if (!replace) {
                return error_reply(allowed.error());
            }
            return error("forbidden", "the TOTP of " + user +
                                          " is confirmed: only the local operator (root) or an "
                                          "admin under an admin grant can replace it");
        }
    }
    auto enrolled = directory_.enrol_totp(who, user, now, replace);
    if (!enrolled) {
        return error_reply(enrolled.error());
    }
    ipc::OkReply ok{"TOTP secret for " + user + " (confirm it with a code: totp confirm)", 0,
                    std::move(enrolled->uri)};
    base::wipe(enrolled->secret_base32);
    return ok;
}

ipc::Reply Service::operate(const Actor& who, ipc::TotpConfirm& r, TimePoint now) {
    const std::string user = r.user.empty() ? who.name : r.user;
    if (user != who.name && who.kind != Actor::Kind::local) {
        return error("forbidden", "users confirm their own enrolment");
    }
    auto confirmed = directory_.confirm_totp(who, user, r.code, now);
    if (!confirmed) {
        return error_reply(confirmed.error());
    }
    return ipc::OkReply{"TOTP confirmed for " + user, 0, ""};
}

ipc::Reply Service::operate(const Actor& who, ipc::ElevationRequest& r, TimePoint now) {
    const auto op = jit::parse_operation(r.operation);
    if (!op) {
        return error("invalid", "unknown operation '" + r.operation +
                                    "' (sign, key.generate, key.rotate, key.retire, admin)");
    }
    if (mail::iequals(r.domain, audit_key_name().domain)) {
        // The audit key's domain: no grant may ever name it (sign() refuses it anyway).
        return error("forbidden", "the audit key's domain " + audit_key_name().domain +
                                      " is reserved: no request may name it");
    }
    if (r.break_glass) {
        if (auto checked = directory_.check_totp(who, r.auth.totp, now); !checked) {
            return error_reply(checked.error());
        }
    }
    jit::RequestInput input;
    input.scope = jit::Scope{*op, r.domain, r.selector.empty() ? "*" : r.selector,
                             r.client.empty() ? "*" : r.client};
    input.duration = std::chrono::seconds(
        std::max<std::int64_t>(0, std::min<std::int64_t>(r.duration_seconds, 366LL * 86400)));
    input.budget = r.budget;
    input.reason = r.reason;
    input.break_glass = r.break_glass;
    auto decided = authority_.request(who, std::move(input), now);
    if (!decided) {
        return error_reply(decided.error());
    }
    if (decided->grant) {
        if (decided->request.break_glass) {
            // Loudly, also outside the audit log: the journal of the host shows it at once.
            std::cerr << "dkim-signerd: BREAK-GLASS: " << who.name << " activated grant "
                      << decided->grant->id << " for " << decided->request.scope.to_string()
                      << " without approval, for "
                      << jit::format_duration(decided->request.duration) << ": "
                      << decided->request.reason << "\n";
        }
        (void)reconcile(now);
        notify_change();
        return ipc::OkReply{"request " + std::to_string(decided->request.id) + " " +
                                (decided->request.break_glass ? "BREAK-GLASS: " : "") + "grant " +
                                std::to_string(decided->grant->id) + " active (" +
                                decided->request.decided_by + ")" +
                                superseded_note(decided->superseded),
                            decided->request.id, ""};
    }
    notify_change();
    return ipc::OkReply{"request " + std::to_string(decided->request.id) + " pending approval",
                        decided->request.id, ""};
}

ipc::Reply Service::operate(const Actor& /*who*/, ipc::ElevationList& r, TimePoint now) {
    ipc::RequestsReply out;
    for (const jit::Request& req : authority_.requests()) {
        if (!r.pending_only || req.state_at(now) == jit::RequestState::pending) {
            out.requests.push_back(view(req, authority_.policy(), now));
        }
    }
    return out;
}

ipc::Reply Service::operate(const Actor& who, ipc::ElevationDecide& r, TimePoint now) {
    if (r.action == "cancel") {
        auto cancelled = authority_.cancel(who, r.id, now);
        if (!cancelled) {
            return error_reply(cancelled.error());
        }
        return ipc::OkReply{"request " + std::to_string(r.id) + " cancelled", r.id, ""};
    }
    if (r.action != "approve" && r.action != "deny") {
        return error("invalid", "action must be approve, deny or cancel");
    }
    if (who.kind != Actor::Kind::user) {
        return error("forbidden", "approvals and denials are made by users with their TOTP code");
    }
    // Cheap checks first, so that a hopeless approval or denial does not spend the TOTP code:
    // the request is pending, the user is one of its approvers, not its requester, and has
    // not approved it yet.
    const auto pending = authority_.find_request(r.id);
    if (!pending) {
        return error("not_found", "no request " + std::to_string(r.id));
    }
    if (auto allowed = authority_.may_decide(who, r.id, r.action == "approve", now); !allowed) {
        return error_reply(allowed.error());
    }
    if (auto checked = directory_.check_totp(who, r.auth.totp, now); !checked) {
        return error_reply(checked.error());
    }
    if (r.action == "deny") {
        auto denied = authority_.deny(who, r.id, r.reason, now);
        if (!denied) {
            return error_reply(denied.error());
        }
        notify_change();
        return ipc::OkReply{"request " + std::to_string(r.id) + " denied", r.id, ""};
    }
    std::optional<hsm::Secret> pin;
    if (options_.pin_source == PinSourceKind::approver && !r.pin.empty()) {
        pin = hsm::Secret::from_string(r.pin);
        base::wipe(r.pin);
    }
    const unsigned quorum = authority_.policy().for_operation(pending->scope.operation).quorum;
    const bool completes = pending->approvals.size() + 1 >= quorum;
    // In approver mode the lifecycle lock is held from the login to the approval, so that the
    // lifecycle thread cannot log out in between (no grant is active yet at that moment).
    std::unique_lock lifecycle(lifecycle_mutex_, std::defer_lock);
    if (options_.pin_source == PinSourceKind::approver && completes) {
        lifecycle.lock();
    }
    if (lifecycle.owns_lock() && !gate_.logged_in()) {
        // The approval that activates a grant brings the PIN. Log in first, so a wrong PIN
        // refuses the approval instead of making a grant that cannot sign.
        if (!pin) {
            return error("invalid",
                         "this approval activates the grant and the token is logged out: "
                         "PIN source \"approver\" needs the token PIN with it");
        }
        auto logged = gate_.login(std::move(*pin), false);
        pin.reset();  // wiped: held only until C_Login
        if (!logged) {
            (void)record(now, "token.login", "failed",
                         "PIN from approver " + who.name + ": " + logged.error().message, r.id);
            return error("forbidden", "the token refused the PIN; the request stays pending");
        }
        if (auto written = record(now, "token.login", "ok", "PIN from approver " + who.name, r.id,
                                  login_detail());
            !written) {
            gate_.logout();  // no login without its record
            return error("unavailable", "the audit log cannot be written: " + written.error());
        }
        last_login_failure_.clear();
        metrics_.login();
        recover_locked(now);
    }
    pin.reset();
    auto approved = authority_.approve(who, r.id, now);
    // Log in for the new grant, or out again if the approval failed.
    if (lifecycle.owns_lock()) {
        (void)reconcile_locked(now);
        lifecycle.unlock();
    } else {
        (void)reconcile(now);
    }
    if (!approved) {
        return error_reply(approved.error());
    }
    notify_change();
    if (approved->grant) {
        return ipc::OkReply{"request " + std::to_string(r.id) + " approved: grant " +
                                std::to_string(approved->grant->id) + " active" +
                                superseded_note(approved->superseded),
                            approved->grant->id, ""};
    }
    return ipc::OkReply{"request " + std::to_string(r.id) + " approved (" +
                            std::to_string(approved->request.approvals.size()) + " of " +
                            std::to_string(quorum) + ")",
                        0, ""};
}

ipc::Reply Service::operate(const Actor& who, ipc::GrantRevoke& r, TimePoint now) {
    if (who.kind == Actor::Kind::user) {
        if (auto checked = directory_.check_totp(who, r.auth.totp, now); !checked) {
            return error_reply(checked.error());
        }
    }
    auto revoked = authority_.revoke(who, r.id, r.reason, now);
    if (!revoked) {
        return error_reply(revoked.error());
    }
    // Durable, and the token logged out if this was the last grant, before the answer.
    (void)reconcile(now);
    notify_change();
    return ipc::OkReply{"grant " + std::to_string(r.id) + " revoked" +
                            (gate_.logged_in() ? "" : "; the token is logged out"),
                        r.id, ""};
}

ipc::Reply Service::operate(const Actor& /*who*/, ipc::GrantList& r, TimePoint now) {
    ipc::GrantsReply out;
    for (const jit::Grant& g : authority_.grants()) {
        if (!r.active_only || g.active_at(now)) {
            out.grants.push_back(view(g, now));
        }
    }
    return out;
}

ipc::Reply Service::operate(const Actor& who, ipc::AuditShow& r, TimePoint /*now*/) {
    if (!may_read_audit(who)) {
        return error("forbidden", "reading the audit log needs the auditor or admin role");
    }
    auto records = journal_.store().audit_records(std::max<std::int64_t>(1, r.from),
                                                  std::clamp<std::int64_t>(r.limit, 1, 10'000));
    if (!records) {
        return error("unavailable", records.error());
    }
    ipc::AuditReply out;
    for (const jit::AuditRecord& a : *records) {
        out.records.push_back({a.seq, to_unix_ms(a.time), a.actor, a.action, a.scope, a.outcome,
                               a.reason, a.request_id, a.grant_id, a.detail, jit::to_hex(a.hash)});
    }
    return out;
}

ipc::Reply Service::operate(const Actor& who, ipc::WhoAmI& r, TimePoint /*now*/) {
    ipc::IdentityReply out;
    out.name = who.name;
    out.roles = jit::roles_to_string(who.roles);
    out.kind = who.kind == Actor::Kind::local ? "local" : "user";
    if (who.kind == Actor::Kind::user) {
        const auto user = directory_.find(who.name);
        out.totp = user && user->totp_confirmed;
    }
    out.permissions = permissions_of(who, out.totp, authority_.policy());
    if (!r.auth.token.empty()) {
        if (const auto token = directory_.token_info(r.auth.token)) {
            out.token_kind = token->kind == jit::TokenKind::api ? "api" : "session";
            out.token_id = token->id;
            out.token_expires_ms = token->expires ? to_unix_ms(*token->expires) : 0;
        }
    }
    return out;
}

ipc::Reply Service::operate(const Actor& who, ipc::SessionEnd& r, TimePoint now) {
    const auto token = r.auth.token.empty() ? std::nullopt : directory_.token_info(r.auth.token);
    if (!token || token->kind != jit::TokenKind::session) {
        return error("invalid", "only a session token can end its session");
    }
    auto revoked = directory_.revoke_token(who, token->id, now);
    if (!revoked) {
        return error_reply(revoked.error());
    }
    return ipc::OkReply{"session ended", token->id, ""};
}

ipc::Reply Service::operate(const Actor& who, ipc::AuditVerify& /*r*/, TimePoint now) {
    if (!may_read_audit(who)) {
        return error("forbidden", "verifying the audit log needs the auditor or admin role");
    }
    std::vector<jit::AuditRecord> all;
    for (std::int64_t from = 1;;) {
        // By position, not by seq: a gap or a duplicate must reach verify_chain as it is.
        auto page = journal_.store().audit_records(from, 50'000);
        if (!page) {
            return error("unavailable", page.error());
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
        return error("unavailable", checkpoints.error());
    }
    ipc::AuditVerifyReply out;
    out.head = all.empty() ? jit::to_hex(jit::ChainHash{}) : jit::to_hex(all.back().hash);
    // The checkpoints' signatures, with the audit key's public half (no login needed). No
    // audit key yet: no checkpoint can be valid, and every one found is reported.
    const hsm::KeyName audit = audit_key_name();
    std::optional<crypto::PublicKey> public_key;
    if (auto key = gate_.public_key(audit.domain, audit.selector)) {
        auto parsed = crypto::PublicKey::parse(KeyType::ed25519, key->key);
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
    options.default_every_ms = options_.checkpoint_interval.count();
    options.default_every_records = options_.checkpoint_records;
    options.signature_valid = [&public_key](const jit::Checkpoint& c) {
        return public_key &&
               public_key->verify(SigningAlgorithm::ed25519_sha256,
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

#include "service.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/jit/audit.hpp"

namespace dkim::signerd {

using jit::Actor;
using jit::Refusal;

ipc::ErrorCode error_code(Refusal::Code code) {
    switch (code) {
        case Refusal::Code::invalid: return ipc::ErrorCode::invalid;
        case Refusal::Code::forbidden: return ipc::ErrorCode::forbidden;
        case Refusal::Code::not_found: return ipc::ErrorCode::not_found;
        case Refusal::Code::conflict: return ipc::ErrorCode::conflict;
        case Refusal::Code::unavailable: return ipc::ErrorCode::unavailable;
        case Refusal::Code::unauthenticated: return ipc::ErrorCode::unauthenticated;
    }
    return ipc::ErrorCode::unavailable;
}

ipc::ErrorReply error_reply(const Refusal& refusal) {
    return ipc::ErrorReply{error_code(refusal.code), refusal.message, 0, refusal.rule};
}

ipc::ErrorReply error_reply(ipc::ErrorCode code, std::string message) {
    return ipc::ErrorReply{code, std::move(message), 0, {}};
}

Service::Service(jit::Journal& journal, jit::Authority& authority, jit::Directory& directory,
                 jit::KeyRegistry& keys, TokenGate& gate, const Clock& clock, Metrics& metrics,
                 ServiceOptions options)
    : journal_(journal),
      authority_(authority),
      directory_(directory),
      gate_(gate),
      clock_(clock),
      metrics_(metrics),
      pin_source_(options.pin_source),
      cluster_(options.cluster),
      node_keys_(options.node_keys),
      keys_registry_(keys),
      custody_(journal, authority, directory,
               CustodyOptions{options.pin_source, options.pin_path, options.pin_unlock_window,
                              options.pin_identity, options.pin_share_set}),
      lifecycle_(journal, authority, gate, metrics, custody_,
                 static_cast<const LifecycleOptions&>(options), clock.now()),
      signing_(authority, keys, gate, metrics, lifecycle_, options.max_sign_data,
               std::move(options.profile)),
      factors_(directory, authority.policy(), options.webauthn),
      identities_(authority, directory, options.webauthn.enabled()),
      passkeys_(authority, directory, factors_),
      elevations_(authority, lifecycle_, custody_, factors_),
      keys_(journal, authority, keys, gate, lifecycle_),
      audit_(journal, gate, options.checkpoint_interval, options.checkpoint_records),
      summary_(journal, authority, signing_.profile().max_lifetime) {
    // A quorum rebuilt the PIN (log in if a grant waits), or `pin lock` forgot it (log out).
    custody_.on_change([this](TimePoint now) {
        if (custody_.mode() == PinSourceKind::shares && !custody_.pin_for_login()) {
            lifecycle_.lock(now, "pin lock: the PIN is no longer in memory");
        } else {
            (void)lifecycle_.reconcile(now);
        }
        lifecycle_.notify_change();
    });
    custody_.on_split_check([this](hsm::Secret pin, const std::string& who, TimePoint now) {
        return lifecycle_.try_pin(now, std::move(pin), who);
    });
    if (cluster_ != nullptr) {
        keys_.set_cluster_node(cluster_->node());
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
    if (cluster_ != nullptr) {
        g.cluster = true;
        const auto counters = cluster_->store().counters();
        g.store_statements = counters.statements;
        g.store_transactions = counters.transactions;
        g.node = cluster_->node();
        g.fenced = cluster_->fenced();
        for (const jit::NodeStatus& n : cluster_->seen_nodes()) {
            if (!jit::valid_node_name(n.name)) {
                continue;
            }
            const auto since = std::chrono::duration<double>(now - n.last_seen).count();
            g.nodes.push_back({n.name, since, now - n.last_seen <= kNodeGoneAfter,
                               n.token == "logged-in", n.grants});
        }
    }
    return g;
}

namespace {

ipc::ClusterKeyView key_view(const std::string& node, const jit::KeyRecord& k) {
    const auto ms = [](const std::optional<TimePoint>& t) { return t ? to_unix_ms(*t) : 0; };
    return {node,
            k.domain,
            k.selector,
            k.algorithm,
            std::string(jit::to_string(k.state)),
            k.dkim_record,
            ms(k.retire_after),
            ms(k.activated),
            ms(k.retiring_since)};
}

}  // namespace

namespace {

// The most selectors and records of one node's registry row that a status lists.
constexpr std::size_t kMaxListedKeys = 1000;

}  // namespace

bool Service::records_attested(const jit::NodeStatus& n) const {
    const auto key = node_keys_.find(n.name);
    return key != node_keys_.end() && !n.attestation.empty() &&
           key->second.verify(key->second.signing_algorithm(),
                              crypto::Sha256::hash(jit::node_records_message(n.name, n.records)),
                              n.attestation);
}

ipc::Reply Service::cluster_status(TimePoint now) const {
    ipc::ClusterStatusReply out;
    out.now_ms = to_unix_ms(now);
    if (cluster_ == nullptr) {
        for (const jit::KeyRecord& k : keys_registry_.all()) {
            out.keys.push_back(key_view(std::string(), k));
        }
        return out;
    }
    out.cluster = true;
    out.node = cluster_->node();
    out.fenced = cluster_->fenced();
    out.lease_ms = cluster_->lease().count();
    auto nodes = cluster_->store().nodes();
    auto keys = cluster_->store().all_keys();
    if (!nodes || !keys) {
        return error_reply(
            ipc::ErrorCode::unavailable,
            "the cluster's shared store cannot be read: " + (nodes ? keys.error() : nodes.error()));
    }
    for (const jit::NodeStatus& n : *nodes) {
        ipc::ClusterNodeView v;
        v.name = n.name;
        v.version = n.version;
        v.started_ms = to_unix_ms(n.started);
        v.last_seen_ms = to_unix_ms(n.last_seen);
        v.token = n.token;
        v.grants = n.grants;
        // The row is anyone's with the database (its selectors are not signed): at most
        // kMaxListedKeys of them, so that a huge row neither holds this decision (and the
        // cluster's lock) nor outgrows the reply.
        std::istringstream words(n.selectors);
        for (std::string w; v.selectors.size() < kMaxListedKeys && words >> w;) {
            v.selectors.push_back(w);
        }
        v.gone = now - n.last_seen > kNodeGoneAfter;
        v.self = n.name == cluster_->node();
        v.records_verified = v.self || records_attested(n);
        if (v.self) {
            // This node's own row as it is now, not as its last heartbeat wrote it.
            v.token = cluster_->fenced() ? "fenced" : logged_in() ? "logged-in" : "logged-out";
        }
        out.nodes.push_back(std::move(v));
    }
    for (const auto& [node, k] : *keys) {
        out.keys.push_back(key_view(node, k));
    }
    for (const jit::ClusterRotation& c : keys_registry_.rotations()) {
        ipc::ClusterRotationView v{c.domain,
                                   c.kind,
                                   c.algorithm,
                                   c.selector,
                                   c.grace_s,
                                   std::string(jit::to_string(c.phase)),
                                   c.requested_by,
                                   to_unix_ms(c.started),
                                   to_unix_ms(c.updated),
                                   {}};
        std::istringstream checked(c.checked);
        for (std::string s; checked >> s;) {
            v.checked.push_back(s);
        }
        out.rotations.push_back(std::move(v));
    }
    // Each node's token's records ("domain selector record"): this node's from its token, the
    // others' as their heartbeats list them, when the row is signed with the node's pinned
    // audit key. No record is taken from the keys' lifecycle rows, which anyone with the
    // database could write: a key of a writer's own would be listed for publication.
    std::map<std::tuple<std::string, std::string, std::string>, std::string> records;
    if (auto own = gate_.list_keys(); own) {
        for (const TokenGate::KeyDescription& k : *own) {
            records[{cluster_->node(), k.domain, k.selector}] = k.dkim_record;
        }
    }
    for (const jit::NodeStatus& n : *nodes) {
        if (n.name == cluster_->node() || !records_attested(n)) {
            continue;
        }
        std::istringstream lines(n.records);
        std::size_t listed = 0;
        for (std::string line; listed++ < kMaxListedKeys && std::getline(lines, line);) {
            const auto first = line.find(' ');
            const auto second = first == std::string::npos ? first : line.find(' ', first + 1);
            if (second != std::string::npos) {
                records[{n.name, line.substr(0, first),
                         line.substr(first + 1, second - first - 1)}] = line.substr(second + 1);
            }
        }
    }
    // The keys a node's token holds without a lifecycle record (made before signerd managed
    // them), as its heartbeat lists them: "domain/selector:algorithm".
    std::set<std::tuple<std::string, std::string, std::string>> managed_keys;
    for (const ipc::ClusterKeyView& k : out.keys) {
        managed_keys.emplace(k.node, k.domain, k.selector);
    }
    for (const ipc::ClusterNodeView& n : out.nodes) {
        for (const std::string& listed : n.selectors) {
            const auto slash = listed.find('/');
            const auto colon = listed.find(':');
            if (slash == std::string::npos || colon == std::string::npos || colon < slash) {
                continue;
            }
            const std::string domain = listed.substr(0, slash);
            const std::string selector = listed.substr(slash + 1, colon - slash - 1);
            if (managed_keys.emplace(n.name, domain, selector).second) {
                out.keys.push_back(
                    {n.name, domain, selector, listed.substr(colon + 1), "unmanaged", "", 0, 0, 0});
            }
        }
    }
    for (ipc::ClusterKeyView& k : out.keys) {
        const auto it = records.find({k.node, k.domain, k.selector});
        k.dns_record = it == records.end() ? std::string() : it->second;
    }
    std::sort(out.keys.begin(), out.keys.end(),
              [](const ipc::ClusterKeyView& a, const ipc::ClusterKeyView& b) {
                  return std::tie(a.node, a.domain, a.selector) <
                         std::tie(b.node, b.domain, b.selector);
              });
    return out;
}

// What a cluster node answers without its decision lock: signatures (their use is spent in the
// shared store's commit), public keys and status, and the summary. Everything that checks a
// user's credentials is a decision, on the cluster's latest state (a lockout another node
// recorded, a token revoked there), the cluster's status included.
template <class T>
constexpr bool outside_decisions() {
    return std::is_same_v<T, ipc::SignRequest> || std::is_same_v<T, ipc::PublicKeyRequest> ||
           std::is_same_v<T, ipc::SigningKeysRequest> || std::is_same_v<T, ipc::StatusRequest> ||
           std::is_same_v<T, ipc::SigningSummaryRequest>;
}

ipc::Reply Service::handle(const Peer& peer, ipc::Request& request) {
    ipc::Reply reply = std::visit(
        [&](auto& r) -> ipc::Reply {
            using T = std::decay_t<decltype(r)>;
            if constexpr (outside_decisions<T>()) {
                // A signature's record joins the group commit of the others on their way.
                std::optional<jit::Journal::Writer> writing;
                if constexpr (std::is_same_v<T, ipc::SignRequest>) {
                    writing.emplace(journal_);
                }
                if (std::is_same_v<T, ipc::SignRequest> && cluster_ != nullptr &&
                    cluster_->fenced()) {
                    metrics_.refusal(Metrics::Refusal::audit);
                    return error_reply(ipc::ErrorCode::unavailable,
                                       "this node is cut off from the cluster's shared store");
                }
                return dispatch(peer, r);
            } else {
                if (cluster_ == nullptr) {
                    return dispatch(peer, r);
                }
                // One decision of the cluster: on its latest state, under its lock.
                ipc::Reply decided;
                auto ran = cluster_->decide([&] { decided = dispatch(peer, r); });
                if (!ran) {
                    return error_reply(ipc::ErrorCode::unavailable, ran.error());
                }
                return decided;
            }
        },
        request);
    // Wipe every secret the request carried, whatever the outcome.
    ipc::wipe_secrets(request);
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

// What the reports peer (dkim-reportd) may ask: read-only, and nothing but counts, grant
// intervals, selectors, public keys and status. It parses untrusted reports: whatever it is made
// to send, everything else is refused for the peer.
template <class T>
constexpr bool reports_peer_may() {
    return std::is_same_v<T, ipc::SigningSummaryRequest> ||
           std::is_same_v<T, ipc::SigningKeysRequest> || std::is_same_v<T, ipc::PublicKeyRequest> ||
           std::is_same_v<T, ipc::StatusRequest>;
}

template <class T>
ipc::Reply Service::dispatch(const Peer& peer, T& request) {
    if (peer.kind == PeerKind::reports && !reports_peer_may<T>()) {
        metrics_.refusal(Metrics::Refusal::peer);
        return error_reply(ipc::ErrorCode::forbidden,
                           "the reports peer may only read the signing summary, signing keys, "
                           "public keys and status");
    }
    if constexpr (std::is_same_v<T, ipc::SignRequest>) {
        if (peer.kind != PeerKind::relay) {
            metrics_.refusal(Metrics::Refusal::peer);
            return error_reply(ipc::ErrorCode::forbidden,
                               "only relay clients may ask for signatures");
        }
        return signing_.sign(peer, request, clock_.now());
    } else if constexpr (std::is_same_v<T, ipc::PublicKeyRequest>) {
        return signing_.public_key(request);
    } else if constexpr (std::is_same_v<T, ipc::SigningKeysRequest>) {
        return keys_.signing_keys(request);
    } else if constexpr (std::is_same_v<T, ipc::StatusRequest>) {
        return status();
    } else if constexpr (std::is_same_v<T, ipc::SigningSummaryRequest>) {
        // The peer's uid is the credential: dkim-reportd, or the operator CLI.
        if (peer.kind != PeerKind::reports && peer.kind != PeerKind::admin) {
            metrics_.refusal(Metrics::Refusal::peer);
            return error_reply(ipc::ErrorCode::forbidden,
                               "only the reports peer (dkim-reportd) and the admin peer may read "
                               "the signing summary");
        }
        return summary_.signing_summary(request);
    } else if constexpr (std::is_same_v<T, ipc::PasskeyLoginChallenge>) {
        // Before any credential: the start of a username-less login, through the console.
        if (peer.kind != PeerKind::web && peer.kind != PeerKind::admin) {
            metrics_.refusal(Metrics::Refusal::peer);
            return error_reply(ipc::ErrorCode::forbidden,
                               "only the web and admin peers start passkey logins");
        }
        return passkeys_.login_challenge(clock_.now());
    } else {
        if (peer.kind == PeerKind::relay) {
            metrics_.refusal(Metrics::Refusal::peer);
            return error_reply(
                ipc::ErrorCode::forbidden,
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
        return operate(peer, *actor, request, now);
    }
}

template <class T>
ipc::Reply Service::operate(const Peer& peer, const Actor& who, T& request, TimePoint now) {
    if constexpr (std::is_same_v<T, ipc::PinStatusRequest>) {
        return custody_.status(gate_.logged_in(), now);
    } else if constexpr (std::is_same_v<T, ipc::ClusterStatusRequest>) {
        return cluster_status(now);
    } else if constexpr (requires { custody_.operate(peer, who, request, now); }) {
        return custody_.operate(peer, who, request, now);
    } else if constexpr (requires { custody_.operate(who, request, now); }) {
        return custody_.operate(who, request, now);
    } else if constexpr (requires { identities_.operate(peer, who, request, now); }) {
        return identities_.operate(peer, who, request, now);
    } else if constexpr (requires { passkeys_.operate(peer, who, request, now); }) {
        return passkeys_.operate(peer, who, request, now);
    } else if constexpr (requires { passkeys_.operate(who, request, now); }) {
        return passkeys_.operate(who, request, now);
    } else if constexpr (requires { identities_.operate(who, request, now); }) {
        return identities_.operate(who, request, now);
    } else if constexpr (requires { elevations_.operate(who, request, now); }) {
        return elevations_.operate(who, request, now);
    } else if constexpr (requires { keys_.operate(who, request, now); }) {
        return keys_.operate(who, request, now);
    } else {
        static_assert(
            requires { audit_.operate(who, request, now); },
            "every operator request has its handler");
        return audit_.operate(who, request, now);
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
    s.pin_source = std::string(to_string(pin_source_));
    return s;
}

// --- the lifecycle thread, start and stop ------------------------------------------------------

Expected<void, std::string> Service::start(const std::string& detail) {
    return lifecycle_.start(clock_.now(), detail);
}

void Service::tick() {
    const auto now = clock_.now();
    if (cluster_ == nullptr) {
        authority_.sweep(now);
    } else if (!cluster_->fenced()) {
        // The records of what ended are decisions too: one node writes each, on the latest
        // state (the others find them done when they reload). A fenced node decides nothing:
        // it goes straight to logging its token out.
        (void)cluster_->decide([&] { authority_.sweep(now); });
        follow_rotations(now);
    }
    custody_.sweep(now);
    (void)lifecycle_.reconcile(now);
    lifecycle_.checkpoint_if_due(now);
}

void Service::follow_rotations(TimePoint now) {
    constexpr auto kRetryAfter = std::chrono::seconds(30);
    for (KeyHandlers::RotationPart& part : keys_.rotation_parts(now)) {
        const std::string name = part.key + ": " + part.what;
        if (auto tried = rotation_tries_.find(name);
            tried != rotation_tries_.end() && now - tried->second < kRetryAfter) {
            continue;
        }
        // The requester as the cluster knows them now: a disabled user's rotation stops.
        const auto user = directory_.find(part.requester);
        if (!user || user->disabled) {
            rotation_tries_[name] = now;
            std::cerr << "dkim-signerd: cluster rotation of " << name << ": its requester "
                      << part.requester << " is " << (user ? "disabled" : "unknown") << "\n";
            continue;
        }
        jit::Actor who{jit::Actor::Kind::user, user->name, user->roles};
        who.via = part.via;
        ipc::Reply reply = error_reply(ipc::ErrorCode::unavailable, "not run");
        auto ran = cluster_->decide([&] {
            reply = std::visit(
                [&](auto& r) -> ipc::Reply {
                    if constexpr (requires { keys_.operate(who, r, now); }) {
                        return keys_.operate(who, r, now);
                    } else {
                        return error_reply(ipc::ErrorCode::invalid, "not a key step");
                    }
                },
                part.step);
        });
        const auto* refused = std::get_if<ipc::ErrorReply>(&reply);
        if (!ran || refused != nullptr) {
            rotation_tries_[name] = now;
            std::cerr << "dkim-signerd: cluster rotation of " << name << " (as " << who.name
                      << "): " << (!ran ? ran.error() : refused->message) << "; next try in "
                      << kRetryAfter.count() << " s\n";
            continue;
        }
        rotation_tries_.erase(name);
        const auto* made = std::get_if<ipc::KeysReply>(&reply);
        std::cerr << "dkim-signerd: cluster rotation of " << name << " (as " << who.name
                  << "): " << (made != nullptr ? made->message : std::string("done")) << "\n";
    }
}

TimePoint Service::next_tick() const {
    const auto now = clock_.now();
    TimePoint next = now + std::chrono::seconds(1);
    if (auto deadline = authority_.next_deadline(now); deadline && *deadline < next) {
        next = *deadline;
    }
    if (auto deadline = custody_.next_deadline(); deadline && *deadline < next) {
        next = std::max(now, *deadline);
    }
    return next;
}

void Service::shutdown() {
    lifecycle_.shutdown(clock_.now());
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
    if (!credentials.passkey.empty()) {
        // A username-less login with a passkey: only where a password would make a credential
        // (a session, an API token); a passkey alone is not a way to call anything else.
        if (!need_password) {
            return jit::refuse(Refusal::Code::unauthenticated,
                               "a passkey signs in (a session); use its session token");
        }
        return factors_.login(credentials.passkey, now);
    }
    if (peer.kind == PeerKind::admin) {
        return Actor{Actor::Kind::local,
                     peer.name,
                     static_cast<jit::RoleSet>(static_cast<unsigned>(jit::Role::admin) |
                                               static_cast<unsigned>(jit::Role::auditor)),
                     {}};
    }
    return jit::refuse(Refusal::Code::unauthenticated, "credentials are required");
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
    return error_reply(
        ipc::ErrorCode::forbidden,
        "users and TOTP enrolments are managed only at the CLI (root, or an admin under "
        "an admin grant), never through the web console");
}

}  // namespace dkim::signerd

#include "views.hpp"

#include <algorithm>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/base64.hpp"

namespace dkim::web::detail {

std::vector<std::string> split_roles(const std::string& roles) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < roles.size()) {
        const std::size_t comma = roles.find(',', start);
        const std::size_t end = comma == std::string::npos ? roles.size() : comma;
        if (end > start) {
            out.push_back(roles.substr(start, end - start));
        }
        start = end + 1;
    }
    return out;
}

api::GrantSummary grant_view(const ipc::GrantView& g) {
    api::GrantSummary v;
    v.id = g.id;
    v.request_id = g.request_id;
    v.holder = g.holder;
    v.scope = g.scope;
    v.state = g.state;
    v.starts_ms = g.starts_ms;
    v.expires_ms = g.expires_ms;
    v.budget = g.budget;
    v.uses = g.uses;
    if (g.budget) {
        v.uses_left = *g.budget > g.uses ? *g.budget - g.uses : 0;
    }
    v.revoked_by = g.revoked_by;
    v.revoke_reason = g.revoke_reason;
    v.break_glass = g.break_glass;
    if (g.renews != 0) {
        v.renews = g.renews;
    }
    return v;
}

api::Elevation elevation_view(const ipc::RequestView& r,
                              const std::vector<ipc::GrantView>& grants) {
    api::Elevation v;
    v.id = r.id;
    v.requester = r.requester;
    v.operation = r.operation;
    v.domain = r.domain;
    v.selector = r.selector;
    v.client = r.client;
    v.scope = r.scope;
    v.duration_seconds = r.duration_ms / 1000;
    v.budget = r.budget;
    v.reason = r.reason;
    v.state = r.state;
    v.created_ms = r.created_ms;
    v.pending_until_ms = r.pending_until_ms;
    v.approvals = r.approvals;
    v.quorum = r.quorum;
    v.decided_by = r.decided_by;
    v.decision_reason = r.decision_reason;
    v.break_glass = r.break_glass;
    v.filed_by_signer = r.filed_by_signer;
    if (r.superseded_by != 0) {
        v.superseded_by = r.superseded_by;
    }
    if (r.renews != 0) {
        v.renews = r.renews;
        v.renews_expires_ms = r.renews_expires_ms;
    }
    for (const ipc::GrantView& g : grants) {
        if (g.request_id == r.id) {
            v.grant = grant_view(g);
        }
    }
    return v;
}

api::Key key_view(const ipc::KeyView& k) {
    return api::Key{k.domain,   k.selector,   k.algorithm, k.signing, k.bits,
                    k.dns_name, k.dns_record, k.state,     k.managed};
}

api::Permissions permissions_view(const ipc::Permissions& p, const std::string& roles) {
    return api::Permissions{p.request,
                            p.break_glass,
                            p.approve,
                            p.revoke_own,
                            p.revoke_any,
                            p.cancel_any,
                            p.audit,
                            p.users,
                            may_read_reports(roles),
                            may_upload_reports(roles)};
}

namespace {

bool has_role(const std::string& roles, std::string_view role) {
    for (const std::string& r : split_roles(roles)) {
        if (r == role) {
            return true;
        }
    }
    return false;
}

}  // namespace

bool may_read_reports(const std::string& roles) {
    return has_role(roles, "auditor") || has_role(roles, "admin");
}

bool may_upload_reports(const std::string& roles) {
    return has_role(roles, "admin");
}

api::Passkey passkey_view(const ipc::PasskeyView& p) {
    api::Passkey out;
    out.credential_id = crypto::base64url_encode(p.credential_id);
    out.user = p.user;
    out.name = p.name;
    out.algorithm = p.algorithm;
    out.created_ms = p.created_ms;
    if (p.last_used_ms != 0) {
        out.last_used_ms = p.last_used_ms;
    }
    out.backup_eligible = p.backup_eligible;
    out.confirmed = p.confirmed;
    return out;
}

api::PasskeyChallenge challenge_view(const ipc::PasskeyChallengeReply& c) {
    api::PasskeyChallenge out;
    out.challenge = crypto::base64url_encode(c.challenge);
    out.rp_id = c.rp_id;
    out.rp_name = c.rp_name;
    if (!c.user_handle.empty()) {
        out.user_id = crypto::base64url_encode(c.user_handle);
        out.user_name = c.user_name;
    }
    out.timeout_ms = c.timeout_ms;
    out.user_verification = c.user_verification_required ? "required" : "preferred";
    for (const std::string& id : c.credentials) {
        out.credentials.push_back(crypto::base64url_encode(id));
    }
    out.algorithms = c.algorithms;
    if (!c.statement.empty()) {
        out.statement = c.statement;
    }
    return out;
}

Expected<std::optional<ipc::PasskeyAssertion>, FieldError> read_assertion(JsonBody& body,
                                                                          const char* name,
                                                                          bool required) {
    // Bounds well above what authenticators send (a clientDataJSON is a few hundred bytes).
    constexpr std::size_t kMaxField = std::size_t{16} * 1024;
    ipc::PasskeyAssertion a;
    if (name == nullptr) {
        auto id = body.bytes("credential_id", true, 1023);
        auto client = body.bytes("client_data_json", true, kMaxField);
        auto data = body.bytes("authenticator_data", true, kMaxField);
        auto signature = body.bytes("signature", true, 1024);
        auto handle = body.bytes("user_handle", false, 64);
        for (auto* field : {&id, &client, &data, &signature, &handle}) {
            if (!*field) {
                return unexpected(field->error());
            }
        }
        a = {**id, **client, **data, **signature, handle->value_or("")};
        return std::optional<ipc::PasskeyAssertion>(std::move(a));
    }
    auto members = body.bytes_object(
        name,
        {"credential_id", "client_data_json", "authenticator_data", "signature", "user_handle"},
        kMaxField);
    if (!members) {
        return unexpected(members.error());
    }
    if (!*members) {
        if (required) {
            return unexpected(FieldError{name, "is required"});
        }
        return std::optional<ipc::PasskeyAssertion>();
    }
    auto& m = **members;
    for (const char* member :
         {"credential_id", "client_data_json", "authenticator_data", "signature"}) {
        if (m[member].empty()) {
            return unexpected(FieldError{std::string(name) + "." + member, "is required"});
        }
    }
    a = {m["credential_id"], m["client_data_json"], m["authenticator_data"], m["signature"],
         m["user_handle"]};
    return std::optional<ipc::PasskeyAssertion>(std::move(a));
}

api::PinStatus pin_status_view(const ipc::PinStatusReply& s) {
    api::PinStatus out;
    out.mode = s.mode;
    out.ready = s.ready;
    out.logged_in = s.logged_in;
    out.missing = s.missing;
    out.identity_fingerprint = s.identity_fingerprint;
    if (!s.set_id.empty()) {
        out.set_id = s.set_id;
    }
    out.threshold = s.threshold;
    for (const ipc::PinCustodianView& c : s.custodians) {
        out.custodians.push_back(api::PinCustodian{c.name, c.index, c.submitted});
    }
    if (s.window_ends_ms != 0) {
        out.window_ends_ms = s.window_ends_ms;
    }
    return out;
}

api::ClusterStatus cluster_status_view(const ipc::ClusterStatusReply& s) {
    api::ClusterStatus out{s.cluster, s.node, s.fenced, s.lease_ms, s.now_ms, {}, {}};
    for (const ipc::ClusterNodeView& n : s.nodes) {
        out.nodes.push_back({n.name, n.version, n.started_ms, n.last_seen_ms, n.token, n.grants,
                             n.selectors, n.gone, n.self, n.records_verified});
    }
    for (const ipc::ClusterKeyView& k : s.keys) {
        out.keys.push_back({k.node, k.domain, k.selector, k.algorithm, k.state, k.dns_record});
    }
    return out;
}

api::PinKeyOffer pin_key_offer_view(const ipc::PinKeyOfferReply& o) {
    return api::PinKeyOffer{o.key_id,     o.public_key, o.identity,  o.fingerprint,
                            o.expires_ms, o.statement,  o.signature, o.associated_data};
}

namespace {

// The sizes of custody::max_envelope_text (dkim/custody/envelope.hpp) and of a key id (signerd's
// are 16 characters).
constexpr std::size_t kMaxEnvelopeText = 4096;
constexpr std::size_t kMaxKeyId = 64;

bool base64url_text(std::string_view text, bool dots) {
    return std::all_of(text.begin(), text.end(), [dots](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || (dots && c == '.');
    });
}

}  // namespace

Expected<std::optional<ipc::PinEnvelope>, FieldError> read_pin_envelope(JsonBody& body,
                                                                        const char* name,
                                                                        bool required) {
    auto members = body.string_object(name, {"key_id", "envelope"}, kMaxEnvelopeText);
    if (!members) {
        if (members.error().field == name) {
            return unexpected(FieldError{
                name,
                "must be an object {key_id, envelope}: a PIN or a share is sent sealed to "
                "signerd (POST /api/v1/pin/key), never in clear"});
        }
        return unexpected(members.error());
    }
    if (!*members) {
        if (required) {
            return unexpected(FieldError{name, "is required"});
        }
        return std::optional<ipc::PinEnvelope>();
    }
    auto& m = **members;
    // A refused envelope may be something pasted by mistake (a PIN, a share): it is wiped.
    const auto refuse = [&m](std::string field, std::string message) {
        for (auto& member : m) {
            base::wipe(member.second);
        }
        return unexpected(FieldError{std::move(field), std::move(message)});
    };
    const std::string key_field = std::string(name) + ".key_id";
    const std::string envelope_field = std::string(name) + ".envelope";
    if (m["key_id"].empty()) {
        return refuse(key_field, "is required");
    }
    if (m["key_id"].size() > kMaxKeyId || !base64url_text(m["key_id"], false)) {
        return refuse(key_field, "must be a key id from POST /api/v1/pin/key (at most " +
                                     std::to_string(kMaxKeyId) + " base64url characters)");
    }
    if (m["envelope"].empty()) {
        return refuse(envelope_field, "is required");
    }
    if (!m["envelope"].starts_with("v1.") || !base64url_text(m["envelope"], true)) {
        return refuse(envelope_field,
                      "must be a sealed envelope (\"v1.\" and base64url fields separated by "
                      "'.'): a PIN or a share is never sent in clear");
    }
    return std::optional<ipc::PinEnvelope>(
        ipc::PinEnvelope{std::move(m["key_id"]), std::move(m["envelope"])});
}

}  // namespace dkim::web::detail

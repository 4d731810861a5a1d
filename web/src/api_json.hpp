#pragma once
// The JSON shapes of REST API v1 (web/openapi.json describes the same shapes), written with
// cereal's JSON archive. Each view saves its fields by name; optional values are written as
// null, never left out, so that a client sees every field the document promises.

#include <cereal/archives/json.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace dkim::web::api {

template <class Archive, class T>
void optional_field(Archive& ar, const char* name, const std::optional<T>& value) {
    if (value) {
        ar(cereal::make_nvp(name, *value));
    } else {
        ar(cereal::make_nvp(name, nullptr));
    }
}

// {"a": ..., "b": ...} from cereal::make_nvp pairs.
template <class... Fields>
std::string object(const Fields&... fields) {
    std::ostringstream out;
    {
        cereal::JSONOutputArchive ar(out, cereal::JSONOutputArchive::Options::NoIndent());
        ar(fields...);
    }
    return out.str();
}

struct Error {
    std::string code;
    std::string message;
    std::string field;  // 400: the field at fault
    std::string rule;   // 403: the rule that refused
    std::int64_t request_id = 0;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("code", code), cereal::make_nvp("message", message));
        if (!field.empty()) {
            ar(cereal::make_nvp("field", field));
        }
        if (!rule.empty()) {
            ar(cereal::make_nvp("rule", rule));
        }
        if (request_id != 0) {
            ar(cereal::make_nvp("request_id", request_id));
        }
    }
};

// What the caller may do, as signerd decides it (ipc::Permissions), and for reports as webd
// does (reports, reports_upload: views.hpp's rule): the console shows only what its user may
// use. It grants nothing; signerd (for reports, webd) checks every operation again.
struct Permissions {
    bool request = false;
    bool break_glass = false;
    std::vector<std::string> approve;  // operations
    bool revoke_own = false;
    bool revoke_any = false;
    bool cancel_any = false;
    bool audit = false;
    bool users = false;
    bool reports = false;
    bool reports_upload = false;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("request", request), cereal::make_nvp("break_glass", break_glass),
           cereal::make_nvp("approve", approve), cereal::make_nvp("revoke_own", revoke_own),
           cereal::make_nvp("revoke_any", revoke_any), cereal::make_nvp("cancel_any", cancel_any),
           cereal::make_nvp("audit", audit), cereal::make_nvp("users", users),
           cereal::make_nvp("reports", reports),
           cereal::make_nvp("reports_upload", reports_upload));
    }
};

struct Identity {
    std::string user;
    std::vector<std::string> roles;
    bool totp = false;
    std::string auth;  // "session" or "api"
    std::optional<std::int64_t> expires_ms;
    std::optional<std::string> csrf_token;  // browser sessions only
    Permissions permissions;
    std::uint32_t passkeys = 0;
    // Per operation, the second factors policy accepts for its decisions ("totp", "webauthn").
    std::vector<std::pair<std::string, std::vector<std::string>>> factors;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("user", user), cereal::make_nvp("roles", roles),
           cereal::make_nvp("totp", totp), cereal::make_nvp("auth", auth));
        optional_field(ar, "expires_ms", expires_ms);
        optional_field(ar, "csrf_token", csrf_token);
        ar(cereal::make_nvp("permissions", permissions), cereal::make_nvp("passkeys", passkeys));
        ar.setNextName("factors");
        ar.startNode();
        for (const auto& [operation, accepted] : factors) {
            ar(cereal::make_nvp(operation.c_str(), accepted));
        }
        ar.finishNode();
    }
};

// A user's passkey (public facts only).
struct Passkey {
    std::string credential_id;  // base64url
    std::string user;
    std::string name;
    std::string algorithm;
    std::int64_t created_ms = 0;
    std::optional<std::int64_t> last_used_ms;
    bool backup_eligible = false;
    bool confirmed = true;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("credential_id", credential_id), cereal::make_nvp("user", user),
           cereal::make_nvp("name", name), cereal::make_nvp("algorithm", algorithm),
           cereal::make_nvp("created_ms", created_ms));
        optional_field(ar, "last_used_ms", last_used_ms);
        ar(cereal::make_nvp("backup_eligible", backup_eligible),
           cereal::make_nvp("confirmed", confirmed));
    }
};

// The options of a WebAuthn ceremony, for navigator.credentials.create / get (byte fields in
// base64url).
struct PasskeyChallenge {
    std::string challenge;
    std::string rp_id;
    std::string rp_name;
    std::optional<std::string> user_id;  // register
    std::optional<std::string> user_name;
    std::int64_t timeout_ms = 0;
    std::string user_verification;  // "required" or "preferred"
    std::vector<std::string> credentials;
    std::vector<std::int64_t> algorithms;
    std::optional<std::string> statement;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("challenge", challenge), cereal::make_nvp("rp_id", rp_id),
           cereal::make_nvp("rp_name", rp_name));
        if (user_id) {
            ar.setNextName("user");
            ar.startNode();
            ar(cereal::make_nvp("id", *user_id), cereal::make_nvp("name", user_name.value_or("")));
            ar.finishNode();
        } else {
            ar(cereal::make_nvp("user", nullptr));
        }
        ar(cereal::make_nvp("timeout_ms", timeout_ms),
           cereal::make_nvp("user_verification", user_verification),
           cereal::make_nvp("credentials", credentials),
           cereal::make_nvp("algorithms", algorithms));
        optional_field(ar, "statement", statement);
    }
};

// PIN custody (GET /api/v1/pin): the mode, whether signing can start without anyone, and, in
// approver and shares mode, what is missing. Shares: the current split's custodians, who has
// submitted in the open unlock window, and when it ends.
struct PinCustodian {
    std::string name;
    std::uint32_t index = 0;
    bool submitted = false;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("name", name), cereal::make_nvp("index", index),
           cereal::make_nvp("submitted", submitted));
    }
};

struct PinStatus {
    std::string mode;  // sealed, approver, shares, file
    bool ready = false;
    bool logged_in = false;
    std::string missing;
    std::string identity_fingerprint;
    std::optional<std::string> set_id;  // shares, once split
    std::uint32_t threshold = 0;
    std::vector<PinCustodian> custodians;
    std::optional<std::int64_t> window_ends_ms;  // an unlock window is open
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("mode", mode), cereal::make_nvp("ready", ready),
           cereal::make_nvp("logged_in", logged_in), cereal::make_nvp("missing", missing),
           cereal::make_nvp("identity_fingerprint", identity_fingerprint));
        optional_field(ar, "set_id", set_id);
        ar(cereal::make_nvp("threshold", threshold), cereal::make_nvp("custodians", custodians));
        optional_field(ar, "window_ends_ms", window_ends_ms);
    }
};

// GET /api/v1/cluster: the nodes that share the grant state (a single appliance: none) and every
// node's keys.
struct ClusterNode {
    std::string name;
    std::string version;
    std::int64_t started_ms = 0;
    std::int64_t last_seen_ms = 0;
    std::string token;
    std::int64_t grants = 0;
    std::vector<std::string> selectors;
    bool gone = false;
    bool self = false;
    bool records_verified = false;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("name", name), cereal::make_nvp("version", version),
           cereal::make_nvp("started_ms", started_ms),
           cereal::make_nvp("last_seen_ms", last_seen_ms), cereal::make_nvp("token", token),
           cereal::make_nvp("grants", grants), cereal::make_nvp("selectors", selectors),
           cereal::make_nvp("gone", gone), cereal::make_nvp("self", self),
           cereal::make_nvp("records_verified", records_verified));
    }
};
struct ClusterKey {
    std::string node;
    std::string domain;
    std::string selector;
    std::string algorithm;
    std::string state;
    std::string dns_record;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("node", node), cereal::make_nvp("domain", domain),
           cereal::make_nvp("selector", selector), cereal::make_nvp("algorithm", algorithm),
           cereal::make_nvp("state", state), cereal::make_nvp("dns_record", dns_record));
    }
};
struct ClusterStatus {
    bool cluster = false;
    std::string node;
    bool fenced = false;
    std::int64_t lease_ms = 0;
    std::int64_t now_ms = 0;
    std::vector<ClusterNode> nodes;
    std::vector<ClusterKey> keys;
};

// A key signerd offers to seal a PIN or a share to (POST /api/v1/pin/key), as signerd made it:
// webd forwards it and cannot forge its statement's signature.
struct PinKeyOffer {
    std::string key_id;
    std::string public_key;  // base64url, X25519
    std::string identity;    // base64url, Ed25519
    std::string fingerprint;
    std::int64_t expires_ms = 0;
    std::string statement;
    std::string signature;  // base64url
    std::string associated_data;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("key_id", key_id), cereal::make_nvp("public_key", public_key),
           cereal::make_nvp("identity", identity), cereal::make_nvp("fingerprint", fingerprint),
           cereal::make_nvp("expires_ms", expires_ms), cereal::make_nvp("statement", statement),
           cereal::make_nvp("signature", signature),
           cereal::make_nvp("associated_data", associated_data));
    }
};

struct GrantSummary {
    std::int64_t id = 0;
    std::int64_t request_id = 0;
    std::string holder;
    std::string scope;
    std::string state;  // active, scheduled (starts_ms is ahead), expired, exhausted, revoked
    std::int64_t starts_ms = 0;
    std::int64_t expires_ms = 0;
    std::optional<std::uint64_t> budget;
    std::uint64_t uses = 0;
    std::optional<std::uint64_t> uses_left;
    std::string revoked_by;
    std::string revoke_reason;
    bool break_glass = false;
    std::optional<std::int64_t> renews;  // made by a renewal: the grant it follows
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("id", id), cereal::make_nvp("request_id", request_id),
           cereal::make_nvp("holder", holder), cereal::make_nvp("scope", scope),
           cereal::make_nvp("state", state), cereal::make_nvp("starts_ms", starts_ms),
           cereal::make_nvp("expires_ms", expires_ms));
        optional_field(ar, "budget", budget);
        ar(cereal::make_nvp("uses", uses));
        optional_field(ar, "uses_left", uses_left);
        ar(cereal::make_nvp("revoked_by", revoked_by),
           cereal::make_nvp("revoke_reason", revoke_reason),
           cereal::make_nvp("break_glass", break_glass));
        optional_field(ar, "renews", renews);
    }
};

struct Elevation {
    std::int64_t id = 0;
    std::string requester;
    std::string operation;
    std::string domain;
    std::string selector;
    std::string client;
    std::string scope;
    std::int64_t duration_seconds = 0;
    std::optional<std::uint64_t> budget;
    std::string reason;
    std::string state;  // pending, approved, denied, cancelled, expired, superseded
    std::int64_t created_ms = 0;
    std::int64_t pending_until_ms = 0;
    std::vector<std::string> approvals;
    std::uint32_t quorum = 1;
    std::string decided_by;
    std::string decision_reason;
    bool break_glass = false;
    bool filed_by_signer = false;
    std::optional<std::int64_t> superseded_by;  // superseded: the grant that covers it
    std::optional<GrantSummary> grant;
    // A renewal: the grant it renews, and when that grant ends (unix ms).
    std::optional<std::int64_t> renews;
    std::optional<std::int64_t> renews_expires_ms;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("id", id), cereal::make_nvp("requester", requester),
           cereal::make_nvp("operation", operation), cereal::make_nvp("domain", domain),
           cereal::make_nvp("selector", selector), cereal::make_nvp("client", client),
           cereal::make_nvp("scope", scope),
           cereal::make_nvp("duration_seconds", duration_seconds));
        optional_field(ar, "budget", budget);
        ar(cereal::make_nvp("reason", reason), cereal::make_nvp("state", state),
           cereal::make_nvp("created_ms", created_ms),
           cereal::make_nvp("pending_until_ms", pending_until_ms),
           cereal::make_nvp("approvals", approvals), cereal::make_nvp("quorum", quorum),
           cereal::make_nvp("decided_by", decided_by),
           cereal::make_nvp("decision_reason", decision_reason),
           cereal::make_nvp("break_glass", break_glass),
           cereal::make_nvp("filed_by_signer", filed_by_signer));
        optional_field(ar, "superseded_by", superseded_by);
        optional_field(ar, "grant", grant);
        optional_field(ar, "renews", renews);
        optional_field(ar, "renews_expires_ms", renews_expires_ms);
    }
};

struct Key {
    std::string domain;
    std::string selector;
    std::string algorithm;
    std::string signing;
    std::uint32_t bits = 0;
    std::string dns_name;
    std::string dns_record;
    std::string state;  // pending-publish, active, retiring, retired, generating
    bool managed = false;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("domain", domain), cereal::make_nvp("selector", selector),
           cereal::make_nvp("algorithm", algorithm), cereal::make_nvp("signing", signing),
           cereal::make_nvp("bits", bits), cereal::make_nvp("dns_name", dns_name),
           cereal::make_nvp("dns_record", dns_record), cereal::make_nvp("state", state),
           cereal::make_nvp("managed", managed));
    }
};

struct DnsRecord {
    std::string kind;  // "dkim", "spf", "dmarc", "tlsrpt", "dmarc-report" (RFC 7489 §7.1)
    std::string name;  // owner name, no trailing dot
    std::string type;  // "TXT"
    std::string value;
    std::string zone_line;  // ready to paste into a zone file
    std::string note;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("kind", kind), cereal::make_nvp("name", name),
           cereal::make_nvp("type", type), cereal::make_nvp("value", value),
           cereal::make_nvp("zone_line", zone_line), cereal::make_nvp("note", note));
    }
};

struct AuditRecord {
    std::int64_t seq = 0;
    std::int64_t time_ms = 0;
    std::string actor;
    std::string action;
    std::string scope;
    std::string outcome;
    std::string reason;
    std::int64_t request_id = 0;
    std::int64_t grant_id = 0;
    std::string detail;
    std::string hash;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("seq", seq), cereal::make_nvp("time_ms", time_ms),
           cereal::make_nvp("actor", actor), cereal::make_nvp("action", action),
           cereal::make_nvp("scope", scope), cereal::make_nvp("outcome", outcome),
           cereal::make_nvp("reason", reason), cereal::make_nvp("request_id", request_id),
           cereal::make_nvp("grant_id", grant_id), cereal::make_nvp("detail", detail),
           cereal::make_nvp("hash", hash));
    }
};

struct User {
    std::string name;
    std::vector<std::string> roles;
    bool disabled = false;
    bool totp = false;
    std::int64_t created_ms = 0;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("name", name), cereal::make_nvp("roles", roles),
           cereal::make_nvp("disabled", disabled), cereal::make_nvp("totp", totp),
           cereal::make_nvp("created_ms", created_ms));
    }
};

struct Token {
    std::int64_t id = 0;
    std::string user;
    std::string kind;
    std::string label;
    std::int64_t created_ms = 0;
    std::optional<std::int64_t> expires_ms;
    bool revoked = false;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("id", id), cereal::make_nvp("user", user),
           cereal::make_nvp("kind", kind), cereal::make_nvp("label", label),
           cereal::make_nvp("created_ms", created_ms));
        optional_field(ar, "expires_ms", expires_ms);
        ar(cereal::make_nvp("revoked", revoked));
    }
};

}  // namespace dkim::web::api

#pragma once
// The signerd protocol: what dkim-relayd, dkim-webd and the operator CLI send to
// dkim-signerd over its Unix socket, and what it answers. One request frame, one reply
// frame; frames are length-prefixed and versioned (frame.hpp), the payload is a cereal
// binary archive of a Request or Reply variant. Field types are strings, integers, bools,
// optionals and vectors only on the wire (no enums there: a decoded value is always a valid
// value); the one enum in code, ErrorCode, crosses as its name and reads back as `unknown`
// when a peer sends a name this build does not know.
//
// It is over 600 lines on purpose: every Request and Reply alternative, each with the order
// its fields cross the wire in (serialize), is here, so that the wire format reads as one
// document and a change to it is one diff.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace dkim::ipc {

inline constexpr std::uint16_t kProtocolVersion = 1;

// How an operator request proves who it is for. Exactly one of: token (API or session
// token), or user + password. totp is the second factor that approve, deny and revoke
// need. The local operator (root on the appliance, through the CLI) may send none for user
// management. Wiped by the server after use.
//
// token_kind says which kind of token the sender accepted it as: "api" (webd's Bearer
// header), "session" (webd's session cookie, after webd's own idle check), or "" (either,
// the CLI's --token-file). signerd refuses a token of the other kind as it refuses a wrong
// one, so a console session token cannot be replayed as a Bearer token around webd's idle
// timeout, even after webd forgot the session.
//
// passkey is the other second factor (and, alone, a username-less login): a WebAuthn assertion
// exactly as the browser made it (raw bytes, decoded from the console's base64url by webd and
// otherwise unchanged). It is not secret: it is bound to one challenge that signerd issued and
// takes back at its first use.
struct PasskeyAssertion {
    std::string credential_id;
    std::string client_data_json;
    std::string authenticator_data;
    std::string signature;
    std::string user_handle;
    bool empty() const { return credential_id.empty() && client_data_json.empty(); }
    template <class A>
    void serialize(A& ar) {
        ar(credential_id, client_data_json, authenticator_data, signature, user_handle);
    }
};

struct Credentials {
    std::string user;
    std::string password;
    std::string token;
    std::string totp;
    std::string token_kind;
    PasskeyAssertion passkey{};
    void wipe() noexcept;
    template <class A>
    void serialize(A& ar) {
        ar(user, password, token, totp, token_kind, passkey);
    }
};

// --- requests -------------------------------------------------------------------------------

// From a relay client: sign `data`, the canonicalized header block ending in the
// DKIM-Signature field with an empty b= (dkim::signing_input). signerd parses that field and
// refuses unless its d=, s= and a= are `domain`, `selector` and `algorithm`.
struct SignRequest {
    std::string domain;
    std::string selector;
    std::string algorithm;  // "rsa-sha256", "ed25519-sha256"
    std::string data;
    // The SMTP client the relay authorised for this message (its [[client]] name), as the
    // relay states it: signerd records it in the audit log but trusts the relay for it. Grant
    // scopes name the relay itself (its Unix user), which signerd checks.
    std::string smtp_client;
    template <class A>
    void serialize(A& ar) {
        ar(domain, selector, algorithm, data, smtp_client);
    }
};

// From a relay client (or webd): the public half of domain/selector, read from the token
// without a login (public objects), so that the relay can verify each signature the token
// makes before the message leaves.
struct PublicKeyRequest {
    std::string domain;
    std::string selector;
    template <class A>
    void serialize(A& ar) {
        ar(domain, selector);
    }
};

struct StatusRequest {
    template <class A>
    void serialize(A& /*ar*/) {}
};

struct SessionCreate {  // password (+ TOTP when enrolled) -> a session token
    Credentials auth;
    std::int64_t ttl_seconds = 0;
    template <class A>
    void serialize(A& ar) {
        ar(auth, ttl_seconds);
    }
};

struct UserAdd {
    Credentials auth;
    std::string name;
    std::string roles;  // "requester,approver"
    std::string password;
    template <class A>
    void serialize(A& ar) {
        ar(auth, name, roles, password);
    }
};

struct UserList {
    Credentials auth;
    template <class A>
    void serialize(A& ar) {
        ar(auth);
    }
};

struct UserSetDisabled {
    Credentials auth;
    std::string name;
    bool disabled = true;
    template <class A>
    void serialize(A& ar) {
        ar(auth, name, disabled);
    }
};

// An API token lives 90 days unless asked otherwise: long enough for a quarterly rotation of
// what uses it, short enough that a forgotten or leaked token dies on its own. A token that
// never expires must be asked for explicitly (ttl_seconds = kApiTokenNeverExpires).
inline constexpr std::chrono::seconds kApiTokenDefaultTtl{std::int64_t{90} * 86400};
inline constexpr std::int64_t kApiTokenNeverExpires = -1;

struct ApiTokenCreate {
    Credentials auth;
    std::string user;
    std::string label;
    // 0: kApiTokenDefaultTtl; > 0: seconds; kApiTokenNeverExpires: no expiry.
    std::int64_t ttl_seconds = 0;
    template <class A>
    void serialize(A& ar) {
        ar(auth, user, label, ttl_seconds);
    }
};

struct ApiTokenRevoke {
    Credentials auth;
    std::int64_t id = 0;
    template <class A>
    void serialize(A& ar) {
        ar(auth, id);
    }
};

struct TotpEnrol {
    Credentials auth;
    std::string user;
    template <class A>
    void serialize(A& ar) {
        ar(auth, user);
    }
};

struct TotpConfirm {
    Credentials auth;
    std::string user;
    std::string code;
    template <class A>
    void serialize(A& ar) {
        ar(auth, user, code);
    }
};

struct ElevationRequest {
    Credentials auth;
    std::string operation;  // "sign", "key.generate", ...
    std::string domain;
    std::string selector = "*";
    std::string client = "*";
    std::int64_t duration_seconds = 0;
    std::optional<std::uint64_t> budget;
    std::string reason;
    bool break_glass = false;
    template <class A>
    void serialize(A& ar) {
        ar(auth, operation, domain, selector, client, duration_seconds, budget, reason,
           break_glass);
    }
};

struct ElevationList {
    Credentials auth;
    bool pending_only = false;
    template <class A>
    void serialize(A& ar) {
        ar(auth, pending_only);
    }
};

// A token PIN or a PIN share sealed to signerd (dkim/custody/envelope.hpp): the key signerd
// offered (PinKeyOffer) and the envelope's text. Not secret on the wire: only signerd opens it,
// once, for the purpose and subject its key was offered for.
struct PinEnvelope {
    std::string key_id;
    std::string envelope;
    bool empty() const { return key_id.empty() && envelope.empty(); }
    template <class A>
    void serialize(A& ar) {
        ar(key_id, envelope);
    }
};

struct ElevationDecide {
    Credentials auth;
    std::string action;  // "approve", "deny", "cancel"
    std::int64_t id = 0;
    std::string reason;  // deny
    // approve, in PIN custody "approver": the token PIN sealed to a key signerd offered for
    // purpose "approve" and this request (the only way a PIN reaches signerd in that mode).
    PinEnvelope pin{};
    template <class A>
    void serialize(A& ar) {
        ar(auth, action, id, reason, pin);
    }
};

struct GrantRevoke {
    Credentials auth;
    std::int64_t id = 0;
    std::string reason;
    template <class A>
    void serialize(A& ar) {
        ar(auth, id, reason);
    }
};

struct GrantList {
    Credentials auth;
    bool active_only = false;
    template <class A>
    void serialize(A& ar) {
        ar(auth, active_only);
    }
};

struct AuditShow {
    Credentials auth;
    std::int64_t from = 1;
    std::int64_t limit = 100;
    template <class A>
    void serialize(A& ar) {
        ar(auth, from, limit);
    }
};

// Who the credentials belong to (for webd's GET /api/v1/me and its session table).
struct WhoAmI {
    Credentials auth;
    template <class A>
    void serialize(A& ar) {
        ar(auth);
    }
};

// Ends the session whose token `auth` carries (logout). Only session tokens; API tokens are
// revoked with ApiTokenRevoke.
struct SessionEnd {
    Credentials auth;
    template <class A>
    void serialize(A& ar) {
        ar(auth);
    }
};

// The DKIM keys in the token (public halves: no login needed), with their DNS records.
struct KeyList {
    Credentials auth;
    template <class A>
    void serialize(A& ar) {
        ar(auth);
    }
};

// Generates a key in the token; it starts in state pending-publish. Needs an active grant of
// the caller that covers domain/selector (which is also what keeps the token logged in):
// key.generate, or key.rotate when `rotation` is set (the domain must then have an active key
// of the same kind). Rerunning it for a key that is still pending-publish, or whose
// generation was interrupted, finishes it instead of failing.
struct KeyGenerate {
    Credentials auth;
    std::string domain;
    std::string selector;
    std::string algorithm;  // "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"
    bool rotation = false;
    template <class A>
    void serialize(A& ar) {
        ar(auth, domain, selector, algorithm, rotation);
    }
};

// Walks the whole audit chain and checks the checkpoints' signatures with the audit key.
struct AuditVerify {
    Credentials auth;
    template <class A>
    void serialize(A& ar) {
        ar(auth);
    }
};

// Switches signing to a pending-publish key: it becomes active, and the active keys of the same
// kind (RSA or Ed25519) of its domain become retiring, to be retired after `grace_seconds`.
// One durable commit. Needs key.rotate when it displaces a key, else key.generate or
// key.rotate. signerd does not look at DNS: the caller checks that the record is published.
struct KeyActivate {
    Credentials auth;
    std::string domain;
    std::string selector;
    std::int64_t grace_seconds = 0;
    template <class A>
    void serialize(A& ar) {
        ar(auth, domain, selector, grace_seconds);
    }
};

// Retires a retiring key whose grace period is over (or, with `force`, any key that is not
// pending: a compromised one): it stops signing at once and its private half is destroyed in
// the token. Needs key.retire. Rerunning it finishes an interrupted destruction.
struct KeyRetire {
    Credentials auth;
    std::string domain;
    std::string selector;
    bool force = false;
    template <class A>
    void serialize(A& ar) {
        ar(auth, domain, selector, force);
    }
};

// Imports a private key (PEM or DER, PKCS#1 or PKCS#8: RSA of at least 1024 bits, or Ed25519)
// into the token as a sensitive, non-extractable object, in state pending-publish. Needs
// key.generate. `test_data`, when given, is a header block to sign with the new key at once
// (as SignRequest.data: its DKIM-Signature must name this key), so that the caller can check
// the imported key against the published record. The key bytes are wiped after use.
struct KeyImport {
    Credentials auth;
    std::string domain;
    std::string selector;
    std::string private_key;
    std::string test_data;
    template <class A>
    void serialize(A& ar) {
        ar(auth, domain, selector, private_key, test_data);
    }
};

// From a relay: the selectors that sign for `domain` now (active keys, and unmanaged ones).
struct SigningKeysRequest {
    std::string domain;
    template <class A>
    void serialize(A& ar) {
        ar(domain);
    }
};

// From the reports peer (dkim-reportd) or the admin peer, read-only: the signing summary for
// [from, until) (SigningSummaryReply), for one domain or all. No credentials: the peer's uid is
// the credential. A range longer than kMaxSummaryRange, or one that holds more than
// kMaxSummaryRows hours or grants (or a reply over one frame), is refused as invalid: ask for a
// domain at a time, or a shorter range.
struct SigningSummaryRequest {
    std::int64_t from = 0;   // unix seconds; the hour that holds it is the first
    std::int64_t until = 0;  // unix seconds, exclusive
    std::string domain;      // empty: every domain
    template <class A>
    void serialize(A& ar) {
        ar(from, until, domain);
    }
};
inline constexpr std::int64_t kMaxSummaryRange = std::int64_t{400} * 86400;  // seconds
inline constexpr std::size_t kMaxSummaryRows = 10'000;

// --- passkeys (WebAuthn) ---------------------------------------------------------------------

// A challenge for a username-less passkey login: no credentials (from the web and admin peers).
struct PasskeyLoginChallenge {
    template <class A>
    void serialize(A& /*ar*/) {}
};

// A challenge for the caller's next WebAuthn ceremony. purpose:
//   "register"          navigator.credentials.create for a new passkey of the caller
//   "register_confirm"  an existing passkey's consent to adding the credential of
//                       attestation_object (raw bytes)
//   "approve", "deny"   request `id` (deny: with `reason`)
//   "revoke"            grant `id`, with `reason`
//   "break_glass"       the break-glass request of operation ... budget (with `reason`)
//   "remove"            removing the caller's passkey `credential_id` (raw bytes)
// A decision's challenge commits to the decision (dkim/jit/challenges.hpp); the reply's
// statement is the text it commits to.
struct PasskeyChallenge {
    Credentials auth;
    std::string purpose;
    std::int64_t id = 0;
    std::string reason;
    std::string credential_id;
    std::string attestation_object;
    // break_glass: the request's terms, as ElevationRequest carries them
    std::string operation;
    std::string domain;
    std::string selector = "*";
    std::string client = "*";
    std::int64_t duration_seconds = 0;
    std::optional<std::uint64_t> budget;
    template <class A>
    void serialize(A& ar) {
        ar(auth, purpose, id, reason, credential_id, attestation_object, operation, domain,
           selector, client, duration_seconds, budget);
    }
};

// Registers a passkey for the caller (a session of theirs): the browser's clientDataJSON and
// attestationObject, and the caller's consent as a second factor: auth.totp for a first passkey,
// or auth.passkey (an existing passkey's assertion over the "register_confirm" challenge).
struct PasskeyRegister {
    Credentials auth;
    std::string name;
    std::string client_data_json;
    std::string attestation_object;
    template <class A>
    void serialize(A& ar) {
        ar(auth, name, client_data_json, attestation_object);
    }
};

// The caller's passkeys; `user` (admin, auditor, local operator): another user's, "*": all.
struct PasskeyList {
    Credentials auth;
    std::string user;
    template <class A>
    void serialize(A& ar) {
        ar(auth, user);
    }
};

struct PasskeyRename {
    Credentials auth;
    std::string credential_id;  // raw bytes
    std::string name;
    template <class A>
    void serialize(A& ar) {
        ar(auth, credential_id, name);
    }
};

// Removes a passkey: the caller's own with a second factor (auth.totp, or auth.passkey over a
// "remove" challenge), never their last through webd; `user`'s (the local operator, or an admin
// under an admin grant, at the CLI), the last one included.
struct PasskeyRemove {
    Credentials auth;
    std::string user;
    std::string credential_id;  // raw bytes
    template <class A>
    void serialize(A& ar) {
        ar(auth, user, credential_id);
    }
};

// Confirms `user`'s first passkey, pending since it was registered through the console: the admin
// peer only (root, or an admin under an admin grant), like a first TOTP enrolment.
struct PasskeyConfirm {
    Credentials auth;
    std::string user;
    std::string credential_id;  // raw bytes
    template <class A>
    void serialize(A& ar) {
        ar(auth, user, credential_id);
    }
};

// --- PIN custody (SECURITY.md, "PIN custody") -----------------------------------------------

// A short-lived X25519 key to seal a PIN or a share to (dkim/custody/envelope.hpp), offered to
// the caller for one purpose: "approve" (subject: the request id) or "share" (subject: the share
// set id; the caller must be one of its custodians). From the web and admin peers.
struct PinKeyOffer {
    Credentials auth;
    std::string purpose;
    std::string subject;
    template <class A>
    void serialize(A& ar) {
        ar(auth, purpose, subject);
    }
};

// A custodian's share of the token PIN (custody "shares"), sealed to a key offered for purpose
// "share". The custodian is the authenticated caller.
struct PinShareSubmit {
    Credentials auth;
    PinEnvelope share{};
    template <class A>
    void serialize(A& ar) {
        ar(auth, share);
    }
};

// Splits the token PIN among `custodians` (users), any `threshold` of whom can unlock: the
// admin peer only. The first split brings the PIN (checked against the token by the CLI); a
// re-split (a custodian leaves, one joins) sends none and needs the PIN in memory, that is, a
// quorum of the current custodians first.
struct PinSplit {
    Credentials auth;
    std::string pin;
    std::uint32_t threshold = 0;
    std::vector<std::string> custodians;
    template <class A>
    void serialize(A& ar) {
        ar(auth, pin, threshold, custodians);
    }
};

// The custody mode and what is missing before the token can log in (web and admin peers).
struct PinStatusRequest {
    Credentials auth;
    template <class A>
    void serialize(A& ar) {
        ar(auth);
    }
};

// Forgets the PIN held in memory (custody "shares": a quorum is needed again) and logs the token
// out: the admin peer only, or an admin under an admin grant.
struct PinLock {
    Credentials auth;
    std::string reason;
    template <class A>
    void serialize(A& ar) {
        ar(auth, reason);
    }
};

// The cluster's nodes (name, version, last seen, token state, grants they see, selectors; a node
// not seen for a while marked gone) and every node's keys; a single appliance answers with
// cluster = false and its own keys. Any authenticated user, web and admin peers.
struct ClusterStatusRequest {
    Credentials auth;
    template <class A>
    void serialize(A& ar) {
        ar(auth);
    }
};

// Starts or moves on the cluster's rotation of a domain's keys of one kind (dkim/jit/keys.hpp,
// ClusterRotation): phase "generate" (a key.rotate grant; starts it, replacing one that is
// over), "activate" (key.rotate: every node's new record is published), "retire" (key.retire:
// the grace period is over). Each node's signerd then does its part in its own token under the
// caller's grants. A cluster node only.
struct ClusterRotate {
    Credentials auth;
    std::string domain;
    std::string algorithm;  // the new keys'
    std::string selector;   // the nodes' new selectors, "%n" for each node's name
    std::int64_t grace_seconds = 0;
    std::string phase;  // and "done": every part is done
    // activate: the nodes' new selectors whose records were found published (only those are
    // activated; added to the ones found before).
    std::vector<std::string> checked;
    template <class A>
    void serialize(A& ar) {
        ar(auth, domain, algorithm, selector, grace_seconds, phase, checked);
    }
};

// New alternatives go at the end: the index is the wire tag.
using Request =
    std::variant<SignRequest, StatusRequest, SessionCreate, UserAdd, UserList, UserSetDisabled,
                 ApiTokenCreate, ApiTokenRevoke, TotpEnrol, TotpConfirm, ElevationRequest,
                 ElevationList, ElevationDecide, GrantRevoke, GrantList, AuditShow,
                 PublicKeyRequest, WhoAmI, SessionEnd, KeyList, KeyGenerate, AuditVerify,
                 KeyActivate, KeyRetire, KeyImport, SigningKeysRequest, SigningSummaryRequest,
                 PasskeyLoginChallenge, PasskeyChallenge, PasskeyRegister, PasskeyList,
                 PasskeyRename, PasskeyRemove, PasskeyConfirm, PinKeyOffer, PinShareSubmit,
                 PinSplit, PinStatusRequest, PinLock, ClusterStatusRequest, ClusterRotate>;

// Wipes every secret a request carries: the credentials' password, token and TOTP code, a new
// user's password, a PIN, a TOTP confirmation code, an imported private key. Every process
// that sends or receives a request calls it once the request is done (webd, the CLI, signerd);
// tests/appliance/ipc/protocol_test.cpp classifies every string field of every request type, so
// a new field must be declared secret or not there.
void wipe_secrets(Request& request);

// --- replies --------------------------------------------------------------------------------

// Why signerd refused. One enum in code; on the wire, its name (so that a peer of another
// version reads a code it does not know as `unknown`, not as a wrong one).
enum class ErrorCode : std::uint8_t {
    invalid,          // malformed or out-of-policy input
    forbidden,        // the peer or actor may not do this (rule says which rule)
    not_found,        // no such request, grant, user or key
    conflict,         // not in a state that allows it (already decided, exists)
    unavailable,      // fail closed: the audit log, the token or policy cannot be consulted
    unauthenticated,  // no or wrong credentials
    locked,           // no active grant covers it; request_id names the pending request
    protocol,         // the frame or request could not be read, or the reply was not expected
    unknown,          // a name this build does not know (read from the wire only)
};
std::string_view to_string(ErrorCode code);
// The code of a name; `unknown` for any other text.
ErrorCode error_code_from_name(std::string_view name);

// Any refusal.
struct ErrorReply {
    ErrorCode code = ErrorCode::unavailable;
    std::string message;
    std::int64_t request_id = 0;
    std::string rule;  // forbidden: the rule that refused (jit::Refusal::rule)
    template <class A>
    void save(A& ar) const {
        ar(std::string(to_string(code)), message, request_id, rule);
    }
    template <class A>
    void load(A& ar) {
        std::string name;
        ar(name, message, request_id, rule);
        code = error_code_from_name(name);
    }
    // "forbidden: why" (for logs and error text).
    std::string describe() const { return std::string(to_string(code)) + ": " + message; }
};

struct SignReply {
    std::string signature;  // raw bytes
    std::int64_t grant_id = 0;
    template <class A>
    void serialize(A& ar) {
        ar(signature, grant_id);
    }
};

struct PublicKeyReply {
    std::string key_type;  // "rsa" or "ed25519"
    std::string key;       // rsa: SubjectPublicKeyInfo DER; ed25519: the 32 raw bytes
    template <class A>
    void serialize(A& ar) {
        ar(key_type, key);
    }
};

struct StatusReply {
    bool logged_in = false;
    std::uint32_t active_grants = 0;
    std::int64_t audit_records = 0;
    std::string audit_head;     // hex
    std::string audit_failure;  // empty when the last write succeeded
    std::string pin_source;
    template <class A>
    void serialize(A& ar) {
        ar(logged_in, active_grants, audit_records, audit_head, audit_failure, pin_source);
    }
};

struct OkReply {
    std::string message;
    std::int64_t id = 0;
    std::string secret;  // a new token or TOTP secret: shown once
    template <class A>
    void serialize(A& ar) {
        ar(message, id, secret);
    }
};

struct UserView {
    std::string name;
    std::string roles;
    bool disabled = false;
    bool has_password = false;
    bool totp = false;  // confirmed enrolment
    std::int64_t created_ms = 0;
    template <class A>
    void serialize(A& ar) {
        ar(name, roles, disabled, has_password, totp, created_ms);
    }
};

struct TokenView {
    std::int64_t id = 0;
    std::string user;
    std::string kind;
    std::string label;
    std::int64_t created_ms = 0;
    std::int64_t expires_ms = 0;  // 0: never
    bool revoked = false;
    template <class A>
    void serialize(A& ar) {
        ar(id, user, kind, label, created_ms, expires_ms, revoked);
    }
};

struct UsersReply {
    std::vector<UserView> users;
    std::vector<TokenView> tokens;
    template <class A>
    void serialize(A& ar) {
        ar(users, tokens);
    }
};

struct RequestView {
    std::int64_t id = 0;
    std::string requester;
    std::string scope;  // human-readable
    std::string operation;
    std::string domain;
    std::string selector;
    std::string client;
    std::int64_t duration_ms = 0;
    std::optional<std::uint64_t> budget;
    std::string reason;
    std::int64_t created_ms = 0;
    std::int64_t pending_until_ms = 0;
    std::string state;
    std::vector<std::string> approvals;
    std::uint32_t quorum = 1;
    std::string decided_by;
    std::string decision_reason;
    bool break_glass = false;
    bool filed_by_signer = false;
    std::int64_t superseded_by = 0;  // state "superseded": the grant that covers it
    // A renewal: the grant it renews (0: not a renewal), and when that grant expires (or
    // ended, if revoked or spent earlier): approvers see the time left.
    std::int64_t renews = 0;
    std::int64_t renews_expires_ms = 0;
    template <class A>
    void serialize(A& ar) {
        ar(id, requester, scope, operation, domain, selector, client, duration_ms, budget, reason,
           created_ms, pending_until_ms, state, approvals, quorum, decided_by, decision_reason,
           break_glass, filed_by_signer, superseded_by, renews, renews_expires_ms);
    }
};

struct RequestsReply {
    std::vector<RequestView> requests;
    template <class A>
    void serialize(A& ar) {
        ar(requests);
    }
};

struct GrantView {
    std::int64_t id = 0;
    std::int64_t request_id = 0;
    std::string holder;
    std::string scope;
    std::int64_t starts_ms = 0;
    std::int64_t expires_ms = 0;
    std::optional<std::uint64_t> budget;
    std::uint64_t uses = 0;
    std::string state;  // active, scheduled (starts_ms is ahead), expired, exhausted, revoked
    std::string revoked_by;
    std::string revoke_reason;
    bool break_glass = false;
    std::int64_t renews = 0;  // made by a renewal: the grant it follows (0: none)
    template <class A>
    void serialize(A& ar) {
        ar(id, request_id, holder, scope, starts_ms, expires_ms, budget, uses, state, revoked_by,
           revoke_reason, break_glass, renews);
    }
};

struct GrantsReply {
    std::vector<GrantView> grants;
    template <class A>
    void serialize(A& ar) {
        ar(grants);
    }
};

struct AuditView {
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
    std::string hash;  // hex
    template <class A>
    void serialize(A& ar) {
        ar(seq, time_ms, actor, action, scope, outcome, reason, request_id, grant_id, detail, hash);
    }
};

struct AuditReply {
    std::vector<AuditView> records;
    template <class A>
    void serialize(A& ar) {
        ar(records);
    }
};

// What the caller may do, by the rules signerd checks on each operation (roles, the policy's
// approvers per operation, the TOTP enrolment that approve, deny, revoke and break-glass
// need). For the console, which shows each user only what they may use: it grants nothing,
// every operation is checked again. Per-request rules (nobody decides their own request, one
// approval per person, only pending requests) are the client's to apply from the request.
struct Permissions {
    bool request = false;              // file elevation requests (the requester role)
    bool break_glass = false;          // break-glass requests (admin, with TOTP)
    std::vector<std::string> approve;  // operations whose requests the caller may approve or
                                       // deny, and whose grants they may revoke
    bool revoke_own = false;           // revoke the grants the caller holds
    bool revoke_any = false;           // revoke any grant (admin)
    bool cancel_any = false;           // cancel anyone's pending request (own: always)
    bool audit = false;                // read and verify the audit log (auditor, admin)
    bool users = false;                // list users and API tokens (admin, auditor)
    template <class A>
    void serialize(A& ar) {
        ar(request, break_glass, approve, revoke_own, revoke_any, cancel_any, audit, users);
    }
};

// Which second factors policy accepts for an operation's decisions.
struct OperationFactors {
    std::string operation;             // "sign", "key.generate", ...
    std::vector<std::string> factors;  // "totp", "webauthn"
    template <class A>
    void serialize(A& ar) {
        ar(operation, factors);
    }
};

struct IdentityReply {
    std::string name;
    std::string roles;       // "approver,requester"
    std::string kind;        // "user" or "local"
    bool totp = false;       // a confirmed TOTP enrolment: approve, deny and revoke need codes
    std::string token_kind;  // "session", "api", or "" for a password login
    std::int64_t token_id = 0;
    std::int64_t token_expires_ms = 0;  // 0: never, or no token
    Permissions permissions;
    std::uint32_t passkeys = 0;  // the caller's registered passkeys
    std::vector<OperationFactors> factors{};
    template <class A>
    void serialize(A& ar) {
        ar(name, roles, kind, totp, token_kind, token_id, token_expires_ms, permissions, passkeys,
           factors);
    }
};

// A WebAuthn ceremony's options, for the console's navigator.credentials.create / get.
struct PasskeyChallengeReply {
    std::string challenge;  // raw bytes
    std::string rp_id;
    std::string rp_name;
    std::string user_handle;  // register: user.id
    std::string user_name;
    std::int64_t timeout_ms = 0;
    bool user_verification_required = true;
    // register: excludeCredentials; decisions: allowCredentials (raw ids)
    std::vector<std::string> credentials;
    std::vector<std::int64_t> algorithms;  // register: COSE identifiers accepted
    std::string statement;                 // decisions: what the challenge commits to
    template <class A>
    void serialize(A& ar) {
        ar(challenge, rp_id, rp_name, user_handle, user_name, timeout_ms,
           user_verification_required, credentials, algorithms, statement);
    }
};

struct PasskeyView {
    std::string credential_id;  // raw bytes
    std::string user;
    std::string name;
    std::string algorithm;
    std::int64_t created_ms = 0;
    std::int64_t last_used_ms = 0;  // 0: never
    bool backup_eligible = false;
    bool confirmed = true;  // false: a first passkey, pending confirmation at the CLI
    template <class A>
    void serialize(A& ar) {
        ar(credential_id, user, name, algorithm, created_ms, last_used_ms, backup_eligible,
           confirmed);
    }
};

struct PasskeysReply {
    std::vector<PasskeyView> passkeys;
    template <class A>
    void serialize(A& ar) {
        ar(passkeys);
    }
};

struct KeyView {
    std::string domain;
    std::string selector;
    std::string algorithm;  // "rsa-2048", "ed25519"
    std::string signing;    // the DKIM a= value: "rsa-sha256", "ed25519-sha256"
    std::uint32_t bits = 0;
    std::string dns_name;    // "s1._domainkey.example.com"
    std::string dns_record;  // "v=DKIM1; k=rsa; p=..."
    // The lifecycle (dkim/jit/keys.hpp): "generating", "pending-publish", "active", "retiring",
    // "retired". managed is false for a key in the token that signerd has no record of (it
    // signs as an active key).
    std::string state;
    bool managed = false;
    std::string origin;  // "generated", "imported", "adopted"; "" when unmanaged
    std::int64_t created_ms = 0;
    std::int64_t activated_ms = 0;     // 0: never
    std::int64_t retire_after_ms = 0;  // retiring: the end of the grace period
    std::int64_t retired_ms = 0;
    bool private_key_present = true;  // false once retired and destroyed
    template <class A>
    void serialize(A& ar) {
        ar(domain, selector, algorithm, signing, bits, dns_name, dns_record, state, managed, origin,
           created_ms, activated_ms, retire_after_ms, retired_ms, private_key_present);
    }
};

struct KeysReply {
    std::vector<KeyView> keys;
    std::string message;         // what the operation did ("generated", "already active", ...)
    std::string test_signature;  // KeyImport with test_data: the raw signature
    template <class A>
    void serialize(A& ar) {
        ar(keys, message, test_signature);
    }
};

struct SigningKey {
    std::string selector;
    std::string algorithm;  // the DKIM a= value
    template <class A>
    void serialize(A& ar) {
        ar(selector, algorithm);
    }
};

struct SigningKeysReply {
    std::vector<SigningKey> keys;  // sorted by selector
    template <class A>
    void serialize(A& ar) {
        ar(keys);
    }
};

struct AuditVerifyReply {
    bool ok = false;
    std::int64_t records = 0;
    std::int64_t first_broken = 0;  // 0 when ok
    std::string problem;
    std::int64_t checkpoints = 0;            // matched against the chain
    std::int64_t checkpoint_signatures = 0;  // valid signatures of the audit key
    std::string head;                        // hex hash of the last record
    template <class A>
    void serialize(A& ar) {
        ar(ok, records, first_broken, problem, checkpoints, checkpoint_signatures, head);
    }
};

// One domain/selector/hour of the signing summary: signatures issued and sign requests refused
// (refusals for keys signerd knows: the profile, the key's state, no active grant).
struct SigningHour {
    std::string domain;
    std::string selector;
    std::int64_t hour = 0;  // unix seconds, a multiple of 3600
    std::int64_t signatures = 0;
    std::int64_t refusals = 0;
    template <class A>
    void serialize(A& ar) {
        ar(domain, selector, hour, signatures, refusals);
    }
};

// A sign grant: from its start to its end (its expiry, or its revocation or the spending of its
// budget when earlier; for a grant still active, its expiry).
struct GrantInterval {
    std::int64_t grant_id = 0;
    std::string domain;
    std::string selector;    // "*": every selector of the domain
    std::int64_t start = 0;  // unix seconds
    std::int64_t end = 0;    // unix seconds, rounded up
    template <class A>
    void serialize(A& ar) {
        ar(grant_id, domain, selector, start, end);
    }
};

struct SigningSummaryReply {
    // The hours with a signature or a refusal, by domain, selector and hour; an hour not listed
    // had none (from counted_since on).
    std::vector<SigningHour> hours;
    // The sign grants (of the domain) whose interval overlaps the range, by id.
    std::vector<GrantInterval> grants;
    // The longest a signature lives: the signing profile's max_lifetime, the latest x= after
    // t= (t= itself within max_clock_skew, 5 minutes by default, of the signing time). A DKIM
    // pass seen in hour H can come from a signature made in H or in this long before it.
    std::int64_t signature_lifetime = 0;  // seconds
    // Signatures and refusals are counted from this time on (unix seconds): 0, or the upgrade
    // that brought the summary to an older store; hours before it were not counted.
    std::int64_t counted_since = 0;
    template <class A>
    void serialize(A& ar) {
        ar(hours, grants, signature_lifetime, counted_since);
    }
};

// A key offered to seal a PIN or a share to. statement is custody::key_offer_statement's text,
// signed (signature, Ed25519) by signerd's identity key, whose fingerprint a sender compares
// with the one `dkim-appliance pin status` prints on the appliance: webd, which forwards this,
// cannot make a statement that verifies. associated_data is what the envelope must be sealed
// with. Byte fields are base64url.
struct PinKeyOfferReply {
    std::string key_id;
    std::string public_key;
    std::string identity;
    std::string fingerprint;
    std::int64_t expires_ms = 0;
    std::string statement;
    std::string signature;
    std::string associated_data;
    template <class A>
    void serialize(A& ar) {
        ar(key_id, public_key, identity, fingerprint, expires_ms, statement, signature,
           associated_data);
    }
};

struct PinCustodianView {
    std::string name;
    std::uint32_t index = 0;
    bool submitted = false;  // in the current unlock window
    template <class A>
    void serialize(A& ar) {
        ar(name, index, submitted);
    }
};

struct PinStatusReply {
    std::string mode;    // "sealed", "approver", "shares", "file"
    bool ready = false;  // the token can log in when a grant needs it, without anyone
    bool logged_in = false;
    std::string missing;               // what is missing before signing can start ("" when ready)
    std::string identity_fingerprint;  // signerd's identity key (PinKeyOfferReply)
    // shares: the current split, who submitted in this window and when it ends (0: none open)
    std::string set_id;
    std::uint32_t threshold = 0;
    std::vector<PinCustodianView> custodians;
    std::int64_t window_ends_ms = 0;
    template <class A>
    void serialize(A& ar) {
        ar(mode, ready, logged_in, missing, identity_fingerprint, set_id, threshold, custodians,
           window_ends_ms);
    }
};

// A split's shares, each for its custodian only: the CLI hands each to its holder (printed
// once, or in a file encrypted to the custodian's passphrase) and wipes them.
struct PinShareOut {
    std::string custodian;
    std::uint32_t index = 0;
    std::string share;  // custody::format_share's text
    template <class A>
    void serialize(A& ar) {
        ar(custodian, index, share);
    }
};
struct PinSharesReply {
    std::string set_id;
    std::uint32_t threshold = 0;
    std::vector<PinShareOut> shares;
    template <class A>
    void serialize(A& ar) {
        ar(set_id, threshold, shares);
    }
};

struct ClusterNodeView {
    std::string name;
    std::string version;
    std::int64_t started_ms = 0;
    std::int64_t last_seen_ms = 0;
    std::string token;  // "logged-in", "logged-out", "fenced"
    std::int64_t grants = 0;
    std::vector<std::string> selectors;  // "domain/selector", signing keys
    bool gone = false;                   // not seen for longer than kNodeGoneAfter
    bool self = false;                   // the node that answered
    // Its keys' DNS records are listed (ClusterKeyView::dns_record): its registry row verifies
    // with the audit key the answering node pins for it ([cluster] node_keys), or it is the
    // answering node (its own token's).
    bool records_verified = false;
    template <class A>
    void serialize(A& ar) {
        ar(name, version, started_ms, last_seen_ms, token, grants, selectors, gone, self,
           records_verified);
    }
};

struct ClusterKeyView {
    std::string node;  // "" on a single appliance
    std::string domain;
    std::string selector;
    std::string algorithm;
    std::string state;
    // "v=DKIM1; k=...; p=..." as its node's token holds it: the answering node's own, or
    // another's from its signed registry row ("": unknown, or the row does not verify).
    std::string dns_record;
    std::int64_t retire_after_ms = 0;  // a retiring key's end of grace (0: none)
    std::int64_t activated_ms = 0;
    std::int64_t retiring_since_ms = 0;
    template <class A>
    void serialize(A& ar) {
        ar(node, domain, selector, algorithm, state, dns_record, retire_after_ms, activated_ms,
           retiring_since_ms);
    }
};

// The cluster's rotation of a domain's keys of one kind (ClusterRotate).
struct ClusterRotationView {
    std::string domain;
    std::string kind;
    std::string algorithm;
    std::string selector;  // the pattern, "%n" for the node's name
    std::int64_t grace_seconds = 0;
    std::string phase;
    std::string requested_by;
    std::int64_t started_ms = 0;
    std::int64_t updated_ms = 0;
    std::vector<std::string> checked;  // the nodes' selectors found published
    template <class A>
    void serialize(A& ar) {
        ar(domain, kind, algorithm, selector, grace_seconds, phase, requested_by, started_ms,
           updated_ms, checked);
    }
};

struct ClusterStatusReply {
    bool cluster = false;
    std::string node;  // the node that answered
    bool fenced = false;
    std::int64_t lease_ms = 0;
    std::int64_t now_ms = 0;
    std::vector<ClusterNodeView> nodes;  // by name
    std::vector<ClusterKeyView> keys;    // by node, domain, selector
    std::vector<ClusterRotationView> rotations;
    template <class A>
    void serialize(A& ar) {
        ar(cluster, node, fenced, lease_ms, now_ms, nodes, keys, rotations);
    }
};

using Reply = std::variant<ErrorReply, SignReply, StatusReply, OkReply, UsersReply, RequestsReply,
                           GrantsReply, AuditReply, PublicKeyReply, IdentityReply, KeysReply,
                           AuditVerifyReply, SigningKeysReply, SigningSummaryReply,
                           PasskeyChallengeReply, PasskeysReply, PinKeyOfferReply, PinStatusReply,
                           PinSharesReply, ClusterStatusReply>;

}  // namespace dkim::ipc

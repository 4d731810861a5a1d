#include "config.hpp"

#include <grp.h>
#include <pwd.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "dkim/config/toml_reader.hpp"
#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/jit/shared_store.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::signerd {

std::string_view to_string(PinSourceKind kind) noexcept {
    switch (kind) {
        case PinSourceKind::file: return "file";
        case PinSourceKind::sealed: return "sealed";
        case PinSourceKind::approver: return "approver";
        case PinSourceKind::shares: return "shares";
    }
    return "?";
}

std::string_view to_string(PeerKind kind) noexcept {
    switch (kind) {
        case PeerKind::relay: return "relay";
        case PeerKind::web: return "web";
        case PeerKind::admin: return "admin";
        case PeerKind::reports: return "reports";
    }
    return "?";
}

std::optional<PeerIdentity> Config::peer(std::uint32_t uid) const {
    const auto it = peers.find(uid);
    return it == peers.end() ? std::nullopt : std::optional<PeerIdentity>(it->second);
}

namespace {

// A user name or numeric uid -> (uid, name).
std::optional<std::pair<std::uint32_t, std::string>> resolve_user(const std::string& who) {
    std::uint32_t uid = 0;
    const auto [end, ec] = std::from_chars(who.data(), who.data() + who.size(), uid);
    std::array<char, 4096> buffer{};
    passwd entry{};
    passwd* found = nullptr;
    if (ec == std::errc() && end == who.data() + who.size()) {
        if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 &&
            found != nullptr) {
            return std::make_pair(uid, std::string(found->pw_name));
        }
        return std::make_pair(uid, "uid" + who);
    }
    if (getpwnam_r(who.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
        found != nullptr) {
        return std::make_pair(static_cast<std::uint32_t>(found->pw_uid), who);
    }
    return std::nullopt;
}

Duration duration(config::TableReader& r, const std::string& key, Duration fallback) {
    const auto text = r.string(key);
    if (!text) {
        return fallback;
    }
    const auto d = jit::parse_duration(*text);
    if (!d) {
        r.fail(key, "expected a duration such as \"90s\", \"5m\" or \"1h\"");
    }
    return *d;
}

}  // namespace

namespace {

// Every key dkim-signerd reads: the parser below may read no other (TableReader checks), and
// `dkim-signerd --config-reference` prints them for the README.
constexpr config::KeyDoc kKeys[] = {
    {"module", "string", "", "The PKCS#11 module (.so) that signerd alone loads. Required.",
     "\"/usr/lib/softhsm/libsofthsm2.so\""},
    {"token", "string", "",
     "The token: its label, or an RFC 7512 URI (pkcs11:token=dkim;serial=...). Required.",
     "\"dkim\""},
    {"state_dir", "string", "/var/lib/dkim-signerd",
     "Folder of signerd.db: users, requests, grants, keys' lifecycle, the audit log.",
     "\"/var/lib/dkim-signerd\""},
    {"socket", "string", "/run/dkim-signerd/signerd.sock",
     "The Unix socket, signerd's only door (shorter than 108 bytes).",
     "\"/run/dkim-signerd/signerd.sock\""},
    {"socket_mode", "string", "0660", "The socket's mode, octal, with no bits for others.",
     "\"0660\""},
    {"socket_group", "string", "",
     "The socket's group: the group relayd's and webd's users share (default: signerd's own).",
     "\"root\""},
    {"password_cost", "string", "interactive",
     "Argon2id cost for users' passwords: interactive or moderate (minimal-for-tests: test suites "
     "only).",
     "\"interactive\""},
    {"pin", "table", "", "Where the token's user PIN comes from. Required."},
    {"pin.source", "string", "file",
     "The PIN's custody: sealed (a systemd credential encrypted with the host key and TPM2), "
     "approver (sent end to end encrypted with the approval that activates a grant), shares (M "
     "of N custodians' shares, combined in memory), or file (a 0600 file, for development). "
     "\"credential\" is the old name of sealed.",
     "\"sealed\""},
    {"pin.file", "string", "", "source = file: the PIN file, not readable by others."},
    {"pin.credential", "string", "pin",
     "source = sealed: the credential's name in $CREDENTIALS_DIRECTORY "
     "(LoadCredentialEncrypted= in the unit).",
     "\"pin\""},
    {"pin.unlock_window", "duration", "15m",
     "source = shares: the time within which the threshold of custodians must submit their "
     "shares, counted from the first; the shares submitted are wiped when it ends.",
     "\"30m\""},
    {"peers", "table", "", "Who may connect, by Unix user name or uid; one role per uid."},
    {"peers.relay", "strings", "[]",
     "Relay users: may sign inside grants; the user name is the client in grant scopes.",
     "[\"nobody\"]"},
    {"peers.web", "strings", "[]", "Web users: pass operators' credentials on (dkim-webd).",
     "[\"daemon\"]"},
    {"peers.admin", "strings", "[]", "Operator users of the CLI: manage users without credentials.",
     "[\"root\"]"},
    {"peers.reports", "strings", "[]",
     "Report users (dkim-reportd): may read the signing summary (signatures and refusals per "
     "domain, selector and hour, sign grants' intervals), signing keys, public keys and status, "
     "and nothing else.",
     "[\"bin\"]"},
    {"audit", "table", "", "The audit log."},
    {"audit.checkpoint_interval", "duration", "5m",
     "While the token is logged in, a checkpoint (the chain's head signed with the audit key, "
     "itself a record of the log) at least this often, even when nothing else is written; and "
     "one before every logout. audit verify reports a logged-in log without one for longer as "
     "broken.",
     "\"5m\""},
    {"audit.checkpoint_records", "integer 1..100000000", "10000",
     "Or after this many records, whichever comes first (checked every second): bounds the "
     "records not yet covered by a signature under load.",
     "10000"},
    {"signing_profile", "table", "",
     "What a relay's header block must fit to be signed (no l=, t= near signerd's clock, x= "
     "within the lifetime, the listed fields oversigned, nothing but the fields h= selects)."},
    {"signing_profile.oversigned", "strings",
     "[\"from\", \"to\", \"cc\", \"subject\", \"date\", \"message-id\", \"reply-to\"]",
     "Fields h= must list once more than the block holds them, so none can be added after "
     "signing. From is always among them.",
     "[\"from\", \"to\", \"cc\", \"subject\", \"date\", \"message-id\", \"reply-to\", "
     "\"content-type\"]"},
    {"signing_profile.max_clock_skew", "duration", "5m",
     "How far t= may be from signerd's clock (a stale or replayed block is refused).", "\"5m\""},
    {"signing_profile.max_lifetime", "duration", "7d",
     "The latest x= after t=: how long a signature can outlive its grant (mail queues retry for "
     "about 5 days). At most 30d; the relay's signing.expire_after must fit it.",
     "\"7d\""},
    {"webhook", "table", "",
     "Requests and decisions for an HMAC-SHA256-signed webhook: spooled to an outbox that "
     "dkim-notifyd delivers (the appliance: signerd has no network), or posted by signerd itself "
     "(development)."},
    {"webhook.outbox", "string", "",
     "The folder each event is written to, durably, before its decision is answered "
     "(dkim-notifyd's outbox; at most 10000 files waiting). Instead of url.",
     ""},
    {"webhook.url", "string", "",
     "http:// or https:// URL that signerd posts to itself: only where it has a network.",
     "\"https://hooks.example.net/dkim\""},
    {"webhook.secret_file", "string", "", "The HMAC key's file (required with url).",
     "\"/etc/dkim-appliance/webhook-key\""},
    {"webauthn", "table", "",
     "Passkeys (WebAuthn) for login and decisions, checked by signerd. Off until rp_id and "
     "origins are set."},
    {"webauthn.rp_id", "string", "",
     "The relying party: the console's host name (a domain, or localhost; never an IP address).",
     "\"dkim.example.com\""},
    {"webauthn.origins", "strings", "[]",
     "The console's origins as browsers send them (scheme, host and port), compared exactly.",
     "[\"https://dkim.example.com:8443\"]"},
    {"webauthn.rp_name", "string", "DKIM appliance", "The name authenticators show.",
     "\"Example DKIM signer\""},
    {"webauthn.user_verification", "string", "required",
     "required: every assertion must carry the UV flag (PIN or biometrics on the authenticator); "
     "preferred: presence (UP) is enough.",
     "\"required\""},
    {"cluster", "table", "",
     "One node of several that share their grant state and audit chain in PostgreSQL. Without "
     "it: a single appliance, with its state in signerd.db (SQLite)."},
    {"cluster.node", "string", "",
     "This node's name (letters, digits, '.', '_', '-'; at most 64): in the node registry and in "
     "each audit record it writes. Required in [cluster].",
     "\"mx1\""},
    {"cluster.database", "string", "",
     "libpq's connection string of the shared store, without the password (host, port, dbname, "
     "user, sslmode = verify-full, sslrootcert, sslcert, sslkey). Required in [cluster].",
     "\"host=db.example.net dbname=dkim user=signerd sslmode=verify-full\""},
    {"cluster.password_file", "string", "",
     "A file holding the database password, not readable by others (none: .pgpass or a client "
     "certificate).",
     "\"/etc/dkim-appliance/db-password\""},
    {"cluster.lease", "duration", "5s",
     "How long the token stays logged in while this node cannot reach the shared store (1s to "
     "5m): then it logs out and refuses to sign until the store is back. Nothing is ever signed "
     "without its record in the shared log.",
     "\"5s\""},
    {"cluster.node_keys", "strings", "[]",
     "The other nodes' audit keys, NAME=BASE64 (`dkim-appliance audit key` on each node). A node "
     "signs its registry row (its keys' DNS records) with its audit key; the records of a node "
     "whose key is not listed here, or whose row does not verify, are not shown (`dns records`, "
     "`cluster status`, the console): a database writer cannot add a key of its own to them.",
     "[\"mx2=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]"},
    {"metrics", "table", "", "Prometheus metrics over HTTP."},
    {"metrics.listen", "string", "127.0.0.1:9464", "Loopback address and port.",
     "\"127.0.0.1:9464\""},
    {"policy", "table", "",
     "Grant policy per operation: sign, admin, key.generate, key.rotate, key.retire."},
    {"policy.<operation>", "table", "",
     "[policy.sign], [policy.admin], [policy.key.generate], [policy.key.rotate], "
     "[policy.key.retire].",
     "sign"},
    {"policy.key", "table", "",
     "Holds [policy.key.generate], [policy.key.rotate] and [policy.key.retire]."},
    {"policy.<operation>.max_duration", "duration", "sign 8h, others 1h",
     "The longest grant of the operation.", "\"1h\""},
    {"policy.<operation>.pending_expiry", "duration", "sign 24h, others 4h",
     "A request not decided by then expires.", "\"24h\""},
    {"policy.<operation>.renew_before", "string", "sign 20%, others off",
     "When a grant nears its end, signerd files its renewal (same scope, linked to it; approved, "
     "it starts as the grant ends): a share of the grant's duration before it (1% to 99%), a "
     "lead time (\"10m\") or \"off\".",
     "\"20%\""},
    {"policy.<operation>.quorum", "integer 1..16", "admin and key.retire 2, others 1",
     "Distinct approvers needed, never counting the requester.", "1"},
    {"policy.<operation>.approvers", "strings", "[\"role:approver\"]",
     "Who may approve: user names or role:NAME.", "[\"role:approver\"]"},
    {"policy.<operation>.factors", "strings", "[\"totp\", \"webauthn\"]",
     "The second factors accepted for approve, deny, revoke and break-glass: a passkey's "
     "assertion is bound to the decision it approves, a TOTP code is not (a compromised dkim-webd "
     "could spend it on another). [\"webauthn\"] requires passkeys.",
     "[\"webauthn\"]"},
    {"policy.<operation>.ticket_pattern", "string", "",
     "A regular expression every request's reason must match (a change ticket).",
     "\"^CHG-[0-9]+\""},
    {"policy.break_glass", "table", "", "Break-glass requests (approved after the fact)."},
    {"policy.break_glass.max_duration", "duration", "30m",
     "The longest break-glass grant (at most 4h).", "\"30m\""},
    {"policy.signer_request_duration", "duration", "1h",
     "The duration of the requests signerd files for a relay that has no grant.", "\"1h\""},
    {"policy.auto_approve[]", "tables", "",
     "Auto-approval rules for low-risk scopes (never admin), each recorded in the audit log."},
    {"policy.auto_approve[].name", "string", "", "The rule's name (required).", "\"office-hours\""},
    {"policy.auto_approve[].operation", "string", "",
     "sign, key.generate, key.rotate or key.retire (required).", "\"sign\""},
    {"policy.auto_approve[].domain", "string", "*", "Domain pattern (*.example.net).",
     "\"example.net\""},
    {"policy.auto_approve[].requesters", "strings", "[] (anyone)",
     "Requesters the rule applies to.", "[\"alice\"]"},
    {"policy.auto_approve[].max_duration", "duration", "1h",
     "Longest grant the rule approves (within the operation's).", "\"30m\""},
    {"policy.auto_approve[].window", "string", "", "UTC time window, HH:MM-HH:MM.",
     "\"08:00-18:00\""},
};

constexpr config::Placeholder kNames[] = {
    {"<operation>", "sign admin key.generate key.rotate key.retire"}};

// An rpId: a lower-case host name, "localhost" included (WebAuthn refuses IP addresses).
bool valid_rp_id(std::string_view id) {
    if (id.empty() || id.size() > 253 || id.front() == '.' || id.back() == '.' ||
        id.find("..") != std::string_view::npos) {
        return false;
    }
    bool letter = false;
    for (const char c : id) {
        if (c >= 'a' && c <= 'z') {
            letter = true;
        } else if (!((c >= '0' && c <= '9') || c == '-' || c == '.')) {
            return false;
        }
    }
    return letter;  // "127.0.0.1" has none
}

// Whether `origin` ("https://host[:port]") is one a page of `rp_id` can have: https on rp_id or
// a sub-domain of it (WebAuthn §5.1.3: the rpId is a registrable suffix of the origin's host),
// or http on localhost (browsers treat it as a secure context).
bool origin_of_rp(std::string_view origin, std::string_view rp_id) {
    std::string_view rest;
    const bool https = origin.rfind("https://", 0) == 0;
    if (https) {
        rest = origin.substr(8);
    } else if (origin.rfind("http://", 0) == 0) {
        rest = origin.substr(7);
    } else {
        return false;
    }
    std::string_view host = rest.substr(0, rest.find(':'));
    if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
        const std::string_view port = rest.substr(colon + 1);
        if (port.empty() || port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return false;
        }
    }
    if (rest.find('/') != std::string_view::npos || !valid_rp_id(host)) {
        return false;
    }
    if (!https && host != "localhost") {
        return false;
    }
    return host == rp_id || (host.size() > rp_id.size() && host.ends_with(rp_id) &&
                             host[host.size() - rp_id.size() - 1] == '.');
}

}  // namespace

const config::Schema& config_schema() {
    static const config::Schema schema{"dkim-signerd: /etc/dkim-appliance/signerd.toml", kKeys,
                                       kNames};
    return schema;
}

Expected<Config, std::string> load_config(const std::string& file) {
    try {
        const toml::table root = config::parse_toml_file(file);
        config::TableReader r(root, file, "", &config_schema());
        Config c;
        c.file = file;
        const auto module = r.string("module");
        const auto token = r.string("token");
        if (!module || module->empty()) {
            r.fail("", "'module' (the PKCS#11 module path) is required");
        }
        if (!token || token->empty()) {
            r.fail("", "'token' (a token label or pkcs11: URI) is required");
        }
        c.module = *module;
        c.token = *token;
        if (auto dir = r.string("state_dir")) {
            c.state_dir = *dir;
        }
        if (auto socket = r.string("socket")) {
            c.socket = *socket;
            if (c.socket.native().size() >= 108) {
                r.fail("socket", "a Unix socket path must be shorter than 108 bytes");
            }
        }
        if (auto mode = r.string("socket_mode")) {
            unsigned value = 0;
            bool octal = !mode->empty() && mode->size() <= 4;
            for (char digit : *mode) {
                octal = octal && digit >= '0' && digit <= '7';
                value = value * 8 + static_cast<unsigned>(digit - '0');
            }
            if (!octal || (value & ~0770U) != 0) {
                r.fail("socket_mode",
                       "expected an octal mode without bits for others, such as \"0660\"");
            }
            c.socket_mode = value;
        }
        if (auto group = r.string("socket_group")) {
            std::array<char, 4096> buffer{};
            ::group entry{};
            ::group* found = nullptr;
            if (getgrnam_r(group->c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
                found == nullptr) {
                r.fail("socket_group", "no such group: " + *group);
            }
            c.socket_gid = static_cast<std::uint32_t>(found->gr_gid);
        }
        if (auto cost = r.string("password_cost")) {
            const auto parsed = jit::parse_password_cost(*cost);
            if (!parsed) {
                r.fail("password_cost", "expected \"interactive\" or \"moderate\"");
            }
            c.password_cost = *parsed;
        }
        if (auto pin = r.table("pin")) {
            const std::string source = pin->string("source").value_or("file");
            if (source == "file") {
                c.pin_source = PinSourceKind::file;
                const auto path = pin->string("file");
                if (!path) {
                    pin->fail("file", "source = \"file\" needs the PIN file's path");
                }
                c.pin_file = *path;
            } else if (source == "sealed" || source == "credential") {
                c.pin_source = PinSourceKind::sealed;
                c.pin_credential = pin->string("credential").value_or(c.pin_credential);
                if (c.pin_credential.empty() || c.pin_credential.find('/') != std::string::npos) {
                    pin->fail("credential", "a credential name, without '/'");
                }
            } else if (source == "approver") {
                c.pin_source = PinSourceKind::approver;
            } else if (source == "shares") {
                c.pin_source = PinSourceKind::shares;
            } else {
                pin->fail("source", "expected \"sealed\", \"approver\", \"shares\" or \"file\"");
            }
            if (auto window = pin->duration("unlock_window")) {
                if (*window < std::chrono::minutes(1) || *window > std::chrono::hours(24)) {
                    pin->fail("unlock_window", "between 1m and 24h");
                }
                c.pin_unlock_window = *window;
            }
            pin->finish();
        } else {
            r.fail("",
                   "a [pin] table is required (source = \"sealed\", \"approver\", \"shares\" "
                   "or \"file\")");
        }
        if (auto peers = r.table("peers")) {
            for (PeerKind kind :
                 {PeerKind::relay, PeerKind::web, PeerKind::admin, PeerKind::reports}) {
                const std::string key(to_string(kind));
                for (const std::string& who :
                     peers->strings(key).value_or(std::vector<std::string>{})) {
                    const auto resolved = resolve_user(who);
                    if (!resolved) {
                        peers->fail(key, "no such user: " + who);
                    }
                    if (c.peers.count(resolved->first) != 0) {
                        peers->fail(key, "user " + who + " is listed twice: one uid, one role");
                    }
                    c.peers[resolved->first] = PeerIdentity{kind, resolved->second};
                }
            }
            peers->finish();
        }
        if (auto audit = r.table("audit")) {
            c.checkpoint_interval = duration(*audit, "checkpoint_interval", c.checkpoint_interval);
            c.checkpoint_records =
                audit->integer("checkpoint_records", 1, 100'000'000).value_or(c.checkpoint_records);
            audit->finish();
        }
        if (auto profile = r.table("signing_profile")) {
            if (auto fields = profile->strings("oversigned")) {
                c.profile.oversigned.clear();
                for (const std::string& f : *fields) {
                    const bool valid = !f.empty() && f.size() <= 64 &&
                                       std::all_of(f.begin(), f.end(), [](char ch) {
                                           return ch > 32 && ch < 127 && ch != ':';
                                       });
                    if (!valid) {
                        profile->fail("oversigned", "not a header field name: \"" + f + "\"");
                    }
                    c.profile.oversigned.push_back(mail::ascii_lowercase(f));
                }
                if (std::find(c.profile.oversigned.begin(), c.profile.oversigned.end(), "from") ==
                    c.profile.oversigned.end()) {
                    profile->fail("oversigned",
                                  "must list from (a second From must break the "
                                  "signature)");
                }
            }
            const auto skew =
                duration(*profile, "max_clock_skew",
                         std::chrono::duration_cast<Duration>(c.profile.max_clock_skew));
            if (skew < std::chrono::seconds(1) || skew > std::chrono::hours(1)) {
                profile->fail("max_clock_skew", "expected 1s to 1h");
            }
            c.profile.max_clock_skew = std::chrono::duration_cast<std::chrono::seconds>(skew);
            const auto lifetime =
                duration(*profile, "max_lifetime",
                         std::chrono::duration_cast<Duration>(c.profile.max_lifetime));
            if (lifetime < std::chrono::hours(1) || lifetime > std::chrono::hours(24 * 30)) {
                profile->fail("max_lifetime", "expected 1h to 30d");
            }
            c.profile.max_lifetime = std::chrono::duration_cast<std::chrono::seconds>(lifetime);
            profile->finish();
        }
        if (auto webhook = r.table("webhook")) {
            if (auto outbox = webhook->string("outbox")) {
                // The notifier holds the key and the network; signerd only writes files.
                if (webhook->has("url") || webhook->has("secret_file")) {
                    webhook->fail("outbox",
                                  "with an outbox, dkim-notifyd posts the events: url and "
                                  "secret_file belong in its notifyd.toml, not here");
                }
                if (outbox->empty() || (*outbox)[0] != '/') {
                    webhook->fail("outbox", "expected an absolute path");
                }
                c.webhook_outbox = *outbox;
            } else {
                c.webhook_url = webhook->string("url").value_or("");
                if (c.webhook_url.rfind("http://", 0) != 0 &&
                    c.webhook_url.rfind("https://", 0) != 0) {
                    webhook->fail("url", "expected an http:// or https:// URL (or an outbox)");
                }
                const auto secret = webhook->string("secret_file");
                if (!secret) {
                    webhook->fail("secret_file",
                                  "webhooks are signed: the HMAC key's file is required");
                }
                c.webhook_secret_file = *secret;
            }
            webhook->finish();
        }
        if (auto webauthn = r.table("webauthn")) {
            c.webauthn.rp_id = webauthn->string("rp_id").value_or("");
            c.webauthn.origins = webauthn->strings("origins").value_or(std::vector<std::string>{});
            c.webauthn.rp_name = webauthn->string("rp_name").value_or(c.webauthn.rp_name);
            const auto uv = webauthn->string("user_verification").value_or("required");
            if (uv != "required" && uv != "preferred") {
                webauthn->fail("user_verification", "expected \"required\" or \"preferred\"");
            }
            c.webauthn.require_user_verification = uv == "required";
            if (c.webauthn.rp_id.empty() != c.webauthn.origins.empty()) {
                webauthn->fail(c.webauthn.rp_id.empty() ? "rp_id" : "origins",
                               "passkeys need both rp_id and origins");
            }
            if (!c.webauthn.rp_id.empty() && !valid_rp_id(c.webauthn.rp_id)) {
                webauthn->fail("rp_id", "expected a host name (a domain or localhost), lower case");
            }
            for (const std::string& origin : c.webauthn.origins) {
                if (!origin_of_rp(origin, c.webauthn.rp_id)) {
                    webauthn->fail("origins",
                                   "'" + origin +
                                       "' is not an https:// origin (or http://localhost) "
                                       "on " +
                                       c.webauthn.rp_id + " or a sub-domain");
                }
            }
            webauthn->finish();
        }
        if (auto cluster = r.table("cluster")) {
            Config::Cluster k;
            k.node = cluster->string("node").value_or("");
            if (!jit::valid_node_name(k.node)) {
                cluster->fail("node",
                              "a name of 1 to 64 letters, digits, dots, dashes or underscores");
            }
            k.database = cluster->string("database").value_or("");
            if (k.database.empty()) {
                cluster->fail("database", "the shared store's connection string is required");
            }
            if (k.database.find("password") != std::string::npos) {
                cluster->fail("database", "no password here: use password_file");
            }
            k.password_file = cluster->string("password_file").value_or("");
            k.lease = duration(*cluster, "lease", k.lease);
            if (k.lease < std::chrono::seconds(1) || k.lease > std::chrono::minutes(5)) {
                cluster->fail("lease", "between 1s and 5m");
            }
            for (const std::string& given :
                 cluster->strings("node_keys").value_or(std::vector<std::string>{})) {
                const auto eq = given.find('=');
                const std::string name = given.substr(0, eq);
                const auto raw =
                    eq == std::string::npos
                        ? std::nullopt
                        : crypto::base64_decode(std::string_view(given).substr(eq + 1));
                if (!jit::valid_node_name(name) || !raw ||
                    !crypto::PublicKey::parse_audit_key(*raw)) {
                    cluster->fail("node_keys",
                                  "each entry is NAME=BASE64: a node's name and its audit key "
                                  "(`dkim-appliance audit key` on that node: 32 bytes of "
                                  "Ed25519, or an RSA key's SubjectPublicKeyInfo)");
                } else if (name == k.node) {
                    cluster->fail("node_keys",
                                  "this node's own key is read from its token, not listed here");
                } else if (!k.node_keys.emplace(name, *raw).second) {
                    cluster->fail("node_keys", "node " + name + " is listed twice");
                }
            }
            if (c.pin_source == PinSourceKind::approver || c.pin_source == PinSourceKind::shares) {
                cluster->fail("node",
                              "a cluster node logs in by itself whenever the cluster has a grant: "
                              "[pin] source must be \"sealed\" or \"file\"");
            }
            cluster->finish();
            c.cluster = std::move(k);
        }
        if (auto metrics = r.table("metrics")) {
            c.metrics_listen = metrics->string("listen").value_or("127.0.0.1:9464");
            if (c.metrics_listen.rfind("127.", 0) != 0 &&
                c.metrics_listen.rfind("[::1]:", 0) != 0) {
                metrics->fail("listen", "metrics listen on loopback only (127.0.0.0/8 or [::1])");
            }
            metrics->finish();
        }
        if (root.contains("policy")) {
            const toml::table* policy_table = root.get("policy")->as_table();
            (void)r.table("policy");  // mark it read; parse_policy checks its keys
            if (policy_table == nullptr) {
                r.fail("policy", "expected a table");
            }
            auto policy = jit::parse_policy(*policy_table, file, &config_schema());
            if (!policy) {
                return unexpected(policy.error());
            }
            c.policy = std::move(*policy);
        }
        if (c.pin_source == PinSourceKind::approver && !c.policy.auto_approve.empty()) {
            r.fail("pin",
                   "source = \"approver\" cannot serve auto-approval rules: nobody would "
                   "supply the PIN (remove [[policy.auto_approve]] or use another custody)");
        }
        r.finish();
        return c;
    } catch (const config::ConfigError& error) {
        return unexpected(std::string(error.what()));
    }
}

}  // namespace dkim::signerd

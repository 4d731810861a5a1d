#pragma once
// dkim-signerd's configuration file (TOML). Every key is optional except where noted;
// unknown keys are errors naming file:line:column and the key.
//
//   module = "/usr/lib/softhsm/libsofthsm2.so"   # PKCS#11 module (required)
//   token = "dkim"                               # token label or pkcs11: URI (required)
//   state_dir = "/var/lib/dkim-signerd"          # signerd.db lives here
//   socket = "/run/dkim-signerd/signerd.sock"
//   socket_mode = "0660"
//   socket_group = "dkim"                        # the group relay and web users share
//   password_cost = "interactive"                # Argon2id: interactive | moderate
//   [pin]
//   source = "sealed"        # sealed | approver | shares | file (pin_custody.hpp)
//   file = "/etc/dkim-appliance/pin"               # source = file: mode 0600 or stricter
//   credential = "pin"       # source = sealed: $CREDENTIALS_DIRECTORY/<name> (systemd)
//   unlock_window = "15m"    # source = shares: the threshold's submissions within this
//   [peers]                  # unix users (names or uids) allowed on the socket
//   relay = ["dkim-relay"]   # may sign; the user name is the service identity (client)
//   web = ["dkim-web"]       # may forward operator requests with their credentials
//   admin = ["root"]         # the operator CLI: user management without credentials
//   reports = ["dkim-report"]  # dkim-reportd: reads the signing summary, signing keys, public
//                              # keys and status only (counts and grant intervals, no secrets)
//   [audit]
//   checkpoint_interval = "5m"                  # signed checkpoints while logged in: every 5m
//   checkpoint_records = 10000                   # or every 10000 records, whichever first
//   [signing_profile]                            # dkim/dkim/signing_profile.hpp
//   oversigned = ["from", "to", "cc", "subject", "date", "message-id", "reply-to"]
//   max_clock_skew = "5m"
//   max_lifetime = "7d"
//   [webhook]                                    # the appliance: outbox = "/var/spool/dkim-notify"
//   url = "https://hooks.example.net/dkim"
//   secret_file = "/etc/dkim-appliance/webhook-secret"
//   [metrics]
//   listen = "127.0.0.1:9464"                    # loopback only
//   [policy...]                                  # see dkim/jit/policy.hpp

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dkim/config/schema.hpp"
#include "dkim/dkim/signing_profile.hpp"
#include "dkim/expected.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/jit/policy.hpp"

namespace dkim::signerd {

// Who holds the token's user PIN (SECURITY.md, "PIN custody"): a file (development); a systemd
// credential sealed with the host key and the TPM2 (the image); an approver, with each approval
// that activates a grant; or M of N custodians, whose shares signerd combines in memory.
enum class PinSourceKind : std::uint8_t { file, sealed, approver, shares };
std::string_view to_string(PinSourceKind kind) noexcept;

// relay: signs; web: forwards operators' credentials; admin: the operator CLI; reports:
// dkim-reportd, which reads the signing summary (and keys and status) and nothing else.
enum class PeerKind : std::uint8_t { relay, web, admin, reports };
std::string_view to_string(PeerKind kind) noexcept;

struct PeerIdentity {
    PeerKind kind = PeerKind::relay;
    std::string name;  // the unix user name (or "uid<N>")
};

// [webauthn]: who the relying party is (dkim/jit/webauthn.hpp). Passkeys are off while rp_id is
// empty.
struct WebAuthnConfig {
    std::string rp_id;
    std::vector<std::string> origins;
    std::string rp_name = "DKIM appliance";
    bool require_user_verification = true;
    bool enabled() const { return !rp_id.empty(); }
};

struct Config {
    std::string file;
    std::string module;
    std::string token;
    std::filesystem::path state_dir = "/var/lib/dkim-signerd";
    std::filesystem::path socket = "/run/dkim-signerd/signerd.sock";
    unsigned socket_mode = 0660;
    std::optional<std::uint32_t> socket_gid;  // socket_group: the group the peers share
    jit::PasswordCost password_cost;
    PinSourceKind pin_source = PinSourceKind::file;
    std::filesystem::path pin_file;
    // The name in LoadCredentialEncrypted=pin:... of images/systemd/dkim-signerd.service.
    std::string pin_credential = "pin";
    Duration pin_unlock_window = std::chrono::minutes(15);
    std::map<std::uint32_t, PeerIdentity> peers;  // by uid
    Duration checkpoint_interval = std::chrono::minutes(5);
    std::int64_t checkpoint_records = 10'000;
    SigningProfile profile;
    std::string webhook_url;
    std::filesystem::path webhook_secret_file;
    std::filesystem::path webhook_outbox;  // dkim-notifyd's outbox (instead of url)
    std::string metrics_listen;            // host:port, loopback only; empty: off
    jit::Policy policy = jit::Policy::defaults();
    WebAuthnConfig webauthn;
    // [cluster]: one node of several sharing a PostgreSQL store (cluster.hpp). Unset: a single
    // appliance on SQLite.
    struct Cluster {
        std::string node;                     // this node's name in the registry and in its records
        std::string database;                 // libpq's connection string, without the password
        std::filesystem::path password_file;  // empty: none, ~/.pgpass or a client certificate
        Duration lease = std::chrono::seconds(5);
        // The other nodes' audit keys (raw Ed25519 public keys, or RSA SubjectPublicKeyInfo on
        // tokens without EdDSA; PublicKey::parse_audit_key), by node name: a node's
        // registry row (its keys' DNS records) is shown only when it is signed with its key.
        std::map<std::string, std::string> node_keys;
    };
    std::optional<Cluster> cluster;

    std::optional<PeerIdentity> peer(std::uint32_t uid) const;
};

// The declarations of every key (the parser reads no other; --config-reference prints them).
const config::Schema& config_schema();

Expected<Config, std::string> load_config(const std::string& file);

}  // namespace dkim::signerd

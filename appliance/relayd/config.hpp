#pragma once
// dkim-relayd's configuration (TOML, read strictly: an unknown key is an error naming
// file:line:column and the key).
//
//   hostname = "relay.example.net"          # greeting and EHLO name
//   signerd_socket = "/run/dkim-signerd/signerd.sock"
//
//   [[listen]]
//   address = "127.0.0.1:2525"              # or "[::1]:2525"
//   role = "outbound"                       # sign (default), or "inbound": verify
//   protocol = "smtp"                       # or "milter" (Postfix/Sendmail; role "both" too)
//   allowed_networks = ["10.0.0.0/8"]      # who may connect (milter default: loopback)
//   # a milter listener may be address = "unix:/path", allowed_users = ["postfix"]
//   tls_certificate = "/etc/dkim/relay.crt" # enables STARTTLS
//   tls_key = "/etc/dkim/relay.key"
//   plain_auth = false                      # AUTH without TLS: only on a loopback address
//
//   [limits]                                # RFC 5321 §4.5.3 minimums are the floor
//   message_size = "25MiB"      recipients = 100       line_length = 998
//   commands = 1000             errors = 10            connections = 1000
//   connections_per_client = 20 greeting_delay = "0s"
//   command_timeout = "5m"      data_timeout = "3m"     session_timeout = "30m"
//
//   [next_hop]
//   url = "smtp://127.0.0.1:10026"          # or "maildir:/var/lib/dkim/maildir"
//   tls = "required"                        # "required", "opportunistic", "off"
//   verify_certificate = true               # ca_file, server_name
//   connect_timeout = "30s"  command_timeout = "5m"  data_timeout = "10m"
//
//   [signing]
//   canonicalization = "relaxed/relaxed"
//   expire_after = "7d"                     # x= after t= (within signerd's profile)
//   workers = 8                             # signerd calls in flight
//   key_refresh = "60s"                     # how long the active selectors are cached
//
//   [[domain]]                              # each selector's algorithm comes from its key
//   name = "example.com"
//   selectors = ["rsa2026", "ed2026"]       # pinned; leave out to sign with the keys signerd
//                                           # has active (they follow each rotation)
//
//   [[client]]                              # who may relay, and for which From: domains
//   name = "app1"
//   networks = ["127.0.0.0/8", "::1/128"]   # may send without AUTH from these
//   password_hash = "$argon2id$..."         # or AUTH PLAIN/LOGIN as `name` with a password
//   sasl_users = ["alice"]                  # milter: the MTA's AUTH users that are this client
//   domains = ["example.com"]
//
//   [metrics]
//   listen = "127.0.0.1:9125"               # loopback only
//
//   [inbound]                               # the role = "inbound" listeners
//   domains = ["example.com"]               # recipient domains received for (no open relay)
//   authserv_id = "mx.example.com"          # Authentication-Results; default: hostname
//   dmarc_reject = true                     # p=reject failures: 550 5.7.1
//   quarantine = "header"                   # p=quarantine: "header", "next_hop" or "off"
//   check_helo = true                       # SPF for the HELO identity too
//   org_domain = "psl"                      # or "tree-walk" (DMARCbis)
//   psl_file = "/usr/share/publicsuffix/public_suffix_list.dafsa"
//   dns_server = "127.0.0.1:53"             # default: /etc/resolv.conf
//   dns_timeout = "5s"
//   dnssec_trust_anchor = "/usr/share/dns/root.key"  # validate (answers carry their state)
//   workers = 16                            # checks in flight (their own pool: slow DNS
//                                           # never holds up outbound signing)
//   [inbound.next_hop]                      # default: [next_hop]
//   [inbound.quarantine_next_hop]           # for quarantine = "next_hop"
//   [inbound.reports]                       # report mail goes to dkim-reportd (issue 21)
//   addresses = ["dmarc-reports@example.com", "tls-reports@example.com"]
//   socket = "/run/dkim-appliance/reportd.sock"
//   max_size = "32MiB"                      # within [limits] message_size (SIZE stays that)
//   max_per_client_per_hour = 60            # report transactions per client (IPv6: per /64)
//   max_per_hour = 2000                     # report transactions, all clients together

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dkim/config/endpoint.hpp"
#include "dkim/config/schema.hpp"
#include "dkim/dkim/canonicalization.hpp"
#include "dkim/expected.hpp"

namespace dkim::relayd {

using config::Endpoint;
using config::parse_endpoint;

// An IPv4 or IPv6 network: "192.0.2.0/24", "::1/128", "127.0.0.1".
struct Network {
    std::array<unsigned char, 16> address{};  // IPv4 as ::ffff:a.b.c.d
    unsigned prefix = 128;
    bool contains(const std::array<unsigned char, 16>& ip) const;
};
std::optional<Network> parse_network(std::string_view text);
bool is_loopback(const std::array<unsigned char, 16>& ip);

struct Listener {
    enum class Protocol : std::uint8_t { smtp, milter };
    // both: milter listeners only (OpenDKIM's Mode sv): a configured client's mail is signed,
    // everything else verified.
    enum class Role : std::uint8_t { outbound, inbound, both };
    Endpoint address;
    // A milter listener on a Unix socket (address = "unix:/path"); `address` is unused then,
    // and the peers are checked by user (SO_PEERCRED) against allowed_uids.
    std::string unix_path;
    std::vector<uid_t> allowed_uids;
    Protocol protocol = Protocol::smtp;
    Role role = Role::outbound;
    std::string tls_certificate;
    std::string tls_key;
    bool plain_auth = false;
    // Who may connect at all (anyone else is closed on at once); empty: anyone. A milter
    // listener's default is loopback.
    std::vector<Network> allowed_networks;
    bool allows(const std::array<unsigned char, 16>& ip) const;
    bool tls() const { return !tls_certificate.empty(); }
    bool signs() const { return role != Role::inbound; }
    bool verifies() const { return role != Role::outbound; }
};

struct Limits {
    std::uint64_t message_size = std::uint64_t{25} << 20;
    std::size_t recipients = 100;
    std::size_t line_length = 998;
    std::size_t command_line = 512;
    std::size_t commands = 1000;
    std::size_t errors = 10;
    std::size_t connections = 1000;
    std::size_t connections_per_client = 20;
    std::size_t auth_failures = 3;
    std::chrono::milliseconds greeting_delay{0};
    std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};
    std::chrono::milliseconds data_timeout{std::chrono::minutes(3)};
    std::chrono::milliseconds session_timeout{std::chrono::minutes(30)};
};

enum class TlsMode : std::uint8_t { required, opportunistic, off };

struct NextHop {
    enum class Kind : std::uint8_t { smtp, maildir } kind = Kind::maildir;
    std::string host;  // smtp
    std::uint16_t port = 25;
    std::string maildir;  // maildir
    TlsMode tls = TlsMode::required;
    bool verify_certificate = true;
    std::string ca_file;
    std::string server_name;
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
    std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};
    std::chrono::milliseconds data_timeout{std::chrono::minutes(10)};
    std::string describe() const;  // "smtp://host:port", "maildir:/path"
};

struct SigningDomain {
    std::string name;                    // lower-case
    std::vector<std::string> selectors;  // empty: managed, signerd's active keys
    bool managed() const { return selectors.empty(); }
};

struct Client {
    std::string name;
    std::vector<Network> networks;
    std::string password_hash;         // Argon2id (libsodium crypto_pwhash_str), empty: no AUTH
    std::vector<std::string> domains;  // lower-case From:/MAIL FROM domains it may send for
    // Milter listeners: SMTP AUTH users (the MTA's {auth_authen}) whose mail is this client's
    // (never its name alone: a client of networks has no AUTH user).
    std::vector<std::string> sasl_users;
    bool allows(std::string_view domain) const;
};

enum class Quarantine : std::uint8_t { header, next_hop, off };

// Report mail on the inbound listeners ([inbound.reports], issue 21): a recipient that is one
// of `addresses` is taken from anyone and handed to dkim-reportd instead of a next hop.
struct ReportSettings {
    std::vector<std::string> addresses;  // canonical_mailbox() forms
    std::string socket = "/run/dkim-appliance/reportd.sock";
    std::uint64_t max_size = std::uint64_t{32} << 20;
    std::size_t max_per_client_per_hour = 60;
    std::size_t max_per_hour = 2000;
    // Whether local_part@domain (a forward-path as parsed) is one of the addresses.
    bool is_report_address(std::string_view local_part, std::string_view domain) const;
};

// A mailbox in the form report addresses are compared in: a quoted local part unquoted (RFC
// 5321 §4.1.2: "a"@b and a@b are the same mailbox), then local part and domain in ASCII lower
// case (RFC 5321 lets a server treat local parts case-sensitively; mail systems do not).
std::string canonical_mailbox(std::string_view local_part, std::string_view domain);

// The verifying listeners' settings (issue: verifying mode).
struct Inbound {
    std::vector<std::string> domains;  // lower-case recipient domains
    std::string authserv_id;
    bool dmarc_reject = true;
    Quarantine quarantine = Quarantine::header;
    bool check_helo = true;
    bool tree_walk = false;  // DMARC organizational domains by the DNS tree walk
    std::string psl_file = "/usr/share/publicsuffix/public_suffix_list.dafsa";
    std::optional<std::string> dns_server;
    std::chrono::milliseconds dns_timeout{std::chrono::seconds(5)};
    std::optional<std::string> dnssec_trust_anchor;
    std::size_t workers = 16;
    NextHop next_hop;
    std::optional<NextHop> quarantine_next_hop;
    std::optional<ReportSettings> reports;
    bool accepts(std::string_view recipient_domain) const;
};

// The header field a quarantined message carries (quarantine = "header").
inline constexpr std::string_view kQuarantineHeader = "X-Dkim-Appliance-Quarantine";

struct Config {
    std::string file;
    std::string hostname = "localhost";
    std::string signerd_socket = "/run/dkim-signerd/signerd.sock";
    std::vector<Listener> listeners;
    Limits limits;
    NextHop next_hop;
    Canonicalization canonicalization{Canon::relaxed, Canon::relaxed};
    std::optional<std::chrono::seconds> expire_after = std::chrono::hours(24 * 7);
    std::size_t signing_workers = 8;
    std::chrono::milliseconds key_refresh{std::chrono::seconds(60)};
    std::vector<SigningDomain> domains;
    std::vector<Client> clients;
    std::optional<Endpoint> metrics;
    std::optional<Inbound> inbound;

    const SigningDomain* domain(std::string_view name) const;
    const Client* client(std::string_view name) const;
    // The client whose networks contain `ip` (first match), or null.
    const Client* client_for(const std::array<unsigned char, 16>& ip) const;
    // Whether an SMTP listener relays mail to a next hop (milter listeners never do).
    bool relays() const;
    // The client an MTA-authenticated user is (one of its sasl_users), or null.
    const Client* client_for_user(std::string_view user) const;
};

// Errors name the file, line, column and key.
// The declarations of every key (the parser reads no other; --config-reference prints them).
const config::Schema& config_schema();

Expected<Config, std::string> load_config(const std::string& file);

}  // namespace dkim::relayd

#include "config.hpp"

#include <arpa/inet.h>
#include <pwd.h>
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "dkim/config/toml_reader.hpp"
#include "dkim/dns/unbound_resolver.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/smtp/protocol.hpp"

namespace dkim::relayd {

namespace {

std::optional<std::array<unsigned char, 16>> parse_ip(const std::string& text) {
    std::array<unsigned char, 16> out{};
    if (inet_pton(AF_INET6, text.c_str(), out.data()) == 1) {
        return out;
    }
    std::array<unsigned char, 4> v4{};
    if (inet_pton(AF_INET, text.c_str(), v4.data()) == 1) {
        out = {};
        out[10] = 0xff;
        out[11] = 0xff;
        std::memcpy(out.data() + 12, v4.data(), 4);
        return out;
    }
    return std::nullopt;
}

bool is_v4_mapped(const std::array<unsigned char, 16>& ip) {
    static constexpr std::array<unsigned char, 12> kPrefix{0, 0, 0, 0, 0,    0,
                                                           0, 0, 0, 0, 0xff, 0xff};
    return std::equal(kPrefix.begin(), kPrefix.end(), ip.begin());
}

}  // namespace

std::optional<Network> parse_network(std::string_view text) {
    const std::size_t slash = text.find('/');
    const std::string address(text.substr(0, slash));
    auto ip = parse_ip(address);
    if (!ip) {
        return std::nullopt;
    }
    Network n;
    n.address = *ip;
    const bool v4 = address.find(':') == std::string::npos;
    n.prefix = 128;
    if (slash != std::string_view::npos) {
        const std::string_view bits = text.substr(slash + 1);
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
        if (ec != std::errc() || end != bits.data() + bits.size() || value > (v4 ? 32U : 128U)) {
            return std::nullopt;
        }
        n.prefix = v4 ? value + 96 : value;
    }
    return n;
}

bool Network::contains(const std::array<unsigned char, 16>& ip) const {
    unsigned bits = prefix;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
        const unsigned take = std::min(bits, 8U);
        const auto mask = static_cast<unsigned char>(0xff << (8 - take));
        if ((ip[i] & mask) != (address[i] & mask)) {
            return false;
        }
        bits -= take;
    }
    return true;
}

bool is_loopback(const std::array<unsigned char, 16>& ip) {
    if (is_v4_mapped(ip)) {
        return ip[12] == 127;
    }
    static constexpr std::array<unsigned char, 16> kLoopback{0, 0, 0, 0, 0, 0, 0, 0,
                                                             0, 0, 0, 0, 0, 0, 0, 1};
    return ip == kLoopback;
}

std::string NextHop::describe() const {
    if (kind == Kind::maildir) {
        return "maildir:" + maildir;
    }
    return "smtp://" + Endpoint{host, port}.to_string();
}

bool Client::allows(std::string_view domain) const {
    return std::any_of(domains.begin(), domains.end(),
                       [&](const std::string& d) { return mail::iequals(d, domain); });
}

const SigningDomain* Config::domain(std::string_view name) const {
    for (const auto& d : domains) {
        if (mail::iequals(d.name, name)) {
            return &d;
        }
    }
    return nullptr;
}

const Client* Config::client(std::string_view name) const {
    for (const auto& c : clients) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

bool Listener::allows(const std::array<unsigned char, 16>& ip) const {
    return allowed_networks.empty() ||
           std::any_of(allowed_networks.begin(), allowed_networks.end(),
                       [&ip](const Network& n) { return n.contains(ip); });
}

bool Config::relays() const {
    return std::any_of(listeners.begin(), listeners.end(),
                       [](const Listener& l) { return l.protocol == Listener::Protocol::smtp; });
}

const Client* Config::client_for_user(std::string_view user) const {
    for (const auto& c : clients) {
        if (std::find(c.sasl_users.begin(), c.sasl_users.end(), user) != c.sasl_users.end()) {
            return &c;
        }
    }
    return nullptr;
}

const Client* Config::client_for(const std::array<unsigned char, 16>& ip) const {
    for (const auto& c : clients) {
        for (const auto& n : c.networks) {
            if (n.contains(ip)) {
                return &c;
            }
        }
    }
    return nullptr;
}

namespace {

// A user's uid by name, or nullopt.
std::optional<uid_t> user_id(const std::string& name) {
    std::array<char, 4096> buffer{};
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 ||
        found == nullptr) {
        return std::nullopt;
    }
    return found->pw_uid;
}

Endpoint endpoint(config::TableReader& r, const std::string& key, bool loopback_only) {
    const auto text = r.string(key);
    if (!text) {
        r.fail(key, "missing (an address and port such as \"127.0.0.1:2525\")");
    }
    auto e = parse_endpoint(*text);
    if (!e) {
        r.fail(key, "expected an address and port such as \"127.0.0.1:2525\" or \"[::1]:2525\"");
    }
    const auto ip = parse_ip(e->host);
    if (!ip) {
        r.fail(key, "expected an IP address, not a host name");
    }
    if (loopback_only && !is_loopback(*ip)) {
        r.fail(key, "must be a loopback address (127.0.0.0/8 or ::1)");
    }
    return *e;
}

void read_limits(config::TableReader& r, Limits& l) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    // RFC 5321 §4.5.3.1.10: at least 100 recipients must be accepted; §4.5.3.1.6: text
    // lines of 1000 octets with the CRLF; §4.5.3.2.7: a server waits at least 5 minutes.
    l.message_size = r.size("message_size", 1024, std::uint64_t{1} << 30).value_or(l.message_size);
    l.recipients = static_cast<std::size_t>(r.integer("recipients", 1, 100000).value_or(100));
    l.line_length = static_cast<std::size_t>(r.integer("line_length", 78, 65536).value_or(998));
    l.commands = static_cast<std::size_t>(r.integer("commands", 10, 1000000).value_or(1000));
    l.errors = static_cast<std::size_t>(r.integer("errors", 1, 1000).value_or(10));
    l.connections = static_cast<std::size_t>(r.integer("connections", 1, 100000).value_or(1000));
    l.connections_per_client =
        static_cast<std::size_t>(r.integer("connections_per_client", 1, 100000).value_or(20));
    l.auth_failures = static_cast<std::size_t>(r.integer("auth_failures", 1, 100).value_or(3));
    l.greeting_delay = r.duration("greeting_delay", milliseconds(0)).value_or(l.greeting_delay);
    l.command_timeout =
        r.duration("command_timeout", milliseconds(100)).value_or(l.command_timeout);
    l.data_timeout = r.duration("data_timeout", milliseconds(100)).value_or(l.data_timeout);
    l.session_timeout = r.duration("session_timeout", seconds(1)).value_or(l.session_timeout);
    r.finish();
}

void read_next_hop(config::TableReader& r, NextHop& h) {
    const auto url = r.string("url");
    if (!url) {
        r.fail("url", "missing (\"smtp://host:port\" or \"maildir:/path\")");
    }
    if (url->rfind("maildir:", 0) == 0) {
        h.kind = NextHop::Kind::maildir;
        h.maildir = url->substr(8);
        if (h.maildir.empty() || h.maildir.front() != '/') {
            r.fail("url", "a maildir next hop needs an absolute path (\"maildir:/var/mail/x\")");
        }
    } else if (url->rfind("smtp://", 0) == 0) {
        h.kind = NextHop::Kind::smtp;
        auto e = parse_endpoint(url->substr(7));
        if (!e) {
            r.fail("url", "expected \"smtp://host:port\"");
        }
        h.host = e->host;
        h.port = e->port;
    } else {
        r.fail("url", "expected \"smtp://host:port\" or \"maildir:/path\"");
    }
    if (const auto tls = r.string("tls")) {
        if (*tls == "required") {
            h.tls = TlsMode::required;
        } else if (*tls == "opportunistic") {
            h.tls = TlsMode::opportunistic;
        } else if (*tls == "off") {
            h.tls = TlsMode::off;
        } else {
            r.fail("tls", "expected \"required\", \"opportunistic\" or \"off\"");
        }
    }
    h.verify_certificate = r.boolean("verify_certificate").value_or(true);
    h.ca_file = r.string("ca_file").value_or("");
    h.server_name = r.string("server_name").value_or(h.host);
    using std::chrono::milliseconds;
    h.connect_timeout =
        r.duration("connect_timeout", milliseconds(100)).value_or(h.connect_timeout);
    h.command_timeout =
        r.duration("command_timeout", milliseconds(100)).value_or(h.command_timeout);
    h.data_timeout = r.duration("data_timeout", milliseconds(100)).value_or(h.data_timeout);
    r.finish();
}

// [inbound.reports]: the report addresses, dkim-reportd's socket and the limits.
ReportSettings read_reports(config::TableReader& r) {
    ReportSettings out;
    const auto addresses = r.strings("addresses");
    if (!addresses || addresses->empty()) {
        r.fail("addresses",
               "missing (the addresses report mail is sent to, such as "
               "[\"dmarc-reports@example.com\"])");
    }
    for (const std::string& a : *addresses) {
        auto path = smtp::parse_rcpt_to("TO:<" + a + ">");
        if (!path || path->address != a || !path->parameters.empty() || path->domain.empty() ||
            path->domain.front() == '[') {
            r.fail("addresses", "'" + a.substr(0, 100) + "' is not a mailbox (local@domain)");
        }
        std::string canonical = canonical_mailbox(path->local_part, path->domain);
        if (std::find(out.addresses.begin(), out.addresses.end(), canonical) !=
            out.addresses.end()) {
            r.fail("addresses", a + " is listed twice");
        }
        out.addresses.push_back(std::move(canonical));
    }
    if (const auto socket = r.string("socket")) {
        if (socket->empty() || socket->front() != '/' || socket->size() >= 108) {
            r.fail("socket", "expected an absolute path shorter than 108 bytes");
        }
        out.socket = *socket;
    }
    // dkim-reportd takes 64 MiB a submission unless told otherwise (its limits.max_input).
    out.max_size = r.size("max_size", 1024, std::uint64_t{64} << 20).value_or(out.max_size);
    out.max_per_client_per_hour =
        static_cast<std::size_t>(r.integer("max_per_client_per_hour", 1, 100000).value_or(60));
    out.max_per_hour =
        static_cast<std::size_t>(r.integer("max_per_hour", 1, 10000000).value_or(2000));
    r.finish();
    return out;
}

Inbound read_inbound(config::TableReader& r, const Config& c) {
    Inbound in;
    for (auto d : r.strings("domains").value_or(std::vector<std::string>{})) {
        d = mail::ascii_lowercase(d);
        if (!smtp::is_valid_domain(d) || d.front() == '[') {
            r.fail("domains", "'" + d + "' is not a domain name");
        }
        in.domains.push_back(std::move(d));
    }
    if (in.domains.empty()) {
        r.fail("domains", "the recipient domains to receive for are needed (no open relay)");
    }
    in.authserv_id = r.string("authserv_id").value_or(c.hostname);
    if (!smtp::is_valid_domain(in.authserv_id)) {
        r.fail("authserv_id", "not a valid host name");
    }
    in.dmarc_reject = r.boolean("dmarc_reject").value_or(true);
    if (const auto q = r.string("quarantine")) {
        if (*q == "header") {
            in.quarantine = Quarantine::header;
        } else if (*q == "next_hop") {
            in.quarantine = Quarantine::next_hop;
        } else if (*q == "off") {
            in.quarantine = Quarantine::off;
        } else {
            r.fail("quarantine", "expected \"header\", \"next_hop\" or \"off\"");
        }
    }
    in.check_helo = r.boolean("check_helo").value_or(true);
    if (const auto method = r.string("org_domain")) {
        if (*method != "psl" && *method != "tree-walk") {
            r.fail("org_domain", "expected \"psl\" (Public Suffix List) or \"tree-walk\"");
        }
        in.tree_walk = *method == "tree-walk";
    }
    in.psl_file = r.string("psl_file").value_or(in.psl_file);
    if (const auto server = r.string("dns_server")) {
        if (!dns::unbound_forward_address(*server)) {
            r.fail("dns_server", "expected IP or IP:PORT (\"127.0.0.1:53\", \"[::1]:53\")");
        }
        in.dns_server = *server;
    }
    in.dns_timeout =
        r.duration("dns_timeout", std::chrono::milliseconds(100)).value_or(in.dns_timeout);
    if (const auto anchor = r.string("dnssec_trust_anchor")) {
        if (anchor->empty() || anchor->front() != '/') {
            r.fail("dnssec_trust_anchor", "expected an absolute path");
        }
        in.dnssec_trust_anchor = *anchor;
    }
    in.workers = static_cast<std::size_t>(r.integer("workers", 1, 256).value_or(16));
    in.next_hop = c.next_hop;
    if (auto hop = r.table("next_hop")) {
        in.next_hop = NextHop{};
        read_next_hop(*hop, in.next_hop);
    }
    if (auto hop = r.table("quarantine_next_hop")) {
        in.quarantine_next_hop = NextHop{};
        read_next_hop(*hop, *in.quarantine_next_hop);
    }
    if (in.quarantine == Quarantine::next_hop && !in.quarantine_next_hop) {
        r.fail("quarantine", "quarantine = \"next_hop\" needs an [inbound.quarantine_next_hop]");
    }
    if (auto reports = r.table("reports")) {
        in.reports = read_reports(*reports);
    }
    r.finish();
    return in;
}

}  // namespace

std::string canonical_mailbox(std::string_view local_part, std::string_view domain) {
    std::string local;
    if (local_part.size() >= 2 && local_part.front() == '"' && local_part.back() == '"') {
        const std::string_view inner = local_part.substr(1, local_part.size() - 2);
        for (std::size_t i = 0; i < inner.size(); ++i) {
            if (inner[i] == '\\' && i + 1 < inner.size()) {
                ++i;
            }
            local.push_back(inner[i]);
        }
    } else {
        local = std::string(local_part);
    }
    return mail::ascii_lowercase(local) + "@" + mail::ascii_lowercase(domain);
}

bool ReportSettings::is_report_address(std::string_view local_part, std::string_view domain) const {
    if (domain.empty()) {
        return false;  // <Postmaster>
    }
    const std::string mailbox = canonical_mailbox(local_part, domain);
    return std::find(addresses.begin(), addresses.end(), mailbox) != addresses.end();
}

bool Inbound::accepts(std::string_view recipient_domain) const {
    const std::string d = mail::ascii_lowercase(recipient_domain);
    return std::find(domains.begin(), domains.end(), d) != domains.end();
}

namespace {

// Every key dkim-relayd reads (the parser may read no other; --config-reference prints them).
constexpr config::KeyDoc kKeys[] = {
    {"hostname", "string", "localhost",
     "The relay's name: the SMTP banner, EHLO to next hops, Received: fields.",
     "\"relay.example.net\""},
    {"signerd_socket", "string", "/run/dkim-signerd/signerd.sock",
     "dkim-signerd's socket: keys and signatures come from there.",
     "\"/run/dkim-signerd/signerd.sock\""},
    {"listen[]", "tables", "", "SMTP (or milter) listeners; at least one."},
    {"listen[].address", "string", "",
     "IP:PORT (required); a milter listener may be unix:/path (a Unix socket).",
     "\"127.0.0.1:2525\""},
    {"listen[].protocol", "string", "smtp",
     "smtp (a relay: mail comes in and goes to the next hop) or milter (Postfix or Sendmail "
     "asks, version 6; the MTA keeps the mail).",
     "\"smtp\""},
    {"listen[].role", "string", "outbound",
     "outbound (sign and forward) or inbound (check SPF, DKIM, DMARC and forward); milter "
     "listeners also both (a client's mail signed, the rest verified).",
     "\"outbound\""},
    {"listen[].allowed_users", "strings", "[\"postfix\"]",
     "Milter listeners on a Unix socket (address = \"unix:/path\"): the users whose processes "
     "may connect (checked by SO_PEERCRED).",
     ""},  // no example: the all-keys example's listener is TCP
    {"listen[].allowed_networks", "strings", "anyone; milter: [\"127.0.0.0/8\", \"::1/128\"]",
     "Addresses or networks that may connect at all (others are closed on at once). A milter "
     "listener's MTAs decide what is signed: loopback unless named here.",
     "[\"127.0.0.0/8\"]"},
    {"listen[].tls_certificate", "string", "", "PEM certificate for STARTTLS (with tls_key).",
     "\"/etc/dkim-appliance/tls/relay.crt\""},
    {"listen[].tls_key", "string", "", "PEM key for STARTTLS.",
     "\"/etc/dkim-appliance/tls/relay.key\""},
    {"listen[].plain_auth", "boolean", "false", "Offer AUTH without TLS (loopback listeners only).",
     "false"},
    {"limits", "table", "", "Per-connection and per-message limits."},
    {"limits.message_size", "size", "25MiB", "Largest message (SIZE).", "\"25MiB\""},
    {"limits.recipients", "integer 1..100000", "100", "Recipients per message.", "100"},
    {"limits.line_length", "integer 78..65536", "998", "Longest text line, without CRLF.", "998"},
    {"limits.commands", "integer 10..1000000", "1000", "Commands per connection.", "1000"},
    {"limits.errors", "integer 1..1000", "10", "Errors before the connection is closed.", "10"},
    {"limits.connections", "integer 1..100000", "1000", "Connections at once.", "1000"},
    {"limits.connections_per_client", "integer 1..100000", "20",
     "Connections at once from one address.", "20"},
    {"limits.auth_failures", "integer 1..100", "3", "Failed AUTH attempts per connection.", "3"},
    {"limits.greeting_delay", "duration", "none",
     "Wait before the banner; clients that talk first are refused.", "\"1s\""},
    {"limits.command_timeout", "duration", "5m",
     "Wait for the next command (a milter listener: for the rest of a packet begun; between "
     "packets it waits 7210 s, as libmilter does).",
     "\"5m\""},
    {"limits.data_timeout", "duration", "3m", "Wait for the next block of message data.", "\"3m\""},
    {"limits.session_timeout", "duration", "30m",
     "Longest connection (SMTP; a milter connection lasts as long as its MTA keeps it).",
     "\"30m\""},
    {"<hop>", "table", "",
     "A next hop: [next_hop] (required), [inbound.next_hop] and [inbound.quarantine_next_hop].",
     "next_hop"},
    {"<hop>.url", "string", "", "smtp://HOST:PORT or maildir:/path (required).",
     "\"smtp://127.0.0.1:10026\""},
    {"<hop>.tls", "string", "required", "STARTTLS to the next hop: required, opportunistic or off.",
     "\"opportunistic\""},
    {"<hop>.verify_certificate", "boolean", "true", "Check the next hop's certificate and name.",
     "true"},
    {"<hop>.ca_file", "string", "", "CA bundle for that check (default: the system's).",
     "\"/etc/ssl/certs/ca-certificates.crt\""},
    {"<hop>.server_name", "string", "the url's host", "The name the certificate must carry.",
     "\"mail.example.net\""},
    {"<hop>.connect_timeout", "duration", "30s", "TCP and banner.", "\"30s\""},
    {"<hop>.command_timeout", "duration", "5m", "Each command's reply.", "\"5m\""},
    {"<hop>.data_timeout", "duration", "10m", "The reply to the final dot.", "\"10m\""},
    {"signing", "table", "", "How outbound mail is signed."},
    {"signing.canonicalization", "string", "relaxed/relaxed", "Header/body canonicalization (c=).",
     "\"relaxed/relaxed\""},
    {"signing.expire_after", "duration", "7d",
     "Signatures expire (x=) this long after signing: 1h to 30d, and within signerd's "
     "signing_profile.max_lifetime (7d by default), or signerd refuses to sign.",
     "\"3d\""},
    {"signing.workers", "integer 1..256", "8", "Threads hashing and asking signerd.", "8"},
    {"signing.key_refresh", "duration", "60s",
     "How long a managed domain's active selectors are cached.", "\"60s\""},
    {"domain[]", "tables", "", "The signing domains."},
    {"domain[].name", "string", "", "The domain (d=).", "\"example.net\""},
    {"domain[].selectors", "strings", "",
     "Fixed selectors; without it the keys signerd reports active (rotation-ready).",
     "[\"s2026\"]"},
    {"client[]", "tables", "", "Who may submit outbound mail, and for which domains."},
    {"client[].name", "string", "",
     "The client's name, in logs and stated to signerd with each signature for its audit log "
     "(signerd trusts the relay for it; grant scopes name the relay's Unix user).",
     "\"apps\""},
    {"client[].networks", "strings", "",
     "Addresses or networks it connects from (or password_hash, or both).", "[\"127.0.0.0/8\"]"},
    {"client[].password_hash", "string", "",
     "Argon2id hash for SMTP AUTH (dkim-appliance relay hash).",
     "\"$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g\""},
    {"client[].domains", "strings", "", "Domains (from [[domain]]) it may send for.",
     "[\"example.net\"]"},
    {"client[].sasl_users", "strings", "",
     "Milter listeners: SMTP AUTH users the MTA reports ({auth_authen}) whose mail is this "
     "client's.",
     "[\"alice@example.net\"]"},
    {"metrics", "table", "", "Prometheus metrics over HTTP."},
    {"metrics.listen", "string", "", "Loopback IP:PORT.", "\"127.0.0.1:9465\""},
    {"inbound", "table", "", "The verifying role: needed when a listener has role = inbound."},
    {"inbound.domains", "strings", "", "Recipient domains received for (anything else: 550).",
     "[\"example.net\"]"},
    {"inbound.authserv_id", "string", "hostname", "The Authentication-Results authserv-id.",
     "\"mx.example.net\""},
    {"inbound.dmarc_reject", "boolean", "true", "Refuse (550) mail whose DMARC policy says reject.",
     "true"},
    {"inbound.quarantine", "string", "header",
     "DMARC quarantine: header (a field), next_hop (the quarantine hop) or off.", "\"header\""},
    {"inbound.check_helo", "boolean", "true", "Check SPF for the HELO identity too.", "true"},
    {"inbound.org_domain", "string", "psl",
     "Organizational domains: psl (Public Suffix List) or tree-walk (DMARCbis).", "\"psl\""},
    {"inbound.psl_file", "string", "/usr/share/publicsuffix/public_suffix_list.dafsa",
     "The Public Suffix List.", "\"/usr/share/publicsuffix/public_suffix_list.dafsa\""},
    {"inbound.dns_server", "string", "", "Resolver IP[:PORT] (default: the system's).",
     "\"127.0.0.1:53\""},
    {"inbound.dns_timeout", "duration", "5s", "One DNS query.", "\"5s\""},
    {"inbound.dnssec_trust_anchor", "string", "", "Root trust anchor file, to validate DNSSEC.",
     "\"/usr/share/dns/root.key\""},
    {"inbound.workers", "integer 1..256", "16", "Threads for the inbound checks.", "16"},
    {"inbound.reports", "table", "",
     "Report mail (DMARC, TLS-RPT): recipients that are report addresses are taken from any "
     "sender and handed to dkim-reportd, never to a next hop; 250 once it stored them."},
    {"inbound.reports.addresses", "strings", "",
     "The report addresses (required; local part and domain compared in any case). A "
     "transaction is for reports or for mail: the other kind of recipient gets 452 4.5.3.",
     "[\"dmarc-reports@example.net\", \"tls-reports@example.net\"]"},
    {"inbound.reports.socket", "string", "/run/dkim-appliance/reportd.sock",
     "dkim-reportd's socket (its peers.relay names relayd's user).",
     "\"/run/dkim-appliance/reportd.sock\""},
    {"inbound.reports.max_size", "size", "32MiB",
     "Largest report message (552 5.3.4 above it; at most 64MiB). The SIZE advertised stays "
     "limits.message_size, which also caps reports.",
     "\"32MiB\""},
    {"inbound.reports.max_per_client_per_hour", "integer 1..100000", "60",
     "Report transactions per client address (IPv6: per /64) in any hour; more get 450 4.7.1.",
     "60"},
    {"inbound.reports.max_per_hour", "integer 1..10000000", "2000",
     "Report transactions from all clients together in any hour; more get 450 4.7.1.", "2000"},
};

constexpr config::Placeholder kNames[] = {
    {"<hop>", "next_hop inbound.next_hop inbound.quarantine_next_hop"}};

}  // namespace

const config::Schema& config_schema() {
    static const config::Schema schema{"dkim-relayd: /etc/dkim-appliance/relayd.toml", kKeys,
                                       kNames};
    return schema;
}

Expected<Config, std::string> load_config(const std::string& file) {
    try {
        const toml::table root = config::parse_toml_file(file);
        config::TableReader r(root, file, "", &config_schema());
        Config c;
        c.file = file;
        c.hostname = r.string("hostname").value_or(c.hostname);
        if (!smtp::is_valid_domain(c.hostname)) {
            r.fail("hostname", "not a valid host name");
        }
        c.signerd_socket = r.string("signerd_socket").value_or(c.signerd_socket);

        for (auto& l : r.tables("listen")) {
            Listener listener;
            // A milter listener may be a Unix socket ("unix:/path"), the MTA's user checked.
            const auto protocol_text = l.string("protocol");
            const auto address_text = l.string("address");
            if (protocol_text == "milter" && address_text && address_text->starts_with("unix:")) {
                listener.unix_path = address_text->substr(5);
                if (listener.unix_path.empty() || listener.unix_path.front() != '/' ||
                    listener.unix_path.size() > 100) {
                    l.fail("address", "expected unix:/absolute/path (at most 100 bytes)");
                }
            } else {
                listener.address = endpoint(l, "address", false);
            }
            listener.tls_certificate = l.string("tls_certificate").value_or("");
            listener.tls_key = l.string("tls_key").value_or("");
            if (listener.tls_certificate.empty() != listener.tls_key.empty()) {
                l.fail(listener.tls_key.empty() ? "tls_key" : "tls_certificate",
                       "STARTTLS needs both tls_certificate and tls_key");
            }
            if (const auto& protocol = protocol_text) {
                if (*protocol == "milter") {
                    listener.protocol = Listener::Protocol::milter;
                } else if (*protocol != "smtp") {
                    l.fail("protocol", "expected \"smtp\" or \"milter\"");
                }
            }
            const bool milter = listener.protocol == Listener::Protocol::milter;
            if (const auto role = l.string("role")) {
                if (*role == "inbound") {
                    listener.role = Listener::Role::inbound;
                } else if (*role == "both" && milter) {
                    listener.role = Listener::Role::both;
                } else if (*role != "outbound") {
                    l.fail("role", milter ? "expected \"outbound\" (sign), \"inbound\" (verify) "
                                            "or \"both\""
                                          : "expected \"outbound\" (sign) or \"inbound\" (verify)");
                }
            }
            if (const auto users = l.strings("allowed_users")) {
                if (listener.unix_path.empty()) {
                    l.fail("allowed_users",
                           "only a Unix socket (address = \"unix:/path\") checks "
                           "its peers' users");
                }
                for (const auto& user : *users) {
                    const auto uid = user_id(user);
                    if (!uid) {
                        l.fail("allowed_users", "no user " + user + " on this machine");
                    }
                    listener.allowed_uids.push_back(*uid);
                }
            } else if (!listener.unix_path.empty()) {
                const auto uid = user_id("postfix");
                if (!uid) {
                    l.fail("allowed_users",
                           "missing, and there is no user postfix: name the MTA's "
                           "user (and root if it submits)");
                }
                listener.allowed_uids = {*uid};
            }
            if (const auto networks = l.strings("allowed_networks")) {
                if (!listener.unix_path.empty()) {
                    l.fail("allowed_networks", "a Unix socket has no networks: allowed_users");
                }
                if (networks->empty()) {
                    l.fail("allowed_networks", "an empty list would let no one connect");
                }
                for (const auto& n : *networks) {
                    auto network = parse_network(n);
                    if (!network) {
                        l.fail("allowed_networks",
                               "'" + n + "' is not an address or network (\"127.0.0.1\")");
                    }
                    listener.allowed_networks.push_back(*network);
                }
            } else if (milter && listener.unix_path.empty()) {
                listener.allowed_networks = {*parse_network("127.0.0.0/8"),
                                             *parse_network("::1/128")};
            }
            if (milter && listener.tls()) {
                l.fail("tls_certificate", "a milter listener has no TLS (keep it on loopback)");
            }
            listener.plain_auth = l.boolean("plain_auth").value_or(false);
            if (listener.plain_auth && milter) {
                l.fail("plain_auth", "a milter listener offers no AUTH");
            }
            if (listener.plain_auth && listener.role == Listener::Role::inbound) {
                l.fail("plain_auth", "an inbound listener offers no AUTH");
            }
            if (listener.plain_auth && listener.unix_path.empty() &&
                !is_loopback(*parse_ip(listener.address.host))) {
                l.fail("plain_auth", "AUTH without TLS is only allowed on a loopback address");
            }
            l.finish();
            c.listeners.push_back(std::move(listener));
        }
        if (c.listeners.empty()) {
            r.fail("listen", "at least one [[listen]] table is needed");
        }
        if (auto limits = r.table("limits")) {
            read_limits(*limits, c.limits);
        }
        // Mail goes to a next hop from SMTP listeners only: the MTA keeps a milter's.
        auto next_hop = r.table("next_hop");
        if (next_hop) {
            read_next_hop(*next_hop, c.next_hop);
        } else if (c.relays()) {
            r.fail("next_hop",
                   "missing ([next_hop] url = \"smtp://host:port\" or \"maildir:/path\")");
        }

        if (auto signing = r.table("signing")) {
            if (const auto canon = signing->string("canonicalization")) {
                auto parsed = Canonicalization::parse(*canon);
                if (!parsed) {
                    signing->fail("canonicalization", parsed.error());
                }
                c.canonicalization = *parsed;
            }
            if (const auto x = signing->duration("expire_after", std::chrono::hours(1))) {
                if (*x > std::chrono::hours(24 * 30)) {
                    signing->fail("expire_after",
                                  "at most 30d (signerd's signing profile caps x= after t=)");
                }
                c.expire_after = std::chrono::duration_cast<std::chrono::seconds>(*x);
            }
            c.signing_workers =
                static_cast<std::size_t>(signing->integer("workers", 1, 256).value_or(8));
            if (const auto refresh = signing->duration("key_refresh", std::chrono::seconds(1))) {
                c.key_refresh = *refresh;
            }
            signing->finish();
        }

        for (auto& d : r.tables("domain")) {
            SigningDomain domain;
            domain.name = mail::ascii_lowercase(d.string("name").value_or(""));
            if (!smtp::is_valid_domain(domain.name) || domain.name.front() == '[') {
                d.fail("name", "expected a domain name");
            }
            if (c.domain(domain.name) != nullptr) {
                d.fail("name", "domain " + domain.name + " is configured twice");
            }
            // Without selectors the domain is managed: signerd says which keys are active
            // (they change with each rotation).
            const auto selectors = d.strings("selectors");
            domain.selectors = selectors.value_or(std::vector<std::string>{});
            if (selectors && domain.selectors.empty()) {
                d.fail("selectors",
                       "an empty list signs nothing; leave selectors out to sign with the keys "
                       "signerd has active for the domain");
            }
            for (auto& s : domain.selectors) {
                s = mail::ascii_lowercase(s);
                if (!smtp::is_valid_domain(s)) {
                    d.fail("selectors", "'" + s + "' is not a valid selector");
                }
            }
            d.finish();
            c.domains.push_back(std::move(domain));
        }

        for (auto& t : r.tables("client")) {
            Client client;
            client.name = t.string("name").value_or("");
            if (client.name.empty() || client.name.size() > 64 ||
                !std::all_of(client.name.begin(), client.name.end(), [](char ch) {
                    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' ||
                           ch == '_' || ch == '.' || ch == '@';
                })) {
                t.fail("name", "expected 1 to 64 letters, digits, '-', '_', '.' or '@'");
            }
            if (c.client(client.name) != nullptr) {
                t.fail("name", "client " + client.name + " is configured twice");
            }
            for (const auto& n : t.strings("networks").value_or(std::vector<std::string>{})) {
                auto network = parse_network(n);
                if (!network) {
                    t.fail("networks", "'" + n + "' is not an address or network (\"10.0.0.0/8\")");
                }
                client.networks.push_back(*network);
            }
            client.password_hash = t.string("password_hash").value_or("");
            if (!client.password_hash.empty() && client.password_hash.rfind("$argon2id$", 0) != 0) {
                t.fail("password_hash", "expected an Argon2id hash (\"$argon2id$...\")");
            }
            client.sasl_users = t.strings("sasl_users").value_or(std::vector<std::string>{});
            for (const auto& user : client.sasl_users) {
                if (user.empty() || user.size() > 255 || c.client_for_user(user) != nullptr) {
                    t.fail("sasl_users", user.empty() || user.size() > 255
                                             ? "expected user names of 1 to 255 bytes"
                                             : "'" + user + "' is another client's already");
                }
            }
            if (client.networks.empty() && client.password_hash.empty() &&
                client.sasl_users.empty()) {
                t.fail("", "a client needs networks, a password_hash, sasl_users, or more");
            }
            for (auto d : t.strings("domains").value_or(std::vector<std::string>{})) {
                d = mail::ascii_lowercase(d);
                if (c.domain(d) == nullptr) {
                    t.fail("domains", "no [[domain]] table signs for " + d);
                }
                client.domains.push_back(std::move(d));
            }
            if (client.domains.empty()) {
                t.fail("domains", "a client needs at least one domain it may send for");
            }
            t.finish();
            c.clients.push_back(std::move(client));
        }
        if (auto metrics = r.table("metrics")) {
            c.metrics = endpoint(*metrics, "listen", true);
            metrics->finish();
        }
        const bool inbound_listener = std::any_of(c.listeners.begin(), c.listeners.end(),
                                                  [](const Listener& l) { return l.verifies(); });
        if (auto inbound = r.table("inbound")) {
            c.inbound = read_inbound(*inbound, c);
        } else if (inbound_listener) {
            r.fail("inbound",
                   "a listener has role = \"inbound\" or \"both\": an [inbound] table is needed");
        }
        r.finish();
        return c;
    } catch (const config::ConfigError& e) {
        return unexpected(std::string(e.what()));
    }
}

}  // namespace dkim::relayd

#include "config.hpp"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include "dkim/config/toml_reader.hpp"
#include "dkim/dmarc/policy.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/dns/unbound_resolver.hpp"

namespace dkim::web {

namespace {

bool is_address(const std::string& text) {
    std::array<unsigned char, 16> out{};
    return inet_pton(AF_INET, text.c_str(), out.data()) == 1 ||
           inet_pton(AF_INET6, text.c_str(), out.data()) == 1;
}

// "192.0.2.25", "2001:db8::25", "192.0.2.0/24" (SPF ip4:/ip6: take a prefix length).
bool is_address_or_network(const std::string& text) {
    const std::size_t slash = text.find('/');
    if (slash == std::string::npos) {
        return is_address(text);
    }
    const std::string address = text.substr(0, slash);
    const std::string length = text.substr(slash + 1);
    if (!is_address(address) || length.empty() || length.size() > 3 ||
        length.find_first_not_of("0123456789") != std::string::npos) {
        return false;
    }
    return std::stoi(length) <= (address.find(':') != std::string::npos ? 128 : 32);
}

}  // namespace

namespace {

// Every key dkim-webd reads (the parser may read no other; --config-reference prints them).
constexpr config::KeyDoc kKeys[] = {
    {"listen", "string", "127.0.0.1:8443",
     "IP:PORT to serve HTTPS on, unless systemd passes a socket (dkim-webd.socket).",
     "\"127.0.0.1:8443\""},
    {"tls_certificate", "string", "",
     "PEM certificate chain (with tls_key; required unless self_signed).",
     "\"/etc/dkim-appliance/tls/webd.crt\""},
    {"tls_key", "string", "", "PEM private key (on the appliance: the unit's tls-key credential).",
     "\"/run/credentials/dkim-webd.service/tls-key\""},
    {"self_signed", "boolean", "false",
     "Development: without a certificate, make a self-signed one in state_dir once.", "false"},
    {"state_dir", "string", "/var/lib/dkim-webd", "Folder of the self-signed certificate.",
     "\"/var/lib/dkim-webd\""},
    {"signerd_socket", "string", "/run/dkim-signerd/signerd.sock",
     "dkim-signerd's socket: every credential is checked there.",
     "\"/run/dkim-signerd/signerd.sock\""},
    {"workers", "integer 1..64", "4", "Requests handled at once (each may wait for signerd).", "4"},
    {"body_limit", "size", "64KiB", "Largest request body.", "\"64KiB\""},
    {"header_limit", "size", "16KiB", "Largest request header block.", "\"16KiB\""},
    {"read_timeout", "duration", "30s", "Time to read one request, headers and body.", "\"30s\""},
    {"idle_timeout", "duration", "2m", "A kept-alive connection's wait for its next request.",
     "\"2m\""},
    {"write_timeout", "duration", "30s", "Time to write one response.", "\"30s\""},
    {"max_connections", "integer 1..100000", "512",
     "Connections at once; more wait in the kernel's queue.", "512"},
    {"session_ttl", "duration", "8h", "A console session's lifetime (1m..12h).", "\"8h\""},
    {"session_idle", "duration", "30m", "A console session ends after this long unused.",
     "\"30m\""},
    {"max_sessions", "integer 1..1000000", "10000", "Console sessions kept at once.", "10000"},
    {"metrics", "string", "auditor",
     "Who may read /metrics: off, public, authenticated or auditor.", "\"auditor\""},
    {"login", "table", "", "Login rate limits (signerd also locks users after failures)."},
    {"login.attempts_per_address", "integer 1..10000", "10",
     "Failed logins per client address per window.", "10"},
    {"login.attempts_per_user", "integer 1..10000", "5", "Failed logins per user name per window.",
     "5"},
    {"login.window", "duration", "5m", "The sliding window of the two limits.", "\"5m\""},
    {"dns", "table", "", "What the console's DNS page proposes."},
    {"dns.outbound_addresses", "strings", "[]",
     "The relay's outbound addresses or networks, for the SPF record.", "[\"192.0.2.25\"]"},
    {"dns.dmarc_rua", "string", "",
     "mailto: URI for DMARC aggregate reports (rua=; several: comma-separated).",
     "\"mailto:dmarc@example.net\""},
    {"dns.dmarc_ruf", "string", "",
     "mailto: URI for DMARC failure reports (ruf=; several: comma-separated).",
     "\"mailto:dmarc-failures@example.net\""},
    {"dns.tlsrpt_rua", "string", "",
     "mailto: URI (or https:// URL) for TLS reports: the TLS-RPT record (_smtp._tls, RFC 8460).",
     "\"mailto:tls-reports@example.net\""},
    {"reports", "table", "", "DMARC and TLS reports: dkim-reportd (the Reports view and API)."},
    {"reports.socket", "string", "",
     "dkim-reportd's socket (webd's user must be a [peers] web entry of reportd); empty: the "
     "reports API answers 503.",
     "\"/run/dkim-appliance/reportd.sock\""},
    {"reports.upload_limit", "size", "64MiB",
     "Largest report file or mail uploaded through the console or the API (at most 64MiB).",
     "\"64MiB\""},
    {"reports.upload_timeout", "duration", "5m", "Time to receive one upload's body.", "\"5m\""},
    {"reports.reverse_dns", "boolean", "true",
     "Show the sources' reverse DNS, forward-confirmed (PTR, then A/AAAA), looked up by webd: at "
     "most 25 addresses and about 2s per request, cached for an hour; false: no DNS queries.",
     "true"},
    {"reports.dns_server", "string", "",
     "Resolver IP[:PORT] for reverse DNS (default: the system's).", "\"127.0.0.1:53\""},
    {"reports.dns_timeout", "duration", "1s", "One DNS query of reverse DNS (at most 5s).",
     "\"1s\""},
};

}  // namespace

const config::Schema& config_schema() {
    static const config::Schema schema{"dkim-webd: /etc/dkim-appliance/webd.toml", kKeys};
    return schema;
}

Expected<Config, std::string> load_config(const std::string& file) {
    try {
        const toml::table root = config::parse_toml_file(file);
        config::TableReader r(root, file, "", &config_schema());
        Config c;
        c.file = file;
        if (auto listen = r.string("listen")) {
            auto e = config::parse_endpoint(*listen);
            if (!e || !is_address(e->host)) {
                r.fail("listen", "expected \"IP:PORT\" or \"[IPv6]:PORT\"");
            }
            c.listen = *e;
        }
        c.tls_certificate = r.string("tls_certificate").value_or("");
        c.tls_key = r.string("tls_key").value_or("");
        c.self_signed = r.boolean("self_signed").value_or(false);
        if (auto dir = r.string("state_dir")) {
            c.state_dir = *dir;
        }
        if (c.tls_certificate.empty() != c.tls_key.empty()) {
            r.fail(c.tls_key.empty() ? "tls_key" : "tls_certificate",
                   "HTTPS needs both tls_certificate and tls_key");
        }
        if (c.tls_certificate.empty() && !c.self_signed) {
            r.fail("tls_certificate",
                   "missing: HTTPS needs a certificate (or self_signed = true in development)");
        }
        c.signerd_socket = r.string("signerd_socket").value_or(c.signerd_socket);
        c.workers = static_cast<unsigned>(r.integer("workers", 1, 64).value_or(c.workers));
        c.body_limit =
            r.size("body_limit", 1024, std::uint64_t{16} * 1024 * 1024).value_or(c.body_limit);
        c.header_limit =
            r.size("header_limit", 1024, std::uint64_t{1024} * 1024).value_or(c.header_limit);
        c.read_timeout = r.duration("read_timeout").value_or(c.read_timeout);
        c.idle_timeout = r.duration("idle_timeout").value_or(c.idle_timeout);
        c.write_timeout = r.duration("write_timeout").value_or(c.write_timeout);
        c.max_connections =
            static_cast<std::size_t>(r.integer("max_connections", 1, 100'000).value_or(512));
        c.handler.body_limit = c.body_limit;
        if (auto ttl = r.duration("session_ttl", std::chrono::minutes(1))) {
            if (*ttl > std::chrono::hours(12)) {
                r.fail("session_ttl", "at most 12h (signerd's limit for session tokens)");
            }
            c.handler.session_ttl_seconds =
                std::chrono::duration_cast<std::chrono::seconds>(*ttl).count();
        }
        c.session_idle =
            r.duration("session_idle", std::chrono::minutes(1)).value_or(c.session_idle);
        c.max_sessions =
            static_cast<std::size_t>(r.integer("max_sessions", 1, 1'000'000).value_or(10'000));
        if (auto access = r.string("metrics")) {
            if (*access == "off") {
                c.handler.metrics = MetricsAccess::off;
            } else if (*access == "public") {
                c.handler.metrics = MetricsAccess::public_;
            } else if (*access == "authenticated") {
                c.handler.metrics = MetricsAccess::authenticated;
            } else if (*access == "auditor") {
                c.handler.metrics = MetricsAccess::auditor;
            } else {
                r.fail("metrics", "expected \"off\", \"public\", \"authenticated\" or \"auditor\"");
            }
        }
        if (auto login = r.table("login")) {
            c.login.per_address = static_cast<unsigned>(
                login->integer("attempts_per_address", 1, 10'000).value_or(c.login.per_address));
            c.login.per_user = static_cast<unsigned>(
                login->integer("attempts_per_user", 1, 10'000).value_or(c.login.per_user));
            c.login.window =
                login->duration("window", std::chrono::seconds(1)).value_or(c.login.window);
            login->finish();
        }
        if (auto dns = r.table("dns")) {
            c.handler.dns.outbound_addresses =
                dns->strings("outbound_addresses").value_or(std::vector<std::string>{});
            for (const std::string& a : c.handler.dns.outbound_addresses) {
                if (!is_address_or_network(a)) {
                    dns->fail("outbound_addresses", "'" + a + "' is not an IP address or network");
                }
            }
            // Report URIs: mailto: (RFC 7489 §6.2), TLS-RPT also https: (RFC 8460 §3).
            for (const auto& [key, field, https] :
                 {std::tuple{"dmarc_rua", &c.handler.dns.dmarc_rua, false},
                  {"dmarc_ruf", &c.handler.dns.dmarc_ruf, false},
                  {"tlsrpt_rua", &c.handler.dns.tlsrpt_rua, true}}) {
                *field = dns->string(key).value_or("");
                if (const auto problem = dkim::dns::report_uris_problem(*field, https);
                    !field->empty() && !problem.empty()) {
                    dns->fail(key, problem);
                }
            }
            dns->finish();
            if (!c.handler.dns.dmarc_rua.empty() || !c.handler.dns.dmarc_ruf.empty()) {
                // Without the list (libpsl's own is built in), the tree decides.
                if (auto psl = dmarc::PublicSuffixList::load()) {
                    c.handler.dns.psl = std::move(*psl);
                }
            }
        }
        if (auto reports = r.table("reports")) {
            c.reports_socket = reports->string("socket").value_or("");
            if (!c.reports_socket.empty() && c.reports_socket.front() != '/') {
                reports->fail("socket", "expected an absolute path");
            }
            c.upload_limit = reports->size("upload_limit", 1024, std::uint64_t{64} << 20)
                                 .value_or(c.upload_limit);
            c.upload_timeout = reports->duration("upload_timeout", std::chrono::seconds(1))
                                   .value_or(c.upload_timeout);
            c.reverse_dns = reports->boolean("reverse_dns").value_or(c.reverse_dns);
            if (const auto server = reports->string("dns_server")) {
                if (!dkim::dns::unbound_forward_address(*server)) {
                    reports->fail("dns_server",
                                  "expected IP or IP:PORT (\"127.0.0.1:53\", \"[::1]:53\")");
                }
                c.dns_server = *server;
            }
            if (auto timeout = reports->duration("dns_timeout", std::chrono::milliseconds(100))) {
                if (*timeout > std::chrono::seconds(5)) {
                    reports->fail("dns_timeout", "at most 5s (a request waits for it)");
                }
                c.dns_timeout = *timeout;
            }
            reports->finish();
        }
        r.finish();
        return c;
    } catch (const config::ConfigError& e) {
        return unexpected(std::string(e.what()));
    }
}

}  // namespace dkim::web

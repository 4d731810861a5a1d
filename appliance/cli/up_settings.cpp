#include "up_settings.hpp"

#include <toml++/toml.h>

#include <array>
#include <utility>

#include "dkim/config/endpoint.hpp"
#include "dkim/config/toml_reader.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/dns/unbound_resolver.hpp"
#include "up_commented_toml.hpp"
#include "up_pin_custody.hpp"

namespace dkim::cli::up {

namespace {

// Every key of up.toml (the reader may read no other; `up --config-reference` prints them and
// the saved file carries their text as comments).
constexpr config::KeyDoc kSettingKeys[] = {
    {"domain", "string", "example.test",
     "The signing domain of the demo keys and the relay's clients.", "\"example.test\""},
    {"smtp_listen", "string", "127.0.0.1:2525",
     "Where dkim-relayd takes mail, IP:PORT (clients from 127.0.0.0/8 and ::1 may send).",
     "\"127.0.0.1:2525\""},
    {"inbound_listen", "string", "127.0.0.1:2500",
     "dkim-relayd's inbound listener, IP:PORT (the domain's MX): mail to the [reports] addresses "
     "goes to dkim-reportd, other mail to the domain is checked and goes to next_hop.",
     "\"127.0.0.1:2500\""},
    {"https_listen", "string", "127.0.0.1:8443",
     "The approval console and the API, IP:PORT (dkim-webd, HTTPS with a self-signed "
     "certificate).",
     "\"127.0.0.1:8443\""},
    {"next_hop", "string", "",
     "Where signed mail goes: smtp://HOST:PORT, or maildir:/path (default: maildir/ in the state "
     "folder).",
     "\"smtp://127.0.0.1:2526\""},
    {"module", "string", "",
     "The PKCS#11 module (SoftHSM2 here; a real HSM's module in production). Default: Debian's "
     "SoftHSM2.",
     "\"/usr/lib/softhsm/libsofthsm2.so\""},
    {"dns_server", "string", "",
     "The DNS server dkim-relayd's inbound checks and dkim-webd's reverse DNS of report sources "
     "ask, IP[:PORT] (default: the system's resolvers).",
     "\"127.0.0.1:5353\""},
    {"pin_custody", "string", "file",
     "Who holds the token's user PIN: file (signerd/user.pin, read by signerd), sealed (a "
     "systemd credential sealed with a host key of this folder's, opened for signerd at each "
     "start), approver (secrets/user.pin: the approval that activates a grant brings it) or "
     "shares (split among the demo's users). README: \"Choosing the PIN's custody\".",
     "\"sealed\""},
    {"cluster", "integer", "1",
     "How many appliance nodes: 1 is one appliance on SQLite; 2 to 8 run that many nodes (each "
     "its own dkim-signerd with its own token and keys, and its own dkim-relayd on smtp_listen's "
     "port, the next port, ...) sharing one grant state and one audit log in a PostgreSQL server "
     "that up initialises under postgres/ and runs as the postgres user; one dkim-webd and one "
     "dkim-reportd. PIN custody file only.",
     "2"},
    {"postgres_listen", "string", "127.0.0.1:5433",
     "The cluster's PostgreSQL server, IP:PORT on this machine (cluster >= 2).",
     "\"127.0.0.1:5433\""},
    {"reports", "table", "",
     "Where receivers send reports about the domain: mailboxes dkim-reportd takes through "
     "dkim-relayd, published as mailto: URIs in the domain's records; \"\" publishes none of that "
     "kind."},
    {"reports.aggregate_address", "string", "dmarc-reports@DOMAIN",
     "DMARC aggregate reports: rua= of the _dmarc record (RFC 7489 §7.2).",
     "\"dmarc-reports@example.test\""},
    {"reports.failure_address", "string", "dmarc-failures@DOMAIN",
     "DMARC failure reports: ruf= of the _dmarc record (RFC 7489 §7.3).",
     "\"dmarc-failures@example.test\""},
    {"reports.tls_address", "string", "tls-reports@DOMAIN",
     "TLS reports: rua= of the TLS-RPT record _smtp._tls (RFC 8460).",
     "\"tls-reports@example.test\""},
};

constexpr const char* kReportAddressProblem =
    "expected a mailbox (local@domain, nothing mailto: URIs would have to escape) or \"\"";

constexpr const char* kListenProblem = "expected an IP:PORT, got \"";
constexpr const char* kNextHopProblem = "expected smtp://HOST:PORT (or maildir:/path)";
constexpr const char* kPinCustodyProblem =
    "expected \"file\", \"sealed\", \"approver\" or \"shares\"";

bool valid_next_hop(const std::string& next_hop) {
    return next_hop.empty() || next_hop.rfind("maildir:/", 0) == 0 ||
           next_hop.rfind("smtp://", 0) == 0;
}

std::string_view setting_doc(std::string_view key) {
    for (const config::KeyDoc& k : kSettingKeys) {
        if (k.path == key) {
            return k.doc;
        }
    }
    return {};
}

// The report addresses as up.toml names them.
std::array<std::pair<const char*, std::string ReportAddresses::*>, 3> report_fields() {
    return {{{"aggregate_address", &ReportAddresses::aggregate_address},
             {"failure_address", &ReportAddresses::failure_address},
             {"tls_address", &ReportAddresses::tls_address}}};
}

}  // namespace

ReportAddresses default_report_addresses(const std::string& domain) {
    return {"dmarc-reports@" + domain, "dmarc-failures@" + domain, "tls-reports@" + domain};
}

std::string mailto(const std::string& address) {
    return address.empty() ? "" : "mailto:" + address;
}

const config::Schema& settings_schema() {
    static const config::Schema schema{"dkim-appliance up: STATE_DIR/up.toml", kSettingKeys};
    return schema;
}

Expected<Settings, std::string> load_settings(const std::filesystem::path& file) {
    Settings s;
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
        return s;
    }
    try {
        const toml::table t = config::parse_toml_file(file.string());
        config::TableReader r(t, file.string(), "", &settings_schema());
        s.domain = r.string("domain").value_or(s.domain);
        for (const auto& [key, field] : {std::pair{"smtp_listen", &s.smtp_listen},
                                         {"inbound_listen", &s.inbound_listen},
                                         {"https_listen", &s.https_listen}}) {
            *field = r.string(key).value_or(*field);
            if (!config::parse_endpoint(*field)) {
                r.fail(key, kListenProblem + *field + "\"");
            }
        }
        s.next_hop = r.string("next_hop").value_or(s.next_hop);
        if (!valid_next_hop(s.next_hop)) {
            r.fail("next_hop", kNextHopProblem);
        }
        s.module = r.string("module").value_or(s.module);
        s.dns_server = r.string("dns_server").value_or(s.dns_server);
        if (!s.dns_server.empty() && !dns::unbound_forward_address(s.dns_server)) {
            r.fail("dns_server", "expected IP or IP:PORT (\"127.0.0.1:53\", \"[::1]:53\")");
        }
        s.pin_custody = r.string("pin_custody").value_or(s.pin_custody);
        if (!parse_pin_custody(s.pin_custody)) {
            r.fail("pin_custody", kPinCustodyProblem);
        }
        s.cluster = static_cast<int>(r.integer("cluster", 1, kMaxClusterNodes).value_or(s.cluster));
        s.postgres_listen = r.string("postgres_listen").value_or(s.postgres_listen);
        if (!config::parse_endpoint(s.postgres_listen)) {
            r.fail("postgres_listen", kListenProblem + s.postgres_listen + "\"");
        }
        s.reports = default_report_addresses(s.domain);
        if (auto reports = r.table("reports")) {
            for (const auto& [key, field] : report_fields()) {
                s.reports.*field = reports->string(key).value_or(s.reports.*field);
                if (!(s.reports.*field).empty() && !dns::is_report_address(s.reports.*field)) {
                    reports->fail(key, kReportAddressProblem);
                }
            }
            reports->finish();
        }
        r.finish();
    } catch (const config::ConfigError& e) {
        return unexpected(std::string(e.what()));
    }
    return s;
}

Expected<Settings, std::string> settle(Settings s, const SettingOverrides& given,
                                       const std::filesystem::path& maildir,
                                       std::span<const std::string_view> modules) {
    if (given.domain && *given.domain != s.domain) {
        // The old domain's own addresses become the new domain's; others stay as they are.
        const ReportAddresses before = default_report_addresses(s.domain);
        const ReportAddresses after = default_report_addresses(*given.domain);
        for (const auto& [key, field] : report_fields()) {
            if (s.reports.*field == before.*field) {
                s.reports.*field = after.*field;
            }
        }
    }
    for (const auto& [value, field] : {std::pair{&given.domain, &s.domain},
                                       {&given.smtp_listen, &s.smtp_listen},
                                       {&given.inbound_listen, &s.inbound_listen},
                                       {&given.https_listen, &s.https_listen},
                                       {&given.next_hop, &s.next_hop},
                                       {&given.module, &s.module},
                                       {&given.dns_server, &s.dns_server},
                                       {&given.pin_custody, &s.pin_custody},
                                       {&given.postgres_listen, &s.postgres_listen}}) {
        if (*value) {
            *field = **value;
        }
    }
    for (const auto& [option, value] : {std::pair{"--smtp", &given.smtp_listen},
                                        {"--inbound", &given.inbound_listen},
                                        {"--https", &given.https_listen},
                                        {"--postgres", &given.postgres_listen}}) {
        if (*value && !config::parse_endpoint(**value)) {
            return unexpected(std::string(option) + ": " + kListenProblem + **value + "\"");
        }
    }
    if (given.cluster) {
        if (*given.cluster < 1 || *given.cluster > kMaxClusterNodes) {
            return unexpected("--cluster: expected 1 to " + std::to_string(kMaxClusterNodes) +
                              " nodes");
        }
        s.cluster = *given.cluster;
    }
    if (s.cluster > 1 && s.pin_custody != "file") {
        return unexpected(std::string(
            "--cluster: a cluster's nodes keep their PINs in files: use --pin-custody file"));
    }
    if (s.cluster > 1) {
        // The nodes reach the server without TLS: on this machine only.
        const auto pg = config::parse_endpoint(s.postgres_listen);
        if (!pg || (pg->host.rfind("127.", 0) != 0 && pg->host != "::1")) {
            return unexpected("postgres_listen " + s.postgres_listen +
                              ": the cluster's server listens on this machine's loopback only "
                              "(127.0.0.0/8 or ::1)");
        }
        // The relays' ports: smtp_listen's, then the next ones.
        const auto smtp = config::parse_endpoint(s.smtp_listen);
        if (!smtp || smtp->port + s.cluster - 1 > 65535) {
            return unexpected("--cluster: smtp_listen " + s.smtp_listen + " leaves no room for " +
                              std::to_string(s.cluster) + " relays' ports");
        }
    }
    if (given.pin_custody && !parse_pin_custody(*given.pin_custody)) {
        return unexpected(std::string("--pin-custody: ") + kPinCustodyProblem);
    }
    if (given.next_hop && !valid_next_hop(*given.next_hop)) {
        return unexpected(std::string("--next-hop: ") + kNextHopProblem);
    }
    if (given.dns_server && !given.dns_server->empty() &&
        !dns::unbound_forward_address(*given.dns_server)) {
        return unexpected(std::string("--dns-server: expected IP or IP:PORT"));
    }
    if (s.next_hop.empty()) {
        s.next_hop = "maildir:" + maildir.string();
    }
    if (s.module.empty()) {
        for (const std::string_view candidate : modules) {
            std::error_code ec;
            if (std::filesystem::exists(candidate, ec)) {
                s.module = candidate;
                break;
            }
        }
        if (s.module.empty()) {
            return unexpected(std::string(
                "SoftHSM2 is not installed (apt-get install softhsm2), or give --module"));
        }
    }
    return s;
}

std::string settings_toml(const Settings& s) {
    CommentedToml file(
        "dkim-appliance up: the settings of this state folder. Options given to `up` are saved "
        "here; edit this file or pass them again. The daemons' configurations in etc/ are written "
        "from it at every start.");
    for (const auto& [key, value] : {std::pair{"domain", &s.domain},
                                     {"smtp_listen", &s.smtp_listen},
                                     {"inbound_listen", &s.inbound_listen},
                                     {"https_listen", &s.https_listen},
                                     {"next_hop", &s.next_hop},
                                     {"module", &s.module},
                                     {"dns_server", &s.dns_server},
                                     {"pin_custody", &s.pin_custody}}) {
        file.add(setting_doc(key), toml::table{{key, *value}});
    }
    file.add(setting_doc("cluster"), toml::table{{"cluster", s.cluster}});
    file.add(setting_doc("postgres_listen"), toml::table{{"postgres_listen", s.postgres_listen}});
    // [reports] last (plain keys after it would belong to it), its keys' texts as its comment.
    std::string comment(setting_doc("reports"));
    toml::table reports;
    for (const auto& [key, field] : report_fields()) {
        comment += "\n" + std::string(setting_doc(std::string("reports.") + key));
        reports.insert(key, s.reports.*field);
    }
    file.add(comment, toml::table{{"reports", std::move(reports)}});
    return file.text();
}

}  // namespace dkim::cli::up

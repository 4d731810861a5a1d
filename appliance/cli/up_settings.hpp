#pragma once
// up.toml: the settings of one `dkim-appliance up` state folder. Each key is declared once in
// settings_schema(): the reader refuses any other (errors name file:line:column and the key),
// the saved file's comments and `dkim-appliance up --config-reference` (the README's
// configuration reference) come from the same declarations. Options given to `up` go on top of
// the file and are saved in it.

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "dkim/config/schema.hpp"
#include "dkim/expected.hpp"

namespace dkim::cli::up {

// The demo token's label (not a setting: the folder holds one token).
inline constexpr const char* kTokenLabel = "dkim";

// Debian's SoftHSM2, tried in order when no module is set.
inline constexpr std::string_view kSoftHsmModules[] = {
    "/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"};

// Where the world's receivers send reports about the domain: mailboxes (dkim-reportd takes the
// mail to them through dkim-relayd), published as mailto: URIs; "" publishes none of that kind.
// Unless up.toml says otherwise, mailboxes of the domain (default_report_addresses).
struct ReportAddresses {
    std::string aggregate_address;  // DMARC rua= (RFC 7489 §7.2): "dmarc-reports@example.test"
    std::string failure_address;    // DMARC ruf= (RFC 7489 §7.3): "dmarc-failures@example.test"
    std::string tls_address;        // TLS-RPT rua= (RFC 8460 §3): "tls-reports@example.test"
    bool operator==(const ReportAddresses&) const = default;
};

// dmarc-reports@, dmarc-failures@ and tls-reports@ the domain.
ReportAddresses default_report_addresses(const std::string& domain);

struct Settings {
    std::string domain = "example.test";
    std::string smtp_listen = "127.0.0.1:2525";
    std::string inbound_listen = "127.0.0.1:2500";  // relayd's inbound role: report mail
    std::string https_listen = "127.0.0.1:8443";
    std::string next_hop;    // default: maildir under the state folder
    std::string module;      // default: Debian's SoftHSM2
    std::string dns_server;  // relayd's [inbound] and webd's [reports] dns_server; "": system's
    std::string pin_custody = "file";  // file | sealed | approver | shares (up_pin_custody.hpp)
    ReportAddresses reports = default_report_addresses("example.test");  // [reports]
    int cluster = 1;  // nodes: 1 on SQLite, 2..kMaxClusterNodes on PostgreSQL (up_cluster.hpp)
    std::string postgres_listen = "127.0.0.1:5433";
};
inline constexpr int kMaxClusterNodes = 8;

// "mailto:dmarc-reports@example.test", or "" for "".
std::string mailto(const std::string& address);

// The options given to `up` this time (--domain, --smtp, --inbound, --https, --next-hop,
// --module, --dns-server, --pin-custody).
struct SettingOverrides {
    std::optional<std::string> domain, smtp_listen, inbound_listen, https_listen, next_hop, module,
        dns_server, pin_custody, postgres_listen;
    std::optional<int> cluster;
};

const config::Schema& settings_schema();

// up.toml as saved: its keys over the defaults (only the defaults when there is no file).
// Errors name file:line:column and the key; a key nobody reads is an error too.
Expected<Settings, std::string> load_settings(const std::filesystem::path& file);

// The settings to run with: `saved` with the options given now on top (a bad one named by its
// option; a new --domain takes along the report addresses that were the old domain's
// defaults), then the defaults that depend on the machine: the maildir under the state folder
// for the next hop, the first of `modules` that exists for the PKCS#11 module.
Expected<Settings, std::string> settle(Settings saved, const SettingOverrides& given,
                                       const std::filesystem::path& maildir,
                                       std::span<const std::string_view> modules = kSoftHsmModules);

// up.toml's text: a header, then each key with its declaration's text as a comment.
std::string settings_toml(const Settings& settings);

}  // namespace dkim::cli::up

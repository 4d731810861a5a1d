#pragma once
// dkim-reportd's configuration: /etc/dkim-appliance/reportd.toml. Every key is declared once in
// config_schema(); `dkim-reportd --config-reference` prints them for the README.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dkim/config/schema.hpp"
#include "dkim/expected.hpp"
#include "dkim/reports/model.hpp"
#include "findings.hpp"

namespace dkim::reportd {

// Who may do what on the socket, by the peer's uid (SO_PEERCRED):
//  relay: submit only (dkim-relayd's inbound listener hands report mail over);
//  web:   submit (console uploads) and read (dashboard, findings, reports);
//  admin: everything (the operator CLI: import, findings).
enum class PeerKind : std::uint8_t { relay, web, admin };

struct Config {
    std::string file;
    std::filesystem::path socket = "/run/dkim-appliance/reportd.sock";
    unsigned socket_mode = 0660;
    std::optional<std::uint32_t> socket_gid;
    std::filesystem::path store = "/var/lib/dkim-reports/reports.db";
    std::string signerd_socket = "/run/dkim-signerd/signerd.sock";
    std::vector<std::string> outbound;  // the appliance's outbound addresses/networks
    std::map<std::uint32_t, PeerKind> peers;
    reports::Limits limits;
    std::uint32_t max_submissions_per_minute = 600;
    std::uint32_t keep_submissions_days = 90;
    // Findings worth waking someone for go to this outbox (a dkim-notifyd instance delivers
    // them to the webhook); empty: none are sent.
    std::filesystem::path webhook_outbox;
    FindingOptions findings;
};

const config::Schema& config_schema();
Expected<Config, std::string> load_config(const std::string& file);

}  // namespace dkim::reportd

#pragma once
// What `up` prints once the appliance runs: the console URL and its certificate's
// fingerprint, the users and their credentials, the SMTP port, the DNS records and the report
// addresses they name, a swaks command; as text for a person, or (--json) as one JSON object on
// one line for a script.

#include <optional>
#include <string>
#include <vector>

#include "up_cluster.hpp"
#include "up_settings.hpp"
#include "up_state_folder.hpp"
#include "up_users.hpp"

namespace dkim::cli::up {

// One node of a cluster (up --cluster N): its relay's port, its signerd's socket, its token,
// its logs.
struct NodeFacts {
    std::string name;
    std::string smtp;
    std::string signerd_socket;
    std::string token;
    std::string signerd_log;
    std::string relayd_log;
};

struct Facts {
    std::string state_dir;
    std::string console_url;
    std::string certificate_sha256;  // "" when the certificate cannot be read
    std::string smtp;
    std::string inbound_smtp;  // relayd's inbound listener: the MX, report mail to dkim-reportd
    std::string domain;
    std::string next_hop;
    std::string signerd_socket;
    std::string cli_config;
    std::string cli_command;  // the CLI with --config, as the operator would run it
    std::string dnsmasq_conf;
    std::string secrets;
    std::string pin_custody;  // up.toml's pin_custody
    std::string pin;          // where the demo's user PIN is (a file, or the sealed credential)
    std::string log_folder;
    std::vector<DemoUser> users;
    std::vector<std::string> dns_records;  // zone-file lines
    ReportAddresses reports;               // where the records send reports ("" for none)
    std::string swaks;
    std::vector<std::pair<std::string, std::string>> logs;  // daemon -> its log
    // A cluster (up.toml cluster >= 2): its nodes and the nodes' connection string.
    std::vector<NodeFacts> nodes;
    std::string database;
};

// "https://localhost:8443": the console's origin for passkeys when webd listens on a loopback or
// wildcard address (WebAuthn refuses an IP address as rpId, and localhost is a secure context
// browsers accept); nullopt for any other address, where rp_id and origins are the operator's
// to set (the console's host name).
std::optional<std::string> localhost_origin(const Settings& settings);
// "https://localhost:8443/" when webd listens on a loopback or wildcard address (passkeys need a
// host name), else "https://IP:PORT/".
std::string console_url(const Settings& settings);
// The swaks command that submits a test message to the relay.
std::string swaks_command(const Settings& settings);

// The facts of a running appliance (reads the certificate's fingerprint). `cli` is the path of
// this program.
Facts gather_facts(const Settings& settings, const StatePaths& paths, std::vector<DemoUser> users,
                   std::vector<std::string> dns_records, const std::string& cli,
                   const std::vector<ClusterNode>& nodes = {});

// One JSON object on one line, with a newline.
std::string facts_json(const Facts& facts);
// The text for a person.
std::string facts_text(const Facts& facts);

}  // namespace dkim::cli::up

#include "up_daemon_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "dkim/config/endpoint.hpp"
#include "dkim/crypto/base64.hpp"
#include "up_cluster.hpp"
#include "up_commented_toml.hpp"
#include "up_facts.hpp"
#include "up_pin_custody.hpp"

namespace dkim::cli::up {

namespace fs = std::filesystem;

namespace {

// up.toml's [reports] as the report URIs webd's [dns] and the CLI's options name them.
std::array<std::pair<std::string, std::string>, 3> report_options(const Settings& s) {
    return {{{"dmarc_rua", mailto(s.reports.aggregate_address)},
             {"dmarc_ruf", mailto(s.reports.failure_address)},
             {"tlsrpt_rua", mailto(s.reports.tls_address)}}};
}

CommentedToml daemon_file(const StatePaths& p) {
    return CommentedToml(
        "Written by `dkim-appliance up` at every start, from " + p.settings.string() +
        ".\nThe packaged appliance reads the same keys from /etc/dkim-appliance/.");
}

// [next_hop]: STARTTLS to the next hop is required (and its certificate checked) unless the
// next hop is on this machine, where a test sink without TLS is the usual peer; a maildir
// has no TLS.
std::pair<std::string, toml::table> next_hop_table(const std::string& next_hop) {
    toml::table table{{"url", next_hop}};
    std::string comment = "Signed mail goes on inside the client's transaction.";
    if (next_hop.rfind("smtp://", 0) == 0) {
        const auto hop = config::parse_endpoint(next_hop.substr(7));
        const bool local = hop && (hop->host.rfind("127.", 0) == 0 || hop->host == "::1" ||
                                   hop->host == "localhost");
        comment += local ? "\nA next hop on this machine: STARTTLS when it offers it."
                         : "\nSTARTTLS with a verified certificate, or the message is not sent.";
        table.insert("tls", local ? "opportunistic" : "required");
    }
    return {comment, toml::table{{"next_hop", std::move(table)}}};
}

// The demo's outbound addresses: what its SPF record authorizes, and the sources reportd
// counts as the appliance's own.
toml::array outbound_addresses() {
    return toml::array{"127.0.0.1", "::1"};
}

// webd's [dns]: the addresses the demo's SPF record authorizes, and the report URIs of up.toml's
// [reports] that are set.
toml::table dns_advice(const Settings& s) {
    toml::table dns{{"outbound_addresses", outbound_addresses()}};
    for (const auto& [key, uri] : report_options(s)) {
        if (!uri.empty()) {
            dns.insert(key, uri);
        }
    }
    return dns;
}

// relayd's [inbound]: the domain, and [inbound.reports] with the report addresses that are set
// and reportd's socket (none set: no report routing).
toml::table inbound_table(const Settings& s, const StatePaths& p) {
    toml::table inbound{{"domains", toml::array{s.domain}}};
    if (!s.dns_server.empty()) {
        inbound.insert("dns_server", s.dns_server);
    }
    toml::array addresses;
    std::vector<std::string> seen;  // relayd refuses one listed twice, in any case
    for (const std::string* a :
         {&s.reports.aggregate_address, &s.reports.failure_address, &s.reports.tls_address}) {
        std::string lower = *a;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!a->empty() && std::find(seen.begin(), seen.end(), lower) == seen.end()) {
            seen.push_back(std::move(lower));
            addresses.push_back(*a);
        }
    }
    if (!addresses.empty()) {
        inbound.insert("reports", toml::table{{"addresses", std::move(addresses)},
                                              {"socket", p.reportd_socket.string()}});
    }
    return inbound;
}

// webd's [reports]: reportd's socket, and up.toml's DNS server for the sources' reverse DNS.
toml::table reports_table(const Settings& s, const StatePaths& p) {
    toml::table reports{{"socket", p.reportd_socket.string()}};
    if (!s.dns_server.empty()) {
        reports.insert("dns_server", s.dns_server);
    }
    return reports;
}

// signerd's [pin]: up.toml's pin_custody (up_pin_custody.hpp), with this folder's paths.
toml::table pin_table(const Settings& s, const StatePaths& p) {
    const auto custody = parse_pin_custody(s.pin_custody).value_or(PinCustody::file);
    toml::table pin{{"source", std::string(to_string(custody))}};
    if (custody == PinCustody::file) {
        pin.insert("file", clear_pin_file(custody, p)->string());
    }
    return pin;
}

std::string pin_comment(const Settings& s, const StatePaths& p) {
    switch (parse_pin_custody(s.pin_custody).value_or(PinCustody::file)) {
        case PinCustody::file:
            return "The token's user PIN (up.toml pin_custody = \"file\"): a 0600 file, read at "
                   "each login.\nThe appliance seals it instead: source = \"sealed\".";
        case PinCustody::sealed:
            return "The token's user PIN (up.toml pin_custody = \"sealed\"): " +
                   sealed_pin_file(p).string() +
                   ",\nsealed with systemd-creds; up opens it into $CREDENTIALS_DIRECTORY at each "
                   "start, as systemd does\non the appliance (LoadCredentialEncrypted=).";
        case PinCustody::approver:
            return "The token's user PIN (up.toml pin_custody = \"approver\"): signerd holds "
                   "none; the approval that\nactivates a grant brings it (the demo keeps it in " +
                   clear_pin_file(PinCustody::approver, p)->string() + ").";
        case PinCustody::shares:
            return "The token's user PIN (up.toml pin_custody = \"shares\"): combined in "
                   "signerd's memory from the\nshares of a quorum of custodians.";
    }
    return "";
}

}  // namespace

std::string signerd_config(const Settings& s, const StatePaths& p, const ClusterNode* node,
                           const std::vector<ClusterNode>& nodes) {
    CommentedToml file = daemon_file(p);
    const bool cluster = node != nullptr && s.cluster > 1;
    file.add("The PKCS#11 module and the token's label: signerd is the only process that loads it.",
             toml::table{{"module", s.module},
                         {"token", node != nullptr ? node->token_label : kTokenLabel}})
        .add(cluster ? "Its own folder (the PIN file, the database password)."
                     : "The grant store and the audit log (SQLite).",
             toml::table{{"state_dir", p.signerd.string()}})
        .add("The one door: a Unix socket for root (admin), dkim-relay, dkim-web and dkim-report.",
             toml::table{{"socket", p.socket.string()}, {"socket_group", "dkim-signer"}})
        .add(pin_comment(s, p), toml::table{{"pin", pin_table(s, p)}})
        .add(
            "Who may connect, by uid: each daemon runs as its own user. dkim-reportd (reports) "
            "may read\nthe signing summary, signing keys and status, nothing else.",
            toml::table{{"peers", toml::table{{"admin", toml::array{"root"}},
                                              {"relay", toml::array{"dkim-relay"}},
                                              {"web", toml::array{"dkim-web"}},
                                              {"reports", toml::array{"dkim-report"}}}}})
        .add(
            "Signing grants last at most an hour; one approver (not the requester) approves.\n"
            "The other operations keep the default policy: key.retire and admin grants need two "
            "approvers (up makes approver and approver2), key.generate and key.rotate one.",
            toml::table{{"policy", toml::table{{"sign", toml::table{{"max_duration", "1h"}}}}}});
    if (cluster) {
        toml::array node_keys;
        for (const ClusterNode& other : nodes) {
            if (other.name != node->name && !other.audit_key.empty()) {
                node_keys.push_back(other.name + "=" + crypto::base64_encode(other.audit_key));
            }
        }
        file.add("Node " + node->name + " of " + std::to_string(s.cluster) +
                     ": the grant state and the audit log are the cluster's, in PostgreSQL "
                     "(up.toml cluster,\npostgres_listen). It signs only while it reaches the "
                     "database (or within the lease). node_keys: the other nodes' audit keys,\n"
                     "which sign their registry rows (their DNS records are shown only then).",
                 toml::table{{"cluster",
                              toml::table{{"node", node->name},
                                          {"database", cluster_database(s)},
                                          {"password_file", database_password_file(*node).string()},
                                          {"lease", "5s"},
                                          {"node_keys", std::move(node_keys)}}}});
    }
    if (const auto origin = localhost_origin(s)) {
        file.add(
            "Passkeys (WebAuthn), checked by signerd. Browsers refuse an IP address as the "
            "relying party: webd\nlistens on this machine, so the console is " +
                *origin +
                "/ and passkeys are made for localhost.\nIn production: rp_id = the console's "
                "host name, origins = its https:// URL.",
            toml::table{{"webauthn",
                         toml::table{{"rp_id", "localhost"}, {"origins", toml::array{*origin}}}}});
    } else {
        file.add("Passkeys (WebAuthn) are off: webd listens on " + s.https_listen +
                     ", not on this machine's loopback, and a passkey\nneeds a host name. Set "
                     "them by hand in a [webauthn] table: rp_id = \"the console's host name\", "
                     "origins =\n[\"https://that-name:PORT\"].",
                 toml::table{});
    }
    return file.text();
}

std::string relayd_config(const Settings& s, const StatePaths& p, const ClusterNode* node) {
    const auto [next_hop_comment, next_hop] = next_hop_table(s.next_hop);
    CommentedToml file = daemon_file(p);
    // Another node's relay: outbound only, on its own port (node 1's is the domain's MX).
    const bool other_node = node != nullptr && node->index > 1;
    toml::array listen{toml::table{{"address", other_node ? node->smtp_listen : s.smtp_listen}}};
    if (!other_node) {
        listen.push_back(toml::table{{"address", s.inbound_listen}, {"role", "inbound"}});
    }
    file.add("", toml::table{{"hostname", "relay." + s.domain}})
        .add(other_node ? "Keys and signatures come from node " + node->name +
                              "'s dkim-signerd; the relay holds neither key nor PIN."
                        : std::string("Keys and signatures come from dkim-signerd; the relay "
                                      "holds neither key nor PIN."),
             toml::table{{"signerd_socket", p.socket.string()}})
        .add(other_node ? "Local clients send here to be signed by this node."
                        : "Local clients send here to be signed; the inbound listener is the "
                          "domain's MX.",
             toml::table{{"listen", std::move(listen)}})
        .add(next_hop_comment, next_hop)
        .add(
            "No selectors: the relay signs with the keys signerd reports active "
            "(rotation-ready).",
            toml::table{{"domain", toml::array{toml::table{{"name", s.domain}}}}})
        .add("Local clients may send mail from the domain.",
             toml::table{{"client", toml::array{toml::table{
                                        {"name", "local"},
                                        {"networks", toml::array{"127.0.0.0/8", "::1/128"}},
                                        {"domains", toml::array{s.domain}}}}}});
    if (!other_node) {
        file.add(
            "The inbound listener (the domain's MX): mail to the domain is checked (SPF, DKIM, "
            "DMARC) and\ngoes to the next hop; mail to up.toml's [reports] addresses, from "
            "anyone, goes to dkim-reportd\ninstead (250 once stored).",
            toml::table{{"inbound", inbound_table(s, p)}});
    }
    return file.text();
}

std::string webd_config(const Settings& s, const StatePaths& p) {
    CommentedToml file = daemon_file(p);
    file.add("", toml::table{{"listen", s.https_listen}})
        .add(
            "Development: a certificate made once in state_dir. Production: tls_certificate and "
            "tls_key.",
            toml::table{{"self_signed", true}, {"state_dir", p.webd.string()}})
        .add("webd holds no key and no credential store: signerd checks every password and code.",
             toml::table{{"signerd_socket", p.socket.string()}})
        .add(
            "What the console's DNS page proposes: the demo's records (SPF for this machine, "
            "where reports go).",
            toml::table{{"dns", dns_advice(s)}})
        .add("The Reports view and API: dkim-reportd's socket (dkim-web is its web peer).",
             toml::table{{"reports", reports_table(s, p)}});
    return file.text();
}

std::string reportd_config(const Settings& /*settings*/, const StatePaths& p) {
    CommentedToml file = daemon_file(p);
    file.add(
            "The report store (SQLite): submissions as received, the reports read from them. "
            "Only\ndkim-reportd, which has no network and no token, parses what the world sends.",
            toml::table{{"store", (p.reportd / "reports.db").string()}})
        .add("Its socket, for root (the CLI), dkim-relay and dkim-web (group dkim-report).",
             toml::table{{"socket", p.reportd_socket.string()}, {"socket_group", "dkim-report"}})
        .add(
            "Findings join the reports with signerd's signing summary (reportd is its reports "
            "peer).",
            toml::table{{"signerd_socket", p.socket.string()}})
        .add("The addresses the demo's mail leaves from: sources that are the appliance's own.",
             toml::table{{"outbound", outbound_addresses()}})
        .add(
            "Who may connect, by uid: the relay may only submit report mail; the console and "
            "root may\nread reports and findings (root, the CLI, may do everything).",
            toml::table{{"peers", toml::table{{"relay", toml::array{"dkim-relay"}},
                                              {"web", toml::array{"dkim-web"}},
                                              {"admin", toml::array{"root"}}}}});
    return file.text();
}

std::string cli_defaults_config(const Settings& s, const StatePaths& p) {
    CommentedToml file;
    file.add(
        "Defaults for dkim-appliance commands run against this state folder:\n  "
        "dkim-appliance --config " +
            p.cli_defaults.string() + " elevation list",
        toml::table{{"socket", p.socket.string()}});
    file.add("dkim-reportd's socket, for reports import and reports findings.",
             toml::table{{"reportd-socket", p.reportd_socket.string()}});
    // `dns records` and `dns check` (--dmarc-rua, --dmarc-ruf, --tlsrpt-rua): up.toml's
    // [reports].
    toml::table reports;
    for (auto [key, uri] : report_options(s)) {
        if (!uri.empty()) {
            std::replace(key.begin(), key.end(), '_', '-');
            reports.insert(key, uri);
        }
    }
    if (!reports.empty()) {
        file.add("Where reports go, for dns records and dns check (up.toml's [reports]).", reports);
    }
    return file.text();
}

Expected<void, std::string> write_daemon_configs(const Settings& s, const StatePaths& p,
                                                 const std::vector<ClusterNode>& nodes) {
    std::vector<std::pair<std::string, std::string>> files;
    if (nodes.empty()) {
        files = {{"signerd.toml", signerd_config(s, p)}, {"relayd.toml", relayd_config(s, p)}};
    }
    for (const ClusterNode& n : nodes) {
        files.emplace_back(n.signerd_config(), signerd_config(s, n.paths, &n, nodes));
        files.emplace_back(n.relayd_config(), relayd_config(s, n.paths, &n));
    }
    files.emplace_back("webd.toml", webd_config(s, p));
    files.emplace_back("reportd.toml", reportd_config(s, p));
    for (const auto& [name, text] : files) {
        if (auto written = write_file(p.etc / name, text, 0644); !written) {
            return written;
        }
    }
    // A folder that ran more nodes before: their configurations go (their folders stay).
    std::error_code ec;
    for (int k = std::max(s.cluster, 1) + 1; k <= kMaxClusterNodes; ++k) {
        for (const char* daemon : {"signerd", "relayd"}) {
            fs::remove(p.etc / (std::string(daemon) + "-node" + std::to_string(k) + ".toml"), ec);
        }
    }
    return write_file(p.cli_defaults, cli_defaults_config(s, p), 0644);
}

}  // namespace dkim::cli::up

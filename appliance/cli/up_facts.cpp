#include "up_facts.hpp"

#include <cereal/archives/json.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <sstream>

#include "dkim/config/endpoint.hpp"
#include "dkim/crypto/certificate.hpp"
#include "up_pin_custody.hpp"

namespace dkim::cli::up {

namespace {

// A wildcard listen address as a client on this machine reaches it.
std::string reachable_host(const std::string& host) {
    return host == "0.0.0.0" ? "127.0.0.1" : host == "::" ? "::1" : host;
}

std::string url_host(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string or_none(const std::string& address) {
    return address.empty() ? "(none)" : address;
}

// Who holds the token's PIN, and where the demo keeps it.
std::string pin_text(const Facts& f) {
    if (f.pin_custody == "sealed") {
        return "custody sealed: " + f.pin +
               " (systemd-creds, with this folder's host key: a demo of the mechanism, the key "
               "lies beside it)";
    }
    if (f.pin_custody == "approver") {
        return "custody approver: the approval that activates a grant brings it: --pin-file " +
               f.pin + "\n             (a demo: on the appliance the approver holds it, no file)";
    }
    if (f.pin_custody == "shares") {
        return "custody shares: split among the users, any 2 unlock the token: each runs\n"
               "             " +
               f.cli_command + " pin submit --user NAME --share-file " + f.secrets +
               "/shares/NAME.share\n             (passphrase: the user's password; " + f.pin +
               " holds the demo's copy)";
    }
    return "custody file: " + f.pin + " (signerd reads it at each login)";
}

}  // namespace

// The users as the JSON facts name their fields.
template <class Archive>
void save(Archive& archive, const DemoUser& u) {
    archive(cereal::make_nvp("name", u.name), cereal::make_nvp("roles", u.roles),
            cereal::make_nvp("password", u.password),
            cereal::make_nvp("totp_secret", u.totp_secret),
            cereal::make_nvp("otpauth_uri", u.otpauth));
}

template <class Archive>
void save(Archive& archive, const NodeFacts& n) {
    archive(cereal::make_nvp("name", n.name), cereal::make_nvp("smtp", n.smtp),
            cereal::make_nvp("signerd_socket", n.signerd_socket),
            cereal::make_nvp("token", n.token), cereal::make_nvp("signerd_log", n.signerd_log),
            cereal::make_nvp("relayd_log", n.relayd_log));
}

std::optional<std::string> localhost_origin(const Settings& s) {
    const auto https = config::parse_endpoint(s.https_listen);
    if (!https) {
        return std::nullopt;
    }
    const std::string& host = https->host;
    const bool loopback = host.rfind("127.", 0) == 0 || host == "::1" || host == "localhost";
    const bool wildcard = host == "0.0.0.0" || host == "::";
    if (!loopback && !wildcard) {
        return std::nullopt;
    }
    return "https://localhost:" + std::to_string(https->port);
}

std::string console_url(const Settings& s) {
    if (auto origin = localhost_origin(s)) {
        return *origin + "/";
    }
    const auto https = config::parse_endpoint(s.https_listen);
    return "https://" + url_host(reachable_host(https->host)) + ":" + std::to_string(https->port) +
           "/";
}

std::string swaks_command(const Settings& s) {
    const auto smtp = config::parse_endpoint(s.smtp_listen);
    return "swaks --server " + url_host(reachable_host(smtp->host)) + ":" +
           std::to_string(smtp->port) + " --from demo@" + s.domain +
           " --to someone@example.net --header 'Subject: signed by the DKIM appliance'";
}

Facts gather_facts(const Settings& s, const StatePaths& p, std::vector<DemoUser> users,
                   std::vector<std::string> dns_records, const std::string& cli,
                   const std::vector<ClusterNode>& nodes) {
    Facts f;
    f.state_dir = p.root.string();
    f.console_url = console_url(s);
    const auto fingerprint = crypto::certificate_sha256_fingerprint(p.certificate.string());
    f.certificate_sha256 = fingerprint ? *fingerprint : "";
    f.smtp = s.smtp_listen;
    f.inbound_smtp = s.inbound_listen;
    f.domain = s.domain;
    f.next_hop = s.next_hop;
    f.signerd_socket = p.socket.string();
    f.cli_config = p.cli_defaults.string();
    f.cli_command = cli + " --config " + p.cli_defaults.string();
    f.dnsmasq_conf = p.dnsmasq_conf.string();
    f.secrets = p.secrets.string();
    f.pin_custody = s.pin_custody;
    const auto custody = parse_pin_custody(s.pin_custody).value_or(PinCustody::file);
    const auto clear = clear_pin_file(custody, p);
    f.pin = clear ? clear->string() : sealed_pin_file(p).string();
    f.log_folder = (p.log / "").string();
    f.users = std::move(users);
    f.dns_records = std::move(dns_records);
    f.reports = s.reports;
    f.swaks = swaks_command(s);
    for (const char* daemon : {"dkim-signerd", "dkim-reportd", "dkim-relayd", "dkim-webd"}) {
        f.logs.emplace_back(daemon, p.daemon_log(daemon).string());
    }
    if (s.cluster > 1) {
        for (const ClusterNode& n : nodes) {
            f.nodes.push_back({n.name, n.smtp_listen, n.paths.socket.string(), n.token_label,
                               p.daemon_log(n.signerd).string(), p.daemon_log(n.relayd).string()});
            if (n.index > 1) {
                f.logs.emplace_back(n.signerd, p.daemon_log(n.signerd).string());
                f.logs.emplace_back(n.relayd, p.daemon_log(n.relayd).string());
            }
        }
        f.logs.emplace_back("postgres", p.daemon_log("postgres").string());
        f.database = cluster_database(s);
    }
    return f;
}

std::string facts_json(const Facts& f) {
    std::ostringstream out;
    {
        cereal::JSONOutputArchive archive(out, cereal::JSONOutputArchive::Options::NoIndent());
        archive(cereal::make_nvp("state_dir", f.state_dir),
                cereal::make_nvp("console_url", f.console_url),
                cereal::make_nvp("certificate_sha256", f.certificate_sha256),
                cereal::make_nvp("smtp", f.smtp), cereal::make_nvp("inbound_smtp", f.inbound_smtp),
                cereal::make_nvp("domain", f.domain), cereal::make_nvp("next_hop", f.next_hop),
                cereal::make_nvp("signerd_socket", f.signerd_socket),
                cereal::make_nvp("cli_config", f.cli_config),
                cereal::make_nvp("dnsmasq_conf", f.dnsmasq_conf),
                cereal::make_nvp("pin_custody", f.pin_custody), cereal::make_nvp("pin", f.pin),
                cereal::make_nvp("users", f.users), cereal::make_nvp("dns_records", f.dns_records));
        archive.setNextName("reports");
        archive.startNode();
        archive(cereal::make_nvp("aggregate_address", f.reports.aggregate_address),
                cereal::make_nvp("failure_address", f.reports.failure_address),
                cereal::make_nvp("tls_address", f.reports.tls_address));
        archive.finishNode();
        archive(cereal::make_nvp("swaks", f.swaks), cereal::make_nvp("nodes", f.nodes),
                cereal::make_nvp("database", f.database));
        archive.setNextName("logs");
        archive.startNode();
        for (const auto& [daemon, log] : f.logs) {
            archive(cereal::make_nvp(daemon.c_str(), log));
        }
        archive.finishNode();
    }
    // cereal's writer puts each value on a line of its own; a JSON string holds no raw line
    // break (it is written \n), so dropping them leaves the same object on one line.
    std::string text = out.str();
    std::erase(text, '\n');
    return text + "\n";
}

std::string facts_text(const Facts& f) {
    std::ostringstream o;
    o << "\nThe DKIM appliance is running (state in " << f.state_dir << ").\n\n"
      << "  Console    " << f.console_url << "\n"
      << "             self-signed certificate, SHA-256 " << f.certificate_sha256 << "\n";
    for (const DemoUser& u : f.users) {
        o << "  " << (u.name == "admin" ? "Admin      " : "Approver   ") << "user " << u.name
          << ", password " << u.password << " (" << u.roles << ")\n"
          << "             TOTP seed " << u.totp_secret << "  (oathtool --totp -b " << u.totp_secret
          << ")\n";
    }
    o << "  SMTP       " << f.smtp << " for clients on this machine, signing as @" << f.domain
      << "\n"
      << "  Inbound    " << f.inbound_smtp
      << " the domain's MX: report mail to its [reports] addresses goes to dkim-reportd\n"
      << "  Next hop   " << f.next_hop << "\n"
      << "  CLI        " << f.cli_command << " elevation list\n"
      << "  Reports    " << f.cli_command << " reports findings\n"
      << "  Logs       " << f.log_folder
      << "{dkim-signerd,dkim-reportd,dkim-relayd,dkim-webd}.log\n"
      << "  Secrets    " << f.secrets << " (root only)\n"
      << "  PIN        " << pin_text(f) << "\n";
    if (!f.nodes.empty()) {
        o << "  Cluster    " << f.nodes.size() << " nodes sharing one grant state and audit log in "
          << "PostgreSQL (" << f.database << ")\n";
        for (const NodeFacts& n : f.nodes) {
            o << "             " << n.name << ": SMTP " << n.smtp << ", token " << n.token
              << ", signerd " << n.signerd_socket << "\n";
        }
    }
    o << "\nDNS records to publish for " << f.domain << ":\n";
    for (const auto& r : f.dns_records) {
        o << "  " << r << "\n";
    }
    o << "  (for a DNS server of your own on 127.0.0.1: " << f.dnsmasq_conf << ")\n"
      << "Reports (up.toml [reports]): DMARC aggregate " << or_none(f.reports.aggregate_address)
      << ", DMARC failure " << or_none(f.reports.failure_address) << ", TLS "
      << or_none(f.reports.tls_address) << "\n"
      << "\nSubmit a test message (signing waits for an approved grant: the relay answers\n"
      << "451 and files a request; approve it in the console as approver, then send "
         "again;\na key's retirement needs approver and approver2):\n  "
      << f.swaks << "\n\n"
      << "Ctrl-C stops the appliance; the same command starts it again with this state.\n";
    return o.str();
}

}  // namespace dkim::cli::up

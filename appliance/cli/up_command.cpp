// dkim-appliance up --state-dir DIR: the whole appliance on one machine, for evaluation and
// development. On first use it makes everything under DIR: a SoftHSM2 token with an RSA-2048
// and an Ed25519 key for the domain, the daemons' commented TOML configurations, signerd's
// SQLite state, an admin and two approvers (the default policy wants two approvals for
// key.retire and admin grants) with initial passwords and confirmed TOTP seeds, and
// (through dkim-webd) a self-signed TLS certificate. Then it starts dkim-signerd, dkim-reportd,
// dkim-relayd and dkim-webd as separate processes, each as its own system user (the packaged
// sysusers.d users), and supervises them the way systemd does on the appliance: READY=1 and
// WATCHDOG=1 over $NOTIFY_SOCKET, a restart with back-off when one exits or stops answering,
// and an orderly stop on Ctrl-C or SIGTERM. A second run reuses DIR.
//
// This file is the order of things; each job has a file of its own:
//   up_state_folder   the folder's layout, its users, whether they can reach it, its lock
//   up_settings       up.toml (declared in a config::Schema) and the options on top of it
//   up_daemon_config  etc/{signerd,relayd,webd,reportd}.toml and dkim-appliance.toml (toml++)
//   up_demo_token     the SoftHSM2 token, its PINs and the two keys
//   up_pin_custody    where the user PIN is kept (--pin-custody) and, sealed, the credential
//                     opened for signerd at each of its starts
//   up_dns_zone       the records to publish (keys, SPF, DMARC and TLS-RPT with the report
//                     addresses) and dns/dnsmasq.conf
//   up_supervisor     readiness, watchdog, restarts with back-off, stops in waves
//   up_child_processes  fork/exec, the signalfd and the notification socket under it
//   up_users          the admin and the two approvers, through signerd
//   up_cluster        --cluster N: the nodes, the PostgreSQL server under the folder
//   up_facts          what is printed at the end, as text or as JSON (cereal)

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <system_error>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/clock.hpp"
#include "dkim/dmarc/policy.hpp"
#include "up_child_processes.hpp"
#include "up_cluster.hpp"
#include "up_daemon_config.hpp"
#include "up_demo_token.hpp"
#include "up_dns_zone.hpp"
#include "up_facts.hpp"
#include "up_pin_custody.hpp"
#include "up_settings.hpp"
#include "up_state_folder.hpp"
#include "up_supervisor.hpp"
#include "up_users.hpp"

namespace dkim::cli {
namespace {

namespace fs = std::filesystem;

struct UpArgs {
    std::string state_dir = "state";
    up::Settings given;
    bool json = false;
    bool config_reference = false;
    std::string bin_dir;
    CLI::App* command = nullptr;
};

// The options given on the command line this time (they go on top of up.toml).
up::SettingOverrides overrides(const UpArgs& args) {
    up::SettingOverrides o;
    if (args.command->count("--cluster") > 0) {
        o.cluster = args.given.cluster;
    }
    for (const auto& [option, value, field] :
         {std::tuple{"--domain", &args.given.domain, &o.domain},
          {"--smtp", &args.given.smtp_listen, &o.smtp_listen},
          {"--inbound", &args.given.inbound_listen, &o.inbound_listen},
          {"--https", &args.given.https_listen, &o.https_listen},
          {"--next-hop", &args.given.next_hop, &o.next_hop},
          {"--module", &args.given.module, &o.module},
          {"--dns-server", &args.given.dns_server, &o.dns_server},
          {"--pin-custody", &args.given.pin_custody, &o.pin_custody},
          {"--postgres", &args.given.postgres_listen, &o.postgres_listen}}) {
        if (args.command->count(option) > 0) {
            *field = *value;
        }
    }
    return o;
}

fs::path find_daemon(const std::string& name, const std::string& bin_dir) {
    std::vector<fs::path> candidates;
    if (!bin_dir.empty()) {
        candidates.push_back(fs::path(bin_dir) / name);
    }
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec).parent_path();
    if (!ec) {
        candidates.push_back(self / name);                        // installed side by side
        candidates.push_back(self.parent_path() / "web" / name);  // the build tree
    }
    candidates.push_back(fs::path("/usr/sbin") / name);
    for (const auto& c : candidates) {
        if (::access(c.c_str(), X_OK) == 0) {
            return c;
        }
    }
    return {};
}

// The four daemons as the supervisor starts them: each its own user, in signerd's group too
// (for its socket), relayd and webd in reportd's group (for its socket), signerd with the
// token's SOFTHSM2_CONF.
Expected<std::vector<up::ChildSpec>, std::string> daemon_specs(
    const up::StatePaths& p, const up::DaemonUsers& u, const std::string& bin_dir,
    up::SealedPinRuntime* sealed, const std::vector<up::ClusterNode>& nodes) {
    struct Daemon {
        std::string exe_name;
        fs::path config;
        uid_t uid;
        gid_t gid;
        std::vector<gid_t> groups;
        std::string name;  // the supervisor's (another node's daemons: dkim-signerd-node2)
    };
    std::vector<Daemon> daemons{
        Daemon{"dkim-signerd", p.etc / "signerd.toml", u.signer, u.signer_gid, {u.signer_gid}, {}},
        Daemon{"dkim-reportd",
               p.etc / "reportd.toml",
               u.report,
               u.report_gid,
               {u.report_gid, u.signer_gid},
               {}},
        Daemon{"dkim-relayd",
               p.etc / "relayd.toml",
               u.relay,
               u.relay_gid,
               {u.relay_gid, u.signer_gid, u.report_gid},
               {}},
        Daemon{"dkim-webd",
               p.etc / "webd.toml",
               u.web,
               u.web_gid,
               {u.web_gid, u.signer_gid, u.report_gid},
               {}}};
    for (const up::ClusterNode& n : nodes) {
        if (n.index > 1) {
            daemons.push_back({"dkim-signerd",
                               p.etc / n.signerd_config(),
                               u.signer,
                               u.signer_gid,
                               {u.signer_gid},
                               n.signerd});
            daemons.push_back({"dkim-relayd",
                               p.etc / n.relayd_config(),
                               u.relay,
                               u.relay_gid,
                               {u.relay_gid, u.signer_gid, u.report_gid},
                               n.relayd});
        }
    }
    std::vector<up::ChildSpec> specs;
    for (const Daemon& d : daemons) {
        up::ChildSpec c;
        c.name = d.name.empty() ? d.exe_name : d.name;
        c.exe = find_daemon(d.exe_name, bin_dir);
        if (c.exe.empty()) {
            return unexpected("cannot find " + d.exe_name +
                              " (beside dkim-appliance, in /usr/sbin, or give --bin-dir)");
        }
        c.config = d.config;
        c.uid = d.uid;
        c.gid = d.gid;
        c.groups = d.groups;
        c.log = p.daemon_log(c.name);
        if (d.exe_name == "dkim-signerd") {
            c.extra_env.push_back("SOFTHSM2_CONF=" + p.softhsm_conf.string());
            if (sealed != nullptr) {
                // systemd's part: the credential opened into a fresh folder at each start.
                c.before_start = [sealed] { return sealed->prepare(); };
            }
        }
        specs.push_back(std::move(c));
    }
    return specs;
}

// What prepare_state made: the zone-file lines to print, the nodes (one for a single
// appliance), and for a cluster its PostgreSQL server and the nodes' database password.
struct Prepared {
    std::vector<std::string> zone;
    std::vector<up::ClusterNode> nodes;
    std::optional<up::PostgresServer> postgres;
    std::string database_password;
    Prepared() = default;
    Prepared(const Prepared&) = delete;
    Prepared& operator=(const Prepared&) = delete;
    Prepared(Prepared&&) = default;
    Prepared& operator=(Prepared&&) = default;
    ~Prepared() { base::wipe(database_password); }
};

// Everything before the daemons start: the folder, its users, the settings, the
// configurations, the tokens (one per node), the DNS records and a cluster's database server.
Expected<Prepared, std::string> prepare_state(const UpArgs& args, const up::StatePaths& p,
                                              const up::DaemonUsers& users,
                                              up::Settings& settings) {
    Prepared out;
    if (auto made = up::prepare_folders(p, users); !made) {
        return unexpected(made.error());
    }
    auto saved = up::load_settings(p.settings);
    if (!saved) {
        return unexpected(saved.error());
    }
    auto settled = up::settle(*saved, overrides(args), p.maildir);
    if (!settled) {
        return unexpected(settled.error());
    }
    settings = std::move(*settled);
    if (auto written = up::write_file(p.settings, up::settings_toml(settings), 0644); !written) {
        return unexpected(written.error());
    }
    if (settings.next_hop.rfind("maildir:", 0) == 0) {
        const fs::path box = settings.next_hop.substr(8);
        if (auto made = up::make_folder(box, 0700, users.relay, users.relay_gid); !made) {
            return unexpected(made.error());
        }
    }
    out.nodes = up::cluster_nodes(settings, p);
    if (auto made = up::prepare_node_folders(out.nodes, users); !made) {
        return unexpected(made.error());
    }
    if (settings.cluster > 1) {
        auto server = up::prepare_postgres(settings, p);
        if (!server) {
            return unexpected(server.error());
        }
        out.postgres = std::move(*server);
        auto password = up::keep_database_password(p, out.nodes, users);
        if (!password) {
            return unexpected(password.error());
        }
        out.database_password = std::move(*password);
    }
    const auto custody = up::parse_pin_custody(settings.pin_custody).value_or(up::PinCustody::file);
    std::vector<up::TxtRecord> keys;
    for (up::ClusterNode& node : out.nodes) {
        // The user PIN, from wherever it is, kept where the custody wants it before the token
        // is made with it (a new folder's PIN must not exist only in a token).
        auto pin = up::demo_user_pin(node.paths);
        if (!pin) {
            return unexpected(pin.error());
        }
        if (auto kept = up::keep_demo_pin(custody, *pin, node.paths, users); !kept) {
            return unexpected(kept.error());
        }
        auto made = up::prepare_demo_token(settings, node.paths, users, *pin, node.token_label,
                                           node.selector_prefix,
                                           settings.cluster > 1 ? &node.audit_key : nullptr);
        pin->wipe();
        if (!made) {
            return unexpected(made.error());
        }
        keys.insert(keys.end(), made->begin(), made->end());
    }
    // After the tokens: each node's configuration pins the others' audit keys.
    if (auto written = up::write_daemon_configs(settings, p, out.nodes); !written) {
        return unexpected(written.error());
    }
    // Report domains outside the domain's organizational domain need an authorization record
    // (RFC 7489 §7.1); without the list, the tree decides.
    auto psl = dmarc::PublicSuffixList::load();
    const auto records =
        up::demo_records(settings.domain, keys, settings.reports, psl ? psl->get() : nullptr);
    if (auto written = up::write_dnsmasq_conf(settings.domain, records, p.dnsmasq_conf); !written) {
        return unexpected(written.error());
    }
    out.zone = up::zone_lines(records);
    return out;
}

int run_up(const UpArgs& args) {
    if (args.config_reference) {
        std::cout << config::reference_markdown(up::settings_schema());
        return 0;
    }
    if (::geteuid() != 0) {
        return fail(
            "up runs each daemon as its own system user (dkim-signer, dkim-relay, "
            "dkim-web, dkim-report): run it as root");
    }
    std::error_code ec;
    fs::path root = fs::absolute(args.state_dir, ec).lexically_normal();
    if (ec) {
        return fail("cannot resolve " + args.state_dir + ": " + ec.message());
    }
    if (!root.has_filename()) {
        root = root.parent_path();  // "state/"
    }
    // Before anything is made: the daemons' users must be able to reach the folder.
    if (auto reachable = up::daemons_can_reach(root); !reachable) {
        return fail(reachable.error());
    }
    // Folders made on the way to it must let the daemons through too.
    ::umask(0022);
    fs::create_directories(root, ec);
    if (ec) {
        return fail("cannot create " + root.string() + ": " + ec.message());
    }
    const up::StatePaths p(root);
    auto lock = up::lock_state_folder(p);
    if (!lock) {
        return fail(lock.error());
    }
    auto users = up::system_users();
    if (!users) {
        return fail(users.error());
    }
    up::Settings settings;
    auto prepared = prepare_state(args, p, *users, settings);
    if (!prepared) {
        return fail(prepared.error());
    }
    auto processes = up::SystemChildProcesses::open(p.notify, users->signer_gid);
    if (!processes) {
        return fail(processes.error());
    }
    const auto custody = up::parse_pin_custody(settings.pin_custody).value_or(up::PinCustody::file);
    std::optional<up::SealedPinRuntime> sealed;
    if (custody == up::PinCustody::sealed) {
        sealed.emplace(p, *users);
    }
    auto specs =
        daemon_specs(p, *users, args.bin_dir, sealed ? &*sealed : nullptr, prepared->nodes);
    if (!specs) {
        return fail(specs.error());
    }
    SystemClock clock;
    up::Supervisor supervisor(**processes, clock, std::cerr);
    if (prepared->postgres) {
        supervisor.add(up::postgres_spec(*prepared->postgres, p, *users));
    }
    for (auto& spec : *specs) {
        supervisor.add(std::move(spec));
    }
    // A cluster: its database first, then every node's signerd.
    const auto start_signerds = [&]() -> int {
        if (prepared->postgres) {
            if (!supervisor.start_and_wait("postgres")) {
                return kFailed;
            }
            if (auto made =
                    up::ensure_cluster_database(*prepared->postgres, prepared->database_password);
                !made) {
                return fail(made.error());
            }
        }
        for (const up::ClusterNode& n : prepared->nodes) {
            if (!supervisor.start_and_wait(n.signerd)) {
                return kFailed;
            }
        }
        return 0;
    };
    const auto start_relays = [&] {
        for (const up::ClusterNode& n : prepared->nodes) {
            if (!supervisor.start_and_wait(n.relayd)) {
                return false;
            }
        }
        return true;
    };
    int status = 0;
    std::vector<up::DemoUser> demo_users;
    if (const int started = start_signerds(); started != 0) {
        status = started;
    } else if (auto made = up::ensure_demo_users(p, clock); !made) {
        status = fail(made.error());
    } else {
        demo_users = std::move(*made);
        if (custody == up::PinCustody::shares) {
            // The custodians split the PIN before anything else starts.
            if (auto split = up::run_pin_split_ceremony(p, demo_users); !split) {
                status = fail(split.error());
            }
        }
        if (status != 0) {
            // The ceremony failed: nothing more starts.
        } else if (!supervisor.start_and_wait("dkim-reportd") || !start_relays() ||
                   !supervisor.start_and_wait("dkim-webd")) {
            status = kFailed;
        }
    }
    if (status == 0 && !supervisor.stop_requested()) {
        const fs::path self = fs::read_symlink("/proc/self/exe", ec);
        auto facts =
            up::gather_facts(settings, p, std::move(demo_users), std::move(prepared->zone),
                             ec ? std::string("dkim-appliance") : self.string(), prepared->nodes);
        std::cout << (args.json ? up::facts_json(facts) : up::facts_text(facts)) << std::flush;
        for (auto& u : facts.users) {
            u.wipe();
        }
        supervisor.supervise();
    } else {
        for (auto& u : demo_users) {
            u.wipe();
        }
    }
    // The web console and the relays first (they submit to reportd), then reportd (a reader of
    // signerd's), the signerds (which log their tokens out), a cluster's database last.
    std::vector<std::string> front{"dkim-webd"}, signers;
    for (const up::ClusterNode& n : prepared->nodes) {
        front.push_back(n.relayd);
        signers.push_back(n.signerd);
    }
    supervisor.stop_all({front, {"dkim-reportd"}, signers, {"postgres"}});
    std::cerr << "up: stopped\n";
    return status;
}

}  // namespace

void add_up_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<UpArgs>();
    CLI::App* up = app.add_subcommand(
        "up",
        "Run the whole appliance on this machine (as root): a SoftHSM2 token with demo keys, "
        "dkim-signerd, dkim-reportd, dkim-relayd and dkim-webd, supervised until Ctrl-C");
    args->command = up;
    up->add_option("--state-dir", args->state_dir,
                   "folder for the token, the state, the configs and the logs (made on first "
                   "use, reused after)")
        ->capture_default_str();
    up->add_option("--domain", args->given.domain, "signing domain of the demo keys")
        ->capture_default_str();
    up->add_option("--smtp", args->given.smtp_listen, "SMTP listen address of dkim-relayd")
        ->capture_default_str();
    up->add_option("--inbound", args->given.inbound_listen,
                   "SMTP listen address of dkim-relayd's inbound listener (report mail)")
        ->capture_default_str();
    up->add_option("--https", args->given.https_listen, "HTTPS listen address of dkim-webd")
        ->capture_default_str();
    up->add_option("--next-hop", args->given.next_hop,
                   "where signed mail goes: smtp://HOST:PORT (default: a maildir in the state "
                   "folder)");
    up->add_option("--module", args->given.module, "PKCS#11 module (default: SoftHSM2)");
    up->add_option("--dns-server", args->given.dns_server,
                   "DNS server IP[:PORT] for relayd's inbound checks and webd's reverse DNS "
                   "(default: the system's resolvers; \"\" for them again)");
    up->add_option("--cluster", args->given.cluster,
                   "run N appliance nodes (2 to 8): each its own dkim-signerd, token and keys and "
                   "its own dkim-relayd (SMTP on --smtp's port, the next, ...), sharing one grant "
                   "state and audit log in a PostgreSQL server that up runs under the state "
                   "folder; 1: one appliance on SQLite; saved in up.toml")
        ->capture_default_str();
    up->add_option("--postgres", args->given.postgres_listen,
                   "the cluster's PostgreSQL server, IP:PORT on this machine (--cluster 2 and up)")
        ->capture_default_str();
    up->add_option("--pin-custody", args->given.pin_custody,
                   "who holds the token's user PIN: file (a file signerd reads), sealed (a "
                   "systemd credential, opened for signerd at each start as systemd does), "
                   "approver (the approval that activates a grant brings it) or shares (split "
                   "among the demo's users); saved in up.toml")
        ->check(CLI::IsMember(
            std::vector<std::string>(std::begin(up::kPinCustodies), std::end(up::kPinCustodies))))
        ->capture_default_str();
    up->add_option("--bin-dir", args->bin_dir,
                   "folder of dkim-signerd, dkim-reportd, dkim-relayd and dkim-webd (default: "
                   "beside dkim-appliance, else /usr/sbin)");
    up->add_flag("--json", args->json, "print the facts as one JSON object (one line)");
    up->add_flag("--config-reference", args->config_reference,
                 "print every key of up.toml (Markdown) and exit")
        ->configurable(false);
    up->callback([&exit_code, args] { exit_code = run_up(*args); });
}

}  // namespace dkim::cli

// dkim-signerd: the enforcement point. Loads the PKCS#11 module, owns the grant state and
// the audit log, and signs over its Unix socket only inside active grants.
//
//   dkim-signerd --config /etc/dkim-appliance/signerd.toml
//   dkim-signerd --config FILE --check-config
//
// SECURITY: the only process that loads the PKCS#11 module, holds the token's PIN, keeps the
// grant store (users, password and API-token hashes, TOTP seeds, requests, grants, the keys'
// lifecycle) and writes the audit log. It trusts the token, its configuration and its state
// folder, and nobody on its socket: each connection's uid (SO_PEERCRED) must be a configured
// peer, and its role limits what it may ask (the relay only signs, and only header blocks that
// fit the signing profile, inside an active grant; the web peer passes operators' credentials,
// which signerd verifies itself, and never manages users or TOTP enrolments; root's CLI is the
// admin peer; dkim-reportd, the reports peer, reads the signing summary, signing keys, public
// keys and status and nothing else). The token is logged in only while a grant is active; the
// PIN is read from a 0600 file or a systemd credential at each login and held (to restore lost
// sessions) only until the logout, or comes with the approval that activates a grant and is
// wiped after C_Login.
// No signature leaves before its audit record is durable: when the log cannot be written,
// signerd fails closed. On the appliance it runs as dkim-signer with no network at all
// (PrivateNetwork=yes, AF_UNIX only); secrets in requests are wiped once handled and never
// logged.
//
// STANDARDS: RFC 6376 (DKIM: the DKIM-Signature it checks and signs), RFC 8463 (Ed25519),
// RFC 8301 (rsa-sha256 only, no rsa-sha1), RFC 5322 (the header block), RFC 6238 (TOTP),
// RFC 7512 (PKCS#11 URIs), PKCS#11 v2.40.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cluster.hpp"
#include "config.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/shared_store.hpp"
#include "dkim/jit/store.hpp"
#include "dkim/lock_guarded.hpp"
#include "dkim/provisioning/keys.hpp"
#include "dkim/service/notify.hpp"
#include "metrics.hpp"
#include "outbox.hpp"
#include "server.hpp"
#include "service.hpp"
#include "token_gate.hpp"
#include "webhook.hpp"

namespace {

using namespace dkim;

// Wakes at the next deadline (a grant's expiry, at most 1 s away) or when told something
// changed, and runs Service::tick().
class Lifecycle {
  public:
    Lifecycle(signerd::Service& service, const Clock& clock) : service_(service), clock_(clock) {
        service_.on_change([this] { wake(); });
        thread_ = std::thread([this] { run(); });
    }
    Lifecycle(const Lifecycle&) = delete;
    Lifecycle& operator=(const Lifecycle&) = delete;
    ~Lifecycle() {
        flags_.lock()->stopping = true;
        wake_.notify_all();
        thread_.join();
        service_.on_change(nullptr);
    }
    void wake() {
        flags_.lock()->woken = true;
        wake_.notify_all();
    }

  private:
    struct Flags {
        bool stopping = false;
        bool woken = false;
    };

    void run() {
        auto flags = flags_.lock();
        while (!flags->stopping) {
            flags.lock().unlock();
            service_.tick();
            const auto wait = std::max(std::chrono::milliseconds(1),
                                       std::chrono::duration_cast<std::chrono::milliseconds>(
                                           service_.next_tick() - clock_.now()));
            flags.lock().lock();
            wake_.wait_for(flags.lock(), wait,
                           [&flags] { return flags->stopping || flags->woken; });
            flags->woken = false;
        }
    }

    signerd::Service& service_;
    const Clock& clock_;
    LockGuarded<Flags> flags_;
    std::condition_variable wake_;  // with flags_'s lock
    std::thread thread_;
};

std::string read_secret_file(const std::filesystem::path& path, std::string& error) {
    auto secret = hsm::Secret::from_file(path);
    if (!secret) {
        error = secret.error().to_string();
        return "";
    }
    return std::string(reinterpret_cast<const char*>(secret->bytes().data()), secret->size());
}

int run(const signerd::Config& config) {
    ::umask(0077);
    std::error_code ec;
    std::filesystem::create_directories(config.state_dir, ec);
    if (ec) {
        std::cerr << "dkim-signerd: cannot create " << config.state_dir << ": " << ec.message()
                  << "\n";
        return 1;
    }
    // The state store: signerd.db on a single appliance, the cluster's PostgreSQL on a node.
    std::unique_ptr<jit::Store> store;
    jit::SharedStore* shared = nullptr;
    if (config.cluster) {
        jit::PostgresOptions pg;
        pg.conninfo = config.cluster->database;
        pg.node = config.cluster->node;
        pg.connect_timeout_s = 2;
        // A lock held elsewhere fails a commit or a decision before the lease runs out.
        pg.lock_timeout_ms = static_cast<int>(std::min<std::int64_t>(
            2000,
            std::chrono::duration_cast<std::chrono::milliseconds>(config.cluster->lease).count() /
                2));
        pg.statement_timeout_ms = 30'000;
        // A server that does not answer holds no thread past the lease (the token's logout
        // comes from the tick, which waits on the database as well).
        pg.answer_timeout_ms = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(config.cluster->lease).count());
        if (!config.cluster->password_file.empty()) {
            auto password = hsm::Secret::from_file(config.cluster->password_file);
            if (!password) {
                std::cerr << "dkim-signerd: " << config.file
                          << ": [cluster] password_file: " << password.error().to_string() << "\n";
                return 2;
            }
            std::string text(reinterpret_cast<const char*>(password->bytes().data()),
                             password->size());
            while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
                text.back() = '\0';
                text.pop_back();
            }
            pg.password = std::move(text);
        }
        auto opened = jit::open_postgres_store(std::move(pg));
        if (!opened) {
            std::cerr << "dkim-signerd: " << opened.error() << "\n";
            return 1;
        }
        shared = opened->get();
        store = std::move(*opened);
    } else {
        auto opened = jit::open_sqlite_store(config.state_dir / "signerd.db");
        if (!opened) {
            std::cerr << "dkim-signerd: " << opened.error() << "\n";
            return 1;
        }
        store = std::move(*opened);
    }
    auto state = store->load();
    if (!state) {
        std::cerr << "dkim-signerd: " << state.error() << "\n";
        return 1;
    }
    jit::Journal journal(*store, state->audit_seq, state->audit_head);
    journal.set_commit_delay(jit::kSignerdCommitDelay);
    jit::Authority authority(journal, config.policy, *state);
    jit::Directory directory(journal, *state, config.password_cost);
    jit::KeyRegistry keys(state->keys);
    keys.reload_rotations(state->rotations);
    SystemClock clock;
    std::unique_ptr<signerd::ClusterNode> cluster;
    if (shared != nullptr) {
        signerd::ClusterOptions cluster_options;
        cluster_options.lease =
            std::chrono::duration_cast<std::chrono::milliseconds>(config.cluster->lease);
        cluster_options.version = DKIM_APPLIANCE_VERSION;
        cluster = std::make_unique<signerd::ClusterNode>(*shared, authority, directory, keys, clock,
                                                         cluster_options);
    }
    signerd::Metrics metrics;
    journal.on_commit([&metrics](std::chrono::nanoseconds took, std::size_t records, bool ok) {
        metrics.audit_commit(static_cast<std::uint64_t>(took.count()), records, ok);
    });

    provisioning::TokenLocation location{config.module, config.token};
    auto token = location.open();
    if (!token) {
        std::cerr << "dkim-signerd: " << token.error().to_string() << "\n";
        return 1;
    }
    signerd::HsmTokenGate gate(*token);

    signerd::ServiceOptions options;
    options.pin_source = config.pin_source;
    options.checkpoint_interval = config.checkpoint_interval;
    options.checkpoint_records = config.checkpoint_records;
    options.profile = config.profile;
    options.webauthn = config.webauthn;
    if (config.pin_source == signerd::PinSourceKind::file) {
        options.pin_path = config.pin_file;
    } else if (config.pin_source == signerd::PinSourceKind::sealed) {
        // Read before any thread of ours starts.
        // NOLINTNEXTLINE(concurrency-mt-unsafe)
        const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
        if (dir == nullptr) {
            std::cerr << "dkim-signerd: " << config.file
                      << ": [pin] source = \"sealed\" but $CREDENTIALS_DIRECTORY is not set "
                         "(LoadCredentialEncrypted= in the systemd unit)\n";
            return 2;
        }
        options.pin_path = std::filesystem::path(dir) / config.pin_credential;
    }
    options.pin_unlock_window = config.pin_unlock_window;
    options.pin_share_set = state->pin_share_set;
    // The identity key that signs the envelope keys signerd offers (approver and shares
    // custody): in the state folder, which dkim-webd cannot read.
    auto identity =
        custody::IdentityKey::load_or_create((config.state_dir / "pin-identity.pem").string());
    if (!identity) {
        std::cerr << "dkim-signerd: " << identity.error() << "\n";
        return 1;
    }
    options.pin_identity = std::make_shared<const custody::IdentityKey>(std::move(*identity));
    if (cluster) {
        options.cluster = cluster.get();
        options.fenced = [&cluster] { return cluster->fenced(); };
        options.node = config.cluster->node;
        for (const auto& [name, raw] : config.cluster->node_keys) {
            auto key = crypto::PublicKey::parse_audit_key(raw);
            if (!key) {
                std::cerr << "dkim-signerd: " << config.file << ": [cluster] node_keys: " << name
                          << ": " << key.error() << "\n";
                return 1;
            }
            options.node_keys.emplace(name, std::move(*key));
        }
    }
    signerd::Service service(journal, authority, directory, keys, gate, clock, metrics, options);

    // The signerd.start record; after an unclean end, the next login's recovery checkpoint.
    if (auto started = service.start("pin source " + std::string(to_string(config.pin_source)) +
                                     "; " + std::to_string(authority.active_count(clock.now())) +
                                     " active grants restored");
        !started) {
        std::cerr << "dkim-signerd: the audit log cannot be written, refusing to start: "
                  << started.error() << "\n";
        return 1;
    }

    if (cluster) {
        const TimePoint started = clock.now();
        // The registry row's records, signed with the audit key (the others show them only
        // then): signed at the first login of this run and whenever they change while the
        // token is logged in (a key is made or destroyed only then). Before that, the
        // signature of the row as it was left, unchecked (the database's: if it is not this
        // node's, the others leave its records out until the first login signs them again).
        struct Attested {
            std::string records;
            std::string signature;
            bool looked_up = false;
            bool signed_here = false;  // by this run's token, over `records`
        };
        auto attested = std::make_shared<Attested>();
        cluster->start(
            [&service] { service.notify_change(); },
            [&service, &authority, &gate, &clock, &cluster, started, attested] {
                jit::NodeStatus s;
                s.version = DKIM_APPLIANCE_VERSION;
                s.started = started;
                s.token = cluster->fenced()     ? "fenced"
                          : service.logged_in() ? "logged-in"
                                                : "logged-out";
                s.grants = static_cast<std::int64_t>(authority.active_count(clock.now()));
                // The token's keys (managed or not; never the audit key), which the
                // other nodes cannot see in their own tokens.
                if (auto listed = gate.list_keys(); listed) {
                    for (const auto& k : *listed) {
                        if (k.domain != "signerd.invalid") {
                            s.selectors += (s.selectors.empty() ? "" : " ") + k.domain + "/" +
                                           k.selector + ":" + k.algorithm;
                            s.records += k.domain + " " + k.selector + " " + k.dkim_record + "\n";
                        }
                    }
                }
                if (s.records != attested->records) {
                    *attested = Attested{s.records, {}, false, false};
                }
                if (!attested->signed_here && service.logged_in()) {
                    if (auto signature = gate.sign_checkpoint(
                            jit::node_records_message(cluster->node(), s.records));
                        signature) {
                        attested->signature = std::move(signature->signature);
                        attested->signed_here = true;
                    }
                }
                if (attested->signature.empty() && !attested->looked_up) {
                    attested->looked_up = true;
                    if (auto nodes = cluster->store().nodes(); nodes) {
                        for (const jit::NodeStatus& n : *nodes) {
                            if (n.name == cluster->node() && n.records == s.records) {
                                attested->signature = n.attestation;
                            }
                        }
                    }
                }
                s.attestation = attested->signature;
                return s;
            });
        std::cerr
            << "dkim-signerd: cluster node " << config.cluster->node << ", lease "
            << std::chrono::duration_cast<std::chrono::milliseconds>(config.cluster->lease).count()
            << " ms\n";
    }

    std::unique_ptr<signerd::Webhook> webhook;
    if (!config.webhook_url.empty()) {
        std::string error;
        std::string key = read_secret_file(config.webhook_secret_file, error);
        if (!error.empty()) {
            std::cerr << "dkim-signerd: webhook key: " << error << "\n";
            return 1;
        }
        webhook = std::make_unique<signerd::Webhook>(
            signerd::Webhook::Options{config.webhook_url, std::move(key)}, clock,
            [&metrics](bool delivered) { metrics.webhook(delivered); });
        authority.on_event([&webhook](const jit::Event& e) { webhook->notify(e); });
    }
    // The appliance: no network here. Each event is written to dkim-notifyd's outbox, durably,
    // before the decision that caused it is answered; the notifier posts it.
    std::unique_ptr<notify::OutboxWriter> outbox;
    if (!config.webhook_outbox.empty()) {
        auto opened = notify::OutboxWriter::open(config.webhook_outbox);
        if (!opened) {
            std::cerr << "dkim-signerd: webhook: " << opened.error() << "\n";
            return 1;
        }
        outbox = std::move(*opened);
        authority.on_event([&outbox, &metrics](const jit::Event& e) {
            auto put = outbox->put(signerd::event_json(e), to_unix_ms(e.time));
            metrics.webhook_spooled(put.has_value());
            if (!put) {
                std::cerr << "dkim-signerd: webhook event " << e.type
                          << " not spooled: " << put.error() << "\n";
            }
        });
    }
    std::unique_ptr<metrics::Exporter> metrics_server;
    if (!config.metrics_listen.empty()) {
        std::string error;
        metrics_server = metrics::Exporter::start(
            config.metrics_listen, [&] { return metrics.render(service.gauges()); }, error);
        if (!metrics_server) {
            std::cerr << "dkim-signerd: " << error << "\n";
            return 1;
        }
        std::cerr << "dkim-signerd: metrics on port " << metrics_server->port() << "\n";
    }

    auto server = signerd::Server::listen(config.socket, config.socket_mode, config.socket_gid,
                                          config, service, metrics);
    if (!server) {
        std::cerr << "dkim-signerd: " << server.error() << "\n";
        return 1;
    }
    // SIGTERM and SIGINT end the server loop; every other thread has them blocked.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    std::atomic<bool> stopped{false};
    std::thread signal_thread([&] {
        // Polls so that it can also end when the server stopped for another reason.
        const timespec tick{0, 200'000'000};
        while (!stopped) {
            if (sigtimedwait(&signals, nullptr, &tick) > 0) {
                (*server)->stop();
                return;
            }
        }
    });
    int exit_code = 0;
    {
        Lifecycle lifecycle(service, clock);
        std::cerr << "dkim-signerd: listening on " << config.socket.string() << "\n" << std::flush;
        service::Watchdog watchdog(
            service::watchdog_interval(),
            [&server](std::chrono::milliseconds budget) { return (*server)->responsive(budget); },
            "dkim-signerd");
        service::notify_ready("serving on " + config.socket.string());
        (*server)->run();
        service::notify_stopping();
    }
    if (cluster) {
        cluster->stop();
    }
    service.shutdown();
    if (webhook) {
        authority.on_event(nullptr);
        webhook->stop();
    }
    if (outbox) {
        authority.on_event(nullptr);
    }
    if (metrics_server) {
        metrics_server->stop();
    }
    {
        jit::AuditRecord r;
        r.time = clock.now();
        r.actor = "signerd";
        r.action = "signerd.stop";
        r.outcome = "ok";
        if (!journal.write({}, std::move(r))) {
            exit_code = 1;
        }
    }
    stopped = true;
    signal_thread.join();
    server->reset();
    std::cerr << "dkim-signerd: stopped\n";
    return exit_code;
}

}  // namespace

int main(int argc, char** argv) try {
    // The PIN passes through this process's memory: no core dump of it, and no other process
    // of our uid may read it (ptrace, /proc/PID/mem). The unit also sets LimitCORE=0.
    (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // Block the stop signals before any thread starts, so that they reach sigtimedwait only.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    // Broken peers and an exceeded file size limit become errors to handle, not deaths:
    // a full disk must fail closed with a message, not kill signerd.
    (void)::signal(SIGPIPE, SIG_IGN);
    (void)::signal(SIGXFSZ, SIG_IGN);

    CLI::App app{"dkim-signerd: the DKIM signing enforcement point"};
    std::string config_file = "/etc/dkim-appliance/signerd.toml";
    bool check = false;
    bool reference = false;
    app.add_option("--config", config_file, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check-config", check, "check the configuration file and exit");
    app.add_flag("--config-reference", reference, "print every configuration key (Markdown)");
    CLI11_PARSE(app, argc, argv);
    if (reference) {
        std::cout << config::reference_markdown(signerd::config_schema());
        return 0;
    }

    auto config = signerd::load_config(config_file);
    if (!config) {
        std::cerr << "dkim-signerd: " << config.error() << "\n";
        return 2;
    }
    if (check) {
        std::cout << config_file << ": ok\n";
        return 0;
    }
    return run(*config);
} catch (const std::exception& e) {
    std::cerr << "dkim-signerd: " << e.what() << "\n";
    return 1;
}

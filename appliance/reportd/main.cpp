// dkim-reportd: keeps the DMARC and TLS reports the world sends back, and says what they mean
// next to dkim-signerd's signing record.
//
//   dkim-reportd --config /etc/dkim-appliance/reportd.toml [--check-config]
//
// It runs as its own user (dkim-report) with no network (its unit: PrivateNetwork=yes,
// RestrictAddressFamilies=AF_UNIX), no token, no PIN and no access to signerd's state: the
// parsers, which read bytes anyone on the internet may send, run here and nowhere else on the
// appliance. relayd submits report mail, webd and the CLI read dashboards and findings; signerd
// answers it only its signing summary and signing keys.

#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <mutex>
#include <thread>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/config/schema.hpp"
#include "dkim/ipc/client.hpp"
#include "dkim/service/notify.hpp"
#include "outbox.hpp"
#include "server.hpp"
#include "service.hpp"
#include "store.hpp"

namespace dkim::reportd {
namespace {

// signerd's signing record through its socket, as its reports peer.
class SignerdRecord final : public SigningRecord {
  public:
    explicit SignerdRecord(std::string socket) : client_(std::move(socket)) {}

    Expected<ipc::SigningSummaryReply, std::string> summary(std::int64_t from, std::int64_t until,
                                                            const std::string& domain) override {
        std::lock_guard lock(mutex_);
        auto reply = ipc::signing_summary(client_, from, until, domain);
        if (!reply) {
            return unexpected(reply.error().message);
        }
        return std::move(*reply);
    }

    Expected<std::vector<std::pair<std::string, std::string>>, std::string> active_keys(
        const std::vector<std::string>& domains) override {
        std::lock_guard lock(mutex_);
        std::vector<std::pair<std::string, std::string>> out;
        for (const std::string& d : domains) {
            ipc::SigningKeysRequest request;
            request.domain = d;
            auto reply = client_.call(ipc::Request{request});
            if (!reply) {
                return unexpected(reply.error());
            }
            if (const auto* keys = std::get_if<ipc::SigningKeysReply>(&*reply)) {
                for (const auto& k : keys->keys) {
                    out.emplace_back(d, k.selector);
                }
            }
        }
        return out;
    }

  private:
    std::mutex mutex_;
    ipc::SignerClient client_;
};

// Findings for the webhook, through a notification outbox (a dkim-notifyd instance delivers).
class OutboxFindings final : public FindingSink {
  public:
    explicit OutboxFindings(std::unique_ptr<notify::OutboxWriter> writer)
        : writer_(std::move(writer)) {}
    Expected<void, std::string> put(const std::string& body, std::int64_t unix_ms) override {
        auto written = writer_->put(body, unix_ms);
        if (!written) {
            return unexpected(written.error());
        }
        return {};
    }

  private:
    std::unique_ptr<notify::OutboxWriter> writer_;
};

int serve(const Config& config) {
    auto store = ReportStore::open(config.store.string());
    if (!store) {
        std::cerr << "dkim-reportd: " << store.error() << "\n";
        return 1;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    (void)::signal(SIGPIPE, SIG_IGN);
    // The unit's LimitFSIZE= caps the store: past it a write fails (EFBIG, a refused
    // submission) instead of the signal ending the daemon.
    (void)::signal(SIGXFSZ, SIG_IGN);

    const SystemClock clock;
    SignerdRecord signing(config.signerd_socket);
    std::unique_ptr<OutboxFindings> outbox;
    if (!config.webhook_outbox.empty()) {
        auto writer = notify::OutboxWriter::open(config.webhook_outbox);
        if (!writer) {
            std::cerr << "dkim-reportd: webhook_outbox: " << writer.error() << "\n";
            return 1;
        }
        outbox = std::make_unique<OutboxFindings>(std::move(*writer));
    }
    // A second connection for the console's and the CLI's queries: they read the last commit
    // and never wait for a large submission being read on the first.
    auto reader = ReportStore::open(config.store.string());
    if (!reader) {
        std::cerr << "dkim-reportd: " << reader.error() << "\n";
        return 1;
    }
    Service service(**store, signing, clock, config, outbox.get(), reader->get());
    if (const std::size_t n = service.recover(); n > 0) {
        std::cerr << "dkim-reportd: read " << n << " submissions left unread at the last stop\n";
    }
    auto server = Server::listen(config, service);
    if (!server) {
        std::cerr << "dkim-reportd: " << server.error() << "\n";
        return 1;
    }
    std::thread signal_thread([&] {
        int signal = 0;
        sigwait(&signals, &signal);
        (*server)->stop();
    });
    service::Watchdog watchdog(
        service::watchdog_interval(),
        [&](std::chrono::milliseconds budget) { return (*server)->responsive(budget); },
        "dkim-reportd");
    std::cerr << "dkim-reportd: listening on " << config.socket.string() << ", store "
              << config.store.string() << "\n"
              << std::flush;
    service::notify_ready("listening on " + config.socket.string());
    (*server)->run();
    service::notify_stopping();
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
    std::cerr << "dkim-reportd: stopped\n";
    return 0;
}

int run(int argc, char** argv) {
    CLI::App app{"dkim-reportd: DMARC and TLS reports, joined with the signing record"};
    std::string config_file = "/etc/dkim-appliance/reportd.toml";
    bool check_only = false;
    bool reference = false;
    app.add_option("--config", config_file, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check-config", check_only, "read the configuration, report, and exit");
    app.add_flag("--config-reference", reference, "print every configuration key (Markdown)");
    CLI11_PARSE(app, argc, argv);
    if (reference) {
        std::cout << config::reference_markdown(config_schema());
        return 0;
    }
    auto config = load_config(config_file);
    if (!config) {
        std::cerr << "dkim-reportd: " << config.error() << "\n";
        return 2;
    }
    if (check_only) {
        std::cout << config_file << ": ok (socket " << config->socket.string() << ")\n";
        return 0;
    }
    return serve(*config);
}

}  // namespace
}  // namespace dkim::reportd

int main(int argc, char** argv) {
    try {
        return dkim::reportd::run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "dkim-reportd: " << e.what() << "\n";
        return 1;
    }
}

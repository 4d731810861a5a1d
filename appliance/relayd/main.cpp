// dkim-relayd: the signing SMTP relay. Accepts outbound mail from configured clients, signs
// it through dkim-signerd (never holding a key or a PIN) and forwards it to the next hop
// inside the client's transaction.
//
//   dkim-relayd --config /etc/dkim-appliance/relayd.toml
//   dkim-relayd --config FILE --check-config

#include <signal.h>
#include <sodium.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <thread>

#include "config.hpp"
#include "dkim/metrics/exporter.hpp"
#include "dkim/service/notify.hpp"
#include "server.hpp"

namespace {

int run(int argc, char** argv) {
    using namespace dkim;
    CLI::App app{"dkim-relayd: the DKIM signing SMTP relay"};
    std::string config_file = "/etc/dkim-appliance/relayd.toml";
    bool check_only = false;
    bool reference = false;
    app.add_option("--config", config_file, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check-config", check_only, "read the configuration, report, and exit");
    app.add_flag("--config-reference", reference, "print every configuration key (Markdown)");
    CLI11_PARSE(app, argc, argv);
    if (reference) {
        std::cout << config::reference_markdown(relayd::config_schema());
        return 0;
    }

    auto config = relayd::load_config(config_file);
    if (!config) {
        std::cerr << "dkim-relayd: " << config.error() << "\n";
        return 2;
    }
    if (check_only) {
        std::cout << config_file << ": ok (" << config->listeners.size() << " listeners, "
                  << config->domains.size() << " signing domains, " << config->clients.size()
                  << " clients, next hop " << config->next_hop.describe() << ")\n";
        return 0;
    }
    if (sodium_init() < 0) {
        std::cerr << "dkim-relayd: libsodium cannot be initialised\n";
        return 1;
    }
    // A client that disconnects while a reply is written must not kill the relay.
    (void)::signal(SIGPIPE, SIG_IGN);

    relayd::Relay relay(*config);
    if (auto opened = relay.open(); !opened) {
        std::cerr << "dkim-relayd: " << opened.error() << "\n";
        return 1;
    }
    std::unique_ptr<metrics::Exporter> exporter;
    if (config->metrics) {
        std::string error;
        exporter = metrics::Exporter::start(
            config->metrics->to_string(), [&relay] { return relay.metrics().render(); }, error);
        if (!exporter) {
            std::cerr << "dkim-relayd: " << error << "\n";
            return 1;
        }
        std::cerr << "dkim-relayd: metrics on port " << exporter->port() << "\n";
    }
    // The public keys are read from signerd now, so that the first messages are hashed as
    // they arrive; a key that cannot be read yet is read again when a message needs it.
    std::thread prefetch([&relay] {
        for (const auto& error : relay.signing().prefetch()) {
            std::cerr << "dkim-relayd: warning: " << error << "\n";
        }
    });

    relayd::asio::io_context signals_io;
    relayd::asio::signal_set signals(signals_io, SIGTERM, SIGINT);
    signals.async_wait([&relay](const relayd::error_code& ec, int) {
        if (!ec) {
            relay.stop();
        }
    });
    std::thread signal_thread([&signals_io] { signals_io.run(); });

    for (const auto& endpoint : relay.endpoints()) {
        std::cerr << "dkim-relayd: listening on " << endpoint << "\n";
    }
    std::cerr << "dkim-relayd: next hop " << config->next_hop.describe() << ", signerd "
              << config->signerd_socket << "\n"
              << std::flush;
    {
        service::Watchdog watchdog(
            service::watchdog_interval(),
            [&relay](std::chrono::milliseconds budget) { return relay.responsive(budget); },
            "dkim-relayd");
        std::string listening;
        for (const auto& endpoint : relay.endpoints()) {
            listening += (listening.empty() ? "SMTP on " : ", ") + endpoint.address().to_string() +
                         ":" + std::to_string(endpoint.port());
        }
        service::notify_ready(listening);
        relay.run();
        service::notify_stopping();
    }

    signals_io.stop();
    signal_thread.join();
    prefetch.join();
    if (exporter) {
        exporter->stop();
    }
    std::cerr << "dkim-relayd: stopped\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "dkim-relayd: " << e.what() << "\n";
        return 1;
    }
}

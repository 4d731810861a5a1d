// dkim-relayd: the signing SMTP relay. Accepts outbound mail from configured clients, signs
// it through dkim-signerd (never holding a key or a PIN) and forwards it to the next hop
// inside the client's transaction.
//
//   dkim-relayd --config /etc/dkim-appliance/relayd.toml
//   dkim-relayd --config FILE --check-config
//
// SECURITY: relayd speaks SMTP with the world, so it holds nothing worth stealing: no key, no
// PIN, no PKCS#11 module, no database. It trusts its configuration and, for signatures, only
// signerd's socket; every SMTP client is untrusted until its address or AUTH (Argon2id hashes,
// checked on a worker; an unknown name costs the same) matches a [[client]], and even then may
// send only from its own domains. Every byte it reads goes through the socket-free Transaction
// (transaction.hpp): bounded lines, commands, errors, recipients, message size and time; no
// bare CR or LF; nothing pipelined after STARTTLS taken as encrypted. It signs by asking
// signerd, which checks the header block against its signing profile and its grants, and it
// checks each returned signature against the key's public half before the message leaves.
// Mail is never stored: 250 comes only after the next hop accepted. The verifying role strips
// every Authentication-Results field that claims this host before adding its own. Report mail
// to [inbound.reports] addresses is taken from anyone but parsed here never: the bytes go to
// dkim-reportd (its own user, no network), within their own size and hourly limits, never to a
// next hop or signerd, and 250 only once reportd stored them. It runs as
// dkim-relay with only CAP_NET_BIND_SERVICE, AF_UNIX/AF_INET/AF_INET6 and a read-only system;
// passwords are wiped after the check and never logged.
//
// STANDARDS: RFC 5321 (SMTP), 1870 (SIZE), 6152 (8BITMIME), 2920 (PIPELINING), 2034
// (ENHANCEDSTATUSCODES), 3463 (enhanced status codes), 6531 (SMTPUTF8), 3207 (STARTTLS), 4954
// and 4616 (AUTH, PLAIN; LOGIN as deployed), 3461 (xtext), 5322 (message format), 6376 and
// 8463 (DKIM, Ed25519), 8301, 7208 (SPF), 7489 and 9989 (DMARC), 8601 (Authentication-Results).

#include <signal.h>
#include <sodium.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>
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
                  << " clients"
                  << (config->relays() ? ", next hop " + config->next_hop.describe()
                                       : std::string())
                  << ")\n";
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

    const auto endpoints = relay.endpoints();
    auto protocol = [&config](std::size_t i) {
        return config->listeners[i].protocol == relayd::Listener::Protocol::milter ? "milter"
                                                                                   : "SMTP";
    };
    auto where = [&config, &endpoints](std::size_t i) {
        const auto& l = config->listeners[i];
        std::ostringstream text;
        if (l.unix_path.empty()) {
            text << endpoints[i];  // "[::1]:2525" for IPv6
        } else {
            text << "unix:" << l.unix_path;
        }
        return text.str();
    };
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        std::cerr << "dkim-relayd: listening on " << where(i) << " (" << protocol(i) << ")\n";
    }
    std::cerr << "dkim-relayd: "
              << (config->relays() ? "next hop " + config->next_hop.describe() + ", "
                                   : std::string())
              << "signerd " << config->signerd_socket << "\n";
    if (config->inbound && config->inbound->reports) {
        std::string addresses;
        for (const auto& a : config->inbound->reports->addresses) {
            addresses += (addresses.empty() ? "" : ", ") + a;
        }
        std::cerr << "dkim-relayd: report mail to " << addresses << " goes to dkim-reportd at "
                  << config->inbound->reports->socket << "\n";
    }
    std::cerr << std::flush;
    {
        service::Watchdog watchdog(
            service::watchdog_interval(),
            [&relay](std::chrono::milliseconds budget) { return relay.responsive(budget); },
            "dkim-relayd");
        std::string listening;
        for (std::size_t i = 0; i < endpoints.size(); ++i) {
            listening +=
                std::string(listening.empty() ? "" : ", ") + protocol(i) + " on " + where(i);
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

// dkim-webd: the HTTPS API and the approval console.
//
//   dkim-webd --config /etc/dkim-appliance/webd.toml [--check-config]
//
// SECURITY: webd faces browsers and API clients (untrusted) over TLS only. It holds no key,
// no PIN and no credential store: passwords, API tokens and TOTP codes are passed through to
// dkim-signerd, which verifies them on every request and decides every approval; webd keeps
// only its TLS key and a table of browser sessions (signerd's session tokens, by hash, with
// their CSRF tokens). It runs as its own user (dkim-web), which signerd knows as a web peer.
// Secrets in request bodies are wiped once a request is handled and never logged.
//
// STANDARDS: RFC 9110/9112 (HTTP), RFC 8446/5246 (TLS 1.3/1.2), RFC 6265bis (cookies:
// __Host- prefix, SameSite=Strict), RFC 6797 (HSTS), CSP Level 3, RFC 6238 (TOTP codes,
// checked by signerd), OpenAPI 3.0 (web/openapi.json).

#include <signal.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "config.hpp"
#include "dkim/crypto/certificate.hpp"
#include "dkim/dns/unbound_resolver.hpp"
#include "dkim/service/notify.hpp"
#include "reverse_dns.hpp"
#include "server.hpp"

namespace {

int run(int argc, char** argv) {
    using namespace dkim;
    CLI::App app{"dkim-webd: the HTTPS API and approval console of the DKIM appliance"};
    std::string config_file = "/etc/dkim-appliance/webd.toml";
    bool check_only = false;
    bool reference = false;
    app.add_option("--config", config_file, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check-config", check_only, "read the configuration, report, and exit");
    app.add_flag("--config-reference", reference, "print every configuration key (Markdown)");
    CLI11_PARSE(app, argc, argv);
    if (reference) {
        std::cout << config::reference_markdown(web::config_schema());
        return 0;
    }

    auto config = web::load_config(config_file);
    if (!config) {
        std::cerr << "dkim-webd: " << config.error() << "\n";
        return 2;
    }
    if (check_only) {
        std::cout << config_file << ": ok (https://" << config->listen.to_string()
                  << ", signerd at " << config->signerd_socket
                  << (config->reports_socket.empty() ? std::string()
                                                     : ", reportd at " + config->reports_socket)
                  << ")\n";
        return 0;
    }
    (void)::signal(SIGPIPE, SIG_IGN);

    std::string certificate = config->tls_certificate;
    std::string key = config->tls_key;
    if (certificate.empty()) {
        // Development: a self-signed certificate, made once, kept in the state folder.
        std::error_code ec;
        std::filesystem::create_directories(config->state_dir, ec);
        certificate = (config->state_dir / "webd-selfsigned.crt").string();
        key = (config->state_dir / "webd-selfsigned.key").string();
        if (!std::filesystem::exists(certificate) || !std::filesystem::exists(key)) {
            if (auto made = web::make_self_signed(certificate, key, config->listen.host); !made) {
                std::cerr << "dkim-webd: " << made.error() << "\n";
                return 1;
            }
            std::cerr << "dkim-webd: made a self-signed certificate " << certificate << "\n";
        }
    }
    auto tls = web::make_tls_context(certificate, key);
    if (!tls) {
        std::cerr << "dkim-webd: " << tls.error() << "\n";
        return 1;
    }
    if (auto fingerprint = crypto::certificate_sha256_fingerprint(certificate)) {
        std::cerr << "dkim-webd: certificate SHA-256 fingerprint " << *fingerprint << "\n";
    }

    SystemClock clock;
    web::SignerPool signer(config->signerd_socket);
    web::SessionTable sessions(config->session_idle, config->max_sessions);
    web::LoginLimiter limiter(config->login);
    web::WebMetrics metrics;
    // dkim-reportd, when [reports] names its socket (else the reports API answers 503).
    std::unique_ptr<web::ReportsPool> reports;
    if (!config->reports_socket.empty()) {
        reports = std::make_unique<web::ReportsPool>(config->reports_socket);
    }
    // The sources' reverse DNS ([reports] reverse_dns): the only DNS webd does, and only then.
    std::unique_ptr<dns::UnboundResolver> resolver;
    std::unique_ptr<web::ReverseDns> reverse_dns;
    if (reports && config->reverse_dns) {
        dns::UnboundOptions dns_options;
        dns_options.upstream = config->dns_server;
        dns_options.timeout = config->dns_timeout;
        // Without a resolver the console still works: the sources are shown unnamed.
        if (auto opened = dns::UnboundResolver::create(dns_options)) {
            resolver = std::move(*opened);
            reverse_dns = std::make_unique<web::ReverseDns>(*resolver, clock);
        } else {
            std::cerr << "dkim-webd: [reports] reverse_dns: " << opened.error()
                      << "; the sources stay without names\n";
        }
    }
    web::Deps deps{signer,  sessions,        limiter,       clock,
                   metrics, config->handler, reports.get(), reverse_dns.get()};
    web::Server server(*config, deps, **tls);
    // Socket activation (dkim-webd.socket binds 443 for a webd without capabilities), else
    // the configured address.
    const auto passed = service::listen_fds();
    if (passed.size() > 1) {
        std::cerr << "dkim-webd: the service manager passed " << passed.size()
                  << " sockets; expected one (ListenStream= once in dkim-webd.socket)\n";
        return 1;
    }
    if (auto opened = passed.empty() ? server.open() : server.adopt(passed.front()); !opened) {
        std::cerr << "dkim-webd: " << opened.error() << "\n";
        return 1;
    }
    std::cerr << "dkim-webd: listening on https://"
              << (config->listen.host.find(':') != std::string::npos
                      ? "[" + config->listen.host + "]"
                      : config->listen.host)
              << ":" << server.port() << "/\n";

    // SIGTERM and SIGINT: stop accepting, finish what is in progress, exit.
    boost::asio::io_context signals_io;
    boost::asio::signal_set signals(signals_io, SIGTERM, SIGINT);
    signals.async_wait([&server](const boost::system::error_code& ec, int) {
        if (!ec) {
            server.stop();
        }
    });
    std::thread signal_thread([&signals_io] { signals_io.run(); });
    {
        service::Watchdog watchdog(
            service::watchdog_interval(),
            [&server](std::chrono::milliseconds budget) { return server.responsive(budget); },
            "dkim-webd");
        service::notify_ready("HTTPS on port " + std::to_string(server.port()));
        server.run();
        service::notify_stopping();
    }
    signals.cancel();
    signals_io.stop();
    signal_thread.join();
    std::cerr << "dkim-webd: stopped\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "dkim-webd: " << e.what() << "\n";
        return 1;
    }
}

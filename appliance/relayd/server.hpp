#pragma once
// dkim-relayd's server: the listeners, the I/O thread that runs every session, the worker
// pool for blocking calls (signerd, maildir fsync, Argon2), and the TLS contexts.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/dkim/key_fetcher.hpp"
#include "dkim/dns/unbound_resolver.hpp"
#include "dkim/expected.hpp"
#include "dkim/inbound/verifier.hpp"
#include "io.hpp"
#include "metrics.hpp"
#include "report_intake.hpp"
#include "session.hpp"
#include "signing.hpp"

namespace dkim::relayd {

class Relay {
  public:
    explicit Relay(const Config& config, ipc::ClientOptions signerd_options = {});
    ~Relay();

    // Binds every listener (port 0 picks one) and loads the TLS material.
    Expected<void, std::string> open();
    // The bound addresses, in [[listen]] order (a Unix socket's is the default endpoint).
    std::vector<tcp::endpoint> endpoints() const;
    // Runs the I/O thread on the calling thread until stop().
    void run();
    void stop();
    // The watchdog's probe: true when the I/O thread ran a posted handler within budget.
    bool responsive(std::chrono::milliseconds budget);

    RelayMetrics& metrics() { return metrics_; }
    SigningService& signing() { return signing_; }

  private:
    void accept(std::size_t listener);
    void accept_unix(std::size_t listener);
    // Binds a milter listener's Unix socket (a stale socket file of an earlier run is replaced).
    Expected<void, std::string> open_unix(std::size_t listener);
    // A next hop with its own client TLS context; `key` names it in errors.
    Expected<NextHopFactory, std::string> next_hop(const NextHop& hop, const std::string& key);
    Expected<void, std::string> open_inbound();

    // Destroyed bottom-up: the acceptors, then the I/O context (which destroys the sessions
    // still pending, and they use everything above it).
    const Config& config_;
    asio::thread_pool workers_;
    RelayMetrics metrics_;
    SystemClock clock_;
    SigningService signing_;
    // One client TLS context per next hop (each may name its own CA file).
    std::vector<std::unique_ptr<ssl::context>> client_tls_;
    std::vector<std::unique_ptr<ssl::context>> server_tls_;
    // The inbound checks, when [inbound] is configured.
    std::unique_ptr<dns::UnboundResolver> resolver_;
    std::unique_ptr<KeyFetcher> keys_;
    std::unique_ptr<inbound::Verifier> verifier_;
    std::unique_ptr<asio::thread_pool> inbound_workers_;
    // Report mail, when [inbound.reports] is configured: its own pool for dkim-reportd's calls.
    std::unique_ptr<asio::thread_pool> report_workers_;
    std::unique_ptr<ChannelSubmitter> report_submitter_;
    std::unique_ptr<ReportIntake> report_intake_;
    std::unique_ptr<RelayContext> context_;
    asio::io_context io_{1};
    // One per [[listen]], in order: TCP, or a Unix socket (milter listeners); the other null.
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
    std::vector<std::unique_ptr<asio::local::stream_protocol::acceptor>> unix_acceptors_;
};

}  // namespace dkim::relayd

#pragma once
// dkim-relayd's server: the listeners, the I/O thread that runs every session, the worker
// pool for blocking calls (signerd, maildir fsync, Argon2), and the TLS contexts.

#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/expected.hpp"
#include "io.hpp"
#include "metrics.hpp"
#include "session.hpp"
#include "signing.hpp"

namespace dkim::relayd {

class Relay {
  public:
    explicit Relay(const Config& config, ipc::ClientOptions signerd_options = {});
    ~Relay();

    // Binds every listener (port 0 picks one) and loads the TLS material.
    Expected<void, std::string> open();
    // The bound addresses, in [[listen]] order.
    std::vector<tcp::endpoint> endpoints() const;
    // Runs the I/O thread on the calling thread until stop().
    void run();
    void stop();

    RelayMetrics& metrics() { return metrics_; }
    SigningService& signing() { return signing_; }

  private:
    void accept(std::size_t listener);

    // Destroyed bottom-up: the acceptors, then the I/O context (which destroys the sessions
    // still pending, and they use everything above it).
    const Config& config_;
    asio::thread_pool workers_;
    RelayMetrics metrics_;
    SigningService signing_;
    ssl::context client_tls_{ssl::context::tls_client};
    std::vector<std::unique_ptr<ssl::context>> server_tls_;
    std::unique_ptr<RelayContext> context_;
    asio::io_context io_{1};
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
};

}  // namespace dkim::relayd

#pragma once
// dkim-webd's HTTPS server (Boost.Beast over OpenSSL, after Beast's advanced server): a
// listener and one session object per connection on a strand; TLS 1.2+; a deadline on the
// handshake, on every read and on every write; header and body limits; one request at a time
// per connection (so at most one response is ever queued); handle() runs on a worker pool so
// that a slow signerd never blocks the I/O thread; stop() stops accepting, lets the requests
// in progress finish (a few seconds at most) and closes the rest.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "config.hpp"
#include "handlers.hpp"

namespace dkim::web {

// TLS 1.2 or later, server cipher preference, no compression or renegotiation.
Expected<std::unique_ptr<boost::asio::ssl::context>, std::string> make_tls_context(
    const std::string& certificate, const std::string& key);

// Makes a self-signed certificate (ECDSA P-256, one year) for DNS:localhost and the listen
// address (a wildcard address: its loopback address); the key file is written with mode 0600.
Expected<void, std::string> make_self_signed(const std::string& certificate, const std::string& key,
                                             const std::string& address);

class Server {
  public:
    Server(const Config& config, Deps& deps, boost::asio::ssl::context& tls);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    Expected<void, std::string> open();  // binds; port 0 picks a port
    // Takes a listening TCP socket that the service manager bound (socket activation), so that
    // webd serves port 443 without CAP_NET_BIND_SERVICE. The config's `listen` is then unused.
    Expected<void, std::string> adopt(int listening_fd);
    unsigned short port() const;
    void run();   // until stop()
    void stop();  // from any thread or a signal handler's strand
    // The watchdog's probe: true when the I/O loop ran a posted handler within budget.
    bool responsive(std::chrono::milliseconds budget);

    struct Impl;  // public for the connections in server.cpp, opaque to everyone else

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace dkim::web

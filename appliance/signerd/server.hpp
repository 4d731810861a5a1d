#pragma once
// The Unix socket of dkim-signerd: accepts connections, checks the peer's uid
// (SO_PEERCRED) against the configured relay, web and admin users, and serves one frame at
// a time per connection on its own thread. Malformed, oversized and slow frames end the
// connection with an error frame; nothing a peer sends can make signerd allocate more than
// one frame.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "config.hpp"
#include "dkim/lock_guarded.hpp"
#include "metrics.hpp"
#include "service.hpp"

namespace dkim::signerd {

struct ServerOptions {
    std::size_t max_connections = 128;
    std::chrono::milliseconds idle_timeout{60'000};  // between requests
    std::chrono::milliseconds frame_timeout{5'000};  // from a frame's first byte to its last
};

class Server {
  public:
    static Expected<std::unique_ptr<Server>, std::string> listen(
        const std::filesystem::path& path, unsigned mode, std::optional<std::uint32_t> gid,
        const Config& config, Service& service, Metrics& metrics, ServerOptions options = {});
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server();

    // Serves until stop(); returns after every connection thread has ended.
    void run();
    // From any thread (the signal thread).
    void stop();
    // The watchdog's probe: true when the accept loop (which turns at least once a second)
    // turned within budget.
    bool responsive(std::chrono::milliseconds budget);

  private:
    Server(int fd, std::filesystem::path path, const Config& config, Service& service,
           Metrics& metrics, ServerOptions options);
    void serve(int fd);

    struct Connection {
        int fd = -1;
        std::thread thread;
        std::atomic<bool> done{false};
    };

    int listen_fd_;
    int wake_fd_;  // eventfd: stop()
    std::filesystem::path path_;
    const Config& config_;
    Service& service_;
    Metrics& metrics_;
    ServerOptions options_;
    LockGuarded<std::list<Connection>> connections_;
    std::atomic<bool> stopping_{false};
    LockGuarded<std::uint64_t> turns_;  // of the accept loop
    std::condition_variable turned_;    // with turns_'s lock
};

}  // namespace dkim::signerd

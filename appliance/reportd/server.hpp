#pragma once
// dkim-reportd's Unix socket: accepts connections, tells peers apart by uid (SO_PEERCRED)
// against [peers], and serves one frame at a time per connection on its own thread (at most
// `max_connections`). Frames are bounded (channel::kMaxFrame); a slow or malformed frame ends
// the connection with an error answer.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <list>
#include <memory>
#include <thread>

#include "config.hpp"
#include "dkim/lock_guarded.hpp"
#include "service.hpp"

namespace dkim::reportd {

class Server {
  public:
    static Expected<std::unique_ptr<Server>, std::string> listen(const Config& config,
                                                                 Service& service);
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server();

    void run();   // until stop()
    void stop();  // from any thread
    // The watchdog's probe: the accept loop (which turns at least once a second) turned lately.
    bool responsive(std::chrono::milliseconds budget);

  private:
    Server(int fd, const Config& config, Service& service);
    void serve(int fd, PeerKind peer);

    struct Connection {
        int fd = -1;
        std::thread thread;
        std::atomic<bool> done{false};
    };

    int listen_fd_;
    int wake_fd_;
    const Config& config_;
    Service& service_;
    LockGuarded<std::list<Connection>> connections_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::int64_t> last_turn_ms_{0};
};

}  // namespace dkim::reportd

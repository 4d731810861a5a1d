#pragma once
// The daemons' side of systemd's service protocol (sd_notify(3), libsystemd): READY=1 once a
// daemon serves, STATUS= lines, STOPPING=1, and the watchdog (WatchdogSec= in the unit).
// Outside systemd (no $NOTIFY_SOCKET) every call is a no-op. `dkim-appliance up` sets
// $NOTIFY_SOCKET for the daemons it supervises and reads the same messages.
//
// The watchdog pings only while the daemon's own loop answers: a probe that the daemon
// supplies (an asio handler posted to its io_context, a server loop's turn counter) must
// succeed within a budget before each WATCHDOG=1. A hung loop stops the pings and systemd
// restarts the service (Restart=on-failure, WatchdogSignal=SIGABRT for a core).

#include <chrono>
#include <condition_variable>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "dkim/lock_guarded.hpp"

namespace dkim::service {

// The state line to the service manager; false when there is none or it cannot be told.
bool notify(std::string_view state);
inline bool notify_ready(std::string_view status) {
    return notify("READY=1\nSTATUS=" + std::string(status));
}
inline bool notify_stopping() {
    return notify("STOPPING=1\nSTATUS=stopping");
}

// The listening sockets passed by socket activation ($LISTEN_FDS for this process, from fd 3
// on), marked close-on-exec; empty without socket activation.
std::vector<int> listen_fds();

// The watchdog interval the manager asked for ($WATCHDOG_USEC for this process), if any.
std::optional<std::chrono::microseconds> watchdog_interval();

class Watchdog {
  public:
    // probe(budget): true when the daemon's loop made progress within budget.
    using Probe = std::function<bool(std::chrono::milliseconds budget)>;
    // A thread that calls tick() every interval/2; none when interval is empty.
    Watchdog(std::optional<std::chrono::microseconds> interval, Probe probe,
             std::string daemon_name);
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    ~Watchdog();

    // One probe (budget: a quarter of the interval) and, when it succeeds, WATCHDOG=1.
    // Returns whether it pinged. Logs once when the loop stops answering and once when it
    // answers again.
    bool tick();

  private:
    std::chrono::microseconds interval_;
    Probe probe_;
    std::string name_;
    // Not behind the lock: only tick() uses it (on the watchdog's thread, or the caller's when
    // there is none).
    bool failing_ = false;
    LockGuarded<bool> stopping_{false};
    // Signalled when stopping; waited on with stopping_ locked.
    std::condition_variable wake_;
    std::thread thread_;
};

}  // namespace dkim::service

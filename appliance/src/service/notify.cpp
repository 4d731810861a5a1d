#include "dkim/service/notify.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <iostream>

namespace dkim::service {

bool notify(std::string_view state) {
    const std::string line(state);
    return sd_notify(0, line.c_str()) > 0;
}

std::vector<int> listen_fds() {
    const int n = sd_listen_fds(1);
    std::vector<int> fds;
    fds.reserve(static_cast<std::size_t>(std::max(n, 0)));
    for (int i = 0; i < n; ++i) {
        fds.push_back(SD_LISTEN_FDS_START + i);
    }
    return fds;
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
        return std::nullopt;
    }
    return std::chrono::microseconds(usec);
}

Watchdog::Watchdog(std::optional<std::chrono::microseconds> interval, Probe probe,
                   std::string daemon_name)
    : interval_(interval.value_or(std::chrono::microseconds(0))),
      probe_(std::move(probe)),
      name_(std::move(daemon_name)) {
    if (!interval) {
        return;
    }
    thread_ = std::thread([this] {
        auto stopping = stopping_.lock();
        while (!wake_.wait_for(stopping.lock(), interval_ / 2, [&stopping] { return *stopping; })) {
            stopping.lock().unlock();  // while it ticks
            tick();
            stopping.lock().lock();
        }
    });
}

Watchdog::~Watchdog() {
    *stopping_.lock() = true;
    wake_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

bool Watchdog::tick() {
    const auto budget =
        std::max(std::chrono::milliseconds(1),
                 std::chrono::duration_cast<std::chrono::milliseconds>(interval_ / 4));
    if (!probe_(budget)) {
        if (!failing_) {
            std::cerr << name_ << ": watchdog: the main loop did not answer within "
                      << budget.count() << " ms; not pinging the service manager\n"
                      << std::flush;
        }
        failing_ = true;
        return false;
    }
    if (failing_) {
        std::cerr << name_ << ": watchdog: the main loop answers again\n" << std::flush;
    }
    failing_ = false;
    return notify("WATCHDOG=1");
}

}  // namespace dkim::service

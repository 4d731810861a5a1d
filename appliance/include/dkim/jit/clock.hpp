#pragma once
// Time for the JIT engine. Everything time-dependent takes `now` as a parameter; the daemon
// reads a Clock once per request and passes it down, tests inject a ManualClock.
// Times are kept at millisecond precision (what the store holds).

#include <atomic>
#include <chrono>
#include <cstdint>

namespace dkim::jit {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
using Duration = std::chrono::milliseconds;

class Clock {
  public:
    virtual ~Clock() = default;
    virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
  public:
    TimePoint now() const override {
        return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
    }
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(TimePoint start) : ms_(start.time_since_epoch().count()) {}
    TimePoint now() const override { return TimePoint(Duration(ms_.load())); }
    void advance(Duration by) { ms_ += by.count(); }
    void set(TimePoint to) { ms_ = to.time_since_epoch().count(); }

  private:
    std::atomic<std::int64_t> ms_;
};

inline std::int64_t to_unix_ms(TimePoint t) {
    return t.time_since_epoch().count();
}
inline TimePoint from_unix_ms(std::int64_t ms) {
    return TimePoint(Duration(ms));
}

}  // namespace dkim::jit

#pragma once
// The one clock of the tree. Everything time-dependent takes `now` (a TimePoint) as a
// parameter; a daemon reads its Clock once per request or transaction and passes it down,
// tests inject a ManualClock. Wall time (now) is kept at millisecond precision (what the
// store holds and what DKIM's t= and x= need); monotonic time is for deadlines and latency,
// which must not jump when the wall clock is set.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace dkim {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
using Duration = std::chrono::milliseconds;
using MonotonicTime = std::chrono::steady_clock::time_point;

class Clock {
  public:
    virtual ~Clock() = default;
    // Wall-clock time, for timestamps that other parties read.
    virtual TimePoint now() const = 0;
    // Monotonic time, for deadlines and durations.
    virtual MonotonicTime monotonic() const = 0;
};

class SystemClock final : public Clock {
  public:
    TimePoint now() const override {
        return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
    }
    MonotonicTime monotonic() const override { return std::chrono::steady_clock::now(); }
};

// A clock that moves only when told to. Thread-safe. advance() moves both times; set() moves
// only the wall clock (as an operator setting the time would).
class ManualClock final : public Clock {
  public:
    explicit ManualClock(TimePoint start) : ms_(start.time_since_epoch().count()) {}
    TimePoint now() const override { return TimePoint(Duration(ms_.load())); }
    MonotonicTime monotonic() const override {
        return MonotonicTime(std::chrono::duration_cast<MonotonicTime::duration>(
            std::chrono::milliseconds(monotonic_ms_.load())));
    }
    void advance(Duration by) {
        ms_ += by.count();
        monotonic_ms_ += by.count();
    }
    void set(TimePoint to) { ms_ = to.time_since_epoch().count(); }

  private:
    std::atomic<std::int64_t> ms_;
    std::atomic<std::int64_t> monotonic_ms_{0};
};

inline std::int64_t to_unix_ms(TimePoint t) {
    return t.time_since_epoch().count();
}
inline TimePoint from_unix_ms(std::int64_t ms) {
    return TimePoint(Duration(ms));
}
// A TimePoint from any system_clock time (truncated to the millisecond).
template <class D>
TimePoint to_time_point(std::chrono::sys_time<D> t) {
    return std::chrono::time_point_cast<Duration>(t);
}

}  // namespace dkim

#pragma once
// Shared state lives inside its lock (PowerDNS's LockGuarded): the only way to reach the
// value is through a holder that has the mutex locked.
//
//   LockGuarded<State> state_;
//   state_.lock()->count += 1;                     // read and write, exclusive
//   auto n = state_.read_only_lock()->count;       // read only (a const view), still exclusive
//
// SharedLockGuarded is the same over a std::shared_mutex: read_lock() holders share it,
// write_lock() holders have it alone. Use it where readers are many and writes rare.

#include <mutex>
#include <shared_mutex>
#include <utility>

namespace dkim {

template <class Value, class Lock>
class LockedHolder {
  public:
    LockedHolder(Value& value, typename Lock::mutex_type& mutex) : lock_(mutex), value_(value) {}
    Value* operator->() const { return &value_; }
    Value& operator*() const { return value_; }
    // For condition variables (std::condition_variable wants a std::unique_lock<std::mutex>).
    Lock& lock() { return lock_; }

  private:
    Lock lock_;
    Value& value_;
};

template <class T>
class LockGuarded {
  public:
    using Holder = LockedHolder<T, std::unique_lock<std::mutex>>;
    using ReadOnlyHolder = LockedHolder<const T, std::unique_lock<std::mutex>>;

    template <class... Args>
    explicit LockGuarded(Args&&... args) : value_(std::forward<Args>(args)...) {}

    Holder lock() { return Holder(value_, mutex_); }
    ReadOnlyHolder read_only_lock() const { return ReadOnlyHolder(value_, mutex_); }

  private:
    mutable std::mutex mutex_;
    T value_;
};

template <class T>
class SharedLockGuarded {
  public:
    using WriteHolder = LockedHolder<T, std::unique_lock<std::shared_mutex>>;
    using ReadHolder = LockedHolder<const T, std::shared_lock<std::shared_mutex>>;

    template <class... Args>
    explicit SharedLockGuarded(Args&&... args) : value_(std::forward<Args>(args)...) {}

    WriteHolder write_lock() { return WriteHolder(value_, mutex_); }
    ReadHolder read_lock() const { return ReadHolder(value_, mutex_); }

  private:
    mutable std::shared_mutex mutex_;
    T value_;
};

}  // namespace dkim

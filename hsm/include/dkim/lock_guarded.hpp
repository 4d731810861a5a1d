#pragma once
// Shared state lives inside its lock (PowerDNS's LockGuarded): the only way to reach the
// value is through a holder that has the mutex locked.

#include <mutex>
#include <utility>

namespace dkim {

template <class T>
class LockGuarded {
  public:
    template <class... Args>
    explicit LockGuarded(Args&&... args) : value_(std::forward<Args>(args)...) {}

    class Holder {
      public:
        Holder(T& value, std::mutex& mutex) : lock_(mutex), value_(value) {}
        T* operator->() { return &value_; }
        T& operator*() { return value_; }
        std::unique_lock<std::mutex>& lock() { return lock_; }

      private:
        std::unique_lock<std::mutex> lock_;
        T& value_;
    };

    Holder lock() { return Holder(value_, mutex_); }

  private:
    std::mutex mutex_;
    T value_;
};

}  // namespace dkim

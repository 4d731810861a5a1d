#pragma once
// dkim-webd's Prometheus metrics (GET /metrics; HandlerOptions::metrics decides who may read).

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "dkim/metrics/exporter.hpp"

namespace dkim::web {

class WebMetrics {
  public:
    void response(unsigned status);
    void login(bool ok) { (ok ? logins_ok_ : logins_failed_)++; }
    void rate_limited() { ++rate_limited_; }
    void csrf_refused() { ++csrf_refused_; }
    void signerd_unreachable() { ++signerd_unreachable_; }
    metrics::Histogram& latency() { return latency_; }
    std::string render(std::size_t sessions) const;

  private:
    std::array<std::atomic<std::uint64_t>, 6> responses_{};  // by class: 1xx..5xx, other
    std::atomic<std::uint64_t> logins_ok_{0};
    std::atomic<std::uint64_t> logins_failed_{0};
    std::atomic<std::uint64_t> rate_limited_{0};
    std::atomic<std::uint64_t> csrf_refused_{0};
    std::atomic<std::uint64_t> signerd_unreachable_{0};
    metrics::Histogram latency_;
};

}  // namespace dkim::web

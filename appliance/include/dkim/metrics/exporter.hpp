#pragma once
// A minimal HTTP/1.1 server on a loopback address for Prometheus scrapes (GET /metrics),
// on its own thread (Boost.Beast). Shared by the daemons; each renders its own text.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace dkim::metrics {

class Exporter {
  public:
    // `listen` is "127.0.0.1:9464" or "[::1]:9464"; port 0 picks one (see port()).
    static std::unique_ptr<Exporter> start(const std::string& listen,
                                           std::function<std::string()> render, std::string& error);
    virtual ~Exporter() = default;
    virtual unsigned short port() const = 0;
    virtual void stop() = 0;
};

// A latency histogram with fixed buckets (seconds), lock-free; rendered in exposition format.
class Histogram {
  public:
    static constexpr std::array<double, 12> kBounds = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                       0.05,   0.1,   0.25,  0.5,   1.0,  5.0};
    void observe(std::chrono::nanoseconds elapsed);
    // name_bucket{le=...} (cumulative), name_sum, name_count, with HELP and TYPE lines.
    void render(std::string& out, const std::string& name, const std::string& help) const;
    std::uint64_t count() const { return count_.load(); }

  private:
    std::array<std::atomic<std::uint64_t>, kBounds.size()> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace dkim::metrics

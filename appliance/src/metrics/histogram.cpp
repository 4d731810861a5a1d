#include <algorithm>
#include <cstdio>

#include "dkim/metrics/exporter.hpp"

namespace dkim::metrics {

void Histogram::observe(std::chrono::nanoseconds elapsed) {
    const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(elapsed.count(), 0));
    ++count_;
    sum_ns_ += ns;
    const double seconds = static_cast<double>(ns) / 1e9;
    for (std::size_t i = 0; i < kBounds.size(); ++i) {
        if (seconds <= kBounds[i]) {
            ++buckets_[i];
        }
    }
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    char bound[32];
    for (std::size_t i = 0; i < kBounds.size(); ++i) {
        (void)std::snprintf(bound, sizeof bound, "%g", kBounds[i]);
        out += name + "_bucket{le=\"" + bound + "\"} " + std::to_string(buckets_[i].load()) + "\n";
    }
    const std::uint64_t count = count_.load();
    (void)std::snprintf(bound, sizeof bound, "%.9f", static_cast<double>(sum_ns_.load()) / 1e9);
    out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n";
    out += name + "_sum " + bound + "\n";
    out += name + "_count " + std::to_string(count) + "\n";
}

}  // namespace dkim::metrics

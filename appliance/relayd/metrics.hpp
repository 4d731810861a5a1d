#pragma once
// dkim-relayd's Prometheus metrics: connections, transactions by outcome, bytes, and the
// signing and transaction latency histograms. Lock-free counters, rendered when scraped.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "dkim/metrics/exporter.hpp"

namespace dkim::relayd {

class RelayMetrics {
  public:
    enum class Outcome : std::uint8_t {
        delivered,        // 250 after the next hop accepted
        rejected,         // 5xx from here (policy, syntax, size) or from the next hop
        deferred_grant,   // 451: no covering grant (an elevation request is pending)
        deferred_signer,  // 451: signerd, the token or the self-check failed
        deferred_hop,     // 4xx: the next hop was down, slow or answered 4xx
        aborted,          // the client left or timed out inside the transaction
        count_
    };
    void transaction(Outcome outcome) { ++transactions_[static_cast<std::size_t>(outcome)]; }
    void connection_opened() {
        ++connections_total_;
        ++connections_open_;
    }
    void connection_closed() { --connections_open_; }
    void connection_refused() { ++connections_refused_; }
    void bytes_in(std::uint64_t n) { bytes_in_ += n; }
    void bytes_out(std::uint64_t n) { bytes_out_ += n; }
    metrics::Histogram& signing_latency() { return signing_; }
    metrics::Histogram& transaction_latency() { return transaction_; }
    std::uint64_t transactions(Outcome outcome) const {
        return transactions_[static_cast<std::size_t>(outcome)].load();
    }

    // Inbound listeners: one count per checked message, by DMARC result and action
    // (indexes as in dmarc::Result and inbound::Action), and the time the checks took.
    static constexpr std::size_t kDmarcResults = 5;
    static constexpr std::size_t kActions = 3;
    void inbound_checked(std::size_t dmarc_result, std::size_t action) {
        if (dmarc_result < kDmarcResults && action < kActions) {
            ++inbound_[dmarc_result * kActions + action];
        }
    }
    metrics::Histogram& inbound_latency() { return inbound_latency_; }

    // Report mail ([inbound.reports]): each report transaction's end, by outcome.
    enum class ReportOutcome : std::uint8_t {
        stored,        // 250: dkim-reportd stored it durably
        invalid,       // 554 5.6.0: dkim-reportd refused it as invalid
        unavailable,   // 451 4.3.0: dkim-reportd unreachable, busy or failing
        too_large,     // 552 5.3.4: over max_size
        rate_limited,  // 450 4.7.1 at RCPT: over a client's or the relay's hourly limit
        count_
    };
    void report(ReportOutcome outcome) { ++reports_[static_cast<std::size_t>(outcome)]; }
    std::uint64_t reports(ReportOutcome outcome) const {
        return reports_[static_cast<std::size_t>(outcome)].load();
    }

    std::string render() const;

  private:
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Outcome::count_)>
        transactions_{};
    std::atomic<std::uint64_t> connections_total_{0};
    std::atomic<std::int64_t> connections_open_{0};
    std::atomic<std::uint64_t> connections_refused_{0};
    std::atomic<std::uint64_t> bytes_in_{0};
    std::atomic<std::uint64_t> bytes_out_{0};
    metrics::Histogram signing_;
    metrics::Histogram transaction_;
    std::array<std::atomic<std::uint64_t>, kDmarcResults * kActions> inbound_{};
    metrics::Histogram inbound_latency_;
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ReportOutcome::count_)>
        reports_{};
};

}  // namespace dkim::relayd

#pragma once
// Prometheus metrics of signerd, served as text on a loopback port (GET /metrics). Counters
// are lock-free; the gauges are read from the service when scraped.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dkim/dkim/signing_profile.hpp"
#include "dkim/metrics/exporter.hpp"

namespace dkim::signerd {

class Metrics {
  public:
    enum class SignOutcome : std::uint8_t { ok, failed, locked, refused, unavailable, count_ };
    enum class Refusal : std::uint8_t {
        no_grant,
        mismatch,   // d=/s=/a= of the field differ from the request
        malformed,  // no parsable DKIM-Signature field in the header block
        audit,      // the audit log could not be written
        token,      // the token is not logged in or failed
        peer,       // a peer that may not do this
        protocol,   // malformed or oversized frames
        profile,    // the header block does not fit the signing profile
        reserved,   // a key that never signs mail (the audit key)
        count_
    };

    void signature(SignOutcome outcome) { ++signatures_[static_cast<std::size_t>(outcome)]; }
    void refusal(Refusal reason) { ++refusals_[static_cast<std::size_t>(reason)]; }
    // A signing-profile refusal, by the rule it broke (dkim::ProfileRule).
    void profile_refusal(std::size_t rule) {
        if (rule < profile_rules_.size()) {
            ++profile_rules_[rule];
        }
    }
    void login() { ++logins_; }
    void logout() { ++logouts_; }
    void audit_commit(std::uint64_t nanoseconds, std::size_t records, bool ok);
    void webhook(bool delivered) { ++(delivered ? webhook_ok_ : webhook_failed_); }
    // An event written to dkim-notifyd's outbox, or one that could not be.
    void webhook_spooled(bool ok) { ++(ok ? webhook_spooled_ : webhook_spool_failed_); }

    struct Gauges {
        std::uint64_t active_grants = 0;
        std::uint64_t pending_requests = 0;
        bool logged_in = false;
        bool audit_failing = false;
        std::uint64_t login_failure_records = 0;  // users with failures kept (existing only)
        // A cluster node: itself and the nodes of the registry.
        struct Node {
            std::string name;
            double seconds_since_seen = 0;
            bool up = false;  // seen within kNodeGoneAfter
            bool logged_in = false;
            std::int64_t grants = 0;
        };
        bool cluster = false;
        std::uint64_t store_statements = 0;    // statements (round trips) to the shared store
        std::uint64_t store_transactions = 0;  // its transactions
        std::string node;
        bool fenced = false;
        std::vector<Node> nodes;
    };
    std::uint64_t audit_commits() const { return audit_count_.load(); }
    std::uint64_t audit_records() const { return audit_records_.load(); }
    std::uint64_t audit_nanoseconds() const { return audit_sum_ns_.load(); }  // of the commits

    // The exposition text (format 0.0.4).
    std::string render(const Gauges& gauges) const;

  private:
    static constexpr std::array<double, 10> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                        0.025,  0.05,  0.1,    0.25,  1.0};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(SignOutcome::count_)>
        signatures_{};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Refusal::count_)> refusals_{};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ProfileRule::count_)>
        profile_rules_{};
    std::atomic<std::uint64_t> logins_{0};
    std::atomic<std::uint64_t> logouts_{0};
    std::array<std::atomic<std::uint64_t>, kBuckets.size()> audit_buckets_{};
    std::atomic<std::uint64_t> audit_count_{0};
    std::atomic<std::uint64_t> audit_sum_ns_{0};
    std::atomic<std::uint64_t> audit_records_{0};
    std::atomic<std::uint64_t> audit_failures_{0};
    std::atomic<std::uint64_t> webhook_ok_{0};
    std::atomic<std::uint64_t> webhook_failed_{0};
    std::atomic<std::uint64_t> webhook_spooled_{0};
    std::atomic<std::uint64_t> webhook_spool_failed_{0};
};

}  // namespace dkim::signerd

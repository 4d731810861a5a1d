#include "metrics.hpp"

#include <iterator>
#include <sstream>
#include <thread>

namespace dkim::signerd {

void Metrics::audit_commit(std::uint64_t nanoseconds, std::size_t records, bool ok) {
    if (!ok) {
        ++audit_failures_;
        return;
    }
    ++audit_count_;
    audit_sum_ns_ += nanoseconds;
    audit_records_ += records;
    const double seconds = static_cast<double>(nanoseconds) / 1e9;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        if (seconds <= kBuckets[i]) {
            ++audit_buckets_[i];
        }
    }
}

std::string Metrics::render(const Gauges& g) const {
    std::ostringstream out;
    out << "# HELP dkim_signerd_active_grants Grants in force now.\n"
           "# TYPE dkim_signerd_active_grants gauge\n"
        << "dkim_signerd_active_grants " << g.active_grants << "\n"
        << "# HELP dkim_signerd_pending_requests Elevation requests awaiting a decision.\n"
           "# TYPE dkim_signerd_pending_requests gauge\n"
        << "dkim_signerd_pending_requests " << g.pending_requests << "\n"
        << "# HELP dkim_signerd_token_logged_in 1 while the token is logged in.\n"
           "# TYPE dkim_signerd_token_logged_in gauge\n"
        << "dkim_signerd_token_logged_in " << (g.logged_in ? 1 : 0) << "\n"
        << "# HELP dkim_signerd_audit_failing 1 while the last audit write failed (fail closed).\n"
           "# TYPE dkim_signerd_audit_failing gauge\n"
        << "dkim_signerd_audit_failing " << (g.audit_failing ? 1 : 0) << "\n"
        << "# HELP dkim_signerd_login_failure_records Users whose failed logins are kept for the "
           "lockout (existing users only: unknown names take no memory).\n"
           "# TYPE dkim_signerd_login_failure_records gauge\n"
        << "dkim_signerd_login_failure_records " << g.login_failure_records << "\n";
    if (g.cluster) {
        // Node names are checked when a node registers, and again here: the registry is the
        // database's, and a label value must not carry quotes or line breaks.
        out << "# HELP dkim_signerd_store_statements_total Statements sent to the shared store "
               "(each one round trip).\n"
               "# TYPE dkim_signerd_store_statements_total counter\n"
            << "dkim_signerd_store_statements_total " << g.store_statements << "\n"
            << "# HELP dkim_signerd_store_transactions_total Transactions on the shared store.\n"
               "# TYPE dkim_signerd_store_transactions_total counter\n"
            << "dkim_signerd_store_transactions_total " << g.store_transactions << "\n";
        out << "# HELP dkim_signerd_cluster_fenced 1 while this node is cut off from the shared "
               "store for longer than its lease (logged out, signing nothing).\n"
               "# TYPE dkim_signerd_cluster_fenced gauge\n"
            << "dkim_signerd_cluster_fenced{node=\"" << g.node << "\"} " << (g.fenced ? 1 : 0)
            << "\n"
            << "# HELP dkim_signerd_cluster_node_up 1 for a node of the registry seen within the "
               "last 10 s, 0 for one that is gone.\n"
               "# TYPE dkim_signerd_cluster_node_up gauge\n";
        for (const auto& n : g.nodes) {
            out << "dkim_signerd_cluster_node_up{node=\"" << n.name << "\"} " << (n.up ? 1 : 0)
                << "\n";
        }
        out << "# HELP dkim_signerd_cluster_node_last_seen_seconds Seconds since the node's last "
               "heartbeat.\n"
               "# TYPE dkim_signerd_cluster_node_last_seen_seconds gauge\n";
        for (const auto& n : g.nodes) {
            out << "dkim_signerd_cluster_node_last_seen_seconds{node=\"" << n.name << "\"} "
                << n.seconds_since_seen << "\n";
        }
        out << "# HELP dkim_signerd_cluster_node_logged_in 1 while the node's token is logged in "
               "(as it last reported).\n"
               "# TYPE dkim_signerd_cluster_node_logged_in gauge\n";
        for (const auto& n : g.nodes) {
            out << "dkim_signerd_cluster_node_logged_in{node=\"" << n.name << "\"} "
                << (n.logged_in ? 1 : 0) << "\n";
        }
        out << "# HELP dkim_signerd_cluster_node_grants Active grants the node sees.\n"
               "# TYPE dkim_signerd_cluster_node_grants gauge\n";
        for (const auto& n : g.nodes) {
            out << "dkim_signerd_cluster_node_grants{node=\"" << n.name << "\"} " << n.grants
                << "\n";
        }
    }
    static constexpr const char* outcomes[] = {"ok", "failed", "locked", "refused", "unavailable"};
    out << "# HELP dkim_signerd_signatures_total Sign requests by outcome.\n"
           "# TYPE dkim_signerd_signatures_total counter\n";
    for (std::size_t i = 0; i < signatures_.size(); ++i) {
        out << "dkim_signerd_signatures_total{outcome=\"" << outcomes[i] << "\"} "
            << signatures_[i].load() << "\n";
    }
    static constexpr const char* reasons[] = {"no_grant", "mismatch", "malformed",
                                              "audit",    "token",    "peer",
                                              "protocol", "profile",  "reserved"};
    static_assert(std::size(reasons) == static_cast<std::size_t>(Refusal::count_));
    out << "# HELP dkim_signerd_refusals_total Refused requests by reason.\n"
           "# TYPE dkim_signerd_refusals_total counter\n";
    for (std::size_t i = 0; i < refusals_.size(); ++i) {
        out << "dkim_signerd_refusals_total{reason=\"" << reasons[i] << "\"} "
            << refusals_[i].load() << "\n";
    }
    out << "# HELP dkim_signerd_profile_refusals_total Header blocks refused by the signing "
           "profile, by rule.\n"
           "# TYPE dkim_signerd_profile_refusals_total counter\n";
    for (std::size_t i = 0; i < profile_rules_.size(); ++i) {
        out << "dkim_signerd_profile_refusals_total{rule=\""
            << to_string(static_cast<ProfileRule>(i)) << "\"} " << profile_rules_[i].load() << "\n";
    }
    out << "# HELP dkim_signerd_token_logins_total Logins to the token.\n"
           "# TYPE dkim_signerd_token_logins_total counter\n"
        << "dkim_signerd_token_logins_total " << logins_.load() << "\n"
        << "# HELP dkim_signerd_token_logouts_total Logouts from the token.\n"
           "# TYPE dkim_signerd_token_logouts_total counter\n"
        << "dkim_signerd_token_logouts_total " << logouts_.load() << "\n"
        << "# HELP dkim_signerd_audit_write_seconds Durable audit commits (group commits).\n"
           "# TYPE dkim_signerd_audit_write_seconds histogram\n";
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        out << "dkim_signerd_audit_write_seconds_bucket{le=\"" << kBuckets[i] << "\"} "
            << audit_buckets_[i].load() << "\n";
    }
    out << "dkim_signerd_audit_write_seconds_bucket{le=\"+Inf\"} " << audit_count_.load() << "\n"
        << "dkim_signerd_audit_write_seconds_sum "
        << static_cast<double>(audit_sum_ns_.load()) / 1e9 << "\n"
        << "dkim_signerd_audit_write_seconds_count " << audit_count_.load() << "\n"
        << "# HELP dkim_signerd_audit_records_total Audit records made durable.\n"
           "# TYPE dkim_signerd_audit_records_total counter\n"
        << "dkim_signerd_audit_records_total " << audit_records_.load() << "\n"
        << "# HELP dkim_signerd_audit_write_failures_total Audit commits that failed.\n"
           "# TYPE dkim_signerd_audit_write_failures_total counter\n"
        << "dkim_signerd_audit_write_failures_total " << audit_failures_.load() << "\n"
        << "# HELP dkim_signerd_webhook_deliveries_total Webhook deliveries by result.\n"
           "# TYPE dkim_signerd_webhook_deliveries_total counter\n"
        << "dkim_signerd_webhook_deliveries_total{result=\"delivered\"} " << webhook_ok_.load()
        << "\n"
        << "dkim_signerd_webhook_deliveries_total{result=\"failed\"} " << webhook_failed_.load()
        << "\n"
        << "dkim_signerd_webhook_deliveries_total{result=\"spooled\"} " << webhook_spooled_.load()
        << "\n"
        << "dkim_signerd_webhook_deliveries_total{result=\"spool_failed\"} "
        << webhook_spool_failed_.load() << "\n";
    return out.str();
}

}  // namespace dkim::signerd

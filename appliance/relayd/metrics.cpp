#include "metrics.hpp"

namespace dkim::relayd {

std::string RelayMetrics::render() const {
    std::string out;
    auto counter = [&out](const std::string& name, const std::string& help, const char* type,
                          const std::string& value) {
        out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
        out += name + " " + value + "\n";
    };
    counter("dkim_relayd_connections_total", "Client connections accepted.", "counter",
            std::to_string(connections_total_.load()));
    counter("dkim_relayd_connections_open", "Client connections open now.", "gauge",
            std::to_string(connections_open_.load()));
    counter("dkim_relayd_connections_refused_total",
            "Connections refused at once (limits, early talkers).", "counter",
            std::to_string(connections_refused_.load()));
    counter("dkim_relayd_received_bytes_total", "Bytes read from clients.", "counter",
            std::to_string(bytes_in_.load()));
    counter("dkim_relayd_forwarded_bytes_total", "Message bytes accepted by the next hop.",
            "counter", std::to_string(bytes_out_.load()));
    static constexpr const char* kOutcomes[] = {"delivered",       "rejected",     "deferred_grant",
                                                "deferred_signer", "deferred_hop", "aborted"};
    out +=
        "# HELP dkim_relayd_transactions_total Mail transactions by outcome.\n"
        "# TYPE dkim_relayd_transactions_total counter\n";
    for (std::size_t i = 0; i < transactions_.size(); ++i) {
        out += std::string("dkim_relayd_transactions_total{outcome=\"") + kOutcomes[i] + "\"} " +
               std::to_string(transactions_[i].load()) + "\n";
    }
    static constexpr const char* kDmarc[] = {"none", "pass", "fail", "temperror", "permerror"};
    static constexpr const char* kActionNames[] = {"deliver", "quarantine", "reject"};
    out +=
        "# HELP dkim_relayd_inbound_messages_total Messages checked by inbound listeners, by "
        "DMARC result and action.\n"
        "# TYPE dkim_relayd_inbound_messages_total counter\n";
    for (std::size_t d = 0; d < kDmarcResults; ++d) {
        for (std::size_t a = 0; a < kActions; ++a) {
            out += std::string("dkim_relayd_inbound_messages_total{dmarc=\"") + kDmarc[d] +
                   "\",action=\"" + kActionNames[a] + "\"} " +
                   std::to_string(inbound_[d * kActions + a].load()) + "\n";
        }
    }
    static constexpr const char* kReportOutcomes[] = {"stored", "invalid", "unavailable",
                                                      "too_large", "rate_limited"};
    out +=
        "# HELP dkim_relayd_report_submissions_total Report mail to dkim-reportd by outcome "
        "(rate_limited: refused at RCPT).\n"
        "# TYPE dkim_relayd_report_submissions_total counter\n";
    for (std::size_t i = 0; i < reports_.size(); ++i) {
        out += std::string("dkim_relayd_report_submissions_total{outcome=\"") + kReportOutcomes[i] +
               "\"} " + std::to_string(reports_[i].load()) + "\n";
    }
    inbound_latency_.render(out, "dkim_relayd_inbound_check_seconds",
                            "Time of the DKIM, DMARC and Authentication-Results checks at the "
                            "end of DATA (SPF ran at MAIL FROM).");
    signing_.render(out, "dkim_relayd_signing_seconds",
                    "Time to sign one message through dkim-signerd, self-check included.");
    transaction_.render(out, "dkim_relayd_transaction_seconds",
                        "From the end of DATA to the reply (signing and next hop).");
    return out;
}

}  // namespace dkim::relayd

#pragma once
// The verifying listener's policy (role = "inbound"): mail for the configured domains only,
// from anyone; SPF at MAIL FROM, DKIM and DMARC at the final dot (inbound::Verifier), the
// Authentication-Results field put on top after every field that claimed our authserv-id was
// removed, and the action: deliver, quarantine (a header field or another next hop) or reject.

#include <optional>
#include <string>

#include "dkim/inbound/verifier.hpp"
#include "policy.hpp"
#include "signing_policy.hpp"

namespace dkim::relayd {

class VerifyingPolicy final : public MailPolicy {
  public:
    // `config.inbound` is set. SPF's and DKIM's DNS lookups block: they run on `blocking`.
    VerifyingPolicy(const Config& config, const inbound::Verifier& verifier, RelayMetrics& metrics,
                    const Clock& clock, Blocking blocking = Blocking());

    bool offers_auth() const override { return false; }
    awaitable<std::optional<smtp::Reply>> mail(const Peer& peer, const smtp::Path& sender) override;
    std::optional<Refusal> rcpt(const Peer& peer, const smtp::Path& recipient) override;
    void end_of_header(const Peer& /*peer*/, std::string_view /*header_section*/) override {}
    void body(std::string_view /*chunk*/) override {}
    awaitable<Delivery> end_of_data(const Peer& peer, const std::string& message,
                                    std::size_t body_start, bool eight_bit) override;
    std::optional<std::string> log_line(const Peer& peer, const std::string& session_id,
                                        std::uint64_t sequence, std::size_t recipients,
                                        const Conclusion& c) const override;
    void annotate(Conclusion& /*c*/) const override {}
    void reset() override;
    awaitable<std::string> report_author(const std::string& message) override;

  private:
    const Config& config_;
    const inbound::Verifier& verifier_;
    RelayMetrics& metrics_;
    const Clock& clock_;
    Blocking blocking_;
    std::optional<inbound::SpfResults> spf_;   // from MAIL FROM
    std::optional<inbound::Verdict> verdict_;  // from the final dot
};

}  // namespace dkim::relayd

#include "verifying_policy.hpp"

#include <cstdio>

#include "dkim/mail/authentication_results.hpp"
#include "dkim/text/json.hpp"
#include "transaction.hpp"

namespace dkim::relayd {

VerifyingPolicy::VerifyingPolicy(const Config& config, const inbound::Verifier& verifier,
                                 RelayMetrics& metrics, const Clock& clock, Blocking blocking)
    : config_(config), verifier_(verifier), metrics_(metrics), clock_(clock), blocking_(blocking) {}

awaitable<std::optional<smtp::Reply>> VerifyingPolicy::mail(const Peer& peer,
                                                            const smtp::Path& sender) {
    // SPF now, for both identities (the result waits for DMARC at the final dot).
    const auto ip = net::IpAddress::parse(peer.address_text);
    if (!ip) {
        co_return local_reply(451, "4.3.0", "Cannot read the client address");
    }
    const inbound::Envelope envelope{*ip, peer.helo, sender.address};
    const inbound::Envelope* e = &envelope;
    const inbound::Verifier* verifier = &verifier_;
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
    spf_ = co_await blocking_.run([verifier, e, now] { return verifier->check_spf(*e, now); });
    co_return std::nullopt;
}

std::optional<MailPolicy::Refusal> VerifyingPolicy::rcpt(const Peer& /*peer*/,
                                                         const smtp::Path& recipient) {
    // Only the configured domains (and the local <Postmaster>, RFC 5321 §4.5.1).
    if (!recipient.domain.empty() && !config_.inbound->accepts(recipient.domain)) {
        return Refusal{local_reply(550, "5.7.1",
                                   "Relaying denied: " + recipient.domain.substr(0, 255) +
                                       " is not a domain this server receives mail for"),
                       true};
    }
    return std::nullopt;
}

awaitable<std::string> VerifyingPolicy::report_author(const std::string& message) {
    // DKIM's key lookups and the tree walk's block: on the inbound workers, like the checks.
    const inbound::Verifier* verifier = &verifier_;
    const std::string* whole = &message;
    const Clock* clock = &clock_;
    co_return co_await blocking_.run([verifier, whole, clock] {
        try {
            return verifier->authenticated_author(*whole, clock->now());
        } catch (const std::exception&) {  // std::bad_alloc: unauthenticated, still stored
            return std::string();
        }
    });
}

awaitable<Delivery> VerifyingPolicy::end_of_data(const Peer& /*peer*/, const std::string& message,
                                                 std::size_t /*body_start*/, bool /*eight_bit*/) {
    const auto started = clock_.monotonic();
    const inbound::Verifier* verifier = &verifier_;
    const inbound::SpfResults* spf = &*spf_;
    const std::string* whole = &message;
    const Clock* clock = &clock_;
    verdict_ = co_await blocking_.run(
        [verifier, spf, whole, clock] { return verifier->finish(*spf, *whole, clock->now()); });
    metrics_.inbound_latency().observe(clock_.monotonic() - started);
    metrics_.inbound_checked(static_cast<std::size_t>(verdict_->dmarc.result),
                             static_cast<std::size_t>(verdict_->action));
    Delivery d;
    if (verdict_->action == inbound::Action::reject) {
        d.refusal = local_reply(550, "5.7.1", one_line(verdict_->why));
        d.action = "reject";
        co_return d;
    }
    // Forged results first: every Authentication-Results field claiming our authserv-id goes.
    const auto end = find_header_end(message);
    const std::size_t header_end = end ? end->header_end : message.size();
    auto header = mail::HeaderBlock::parse(message.substr(0, header_end));
    if (!header) {
        d.refusal =
            local_reply(554, "5.6.0", "Malformed header section: " + header.error().to_string());
        d.action = "reject";
        co_return d;
    }
    std::size_t forged = 0;
    std::string forwarded =
        mail::strip_authentication_results(*header, config_.inbound->authserv_id, forged);
    forwarded.append(message, header_end, std::string::npos);
    d.replacement = std::move(forwarded);
    d.prefix = verdict_->authentication_results;
    const bool quarantine = verdict_->action == inbound::Action::quarantine &&
                            config_.inbound->quarantine != Quarantine::off;
    if (quarantine && config_.inbound->quarantine == Quarantine::header) {
        d.prefix += std::string(kQuarantineHeader) + ": " + one_line(verdict_->why) + "\r\n";
    }
    if (quarantine && config_.inbound->quarantine == Quarantine::next_hop) {
        d.route = Route::quarantine;
    }
    d.accepted = quarantine ? "Ok: quarantined" : "Ok: verified";
    d.action = quarantine ? "quarantine" : "deliver";
    co_return d;
}

std::optional<std::string> VerifyingPolicy::log_line(const Peer& peer,
                                                     const std::string& session_id,
                                                     std::uint64_t sequence, std::size_t recipients,
                                                     const Conclusion& c) const {
    if (!verdict_) {
        return std::nullopt;
    }
    std::string dkim;
    for (const auto& s : verdict_->dkim) {
        dkim += (dkim.empty() ? "" : ",") + std::string(mail::to_string(s.result));
    }
    const auto& v = *verdict_;
    char numbers[96];
    (void)std::snprintf(numbers, sizeof numbers, " size=%llu rcpts=%zu",
                        static_cast<unsigned long long>(c.size), recipients);
    return "dkim-relayd: inbound id=" + session_id + "." + std::to_string(sequence) +
           " ip=" + peer.address_text + " helo=" + text::json_quote(peer.helo) +
           " mail_from_domain=" + (v.spf.mail_from.domain.empty() ? "-" : v.spf.mail_from.domain) +
           " from_domain=" + (v.from_domain.empty() ? "-" : v.from_domain) + numbers +
           " spf=" + std::string(spf::to_string(v.spf.mail_from.result)) +
           " dkim=" + (dkim.empty() ? "none" : dkim) +
           " dmarc=" + std::string(dmarc::to_string(v.dmarc.result)) + " action=" + c.action +
           " next_hop=" + text::json_quote(c.next_hop.empty() ? "-" : c.next_hop) +
           " reply=" + std::to_string(c.code);
}

void VerifyingPolicy::reset() {
    spf_.reset();
    verdict_.reset();
}

}  // namespace dkim::relayd

#include "signing_policy.hpp"

#include "dkim/mail/address.hpp"
#include "transaction.hpp"

namespace dkim::relayd {

namespace {

smtp::Reply policy_reply(int code, std::string enhanced, std::string text) {
    return local_reply(code, std::move(enhanced), std::move(text));
}

Delivery signing_refusal(RelayMetrics::Outcome outcome, int code, std::string enhanced,
                         std::string text, std::string sign_state = "-") {
    Delivery d;
    d.refusal = policy_reply(code, std::move(enhanced), std::move(text));
    d.outcome = outcome;
    d.sign_state = std::move(sign_state);
    return d;
}

}  // namespace

SigningPolicy::SigningPolicy(const Config& config, SigningBackend& signing, RelayMetrics& metrics,
                             const Clock& clock, Blocking blocking)
    : config_(config), signing_(signing), metrics_(metrics), clock_(clock), blocking_(blocking) {}

awaitable<std::optional<smtp::Reply>> SigningPolicy::mail(const Peer& peer,
                                                          const smtp::Path& sender) {
    if (peer.client == nullptr) {
        if (peer.auth_offered) {
            co_return policy_reply(530, "5.7.0", "Authentication required");
        }
        if (peer.starttls_first) {
            co_return policy_reply(530, "5.7.0",
                                   "Must issue a STARTTLS command first, then authenticate");
        }
        co_return policy_reply(554, "5.7.1",
                               "Relay access denied: your address is not a configured client");
    }
    if (!sender.address.empty() && !peer.client->allows(sender.domain)) {
        co_return policy_reply(
            550, "5.7.1",
            "Client " + peer.client->name + " may not send mail from the domain " + sender.domain);
    }
    co_return std::nullopt;
}

std::optional<MailPolicy::Refusal> SigningPolicy::rcpt(const Peer& /*peer*/,
                                                       const smtp::Path& /*recipient*/) {
    return std::nullopt;  // the next hop decides where mail may go
}

void SigningPolicy::end_of_header(const Peer& peer, std::string_view header_section) {
    auto parsed = mail::HeaderBlock::parse(std::string(header_section));
    if (!parsed) {
        header_error_ = "Malformed header section: " + parsed.error().to_string();
        return;
    }
    header_ = std::move(*parsed);
    const auto from = header_->find_all("From");
    if (from.size() != 1) {
        header_error_ = "The message needs exactly one From: field (it has " +
                        std::to_string(from.size()) + ")";
        return;
    }
    auto domains = mail::mailbox_domains(header_->unfolded_value(from[0]));
    if (!domains) {
        header_error_ = "Unusable From: field: " + domains.error();
        return;
    }
    from_domains_ = std::move(*domains);
    domain_ = config_.domain(from_domains_.front());
    if (domain_ != nullptr) {
        signature_ = signing_.start(*domain_, peer.client_name());
    }
}

void SigningPolicy::body(std::string_view chunk) {
    if (signature_) {
        signature_->update_body(chunk);
    }
}

std::optional<smtp::Reply> SigningPolicy::unsignable(const Peer& peer) const {
    if (!header_error_.empty() || !header_) {
        return policy_reply(554, "5.6.0", header_error_);
    }
    for (const auto& d : from_domains_) {
        if (peer.client == nullptr || !peer.client->allows(d)) {
            return policy_reply(
                550, "5.7.1",
                "Client " + peer.client_name() + " may not send mail with From: domain " + d);
        }
    }
    if (domain_ == nullptr) {  // allowed domains are signing domains (config check)
        return policy_reply(550, "5.7.1", "No signing keys for " + from_domains_.front());
    }
    return std::nullopt;
}

std::optional<std::string> SigningPolicy::not_signed_because(const Peer& peer) const {
    if (auto refusal = unsignable(peer)) {
        return refusal->text.empty() ? std::string("no header section") : refusal->text;
    }
    return std::nullopt;
}

awaitable<Delivery> SigningPolicy::end_of_data(const Peer& peer, const std::string& message,
                                               std::size_t body_start, bool /*eight_bit*/) {
    using Outcome = RelayMetrics::Outcome;
    if (auto refusal = unsignable(peer)) {
        Delivery d;
        d.refusal = std::move(*refusal);
        co_return d;  // Outcome::rejected
    }
    const auto sign_started = clock_.monotonic();
    if (!signature_) {
        // The public keys were not cached yet: fetch them, then hash the body now.
        SigningBackend* backend = &signing_;
        const SigningDomain* domain = domain_;
        auto prepared =
            co_await blocking_.run([backend, domain] { return backend->prepare(*domain); });
        if (prepared) {
            signature_ = signing_.start(*domain_, peer.client_name());
        }
        if (!signature_) {
            co_return signing_refusal(
                Outcome::deferred_signer, 451, "4.3.0",
                "Signing is unavailable: " +
                    one_line(prepared ? "no public key" : prepared.error().message),
                "unavailable");
        }
        signature_->update_body(std::string_view(message).substr(body_start));
    }
    BodySignature* s = signature_.get();
    const mail::HeaderBlock* h = &*header_;
    const Clock* clock = &clock_;
    auto fields = co_await blocking_.run([s, h, clock] { return s->finish(*h, clock->now()); });
    metrics_.signing_latency().observe(clock_.monotonic() - sign_started);
    if (!fields) {
        const SignFailure& f = fields.error();
        if (f.kind == SignFailure::Kind::locked) {
            co_return signing_refusal(Outcome::deferred_grant, 451, "4.7.0",
                                      "Signing for " + domain_->name +
                                          " is awaiting approval (elevation request " +
                                          std::to_string(f.request_id) + "); try again later",
                                      "locked:" + std::to_string(f.request_id));
        }
        co_return signing_refusal(
            Outcome::deferred_signer, 451, f.kind == SignFailure::Kind::refused ? "4.3.5" : "4.3.0",
            "Signing failed: " + one_line(f.message),
            f.kind == SignFailure::Kind::self_check ? "self-check-failed" : "unavailable");
    }
    Delivery d;
    d.prefix = std::move(*fields);
    d.accepted = "Ok: signed";
    d.sign_state = "ok";
    co_return d;
}

std::optional<std::string> SigningPolicy::log_line(const Peer& /*peer*/,
                                                   const std::string& /*session_id*/,
                                                   std::uint64_t /*sequence*/,
                                                   std::size_t /*recipients*/,
                                                   const Conclusion& /*c*/) const {
    return std::nullopt;  // the transaction's own line says it all
}

void SigningPolicy::annotate(Conclusion& c) const {
    c.from_domain = from_domains_.empty() ? "-" : from_domains_.front();
    if (signature_) {
        std::string selectors;
        for (const auto& name : signature_->selectors()) {
            selectors += (selectors.empty() ? "" : ",") + name;
        }
        c.selectors = selectors;
    }
}

void SigningPolicy::reset() {
    header_.reset();
    header_error_.clear();
    from_domains_.clear();
    domain_ = nullptr;
    signature_.reset();
}

}  // namespace dkim::relayd

#pragma once
// The inbound checks of dkim-relayd's verifying listener and of `dkim-appliance verify --ip`:
// SPF for the MAIL FROM and HELO identities (RFC 7208), every DKIM signature (RFC 6376),
// DMARC for the From domain (RFC 7489 / DMARCbis), one Authentication-Results field with our
// authserv-id (RFC 8601), and what to do with the message under the configured policy.
// Pure code over the Resolver and KeyFetcher interfaces: no sockets, no clock of its own.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dkim/key_fetcher.hpp"
#include "dkim/dkim/verifier.hpp"
#include "dkim/dmarc/policy.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/net/ip_address.hpp"
#include "dkim/spf/check.hpp"

namespace dkim::inbound {

enum class Action : std::uint8_t { deliver, quarantine, reject };
std::string_view to_string(Action action);

struct Settings {
    std::string authserv_id;  // this host's name in Authentication-Results
    bool check_helo = true;   // also check the HELO identity (RFC 7208 §2.3)
    spf::Limits spf_limits;
    VerifyOptions dkim;
    dmarc::Options dmarc;
    // Enforcement of the sender's DMARC policy: a failure whose disposition is reject is
    // refused (550 5.7.1); quarantine is delivered, marked as quarantined.
    bool reject_dmarc = true;
    bool quarantine_dmarc = true;
};

struct Envelope {
    net::IpAddress client;
    std::string helo;
    std::string mail_from;  // without <>, empty for the null reverse-path
};

struct SpfResults {
    spf::Outcome mail_from;
    std::optional<spf::Outcome> helo;
};

struct Verdict {
    SpfResults spf;
    std::vector<SignatureVerdict> dkim;
    dmarc::Evaluation dmarc;
    std::string from_domain;  // empty when the From field is missing, repeated or unusable
    std::string authentication_results;  // the whole field to prepend, ending in CRLF
    Action action = Action::deliver;
    std::string why;  // for reject and quarantine: the SMTP reply text / log reason
};

class Verifier {
  public:
    // `percent` as in dmarc::Evaluator (pct= sampling).
    Verifier(dns::Resolver& resolver, KeyFetcher& keys, Settings settings,
             std::function<unsigned()> percent = {});

    // At MAIL FROM: both SPF identities. `now` feeds %{t} in explanations.
    SpfResults check_spf(const Envelope& envelope, std::int64_t now) const;
    // At the end of DATA: DKIM over the message as received (CRLF lines), DMARC, the
    // Authentication-Results field and the action.
    Verdict finish(SpfResults spf, std::string_view message,
                   std::chrono::system_clock::time_point now) const;

    // The authenticated author of a message, for report mail (whose reporter must be
    // authenticated before its report may raise a critical finding): the RFC5322.From domain,
    // lower-cased and without a trailing dot, when the header section has exactly one From
    // field with exactly one domain and at least one DKIM signature passes whose d= is
    // relaxed-aligned with it (the same organizational domain, RFC 7489 §3.1.1, by the
    // configured PSL or tree walk). Otherwise empty: no signature, none that verified, none
    // aligned, several From domains, DNS failures. A signature with l= (a body length) never
    // counts: it leaves the rest of the body to anyone. No SPF, no DMARC record is consulted.
    std::string authenticated_author(std::string_view message,
                                     std::chrono::system_clock::time_point now) const;

    const Settings& settings() const { return settings_; }

  private:
    KeyFetcher& keys_;
    Settings settings_;
    spf::Checker spf_;
    dmarc::Evaluator dmarc_;
};

// The Authentication-Results method results for SPF and DMARC (DKIM: to_method_results).
mail::MethodResult spf_method_result(const spf::Outcome& outcome, std::string_view property,
                                     std::string_view identity);
mail::MethodResult dmarc_method_result(const dmarc::Evaluation& evaluation,
                                       std::string_view from_domain);

}  // namespace dkim::inbound

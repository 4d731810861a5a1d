#pragma once
// What a listener does with the mail it takes: the question the transaction (transaction.hpp)
// asks at MAIL, at each RCPT, at the end of the header section, with each body chunk and at
// the end of data. Two answers: a signing listener (signing_policy.hpp: outbound mail from
// configured clients, signed through signerd) and a verifying one (verifying_policy.hpp:
// inbound mail, DKIM, SPF and DMARC checked, Authentication-Results added). The milter asks
// the same questions of the same policies.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/smtp/protocol.hpp"
#include "io.hpp"
#include "metrics.hpp"

namespace dkim::relayd {

// Which next hop a message goes to.
enum class Route : std::uint8_t { primary, quarantine };

// The client as the policy sees it.
struct Peer {
    std::string address_text;        // its IP address
    std::string helo;                // the EHLO/HELO argument
    const Client* client = nullptr;  // authenticated, else matched by address
    bool auth_offered = false;       // AUTH would be offered (it has not used it)
    bool starttls_first = false;     // STARTTLS is offered and not yet used
    std::string client_name() const { return client != nullptr ? client->name : "-"; }
};

// The policy's answer at the end of data: refuse the message, or forward it.
struct Delivery {
    std::optional<smtp::Reply> refusal;                               // set: not forwarded
    RelayMetrics::Outcome outcome = RelayMetrics::Outcome::rejected;  // of the refusal
    std::string prefix;                      // header fields put on top of the message
    std::optional<std::string> replacement;  // the message to forward, when it was rewritten
    Route route = Route::primary;
    std::string accepted;          // "Ok: signed": the 250's words
    std::string sign_state = "-";  // for the log: ok, locked:<id>, unavailable, ...
    std::string action;            // inbound, for the log: deliver, quarantine, ...
};

// A message's final reply, for metrics and the log line.
struct Conclusion {
    RelayMetrics::Outcome outcome = RelayMetrics::Outcome::rejected;
    int code = 0;
    std::string enhanced;
    std::string text;
    std::string sign_state = "-";
    std::string selectors = "-";
    std::string action;
    std::string next_hop;  // the next hop's answer, when it saw the message
    std::string from_domain = "-";
    std::uint64_t size = 0;
    std::chrono::steady_clock::duration latency{};
};

class MailPolicy {
  public:
    virtual ~MailPolicy() = default;
    // Whether this listener offers AUTH at all.
    virtual bool offers_auth() const = 0;
    // MAIL FROM, once its syntax and parameters are fine: nullopt to go on, or the refusal.
    virtual awaitable<std::optional<smtp::Reply>> mail(const Peer& peer,
                                                       const smtp::Path& sender) = 0;
    // RCPT TO: nullopt to go on, or the refusal; `counted` says whether it counts as an error.
    struct Refusal {
        smtp::Reply reply;
        bool counted = false;
    };
    virtual std::optional<Refusal> rcpt(const Peer& peer, const smtp::Path& recipient) = 0;
    // The header section (with its last CRLF), as soon as the empty line has come.
    virtual void end_of_header(const Peer& peer, std::string_view header_section) = 0;
    // The body as it arrives, in order, after end_of_header.
    virtual void body(std::string_view chunk) = 0;
    // The whole message (body_start: where its body begins).
    virtual awaitable<Delivery> end_of_data(const Peer& peer, const std::string& message,
                                            std::size_t body_start, bool eight_bit) = 0;
    // The log line of a message the policy decided on (end_of_data ran), or nullopt for the
    // transaction's own. `sequence` is the session's transaction number.
    virtual std::optional<std::string> log_line(const Peer& peer, const std::string& session_id,
                                                std::uint64_t sequence, std::size_t recipients,
                                                const Conclusion& c) const = 0;
    // Adds what the policy knows of the message to a conclusion for the log (its From:
    // domain and the selectors that signed).
    virtual void annotate(Conclusion& c) const = 0;
    // The transaction is over: what the policy kept of the message goes.
    virtual void reset() = 0;
    // The authenticated reporter of report mail (report_intake.hpp): the From domain when an
    // aligned DKIM signature on `message` verified (inbound::Verifier::authenticated_author),
    // otherwise empty. Only a verifying listener can tell; a failure is an empty answer, never
    // a refusal of the report.
    virtual awaitable<std::string> report_author(const std::string& /*message*/) {
        co_return std::string();
    }
};

}  // namespace dkim::relayd

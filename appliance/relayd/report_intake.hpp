#pragma once
// Report mail on the inbound listeners ([inbound.reports], issue 21): which recipients are report
// addresses, the hourly limits on report transactions, and the hand-over to dkim-reportd (its
// socket protocol: dkim/reports/channel.hpp) whose answer decides the reply to the final dot.
// The Transaction (transaction.hpp) sends a transaction whose first accepted recipient is a
// report address here, never to the listener's policy checks or a next hop; a transaction holds
// report addresses or other recipients, never both.
//
// relayd parses no report: the bytes go to dkim-reportd as they came (reportd runs the parsers
// as its own user, with no network), and 250 means reportd stored them durably. What relayd adds
// beside them is the reporter: the From domain when a DKIM signature aligned with it verified
// (the listener's inbound verifier, on its workers: MailPolicy::report_author), which reportd
// trusts only from relay and admin peers; a report without one is stored all the same.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/expected.hpp"
#include "dkim/reports/channel.hpp"
#include "dkim/smtp/protocol.hpp"
#include "io.hpp"
#include "metrics.hpp"

namespace dkim::relayd {

// dkim-reportd's answer to one submission, as the relay reads it.
struct ReportAnswer {
    enum class Kind : std::uint8_t {
        stored,      // {"ok":true,...}: stored durably
        invalid,     // {"ok":false,"code":"invalid"}: the sender should not try again
        unavailable  // unreachable, or any other refusal: the sender tries again later
    };
    Kind kind = Kind::unavailable;
    std::int64_t submission = 0;
    std::int64_t reports = 0;
    std::int64_t duplicates = 0;
    std::size_t errors = 0;  // parts reportd could not read as reports (stored all the same)
    std::string reason;      // not stored: reportd's code and error, or why it was not reached
};

// Reads reportd's answer, or the channel's failure to get one.
ReportAnswer read_report_answer(const Expected<reports::channel::Message, std::string>& answer);

// The client's reply to the final dot for `answer`: 250 2.0.0, 554 5.6.0 with reportd's reason
// (printable ASCII, one line) or 451 4.3.0 (nothing of the reason: it names local paths).
smtp::Reply report_reply(const ReportAnswer& answer);
RelayMetrics::ReportOutcome report_outcome(const ReportAnswer& answer);

// `text` as one line of printable ASCII of at most `max` bytes (other bytes become '?').
std::string printable_line(std::string_view text, std::size_t max = 200);

// Hands a message to dkim-reportd. The daemon's goes through the socket; tests use a fake.
class ReportSubmitter {
  public:
    virtual ~ReportSubmitter() = default;
    // `origin`: "smtp <client ip> <mail from> <helo>"; `message`: the bytes as received;
    // `reporter`: the authenticated reporter (MailPolicy::report_author), empty when the mail
    // was not authenticated. All outlive the call. Never throws: a failure is an answer of
    // kind unavailable.
    virtual awaitable<ReportAnswer> submit(const std::string& origin, const std::string& message,
                                           const std::string& reporter) = 0;
};

// The daemon's submitter: dkim_report_channel's Client, one connection per submission, run on
// `pool`. Why a blocking client on a pool rather than an asynchronous socket on the I/O thread:
// the channel's Client already frames, bounds and times out every read and write, and it is the
// client webd and the CLI use, so relayd speaks the protocol through the same tested code instead
// of a second implementation of it; report mail is rare (max_per_hour) and a submission waits on
// reportd's fsync and parsing anyway, so a thread per submission in flight costs nothing, and the
// pool is its own: a slow reportd never holds up the DNS checks of other inbound mail or the
// signing of outbound mail.
class ChannelSubmitter final : public ReportSubmitter {
  public:
    ChannelSubmitter(std::string socket, asio::thread_pool& pool,
                     std::chrono::milliseconds timeout);
    awaitable<ReportAnswer> submit(const std::string& origin, const std::string& message,
                                   const std::string& reporter) override;

  private:
    ReportAnswer call(const std::string& origin, const std::string& message,
                      const std::string& reporter) const;

    std::string socket_;
    asio::thread_pool& pool_;
    std::chrono::milliseconds timeout_;
};

// What the sessions of one relay share about report mail: the addresses, the submitter and the
// hourly counts. Thread-safe.
class ReportIntake {
  public:
    enum class Admission : std::uint8_t { admitted, client_limit, relay_limit };

    // `settings`, `submitter` and `clock` outlive the intake.
    ReportIntake(const ReportSettings& settings, ReportSubmitter& submitter, const Clock& clock);

    bool is_report_address(const smtp::Path& recipient) const {
        return settings_.is_report_address(recipient.local_part, recipient.domain);
    }
    // Counts one report transaction from `client_address` (the client's IP address as text),
    // unless it or all clients together had their limit in the last hour (a sliding window on
    // the Clock's monotonic time).
    Admission admit(std::string_view client_address);
    const ReportSettings& settings() const { return settings_; }
    ReportSubmitter& submitter() { return submitter_; }

  private:
    const ReportSettings& settings_;
    ReportSubmitter& submitter_;
    const Clock& clock_;
    std::mutex mutex_;
    // Every admission of the last hour, oldest first, with its client's key; per_client_ holds
    // the same admissions by key, so both shrink together and hold at most max_per_hour.
    std::deque<std::pair<MonotonicTime, std::string>> all_;
    std::map<std::string, std::size_t, std::less<>> per_client_;
};

// The key a client's report transactions are counted under: its IPv4 address, or the /64 of its
// IPv6 address (one host usually holds a whole /64); the text itself when it is not an address.
std::string report_rate_key(std::string_view address_text);

}  // namespace dkim::relayd

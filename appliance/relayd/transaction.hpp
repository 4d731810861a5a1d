#pragma once
// One client's SMTP dialogue without a socket (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
// ENHANCEDSTATUSCODES, STARTTLS, AUTH, SMTPUTF8): bytes in, replies out, time from a Clock.
// The session (session.hpp) owns the socket, TLS, deadlines and connection counts; it feeds
// what it reads to receive() and writes what take_output() returns. What differs between a
// signing and a verifying listener is a MailPolicy (policy.hpp), asked at MAIL, RCPT, the end
// of the header section, each body chunk and the end of data; the next hop sees MAIL, each
// RCPT and the message inside the client's transaction (next_hop.hpp).
//
// Command lines are limited in length and number, errors are counted, a bare CR or LF ends
// the session, and after "354" the bytes already received are the message's (the decoder
// decides where it ends, so a look-alike of the end of data cannot smuggle commands).
//
// On an inbound listener with report addresses ([inbound.reports], report_intake.hpp) a
// transaction is for reports or for mail, by its first accepted recipient: report addresses are
// taken from anyone, within their own size and hourly limits, and the message goes to
// dkim-reportd, never to the policy's checks or a next hop; the next hop hears MAIL only with the
// first other recipient, so that it never sees a report transaction.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth.hpp"
#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/smtp/protocol.hpp"
#include "io.hpp"
#include "metrics.hpp"
#include "next_hop.hpp"
#include "policy.hpp"
#include "report_intake.hpp"

namespace dkim::relayd {

// What the transaction needs from the outside: implemented by the session over a socket, by
// a fake in tests.
class TransactionHost {
  public:
    virtual ~TransactionHost() = default;
    // Sends the replies so far (before a step that may take a while: pipelined replies go
    // out first). false when the client cannot be written to: the session is over, and
    // nothing more of what it sent is passed on.
    virtual awaitable<bool> flush(std::string& output) = 0;
    // A session to the next hop for `route`.
    virtual std::shared_ptr<NextHopSession> next_hop(Route route) = 0;
    // Checks an AUTH password (blocking work: the session runs it on a worker).
    virtual awaitable<bool> verify_password(const Client* client, const std::string& password) = 0;
    // Where the log lines go (stderr in the daemon).
    virtual void log(const std::string& line) = 0;
};

// What the session knows about the connection.
struct ConnectionInfo {
    std::string id;                          // the session's id in log lines
    std::string address_text;                // the client's IP address
    const Client* network_client = nullptr;  // the [[client]] its address matches
    bool tls_offered = false;                // the listener has a certificate (STARTTLS)
    bool plain_auth = false;                 // AUTH allowed without TLS on this listener
};

class Transaction {
  public:
    // `reports`: the report addresses of an inbound listener with [inbound.reports], or null.
    Transaction(const Config& config, ConnectionInfo connection, MailPolicy& policy,
                TransactionHost& host, RelayMetrics& metrics, const Clock& clock,
                ReportIntake* reports = nullptr);
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction();

    // Takes bytes from the client and answers every complete command (and the message after
    // DATA) it finds in them. Stops early when the session must close or start TLS.
    awaitable<void> receive(std::string_view bytes);
    // The client closed the connection or stopped sending (`timed_out`): the replies for
    // that, and the transaction is abandoned.
    awaitable<void> input_ended(bool timed_out);
    // The session is over (after the last reply): an open transaction is abandoned and the
    // next hop told goodbye.
    awaitable<void> finish();

    // The replies not yet sent.
    std::string take_output() { return std::exchange(output_, {}); }
    bool closing() const { return closing_; }
    // Between "354" and the end of data (the session waits with the DATA timeout).
    bool in_data() const { return data_ != nullptr; }
    // After "220 Ready to start TLS": the session does the handshake, then calls
    // tls_started() (or closes). What the client sent after STARTTLS was dropped.
    bool tls_requested() const { return tls_requested_; }
    void tls_started();
    void tls_failed() { closing_ = true; }
    bool tls_active() const { return tls_active_; }

    // Whether AUTH is offered now (the policy allows it, a client has a password, and TLS is
    // on or plain AUTH is allowed).
    bool auth_offered() const;

  private:
    struct Envelope;
    struct DataState;

    awaitable<void> command(const std::string& line);
    awaitable<void> ehlo(const smtp::Command& c, bool extended);
    awaitable<void> mail(const smtp::Command& c);
    awaitable<void> rcpt(const smtp::Command& c);
    void data(const smtp::Command& c);
    void starttls(const smtp::Command& c);
    awaitable<void> auth(const smtp::Command& c);
    awaitable<void> auth_step(AuthExchange::Step step);
    // Feeds DATA bytes; true when the end of data was reached (and answered).
    awaitable<bool> feed_data();
    awaitable<void> end_of_data();
    // RCPT of a report address (the transaction is not for mail).
    void report_rcpt(const smtp::Path& recipient);
    // The next hop hears the transaction's MAIL (deferred with report addresses); false, with
    // the refusal replied, when it refused it.
    awaitable<bool> open_next_hop();
    // The final dot of a report transaction: dkim-reportd's answer is the reply.
    awaitable<void> report_end_of_data(Conclusion& c, MonotonicTime finished);
    bool report_transaction() const;
    // The largest message this transaction takes (a report transaction's is smaller).
    std::uint64_t message_limit() const;
    // Ends the transaction; the next hop hears RSET unless it answered the message already.
    awaitable<void> reset_transaction(bool next_hop_done = false);

    // host_.flush(); when the client is gone, closing() and false.
    awaitable<bool> send_now();
    void reply(int code, std::string_view enhanced, std::string_view text);
    void reply(const smtp::Reply& r);
    void close_after_reply(int code, std::string_view enhanced, std::string_view text);
    // Counts a client error; true when the session must end.
    bool error_counted();
    const Client* client() const {
        return auth_client_ != nullptr ? auth_client_ : connection_.network_client;
    }
    Peer peer() const;
    void log_transaction(const Conclusion& c);

    const Config& config_;
    ConnectionInfo connection_;
    MailPolicy& policy_;
    TransactionHost& host_;
    RelayMetrics& metrics_;
    const Clock& clock_;
    ReportIntake* reports_;

    smtp::LineBuffer in_;
    std::string output_;
    bool closing_ = false;
    bool tls_requested_ = false;
    bool tls_active_ = false;
    bool ehlo_ = false;
    bool greeted_ = false;
    std::string helo_name_;
    const Client* auth_client_ = nullptr;
    std::unique_ptr<AuthExchange> auth_;  // between a 334 and the client's answer
    std::size_t commands_ = 0;
    std::size_t errors_ = 0;
    std::size_t auth_failures_ = 0;
    std::uint64_t transactions_ = 0;
    std::unique_ptr<Envelope> envelope_;  // between MAIL and the end of the transaction
    std::unique_ptr<DataState> data_;     // between 354 and the end of data
    std::shared_ptr<NextHopSession> next_hop_;
};

// Where the header section of a message ends: header_end is the length of the header
// section with its last CRLF (0 when the message starts with the empty line), body_start
// the first byte of the body. nullopt while the empty line has not come; `scanned_from` lets
// a caller that feeds a growing message resume the search.
struct HeaderEnd {
    std::size_t header_end = 0;
    std::size_t body_start = 0;
};
std::optional<HeaderEnd> find_header_end(std::string_view message, std::size_t scanned_from = 0);

// Text from a peer (the next hop) or a refusal, made safe for one reply line.
std::string one_line(std::string_view text);

// The enhanced code of a next hop's refusal, or one made from its class.
std::string enhanced_or_default(const smtp::Reply& answer);

}  // namespace dkim::relayd

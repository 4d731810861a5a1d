#pragma once
// One client's SMTP session (RFC 5321 with PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES,
// STARTTLS, AUTH PLAIN/LOGIN, SMTPUTF8), as one coroutine on the relay's I/O thread.
//
// The transaction is forwarded as it happens (next_hop.hpp): MAIL and RCPT get the next
// hop's answers, the message is parsed and its body hashed while DATA arrives, signed
// through signerd at the final dot, and the client hears 250 only once the next hop accepted
// the signed message. Every wait has a deadline (RFC 5321 §4.5.3.2), every resource a limit.

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/inbound/verifier.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/smtp/protocol.hpp"
#include "io.hpp"
#include "metrics.hpp"
#include "next_hop.hpp"
#include "signing.hpp"

namespace dkim::relayd {

using IpAddress = std::array<unsigned char, 16>;

// What the sessions of one relay share. Touched only on the I/O thread, except the thread
// pool, the signing service and the metrics, which are thread-safe.
struct RelayContext {
    const Config& config;
    asio::thread_pool& workers;
    SigningService& signing;
    NextHopFactory next_hop;
    RelayMetrics& metrics;
    std::size_t connections = 0;
    std::map<IpAddress, std::size_t> per_address;
    std::uint64_t next_session = 0;
    std::uint64_t id_salt = 0;
    // Where plain-text sessions read into: there is one I/O thread, and a session copies the
    // bytes out before it waits again, so idle sessions hold no read buffer of their own.
    std::array<char, 65536> scratch{};
    // The verifying listeners (role = "inbound"), when [inbound] is configured: the checks
    // (thread-safe, run on the workers) and where their mail goes.
    const inbound::Verifier* inbound = nullptr;
    asio::thread_pool* inbound_workers = nullptr;
    NextHopFactory inbound_next_hop{};
    NextHopFactory quarantine_next_hop{};
};

// Verifies an AUTH password against a client's Argon2id hash (blocking; on a worker). An
// unknown client costs the same as a wrong password.
bool verify_client_password(const Client* client, std::string_view password);

class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(RelayContext& relay, const Listener& listener, ssl::context& tls, tcp::socket socket);
    ~Session();
    void start();

  private:
    struct Transaction {
        bool active = false;
        std::string sender;
        std::string sender_domain;
        std::vector<std::string> recipients;
        std::uint64_t declared_size = 0;
        bool eight_bit = false;
        bool smtputf8 = false;
        std::chrono::steady_clock::time_point started;
        std::optional<inbound::SpfResults> spf;  // inbound: checked at MAIL FROM
    };

    awaitable<void> run();
    awaitable<bool> greet();
    awaitable<void> command(const std::string& line);
    awaitable<void> ehlo(const smtp::Command& c, bool extended);
    awaitable<void> mail(const smtp::Command& c);
    awaitable<void> rcpt(const smtp::Command& c);
    awaitable<void> data(const smtp::Command& c);
    awaitable<void> starttls(const smtp::Command& c);
    awaitable<void> auth(const smtp::Command& c);
    awaitable<void> reset_transaction();
    // Inbound, after the final dot: the checks, then reject, quarantine or forward.
    awaitable<void> finish_inbound(std::uint64_t size, bool eight_bit);
    // Inbound quarantine = "next_hop": the transaction again, to the quarantine hop.
    awaitable<smtp::Reply> quarantine_to_next_hop(const std::string& prefix,
                                                  const std::string& message, bool eight_bit);

    // Reads more input; false on end of stream, error or timeout (then timed_out_ says so).
    awaitable<bool> fill(std::chrono::milliseconds timeout);
    awaitable<void> flush();
    // The next line for AUTH (after a 334); nullopt when the session must end.
    awaitable<std::optional<std::string>> read_line();
    void reply(int code, std::string_view enhanced, std::string_view text);
    void close_after_reply(int code, std::string_view enhanced, std::string_view text);
    // Counts a client error; true when the session must end.
    bool error_counted();
    std::chrono::milliseconds budget(std::chrono::milliseconds timeout) const;
    const Client* client() const {
        return auth_client_ != nullptr ? auth_client_ : network_client_;
    }
    std::string client_name() const;
    bool auth_offered() const;
    void log_inbound(const inbound::Verdict* verdict, std::uint64_t size, const std::string& action,
                     const std::string& next_hop, int reply_code);
    void log_transaction(const std::string& from_domain, std::uint64_t size,
                         const std::string& selectors, const std::string& signing,
                         const std::string& next_hop, int reply_code,
                         std::chrono::steady_clock::duration latency);

    RelayContext& relay_;
    const Config& config_;
    const Listener& listener_;
    Stream stream_;
    Watchdog watchdog_;
    IpAddress address_{};
    std::string address_text_;
    std::string id_;
    std::chrono::steady_clock::time_point session_end_;
    smtp::LineBuffer in_;
    std::string out_;
    std::unique_ptr<std::array<char, 16384>> tls_buffer_;  // once TLS is on
    const bool inbound_;     // a verifying listener: no AUTH, no signing
    std::string helo_name_;  // the EHLO/HELO argument, for SPF
    bool closing_ = false;
    bool timed_out_ = false;
    bool counted_ = false;
    bool ehlo_ = false;
    bool greeted_ = false;
    const Client* network_client_ = nullptr;
    const Client* auth_client_ = nullptr;
    std::size_t commands_ = 0;
    std::size_t errors_ = 0;
    std::size_t auth_failures_ = 0;
    std::uint64_t transactions_ = 0;
    Transaction txn_;
    std::shared_ptr<NextHopSession> next_hop_;
    std::string message_;
};

}  // namespace dkim::relayd

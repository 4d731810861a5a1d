#pragma once
// One client's connection, as one coroutine on the relay's I/O thread: the socket, TLS, the
// deadlines (RFC 5321 §4.5.3.2) and the connection limits. What is said on it is the
// Transaction's (transaction.hpp), with the listener's policy: signing (signing_policy.hpp)
// or verifying (verifying_policy.hpp).

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/inbound/verifier.hpp"
#include "io.hpp"
#include "metrics.hpp"
#include "next_hop.hpp"
#include "report_intake.hpp"
#include "signing.hpp"
#include "transaction.hpp"

namespace dkim::relayd {

using IpAddress = std::array<unsigned char, 16>;

// What the sessions of one relay share. Touched only on the I/O thread, except the thread
// pool, the signing service and the metrics, which are thread-safe.
struct RelayContext {
    const Config& config;
    asio::thread_pool& workers;
    SigningBackend& signing;
    NextHopFactory next_hop;
    RelayMetrics& metrics;
    const Clock& clock;
    std::size_t connections = 0;         // SMTP listeners'
    std::size_t milter_connections = 0;  // milter listeners' (the same limit, counted apart)
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
    // The report addresses of the inbound listeners ([inbound.reports]), or null.
    ReportIntake* reports = nullptr;
};

// A session's id in log lines: the relay's salt and the session's number, in hex.
std::string session_hex_id(std::uint64_t salt, std::uint64_t n);

class Session final : public std::enable_shared_from_this<Session>, public TransactionHost {
  public:
    Session(RelayContext& relay, const Listener& listener, ssl::context& tls, tcp::socket socket);
    ~Session() override;
    void start();

  private:
    awaitable<void> run();
    // The connection limits and the greeting (or the refusal).
    awaitable<bool> greet();
    // Reads more input into `got`; false on end of stream, error or timeout (then timed_out_
    // says so).
    awaitable<bool> fill(std::chrono::milliseconds timeout, std::string_view& got);
    awaitable<void> write(std::string& bytes);
    awaitable<void> starttls();
    std::chrono::milliseconds budget(std::chrono::milliseconds timeout) const;

    // TransactionHost
    awaitable<bool> flush(std::string& output) override;
    std::shared_ptr<NextHopSession> next_hop(Route route) override;
    awaitable<bool> verify_password(const Client* client, const std::string& password) override;
    void log(const std::string& line) override;

    RelayContext& relay_;
    const Config& config_;
    const Listener& listener_;
    Stream stream_;
    Watchdog watchdog_;
    IpAddress address_{};
    std::string address_text_;
    std::string id_;
    MonotonicTime session_end_;
    std::string out_;
    std::unique_ptr<std::array<char, 16384>> tls_buffer_;  // once TLS is on
    const bool inbound_;   // a verifying listener: no AUTH, no signing
    bool broken_ = false;  // a write failed
    bool timed_out_ = false;
    bool counted_ = false;
    std::unique_ptr<MailPolicy> policy_;
    std::unique_ptr<Transaction> transaction_;
};

}  // namespace dkim::relayd

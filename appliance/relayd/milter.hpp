#pragma once
// The milter listener (protocol = "milter"): Postfix or Sendmail hands each message to the
// relay over the milter protocol (version 6, dkim/milter/protocol.hpp) instead of relaying it,
// and the relay answers with the header fields to add. The same policies as the SMTP listeners
// decide (policy.hpp): mail of a configured [[client]] (by the client address the MTA reports,
// or the SMTP AUTH user it reports in {auth_authen}) whose From: domains that client may sign
// for is signed through signerd (SigningPolicy: same grants, profile and audit); other mail is
// verified when the listener's role takes inbound mail (VerifyingPolicy: one
// Authentication-Results field, forged ones removed), otherwise it passes untouched.
//
// What the MTA keeps: without a grant the answer is 451 4.7.0 with the elevation request's id,
// and with signerd unreachable 451 4.3.0, so the MTA keeps the mail and retries (the relay's
// 451); nothing is ever accepted unsigned that was to be signed. The DKIM-Signature fields go
// on top (INSHEADER at 0), the Authentication-Results field too; nothing else of the message
// changes.
//
// MilterConversation is the protocol without a socket (bytes in, replies out, as Transaction
// is for SMTP); MilterSession owns the socket, the deadlines and the connection count. A
// malformed packet, a packet over the limit or a message over [limits] message_size ends that
// connection only (the MTA then applies its milter_default_action to the message).
//
// SECURITY: the MTA's statements (the client's address, the AUTH user) decide what is signed,
// so whoever can connect to the listener can have mail signed as any configured client: a
// milter listener is a loopback address or a Unix socket the MTA's group alone may open.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/milter/protocol.hpp"
#include "io.hpp"
#include "metrics.hpp"
#include "policy.hpp"
#include "session.hpp"
#include "signing_policy.hpp"
#include "verifying_policy.hpp"

namespace dkim::relayd {

// What the conversation needs from the outside: the socket in the daemon, a fake in tests.
class MilterHost {
  public:
    virtual ~MilterHost() = default;
    // Sends the replies so far (before a step that waits on signerd or DNS); false when the
    // MTA cannot be written to.
    virtual awaitable<bool> flush(std::string& output) = 0;
    virtual void log(const std::string& line) = 0;
};

// The policies a milter connection may use: signing (outbound or both roles) and verifying
// (inbound or both, when [inbound] is configured). Either may be null.
struct MilterPolicies {
    SigningPolicy* signing = nullptr;
    VerifyingPolicy* verifying = nullptr;
};

// The largest packet the listener takes (command byte included): body chunks are at most 64
// KiB, but a header field may be as long as the MTA allows one (Postfix: header_size_limit,
// 100 KiB by default).
inline constexpr std::size_t kMilterMaxPacket = std::size_t{1} << 20;
// Header fields a message may have (each costs the policies' parsers: message_size alone let
// a 3 MiB message of a million empty fields take 300 MiB), and forged Authentication-Results
// fields it may carry (each removal costs the MTA a pass over the header).
inline constexpr std::size_t kMilterMaxFields = mail::kMaxHeaderFields;
inline constexpr std::size_t kMilterMaxForgedResults = 64;
// How long the MTA may stay silent between two packets. It sends nothing while its SMTP client
// is slow (in DATA) or idles with NOOPs, and may keep a connection for a whole SMTP session:
// a short deadline here would end the milter under a healthy session, and Postfix then applies
// milter_default_action to that message and every later one of the session. libmilter waits
// 7210 s; so does this (no cap on the connection's lifetime: only the MTAs of
// allowed_networks/allowed_users connect, and their connections have a count of their own).
inline constexpr std::chrono::seconds kMilterIdleTimeout{7210};

class MilterConversation {
  public:
    MilterConversation(const Config& config, std::string id, MilterPolicies policies,
                       MilterHost& host, RelayMetrics& metrics, const Clock& clock);
    MilterConversation(const MilterConversation&) = delete;
    MilterConversation& operator=(const MilterConversation&) = delete;
    ~MilterConversation();

    // Takes bytes from the MTA and answers every complete packet in them.
    awaitable<void> receive(std::string_view bytes);
    // The MTA closed the connection or went quiet (`timed_out`): a message in progress is
    // abandoned (the MTA applies its default action to it).
    void input_ended(bool timed_out);
    std::string take_output() { return std::exchange(output_, {}); }
    bool closing() const { return closing_; }
    // Between MAIL and the end of the message.
    bool in_message() const { return message_ != nullptr; }
    // Part of a packet has arrived: the rest is due within the command timeout.
    bool mid_packet() const { return reader_.buffered() > 0; }

  private:
    struct Message;
    enum class Mode : std::uint8_t { pass, sign, verify };

    awaitable<void> packet(const milter::Packet& p);
    void negotiate(std::string_view data);
    void connect(std::string_view data);
    void macros(std::string_view data);
    awaitable<void> mail(std::string_view data);
    void header(std::string_view data);
    void end_of_header();
    void body(std::string_view chunk);
    awaitable<void> end_of_body(std::string_view chunk);
    // The message is over (answered, aborted or the connection ended).
    void end_message();
    // Writes the removal of each Authentication-Results field that claims our authserv-id (in
    // every mode: a client's message delivered here must not carry results in our name), or,
    // past kMilterMaxForgedResults, a 550 that ends the message: false then.
    bool remove_forged_results();
    // A message in progress is given up (ABORT, QUIT, an error): counted as aborted, ended.
    void abandon_message();
    // Answers a step unless the MTA was told it needs no answer.
    void answer(std::uint32_t no_reply_step, char reply);
    void fail(const std::string& why);
    void log_message(const char* outcome, const std::string& detail, int code);
    Peer peer() const;

    const Config& config_;
    std::string id_;
    MilterPolicies policies_;
    MilterHost& host_;
    RelayMetrics& metrics_;
    const Clock& clock_;

    milter::PacketReader reader_{kMilterMaxPacket};
    std::string output_;
    bool closing_ = false;
    bool negotiated_ = false;
    std::uint32_t steps_ = 0;    // the protocol steps agreed on
    std::uint32_t actions_ = 0;  // the actions agreed on
    std::string ours_;           // [inbound] authserv_id, lower case, no trailing dot
    std::string hostname_;       // the client's, as the MTA resolved it
    std::string address_text_;   // the client's IP address ("" when unknown)
    const Client* network_client_ = nullptr;
    std::string helo_;
    std::string auth_user_;  // {auth_authen} of the last MAIL stage's macros
    std::string queue_id_;   // the MTA's queue id ("i"), for the log
    std::uint64_t messages_ = 0;
    std::unique_ptr<Message> message_;
};

// Why a peer may not use a milter listener, or "" when it may: a TCP peer by its address
// (allowed_networks), a Unix socket's by its user (allowed_users, SO_PEERCRED).
std::string milter_refusal(const Listener& listener, tcp::socket& socket);
std::string milter_refusal(const Listener& listener, asio::local::stream_protocol::socket& socket);

// One MTA connection, as one coroutine on the relay's I/O thread: the socket, the deadlines
// ([limits] command_timeout between messages, data_timeout inside one, session_timeout in
// all) and the connection count ([limits] connections; an MTA's connections are not limited
// per address, they all come from it).
class MilterSession final : public std::enable_shared_from_this<MilterSession>, public MilterHost {
  public:
    // `refusal`: why the peer may not use the listener (milter_refusal), empty when it may.
    MilterSession(RelayContext& relay, const Listener& listener,
                  asio::generic::stream_protocol::socket socket, const std::string& refusal);
    ~MilterSession() override;
    void start();

  private:
    awaitable<void> run();
    awaitable<void> write(std::string& bytes);

    // MilterHost
    awaitable<bool> flush(std::string& output) override;
    void log(const std::string& line) override;

    RelayContext& relay_;
    asio::generic::stream_protocol::socket socket_;
    Watchdog watchdog_;
    std::string id_;
    bool tcp_ = true;
    MonotonicTime packet_due_{};  // when the packet whose first bytes came must be whole
    bool allowed_ = false;        // the peer is one of the listener's MTAs
    bool counted_ = false;
    bool broken_ = false;
    bool timed_out_ = false;
    std::unique_ptr<SigningPolicy> signing_;
    std::unique_ptr<VerifyingPolicy> verifying_;
    std::unique_ptr<MilterConversation> conversation_;
};

}  // namespace dkim::relayd

#pragma once
// The next hop, inside the client's transaction: MAIL and each RCPT are passed on as they
// arrive and their replies go back to the client; the signed message is handed over at the
// client's final dot, and the client hears 250 only after the next hop said 250. Nothing is
// stored: a failure anywhere is a 4xx or 5xx to the client, which keeps the message.
//
// Implementations: SMTP (STARTTLS required, opportunistic or off; certificate checks as
// configured) and a maildir (the demo's default: tmp/ -> new/ with fsync). Unit tests use a
// fake (the Transport seam of ARCHITECTURE.md).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/smtp/protocol.hpp"
#include "io.hpp"

namespace dkim::relayd {

struct MailCommand {
    std::string reverse_path;         // address without brackets; empty for <>
    std::uint64_t declared_size = 0;  // SIZE=, 0 when not declared
    bool eight_bit = false;           // BODY=8BITMIME
    bool smtputf8 = false;
};

class NextHopSession {
  public:
    virtual ~NextHopSession() = default;
    // Connects (or reuses the open session) and sends MAIL FROM.
    virtual awaitable<smtp::Reply> mail(const MailCommand& command) = 0;
    virtual awaitable<smtp::Reply> rcpt(const std::string& forward_path) = 0;
    // DATA, then `prefix` (the new DKIM-Signature fields) and `message` (the client's message,
    // CRLF lines, not dot-stuffed), then the end of data. The reply is the final one.
    virtual awaitable<smtp::Reply> data(const std::string& prefix, const std::string& message,
                                        bool eight_bit) = 0;
    // Abandons the open transaction (RSET); the session stays usable.
    virtual awaitable<void> reset() = 0;
    // QUIT and close; the last call on a session.
    virtual awaitable<void> quit() = 0;
    virtual std::string describe() const = 0;
};

using NextHopFactory = std::function<std::shared_ptr<NextHopSession>(const asio::any_io_executor&)>;

// Sessions to `hop` (which must outlive the factory), greeting it as `hostname`. `blocking`
// runs the maildir's writes and fsyncs; `clock` (which must outlive the factory) names the
// maildir's files.
NextHopFactory make_next_hop(const NextHop& hop, const std::string& hostname,
                             asio::thread_pool& blocking, ssl::context& client_tls,
                             const Clock& clock);

// A reply made here rather than by a peer.
smtp::Reply local_reply(int code, std::string enhanced, std::string text);

// Writes one message to a maildir: tmp/<unique>, fsync, rename to new/, fsync new/. Returns
// the file name (made unique with `now`, the pid and a counter), or why it failed (errno text).
Expected<std::string, std::string> deliver_to_maildir(const std::string& maildir,
                                                      const std::vector<std::string_view>& parts,
                                                      TimePoint now);

}  // namespace dkim::relayd

#include "session.hpp"

#include <sodium.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <cstdio>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/base64.hpp"
#include "dkim/mail/address.hpp"
#include "dkim/text/json.hpp"

namespace dkim::relayd {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string hex_id(std::uint64_t salt, std::uint64_t n) {
    char buffer[40];
    (void)std::snprintf(buffer, sizeof buffer, "%06llx%06llx",
                        static_cast<unsigned long long>(salt & 0xffffff),
                        static_cast<unsigned long long>(n & 0xffffff));
    return buffer;
}

// Text from a peer (the next hop) or a refusal, safe to put into one reply line.
std::string one_line(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 400)) {
        out.push_back(c == '\r' || c == '\n' ? ' ' : c);
    }
    return out;
}

}  // namespace

bool verify_client_password(const Client* client, std::string_view password) {
    // An Argon2id hash of a random password that nobody knows: unknown names cost the same.
    static const std::string dummy = [] {
        std::array<char, crypto_pwhash_STRBYTES> out{};
        std::array<unsigned char, 32> random{};
        randombytes_buf(random.data(), random.size());
        if (crypto_pwhash_str(out.data(), reinterpret_cast<const char*>(random.data()),
                              random.size(), crypto_pwhash_OPSLIMIT_MIN,
                              crypto_pwhash_MEMLIMIT_MIN) != 0) {
            return std::string();
        }
        return std::string(out.data());
    }();
    const std::string& hash =
        client != nullptr && !client->password_hash.empty() ? client->password_hash : dummy;
    const bool ok = crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
    return ok && client != nullptr && !client->password_hash.empty();
}

Session::Session(RelayContext& relay, const Listener& listener, ssl::context& tls,
                 tcp::socket socket)
    : relay_(relay),
      config_(relay.config),
      listener_(listener),
      stream_(std::move(socket), tls),
      watchdog_(stream_.socket().get_executor()),
      in_(relay.config.limits.command_line),
      inbound_(listener.role == Listener::Role::inbound && relay.inbound != nullptr) {
    error_code ec;
    const auto remote = stream_.socket().remote_endpoint(ec);
    if (!ec) {
        const auto ip = remote.address();
        address_text_ = ip.to_string();
        if (ip.is_v4()) {
            address_ = asio::ip::make_address_v6(asio::ip::v4_mapped, ip.to_v4()).to_bytes();
        } else {
            address_ = ip.to_v6().to_bytes();
        }
    }
    stream_.socket().set_option(tcp::no_delay(true), ec);
    stream_.socket().non_blocking(true, ec);
    id_ = hex_id(relay_.id_salt, ++relay_.next_session);
    network_client_ = config_.client_for(address_);
}

Session::~Session() {
    if (counted_) {
        --relay_.connections;
        auto it = relay_.per_address.find(address_);
        if (it != relay_.per_address.end() && --it->second == 0) {
            relay_.per_address.erase(it);
        }
        relay_.metrics.connection_closed();
    }
}

void Session::start() {
    auto self = shared_from_this();
    asio::co_spawn(
        stream_.socket().get_executor(),
        [self]() -> awaitable<void> {
            // First the pending operation is cancelled so that the session can say 421; if that
            // write does not finish either, the next expiry closes the socket.
            const std::function<void()> on_expiry = [self] {
                if (self->timed_out_) {
                    self->stream_.close();
                } else {
                    self->timed_out_ = true;
                    self->stream_.cancel();
                }
            };
            co_await self->watchdog_.run(on_expiry);
        },
        asio::detached);
    asio::co_spawn(
        stream_.socket().get_executor(),
        [self]() -> awaitable<void> {
            try {
                co_await self->run();
            } catch (const std::exception& e) {
                (void)std::fprintf(stderr, "dkim-relayd: session %s: %s\n", self->id_.c_str(),
                                   e.what());
            }
            if (self->next_hop_) {
                try {
                    co_await self->next_hop_->quit();
                } catch (const std::exception&) {
                }
            }
            self->stream_.close();
            self->watchdog_.stop();
        },
        asio::detached);
}

std::chrono::milliseconds Session::budget(std::chrono::milliseconds timeout) const {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(session_end_ - Clock::now());
    return std::max(std::min(timeout, left), 1ms);
}

awaitable<bool> Session::fill(std::chrono::milliseconds timeout) {
    co_await flush();
    if (closing_) {
        co_return false;
    }
    watchdog_.arm(budget(timeout));
    error_code ec;
    std::size_t n = 0;
    const char* data = nullptr;
    if (stream_.tls()) {
        if (!tls_buffer_) {
            tls_buffer_ = std::make_unique<std::array<char, 16384>>();
        }
        n = co_await stream_.read_some(asio::buffer(*tls_buffer_), ec);
        data = tls_buffer_->data();
    } else {
        // Wait until readable, then read without blocking into the shared scratch buffer.
        do {
            co_await stream_.socket().async_wait(tcp::socket::wait_read,
                                                 asio::redirect_error(asio::use_awaitable, ec));
            if (!ec) {
                n = stream_.socket().read_some(asio::buffer(relay_.scratch), ec);
            }
        } while (ec == asio::error::would_block || ec == asio::error::try_again);
        data = relay_.scratch.data();
    }
    watchdog_.disarm();
    if (ec || n == 0) {
        co_return false;
    }
    relay_.metrics.bytes_in(n);
    in_.append(std::string_view(data, n));
    co_return true;
}

awaitable<void> Session::flush() {
    if (out_.empty()) {
        co_return;
    }
    watchdog_.arm(budget(config_.limits.command_timeout));
    error_code ec;
    co_await stream_.write(out_, ec);
    watchdog_.disarm();
    out_.clear();
    if (ec) {
        closing_ = true;
    }
}

void Session::reply(int code, std::string_view enhanced, std::string_view text) {
    out_ += smtp::format_reply(code, enhanced, text);
}

void Session::close_after_reply(int code, std::string_view enhanced, std::string_view text) {
    reply(code, enhanced, text);
    closing_ = true;
}

bool Session::error_counted() {
    if (++errors_ >= config_.limits.errors) {
        close_after_reply(421, "4.7.0", config_.hostname + " Too many errors; closing");
        return true;
    }
    return false;
}

std::string Session::client_name() const {
    const Client* c = client();
    return c != nullptr ? c->name : "-";
}

bool Session::auth_offered() const {
    if (inbound_) {
        return false;
    }
    const bool any_password = std::any_of(config_.clients.begin(), config_.clients.end(),
                                          [](const Client& c) { return !c.password_hash.empty(); });
    return any_password && (stream_.tls() || listener_.plain_auth);
}

// --- the session -----------------------------------------------------------------------------

awaitable<bool> Session::greet() {
    const auto& limits = config_.limits;
    relay_.metrics.connection_opened();
    counted_ = true;
    ++relay_.connections;
    const std::size_t from_here = ++relay_.per_address[address_];
    if (relay_.connections > limits.connections) {
        relay_.metrics.connection_refused();
        close_after_reply(421, "4.7.0",
                          config_.hostname + " Too many connections; try again later");
        co_return false;
    }
    if (from_here > limits.connections_per_client) {
        relay_.metrics.connection_refused();
        close_after_reply(
            421, "4.7.0",
            config_.hostname + " Too many connections from your address; try again later");
        co_return false;
    }
    if (limits.greeting_delay > 0ms) {
        // Early talkers (RFC 5321 §4.3.1: the client waits for the greeting) are refused.
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer timer(stream_.socket().get_executor());
        timer.expires_after(limits.greeting_delay);
        error_code ec;
        const auto first =
            co_await (stream_.socket().async_wait(tcp::socket::wait_read,
                                                  asio::redirect_error(asio::use_awaitable, ec)) ||
                      timer.async_wait(asio::redirect_error(asio::use_awaitable, ec)));
        if (first.index() == 0) {
            relay_.metrics.connection_refused();
            close_after_reply(554, "5.5.1", "Protocol error: data sent before the greeting");
            co_return false;
        }
    }
    reply(220, "", config_.hostname + " ESMTP dkim-relayd");
    co_return true;
}

awaitable<void> Session::run() {
    session_end_ = Clock::now() + config_.limits.session_timeout;
    if (co_await greet()) {
        std::string line;
        while (!closing_) {
            const auto status = in_.next_line(line);
            if (status == smtp::LineBuffer::Status::line) {
                co_await command(line);
                continue;
            }
            if (status == smtp::LineBuffer::Status::too_long) {
                close_after_reply(500, "5.5.6", "Command line too long; closing");
                break;
            }
            if (status == smtp::LineBuffer::Status::bare_newline) {
                close_after_reply(521, "5.5.2",
                                  "Bare CR or LF in a command line; lines end in CRLF only");
                break;
            }
            if (!co_await fill(config_.limits.command_timeout)) {
                if (timed_out_) {
                    timed_out_ = false;
                    watchdog_.reset_expired();
                    close_after_reply(421, "4.4.2", config_.hostname + " Timeout; closing");
                }
                break;
            }
        }
    }
    if (txn_.active) {
        relay_.metrics.transaction(RelayMetrics::Outcome::aborted);
    }
    co_await flush();
}

awaitable<void> Session::command(const std::string& line) {
    const smtp::Command c = smtp::parse_command(line);
    if (++commands_ > config_.limits.commands) {
        close_after_reply(421, "4.7.0", config_.hostname + " Too many commands; closing");
        co_return;
    }
    switch (c.verb) {
        case smtp::Verb::ehlo: co_await ehlo(c, true); break;
        case smtp::Verb::helo: co_await ehlo(c, false); break;
        case smtp::Verb::mail: co_await mail(c); break;
        case smtp::Verb::rcpt: co_await rcpt(c); break;
        case smtp::Verb::data: co_await data(c); break;
        case smtp::Verb::starttls: co_await starttls(c); break;
        case smtp::Verb::auth: co_await auth(c); break;
        case smtp::Verb::rset:
            co_await reset_transaction();
            reply(250, "2.0.0", "Ok");
            break;
        case smtp::Verb::noop: reply(250, "2.0.0", "Ok"); break;
        case smtp::Verb::quit:
            close_after_reply(221, "2.0.0", config_.hostname + " Bye");
            co_await reset_transaction();
            break;
        case smtp::Verb::help:
            reply(214, "2.0.0",
                  "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
            break;
        case smtp::Verb::vrfy:
            // No disclosure (RFC 5321 §3.5.3 allows 252).
            reply(252, "2.5.0", "Cannot VRFY; send mail and delivery will be attempted");
            break;
        case smtp::Verb::expn: reply(502, "5.5.1", "EXPN is not available"); break;
        case smtp::Verb::bdat:
            if (!error_counted()) {
                reply(502, "5.5.1", "BDAT (CHUNKING) is not offered; use DATA");
            }
            break;
        case smtp::Verb::unknown:
            if (!error_counted()) {
                reply(500, "5.5.2", "Command not recognized");
            }
            break;
    }
}

awaitable<void> Session::ehlo(const smtp::Command& c, bool extended) {
    if (c.argument.empty() || c.argument.size() > 255) {
        if (!error_counted()) {
            reply(501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        }
        co_return;
    }
    co_await reset_transaction();
    greeted_ = true;
    ehlo_ = extended;
    helo_name_ = c.argument;
    if (!extended) {
        reply(250, "", config_.hostname);
        co_return;
    }
    std::vector<std::string> lines{config_.hostname,
                                   "PIPELINING",
                                   "SIZE " + std::to_string(config_.limits.message_size),
                                   "8BITMIME",
                                   "ENHANCEDSTATUSCODES",
                                   "SMTPUTF8"};
    if (listener_.tls() && !stream_.tls()) {
        lines.emplace_back("STARTTLS");
    }
    if (auth_offered() && auth_client_ == nullptr) {
        lines.emplace_back("AUTH PLAIN LOGIN");
    }
    out_ += smtp::format_reply(250, "", lines);
}

awaitable<void> Session::reset_transaction() {
    if (txn_.active && next_hop_) {
        co_await next_hop_->reset();
    }
    txn_ = Transaction{};
    message_.clear();
    if (message_.capacity() > (std::size_t{1} << 20)) {
        message_.shrink_to_fit();
    }
}

awaitable<void> Session::mail(const smtp::Command& c) {
    if (!greeted_) {
        reply(503, "5.5.1", "Send EHLO first");
        co_return;
    }
    if (txn_.active) {
        reply(503, "5.5.1", "Nested MAIL command");
        co_return;
    }
    auto path = smtp::parse_mail_from(c.argument);
    if (!path) {
        if (!error_counted()) {
            reply(501, "5.1.7", "Bad sender address syntax: " + path.error().message);
        }
        co_return;
    }
    Transaction t;
    for (const auto& p : path->parameters) {
        if (p.keyword == "SIZE" && p.value) {
            const auto& v = *p.value;
            if (v.empty() || v.size() > 15 ||
                !std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
                reply(501, "5.5.4", "Malformed SIZE parameter");
                co_return;
            }
            t.declared_size = std::stoull(v);
        } else if (p.keyword == "BODY" && p.value &&
                   (mail::iequals(*p.value, "8BITMIME") || mail::iequals(*p.value, "7BIT"))) {
            t.eight_bit = mail::iequals(*p.value, "8BITMIME");
        } else if (p.keyword == "SMTPUTF8" && !p.value && ehlo_) {
            t.smtputf8 = true;
        } else if (p.keyword == "AUTH" && p.value && smtp::decode_xtext(*p.value)) {
            // RFC 4954 §5: accepted; the relay does not pass on identities it cannot vouch for.
        } else {
            reply(555, "5.5.4", "Unsupported MAIL parameter " + p.keyword.substr(0, 20));
            co_return;
        }
    }
    if (t.declared_size > config_.limits.message_size) {
        reply(552, "5.3.4",
              "Message size exceeds the limit of " + std::to_string(config_.limits.message_size) +
                  " bytes");
        co_return;
    }
    if (path->utf8 && !t.smtputf8) {
        reply(553, "5.6.7", "Non-ASCII addresses need the SMTPUTF8 parameter (RFC 6531)");
        co_return;
    }
    if (inbound_) {
        // SPF now, for both identities (the result waits for DMARC at the final dot). Its DNS
        // lookups block: they run on the workers.
        const auto ip = net::IpAddress::parse(address_text_);
        if (!ip) {
            reply(451, "4.3.0", "Cannot read the client address");
            co_return;
        }
        const inbound::Envelope envelope{*ip, helo_name_, path->address};
        const inbound::Envelope* e = &envelope;
        const inbound::Verifier* verifier = relay_.inbound;
        t.spf = co_await run_blocking(*relay_.inbound_workers, [verifier, e] {
            const auto now = std::chrono::system_clock::now().time_since_epoch();
            return verifier->check_spf(
                *e, std::chrono::duration_cast<std::chrono::seconds>(now).count());
        });
        if (!next_hop_) {
            next_hop_ = relay_.inbound_next_hop(stream_.socket().get_executor());
        }
    }
    const Client* who = inbound_ ? nullptr : client();
    if (inbound_) {
        // Anyone may send to the domains received for (rcpt() checks them).
    } else if (who == nullptr) {
        if (auth_offered()) {
            reply(530, "5.7.0", "Authentication required");
        } else if (listener_.tls() && !stream_.tls()) {
            reply(530, "5.7.0", "Must issue a STARTTLS command first, then authenticate");
        } else {
            reply(554, "5.7.1", "Relay access denied: your address is not a configured client");
        }
        co_return;
    }
    if (!inbound_ && !path->address.empty() && !who->allows(path->domain)) {
        reply(550, "5.7.1",
              "Client " + who->name + " may not send mail from the domain " + path->domain);
        co_return;
    }
    if (!next_hop_) {
        next_hop_ = relay_.next_hop(stream_.socket().get_executor());
    }
    co_await flush();  // the next hop may take a while: pipelined replies go out first
    const MailCommand command{path->address, t.declared_size, t.eight_bit, t.smtputf8};
    const auto answer = co_await next_hop_->mail(command);
    if (!answer.positive()) {
        reply(answer.code,
              answer.enhanced.empty() ? (answer.code < 500 ? "4.4.0" : "5.0.0") : answer.enhanced,
              "Next hop: " + one_line(answer.text));
        co_return;
    }
    t.active = true;
    t.sender = path->address;
    t.sender_domain = path->domain;
    t.started = Clock::now();
    txn_ = std::move(t);
    reply(250, "2.1.0", "Sender OK");
}

awaitable<void> Session::rcpt(const smtp::Command& c) {
    if (!txn_.active) {
        reply(503, "5.5.1", "Need MAIL before RCPT");
        co_return;
    }
    auto path = smtp::parse_rcpt_to(c.argument);
    if (!path) {
        if (!error_counted()) {
            reply(501, "5.1.3", "Bad recipient address syntax: " + path.error().message);
        }
        co_return;
    }
    if (!path->parameters.empty()) {
        reply(555, "5.5.4",
              "Unsupported RCPT parameter " + path->parameters[0].keyword.substr(0, 20));
        co_return;
    }
    if (path->utf8 && !txn_.smtputf8) {
        reply(553, "5.6.7", "Non-ASCII addresses need the SMTPUTF8 parameter (RFC 6531)");
        co_return;
    }
    if (txn_.recipients.size() >= config_.limits.recipients) {
        reply(452, "4.5.3", "Too many recipients");
        co_return;
    }
    // Inbound: only the configured domains (and the local <Postmaster>, RFC 5321 §4.5.1).
    if (inbound_ && !path->domain.empty() && !config_.inbound->accepts(path->domain)) {
        if (!error_counted()) {
            reply(550, "5.7.1",
                  "Relaying denied: " + path->domain.substr(0, 255) +
                      " is not a domain this server receives mail for");
        }
        co_return;
    }
    co_await flush();
    const auto answer = co_await next_hop_->rcpt(path->address);
    if (!answer.positive()) {
        reply(answer.code,
              answer.enhanced.empty() ? (answer.code < 500 ? "4.4.0" : "5.0.0") : answer.enhanced,
              "Next hop: " + one_line(answer.text));
        co_return;
    }
    txn_.recipients.push_back(path->address);
    reply(250, "2.1.5", "Recipient OK");
}

awaitable<void> Session::data(const smtp::Command& c) {
    if (!txn_.active) {
        reply(503, "5.5.1", "Need MAIL before DATA");
        co_return;
    }
    if (txn_.recipients.empty()) {
        reply(554, "5.5.1", "No valid recipients");
        co_return;
    }
    if (!c.argument.empty()) {
        reply(501, "5.5.4", "Syntax: DATA");
        co_return;
    }
    reply(354, "", "End data with <CR><LF>.<CR><LF>");
    co_await flush();

    const auto& limits = config_.limits;
    smtp::DataDecoder decoder(limits.line_length);
    message_.clear();
    message_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(
        txn_.declared_size > 0 ? txn_.declared_size + 1024 : 65536, limits.message_size)));
    // The header section is parsed once its empty line arrives; from then on the body is
    // hashed as it comes.
    std::optional<mail::HeaderBlock> header;
    std::string header_error;
    std::vector<std::string> from_domains;
    std::unique_ptr<MessageSigning> signing;
    const SigningDomain* signing_domain = nullptr;
    std::size_t body_start = 0;
    std::size_t hashed = 0;
    std::size_t scanned = 0;
    auto parse_header = [&](std::size_t header_end) {
        auto parsed = mail::HeaderBlock::parse(message_.substr(0, header_end));
        if (!parsed) {
            header_error = "Malformed header section: " + parsed.error().to_string();
            return;
        }
        header = std::move(*parsed);
        const auto from = header->find_all("From");
        if (from.size() != 1) {
            header_error = "The message needs exactly one From: field (it has " +
                           std::to_string(from.size()) + ")";
            return;
        }
        auto domains = mail::mailbox_domains(header->unfolded_value(from[0]));
        if (!domains) {
            header_error = "Unusable From: field: " + domains.error();
            return;
        }
        from_domains = std::move(*domains);
        signing_domain = config_.domain(from_domains.front());
        if (signing_domain != nullptr) {
            signing = relay_.signing.start(*signing_domain, client_name());
        }
    };
    auto progress = [&]() {
        if (decoder.oversized() || inbound_) {
            return;  // inbound messages are checked whole, after the final dot
        }
        if (!header && header_error.empty()) {
            // The empty line: CRLF at the very start, or CRLF CRLF.
            if (message_.starts_with("\r\n")) {
                parse_header(0);
                body_start = 2;
            } else {
                const std::size_t from = scanned >= 3 ? scanned - 3 : 0;
                const std::size_t end = message_.find("\r\n\r\n", from);
                scanned = message_.size();
                if (end != std::string::npos) {
                    parse_header(end + 2);
                    body_start = end + 4;
                }
            }
            hashed = body_start;
        }
        if (signing && message_.size() > hashed) {
            signing->update_body(std::string_view(message_).substr(hashed));
            hashed = message_.size();
        }
    };

    smtp::DataDecoder::Result result;
    while (true) {
        const std::string_view pending = in_.pending();
        if (!pending.empty()) {
            result = decoder.feed(pending, message_, static_cast<std::size_t>(limits.message_size));
            in_.consume(result.consumed);
            progress();
            if (result.status != smtp::DataDecoder::Status::more) {
                break;
            }
        }
        if (!co_await fill(limits.data_timeout)) {
            // The client left or stalled: nothing was sent to the next hop; it keeps the mail.
            relay_.metrics.transaction(RelayMetrics::Outcome::aborted);
            log_transaction(from_domains.empty() ? "-" : from_domains.front(), decoder.size(), "-",
                            "-", "-", timed_out_ ? 421 : 0, Clock::now() - txn_.started);
            if (timed_out_) {
                timed_out_ = false;
                watchdog_.reset_expired();
                close_after_reply(421, "4.4.2", config_.hostname + " Timeout in DATA; closing");
            } else {
                closing_ = true;
            }
            co_await reset_transaction();
            co_await reset_transaction();
            co_return;
        }
    }
    const auto finished = Clock::now();
    // The reply to the final dot, its metrics and log line. The caller then ends the
    // transaction (a plain function: GCC 12 mishandles temporaries in co_await expressions).
    auto conclude = [&](RelayMetrics::Outcome outcome, int code, std::string_view enhanced,
                        const std::string& text, const std::string& sign_state,
                        const std::string& hop_state) {
        reply(code, enhanced, text);
        relay_.metrics.transaction(outcome);
        relay_.metrics.transaction_latency().observe(Clock::now() - finished);
        std::string selectors = "-";
        if (signing) {
            selectors.clear();
            for (const auto& name : signing->selectors()) {
                selectors += (selectors.empty() ? "" : ",") + name;
            }
        }
        log_transaction(from_domains.empty() ? "-" : from_domains.front(), decoder.size(),
                        selectors, sign_state, hop_state, code, Clock::now() - txn_.started);
        if (!hop_state.empty()) {
            txn_.active = false;  // the next hop answered the message: its transaction is over
        }
    };

    if (result.status == smtp::DataDecoder::Status::bare_newline) {
        relay_.metrics.transaction(RelayMetrics::Outcome::rejected);
        close_after_reply(521, "5.5.2",
                          "Bare CR or LF in the message; lines end in CRLF only (RFC 5321 §2.3.8)");
        co_await reset_transaction();
        co_await reset_transaction();
        co_return;
    }
    if (decoder.oversized()) {
        conclude(
            RelayMetrics::Outcome::rejected, 552, "5.3.4",
            "Message size exceeds the limit of " + std::to_string(limits.message_size) + " bytes",
            "-", "");
        co_await reset_transaction();
        co_return;
    }
    if (decoder.line_too_long()) {
        conclude(RelayMetrics::Outcome::rejected, 550, "5.6.0",
                 "A line is longer than " + std::to_string(limits.line_length) +
                     " octets (RFC 5322 §2.1.1); it would not reach the recipient with a "
                     "valid signature",
                 "-", "");
        co_await reset_transaction();
        co_return;
    }
    if (inbound_) {
        co_await finish_inbound(decoder.size(), decoder.eight_bit());
        co_return;
    }
    if (!header && header_error.empty()) {
        parse_header(message_.size());  // all header, no body
        body_start = hashed = message_.size();
    }
    if (!header_error.empty()) {
        conclude(RelayMetrics::Outcome::rejected, 554, "5.6.0", header_error, "-", "");
        co_await reset_transaction();
        co_return;
    }
    const Client* who = client();
    for (const auto& d : from_domains) {
        if (who == nullptr || !who->allows(d)) {
            conclude(RelayMetrics::Outcome::rejected, 550, "5.7.1",
                     "Client " + client_name() + " may not send mail with From: domain " + d, "-",
                     "");
            co_await reset_transaction();
            co_return;
        }
    }
    if (signing_domain == nullptr) {  // allowed domains are signing domains (config check)
        conclude(RelayMetrics::Outcome::rejected, 550, "5.7.1",
                 "No signing keys for " + from_domains.front(), "-", "");
        co_await reset_transaction();
        co_return;
    }
    const auto sign_started = Clock::now();
    if (!signing) {
        // The public keys were not cached yet: fetch them, then hash the body now.
        SigningService& service = relay_.signing;
        const SigningDomain& domain = *signing_domain;
        auto prepared = co_await run_blocking(
            relay_.workers, [&service, &domain] { return service.prepare(domain); });
        if (prepared) {
            signing = relay_.signing.start(*signing_domain, client_name());
        }
        if (!signing) {
            conclude(RelayMetrics::Outcome::deferred_signer, 451, "4.3.0",
                     "Signing is unavailable: " +
                         one_line(prepared ? "no public key" : prepared.error().message),
                     "unavailable", "");
            co_await reset_transaction();
            co_return;
        }
        signing->update_body(std::string_view(message_).substr(body_start));
    }
    MessageSigning* s = signing.get();
    const mail::HeaderBlock* h = &*header;
    auto fields = co_await run_blocking(
        relay_.workers, [s, h] { return s->finish(*h, std::chrono::system_clock::now()); });
    relay_.metrics.signing_latency().observe(Clock::now() - sign_started);
    if (!fields) {
        const SignFailure& f = fields.error();
        switch (f.kind) {
            case SignFailure::Kind::locked:
                conclude(RelayMetrics::Outcome::deferred_grant, 451, "4.7.0",
                         "Signing for " + signing_domain->name +
                             " is awaiting approval (elevation request " +
                             std::to_string(f.request_id) + "); try again later",
                         "locked:" + std::to_string(f.request_id), "");
                break;
            case SignFailure::Kind::self_check:
            case SignFailure::Kind::unavailable:
            case SignFailure::Kind::refused:
                conclude(
                    RelayMetrics::Outcome::deferred_signer, 451,
                    f.kind == SignFailure::Kind::refused ? "4.3.5" : "4.3.0",
                    "Signing failed: " + one_line(f.message),
                    f.kind == SignFailure::Kind::self_check ? "self-check-failed" : "unavailable",
                    "");
                break;
        }
        co_await reset_transaction();
        co_return;
    }
    const auto answer = co_await next_hop_->data(*fields, message_, decoder.eight_bit());
    if (answer.positive()) {
        relay_.metrics.bytes_out(fields->size() + message_.size());
        conclude(RelayMetrics::Outcome::delivered, 250, "2.0.0",
                 "Ok: signed and accepted by the next hop: " + one_line(answer.summary()), "ok",
                 answer.summary());
    } else {
        conclude(
            answer.code < 500 ? RelayMetrics::Outcome::deferred_hop
                              : RelayMetrics::Outcome::rejected,
            answer.code,
            answer.enhanced.empty() ? (answer.code < 500 ? "4.4.0" : "5.0.0") : answer.enhanced,
            "Next hop: " + one_line(answer.text), "ok", answer.summary());
    }
    co_await reset_transaction();
}

awaitable<void> Session::starttls(const smtp::Command& c) {
    if (!listener_.tls()) {
        reply(502, "5.5.1", "STARTTLS is not offered here");
        co_return;
    }
    if (stream_.tls()) {
        reply(503, "5.5.1", "TLS is already active");
        co_return;
    }
    if (!c.argument.empty()) {
        reply(501, "5.5.4", "Syntax: STARTTLS");
        co_return;
    }
    if (txn_.active) {
        reply(503, "5.5.1", "A mail transaction is in progress");
        co_return;
    }
    reply(220, "2.0.0", "Ready to start TLS");
    co_await flush();
    // Whatever the client pipelined after STARTTLS was sent in clear text: it must not be
    // taken as coming through TLS (CVE-2011-0411).
    in_ = smtp::LineBuffer(config_.limits.command_line);
    watchdog_.arm(budget(config_.limits.command_timeout));
    error_code ec;
    co_await stream_.handshake(ssl::stream_base::server, ec);
    watchdog_.disarm();
    if (ec) {
        closing_ = true;
        co_return;
    }
    // RFC 3207 §4.2: forget everything learnt before TLS.
    greeted_ = false;
    ehlo_ = false;
    auth_client_ = nullptr;
}

awaitable<std::optional<std::string>> Session::read_line() {
    std::string line;
    while (true) {
        const auto status = in_.next_line(line);
        if (status == smtp::LineBuffer::Status::line) {
            co_return line;
        }
        if (status != smtp::LineBuffer::Status::need_more) {
            close_after_reply(500, "5.5.6", "Malformed line; closing");
            co_return std::nullopt;
        }
        if (!co_await fill(config_.limits.command_timeout)) {
            closing_ = true;
            co_return std::nullopt;
        }
    }
}

awaitable<void> Session::auth(const smtp::Command& c) {
    if (!ehlo_) {
        reply(503, "5.5.1", "Send EHLO first");
        co_return;
    }
    if (auth_client_ != nullptr) {
        reply(503, "5.5.1", "Already authenticated");
        co_return;
    }
    if (txn_.active) {
        reply(503, "5.5.1", "AUTH is not allowed in a mail transaction");
        co_return;
    }
    if (!stream_.tls() && !listener_.plain_auth) {
        reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
        co_return;
    }
    if (!auth_offered()) {
        reply(502, "5.5.1", "AUTH is not offered here");
        co_return;
    }
    const std::size_t space = c.argument.find(' ');
    const std::string mechanism = c.argument.substr(0, space);
    std::string initial = space == std::string::npos ? "" : c.argument.substr(space + 1);
    std::string user;
    std::string password;
    auto decode = [&](std::string& encoded) -> std::optional<std::string> {
        if (encoded == "*") {
            reply(501, "5.0.0", "Authentication cancelled");
            return std::nullopt;
        }
        auto decoded =
            encoded == "=" ? std::optional<std::string>("") : crypto::base64_decode(encoded);
        base::wipe(encoded);
        if (!decoded) {
            reply(501, "5.5.2", "Invalid base64 data");
        }
        return decoded;
    };
    auto ask = [&](std::string_view prompt) -> awaitable<std::optional<std::string>> {
        reply(334, "", prompt);
        auto line = co_await read_line();
        if (!line) {
            co_return std::nullopt;
        }
        auto decoded = decode(*line);
        co_return decoded;
    };
    if (mail::iequals(mechanism, "PLAIN")) {
        std::optional<std::string> response;
        if (!initial.empty()) {
            response = decode(initial);
        } else {
            response = co_await ask("");
        }
        if (!response) {
            co_return;
        }
        // authzid NUL authcid NUL passwd (RFC 4616)
        const std::size_t first = response->find('\0');
        const std::size_t second =
            first == std::string::npos ? std::string::npos : response->find('\0', first + 1);
        if (second == std::string::npos) {
            base::wipe(*response);
            reply(501, "5.5.2", "Malformed PLAIN response");
            co_return;
        }
        const std::string authzid = response->substr(0, first);
        user = response->substr(first + 1, second - first - 1);
        password = response->substr(second + 1);
        base::wipe(*response);
        if (!authzid.empty() && authzid != user) {
            base::wipe(password);
            reply(535, "5.7.8", "Authentication credentials invalid");
            co_return;
        }
    } else if (mail::iequals(mechanism, "LOGIN")) {
        std::optional<std::string> name;
        if (!initial.empty()) {
            name = decode(initial);
        } else {
            name = co_await ask("VXNlcm5hbWU6");  // "Username:"
        }
        if (!name) {
            co_return;
        }
        user = std::move(*name);
        auto secret = co_await ask("UGFzc3dvcmQ6");  // "Password:"
        if (!secret) {
            co_return;
        }
        password = std::move(*secret);
    } else {
        base::wipe(initial);
        reply(504, "5.5.4", "Unrecognized authentication mechanism (PLAIN or LOGIN)");
        co_return;
    }
    const Client* candidate = config_.client(user);
    co_await flush();
    std::string* secret = &password;
    const bool ok = co_await run_blocking(
        relay_.workers, [candidate, secret] { return verify_client_password(candidate, *secret); });
    base::wipe(password);
    if (!ok) {
        if (++auth_failures_ >= config_.limits.auth_failures) {
            close_after_reply(421, "4.7.0", config_.hostname + " Too many failed authentications");
        } else {
            reply(535, "5.7.8", "Authentication credentials invalid");
        }
        co_return;
    }
    auth_client_ = candidate;
    reply(235, "2.7.0", "Authentication successful");
}

// --- inbound ---------------------------------------------------------------------------------

awaitable<void> Session::finish_inbound(std::uint64_t size, bool eight_bit) {
    const auto finished = Clock::now();
    const inbound::Verifier* verifier = relay_.inbound;
    const inbound::SpfResults* spf = &*txn_.spf;
    const std::string* message = &message_;
    const inbound::Verdict verdict =
        co_await run_blocking(*relay_.inbound_workers, [verifier, spf, message] {
            return verifier->finish(*spf, *message, std::chrono::system_clock::now());
        });
    relay_.metrics.inbound_latency().observe(Clock::now() - finished);
    relay_.metrics.inbound_checked(static_cast<std::size_t>(verdict.dmarc.result),
                                   static_cast<std::size_t>(verdict.action));
    auto done = [&](RelayMetrics::Outcome outcome, int code, std::string_view enhanced,
                    const std::string& text, const std::string& action,
                    const std::string& hop_state) {
        reply(code, enhanced, text);
        relay_.metrics.transaction(outcome);
        relay_.metrics.transaction_latency().observe(Clock::now() - finished);
        log_inbound(&verdict, size, action, hop_state, code);
        if (!hop_state.empty()) {
            txn_.active = false;
        }
    };
    if (verdict.action == inbound::Action::reject) {
        done(RelayMetrics::Outcome::rejected, 550, "5.7.1", one_line(verdict.why), "reject", "");
        co_await reset_transaction();
        co_return;
    }
    // Forged results first: every Authentication-Results field claiming our authserv-id goes.
    std::size_t header_end = message_.find("\r\n\r\n");
    header_end = message_.starts_with("\r\n")      ? 0
                 : header_end == std::string::npos ? message_.size()
                                                   : header_end + 2;
    auto header = mail::HeaderBlock::parse(message_.substr(0, header_end));
    if (!header) {
        done(RelayMetrics::Outcome::rejected, 554, "5.6.0",
             "Malformed header section: " + header.error().to_string(), "reject", "");
        co_await reset_transaction();
        co_return;
    }
    std::size_t forged = 0;
    std::string forwarded =
        mail::strip_authentication_results(*header, config_.inbound->authserv_id, forged);
    forwarded.append(message_, header_end, std::string::npos);
    std::string prefix = verdict.authentication_results;
    const bool quarantine = verdict.action == inbound::Action::quarantine &&
                            config_.inbound->quarantine != Quarantine::off;
    if (quarantine && config_.inbound->quarantine == Quarantine::header) {
        prefix += std::string(kQuarantineHeader) + ": " + one_line(verdict.why) + "\r\n";
    }
    smtp::Reply answer;
    if (quarantine && config_.inbound->quarantine == Quarantine::next_hop) {
        answer = co_await quarantine_to_next_hop(prefix, forwarded, eight_bit);
    } else {
        answer = co_await next_hop_->data(prefix, forwarded, eight_bit);
    }
    const std::string action = quarantine ? "quarantine" : "deliver";
    if (answer.positive()) {
        relay_.metrics.bytes_out(prefix.size() + forwarded.size());
        done(RelayMetrics::Outcome::delivered, 250, "2.0.0",
             std::string(quarantine ? "Ok: quarantined" : "Ok: verified") +
                 " and accepted by the next hop: " + one_line(answer.summary()),
             action, answer.summary());
    } else {
        done(answer.code < 500 ? RelayMetrics::Outcome::deferred_hop
                               : RelayMetrics::Outcome::rejected,
             answer.code,
             answer.enhanced.empty() ? (answer.code < 500 ? "4.4.0" : "5.0.0") : answer.enhanced,
             "Next hop: " + one_line(answer.text), action, answer.summary());
    }
    co_await reset_transaction();
}

awaitable<smtp::Reply> Session::quarantine_to_next_hop(const std::string& prefix,
                                                       const std::string& message, bool eight_bit) {
    // The primary hop's transaction is abandoned; the quarantine hop gets MAIL, every RCPT
    // and the message. Any refusal there is the client's answer: nothing is lost.
    co_await next_hop_->reset();
    txn_.active = false;
    auto hop = relay_.quarantine_next_hop(stream_.socket().get_executor());
    const MailCommand command{txn_.sender, txn_.declared_size, txn_.eight_bit, txn_.smtputf8};
    smtp::Reply answer = co_await hop->mail(command);
    for (std::size_t i = 0; answer.positive() && i < txn_.recipients.size(); ++i) {
        answer = co_await hop->rcpt(txn_.recipients[i]);
    }
    if (answer.positive()) {
        answer = co_await hop->data(prefix, message, eight_bit);
    } else if (answer.code >= 500) {
        // A refusal by the quarantine hop must not become a permanent bounce of the message.
        answer = local_reply(451, "4.3.0", "Quarantine refused the transaction: " + answer.text);
    }
    co_await hop->quit();
    co_return answer;
}

void Session::log_inbound(const inbound::Verdict* verdict, std::uint64_t size,
                          const std::string& action, const std::string& next_hop, int reply_code) {
    std::string dkim;
    for (const auto& s : verdict->dkim) {
        dkim += (dkim.empty() ? "" : ",") + std::string(mail::to_string(s.result));
    }
    (void)std::fprintf(
        stderr,
        "dkim-relayd: inbound id=%s.%llu ip=%s helo=%s mail_from_domain=%s from_domain=%s "
        "size=%llu rcpts=%zu spf=%s dkim=%s dmarc=%s action=%s next_hop=%s reply=%d\n",
        id_.c_str(), static_cast<unsigned long long>(++transactions_), address_text_.c_str(),
        text::json_quote(helo_name_).c_str(),
        verdict->spf.mail_from.domain.empty() ? "-" : verdict->spf.mail_from.domain.c_str(),
        verdict->from_domain.empty() ? "-" : verdict->from_domain.c_str(),
        static_cast<unsigned long long>(size), txn_.recipients.size(),
        std::string(spf::to_string(verdict->spf.mail_from.result)).c_str(),
        dkim.empty() ? "none" : dkim.c_str(),
        std::string(dmarc::to_string(verdict->dmarc.result)).c_str(), action.c_str(),
        text::json_quote(next_hop.empty() ? "-" : next_hop).c_str(), reply_code);
}

void Session::log_transaction(const std::string& from_domain, std::uint64_t size,
                              const std::string& selectors, const std::string& signing,
                              const std::string& next_hop, int reply_code,
                              std::chrono::steady_clock::duration latency) {
    const double ms = static_cast<double>(
                          std::chrono::duration_cast<std::chrono::microseconds>(latency).count()) /
                      1000.0;
    (void)std::fprintf(
        stderr,
        "dkim-relayd: txn id=%s.%llu client=%s ip=%s from_domain=%s size=%llu rcpts=%zu "
        "selectors=%s sign=%s next_hop=%s reply=%d latency_ms=%.3f\n",
        id_.c_str(), static_cast<unsigned long long>(++transactions_), client_name().c_str(),
        address_text_.c_str(), from_domain.c_str(), static_cast<unsigned long long>(size),
        txn_.recipients.size(), selectors.c_str(), signing.c_str(),
        text::json_quote(next_hop.empty() ? "-" : next_hop).c_str(), reply_code, ms);
}

}  // namespace dkim::relayd

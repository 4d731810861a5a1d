#include "next_hop.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <system_error>

#include "dkim/mail/header.hpp"

namespace dkim::relayd {

smtp::Reply local_reply(int code, std::string enhanced, std::string text) {
    smtp::Reply r;
    r.code = code;
    r.enhanced = std::move(enhanced);
    r.text = std::move(text);
    return r;
}

// --- maildir -------------------------------------------------------------------------------

namespace {

std::string errno_text(int error) {
    return std::generic_category().message(error);
}

bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool fsync_directory(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

std::string unique_name(TimePoint now) {
    static std::atomic<std::uint64_t> counter{0};
    static const std::uint64_t salt = std::random_device{}();
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0) {
        host = {'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't'};
    }
    std::string hostname(host.data());
    // Maildir names may not hold '/' or ':'.
    for (char& c : hostname) {
        if (c == '/' || c == ':') {
            c = '_';
        }
    }
    const auto since = now.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since).count();
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(since).count() % 1000000;
    char buffer[128];
    (void)std::snprintf(buffer, sizeof buffer, "%lld.M%lldP%dQ%lluR%llx.",
                        static_cast<long long>(seconds), static_cast<long long>(micros),
                        static_cast<int>(::getpid()), static_cast<unsigned long long>(++counter),
                        static_cast<unsigned long long>(salt));
    return buffer + hostname;
}

}  // namespace

Expected<std::string, std::string> deliver_to_maildir(const std::string& maildir,
                                                      const std::vector<std::string_view>& parts,
                                                      TimePoint now) {
    for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
        const std::string dir = maildir + sub;
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
            return unexpected("cannot create " + dir + ": " + errno_text(errno));
        }
    }
    const std::string name = unique_name(now);
    const std::string tmp = maildir + "/tmp/" + name;
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return unexpected("cannot create " + tmp + ": " + errno_text(errno));
    }
    bool ok = true;
    for (const auto part : parts) {
        ok = ok && write_all(fd, part);
    }
    int error = ok ? 0 : errno;
    if (ok && ::fsync(fd) != 0) {
        ok = false;
        error = errno;
    }
    if (::close(fd) != 0 && ok) {
        ok = false;
        error = errno;
    }
    if (!ok) {
        ::unlink(tmp.c_str());
        return unexpected("cannot write " + tmp + ": " + errno_text(error));
    }
    const std::string target = maildir + "/new/" + name;
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
        error = errno;
        ::unlink(tmp.c_str());
        return unexpected("cannot move the message into " + maildir + "/new: " + errno_text(error));
    }
    if (!fsync_directory(maildir + "/new")) {
        // The message is in new/ but perhaps not durably: take it back so that the client,
        // which will hear 4xx, does not cause a second copy when it retries.
        error = errno;
        ::unlink(target.c_str());
        return unexpected("cannot sync " + maildir + "/new: " + errno_text(error));
    }
    return name;
}

namespace {

class MaildirNextHop final : public NextHopSession {
  public:
    MaildirNextHop(std::string path, asio::thread_pool& blocking, const Clock& clock)
        : path_(std::move(path)), blocking_(blocking), clock_(clock) {}

    awaitable<smtp::Reply> mail(const MailCommand& command) override {
        sender_ = command.reverse_path;
        recipients_.clear();
        co_return local_reply(250, "2.1.0", "Sender OK");
    }
    awaitable<smtp::Reply> rcpt(const std::string& forward_path) override {
        recipients_.push_back(forward_path);
        co_return local_reply(250, "2.1.5", "Recipient OK");
    }
    awaitable<smtp::Reply> data(const std::string& prefix, const std::string& message,
                                bool /*eight_bit*/) override {
        // What an MDA adds: the envelope, on top (not covered by any signature).
        std::string envelope = "Return-Path: <" + sender_ + ">\r\n";
        for (const auto& r : recipients_) {
            envelope += "Delivered-To: " + r + "\r\n";
        }
        const std::vector<std::string_view> parts{envelope, prefix, message};
        const TimePoint now = clock_.now();
        auto delivered =
            co_await run_blocking(blocking_, [&] { return deliver_to_maildir(path_, parts, now); });
        recipients_.clear();
        if (!delivered) {
            co_return local_reply(451, "4.3.0", "maildir delivery failed: " + delivered.error());
        }
        co_return local_reply(250, "2.0.0", "Ok: delivered as " + *delivered);
    }
    awaitable<void> reset() override {
        recipients_.clear();
        co_return;
    }
    awaitable<void> quit() override { co_return; }
    std::string describe() const override { return "maildir:" + path_; }

  private:
    std::string path_;
    asio::thread_pool& blocking_;
    const Clock& clock_;
    std::string sender_;
    std::vector<std::string> recipients_;
};

// --- SMTP ----------------------------------------------------------------------------------

class SmtpNextHop final : public NextHopSession, public std::enable_shared_from_this<SmtpNextHop> {
  public:
    SmtpNextHop(const asio::any_io_executor& executor, const NextHop& hop,
                const std::string& hostname, ssl::context& tls_context)
        : executor_(executor),
          hop_(hop),
          hostname_(hostname),
          tls_context_(tls_context),
          watchdog_(executor) {}

    awaitable<smtp::Reply> mail(const MailCommand& command) override {
        const bool reused = stream_ != nullptr;
        if (!stream_) {
            auto opened = co_await open();
            if (!opened.positive()) {
                co_return opened;
            }
        }
        std::string line = "MAIL FROM:<" + command.reverse_path + ">";
        if (command.declared_size > 0 && size_) {
            line += " SIZE=" + std::to_string(command.declared_size);
        }
        if (command.eight_bit && eight_bit_mime_) {
            line += " BODY=8BITMIME";
        }
        if (command.smtputf8) {
            if (!smtputf8_) {
                co_return local_reply(553, "5.6.7",
                                      "the next hop does not support SMTPUTF8 (RFC 6531)");
            }
            line += " SMTPUTF8";
        }
        auto reply = co_await command_reply(line, hop_.command_timeout);
        if (reused && !stream_ && !timed_out_) {
            // The kept session was closed by the next hop while idle (its own timeout): no
            // transaction was open there, so a new session can safely try once more.
            auto opened = co_await open();
            if (!opened.positive()) {
                co_return opened;
            }
            reply = co_await command_reply(line, hop_.command_timeout);
        }
        co_return reply;
    }

    awaitable<smtp::Reply> rcpt(const std::string& forward_path) override {
        if (!stream_) {
            co_return broken_;
        }
        const std::string line = "RCPT TO:<" + forward_path + ">";
        co_return co_await command_reply(line, hop_.command_timeout);
    }

    awaitable<smtp::Reply> data(const std::string& prefix, const std::string& message,
                                bool eight_bit) override {
        if (!stream_) {
            co_return broken_;
        }
        if (eight_bit && !eight_bit_mime_) {
            co_await reset();
            co_return local_reply(554, "5.6.3",
                                  "the message has 8-bit data and the next hop does not accept "
                                  "8BITMIME");
        }
        auto go_ahead = co_await command_reply("DATA", hop_.command_timeout);
        if (go_ahead.code != 354) {
            if (go_ahead.positive()) {
                fail("unexpected reply to DATA: " + go_ahead.summary());
                co_return broken_;
            }
            co_await reset();  // the next hop's transaction is still open
            co_return go_ahead;
        }
        std::string stuffed;
        smtp::dot_stuff(prefix, stuffed);
        smtp::dot_stuff(message, stuffed);
        if (!stuffed.empty() && !stuffed.ends_with("\r\n")) {
            stuffed += "\r\n";  // the end-of-data line must start on a line of its own
        }
        stuffed += ".\r\n";
        co_return co_await command_reply(stuffed, hop_.data_timeout, false);
    }

    awaitable<void> reset() override {
        if (stream_) {
            (void)co_await command_reply("RSET", hop_.command_timeout);
        }
    }

    awaitable<void> quit() override {
        if (stream_) {
            (void)co_await command_reply("QUIT", std::chrono::seconds(5));
        }
        close();
        // The end of this session: the watchdog's coroutine (which holds us) ends too.
        watchdog_.stop();
    }

    std::string describe() const override { return hop_.describe(); }

  private:
    // Connects, reads the greeting, EHLO, STARTTLS as configured.
    awaitable<smtp::Reply> open() {
        const std::string where = hop_.describe();
        stream_ = std::make_unique<Stream>(tcp::socket(executor_), tls_context_);
        if (!watchdog_running_) {
            watchdog_running_ = true;
            asio::co_spawn(
                executor_,
                [self = shared_from_this()]() -> awaitable<void> {
                    const std::function<void()> on_expiry = [self] {
                        if (self->stream_) {
                            self->stream_->close();
                        }
                    };
                    co_await self->watchdog_.run(on_expiry);
                },
                asio::detached);
        }
        error_code ec;
        tcp::resolver resolver(executor_);
        watchdog_.arm(hop_.connect_timeout);
        const std::string port = std::to_string(hop_.port);
        const auto endpoints = co_await resolver.async_resolve(
            hop_.host, port, asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
            co_await asio::async_connect(stream_->socket(), endpoints,
                                         asio::redirect_error(asio::use_awaitable, ec));
        }
        if (ec) {
            const bool timed_out = watchdog_.expired();
            close();
            co_return local_reply(
                451, timed_out ? "4.4.2" : "4.4.1",
                where + " unreachable: " +
                    (timed_out ? std::string("connection timed out") : ec.message()));
        }
        stream_->socket().set_option(tcp::no_delay(true), ec);
        auto greeting = co_await read_reply(hop_.command_timeout);
        if (greeting.code != 220) {
            co_return failed_open(greeting, "greeting");
        }
        auto hello = co_await ehlo();
        if (!hello.positive()) {
            co_return failed_open(hello, "EHLO");
        }
        if (hop_.tls != TlsMode::off && (starttls_ || hop_.tls == TlsMode::required)) {
            if (!starttls_) {
                close();
                co_return local_reply(451, "4.7.5",
                                      where +
                                          " does not offer STARTTLS, which the "
                                          "configuration requires");
            }
            auto ready = co_await command_reply("STARTTLS", hop_.command_timeout);
            if (ready.code != 220) {
                co_return failed_open(ready, "STARTTLS");
            }
            // Nothing may follow the 220 in clear text: the next hop waits for our TLS
            // handshake. Bytes already here (after the 220 in the reply buffer, or waiting in
            // the socket) were put there by someone on the path, to be read later as replies to
            // commands sent over TLS (a forged 250 or 550; the CVE-2011-0411 class, the other
            // way round). They end the session: 4xx, and the client keeps the message.
            error_code waiting_ec;
            const std::size_t waiting = stream_->socket().available(waiting_ec);
            if (input_.has_pending() || waiting > 0 || waiting_ec) {
                close();
                co_return local_reply(451, "4.7.5",
                                      where +
                                          " sent clear text after its 220 to STARTTLS "
                                          "(response injection?): session ended");
            }
            input_ = smtp::LineBuffer(4096);
            // RFC 3207 §4.2: nothing learnt before TLS counts; EHLO again over TLS below.
            size_ = eight_bit_mime_ = smtputf8_ = starttls_ = false;
            auto& tls = stream_->tls_stream();
            if (!hop_.server_name.empty()) {
                // SSL_set_tlsext_host_name, without the macro's C cast.
                SSL_ctrl(tls.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                         TLSEXT_NAMETYPE_host_name, const_cast<char*>(hop_.server_name.c_str()));
            }
            if (hop_.verify_certificate) {
                tls.set_verify_mode(ssl::verify_peer);
                tls.set_verify_callback(ssl::host_name_verification(hop_.server_name));
            } else {
                tls.set_verify_mode(ssl::verify_none);
            }
            watchdog_.arm(hop_.command_timeout);
            co_await stream_->handshake(ssl::stream_base::client, ec);
            if (ec) {
                close();
                co_return local_reply(451, "4.7.5",
                                      "TLS with " + where + " failed: " + ec.message());
            }
            hello = co_await ehlo();
            if (!hello.positive()) {
                co_return failed_open(hello, "EHLO after STARTTLS");
            }
        }
        co_return hello;
    }

    smtp::Reply failed_open(const smtp::Reply& reply, const char* step) {
        close();
        if (reply.code >= 400 && !reply.text.empty() && reply.code != 451) {
            return local_reply(reply.code < 500 ? 451 : 554, reply.code < 500 ? "4.4.0" : "5.4.0",
                               std::string(step) + " refused: " + reply.summary());
        }
        return local_reply(451, "4.4.0",
                           hop_.describe() + " failed at " + step + ": " + reply.summary());
    }

    awaitable<smtp::Reply> ehlo() {
        const std::string ehlo_line = "EHLO " + hostname_;
        auto reply = co_await command_reply(ehlo_line, hop_.command_timeout);
        if (reply.code >= 500 && stream_) {
            size_ = eight_bit_mime_ = smtputf8_ = starttls_ = false;
            const std::string helo_line = "HELO " + hostname_;
            co_return co_await command_reply(helo_line, hop_.command_timeout);
        }
        if (reply.positive()) {
            size_ = eight_bit_mime_ = smtputf8_ = starttls_ = false;
            for (std::size_t i = 1; i < reply.lines.size(); ++i) {
                const std::string keyword = reply.lines[i].substr(0, reply.lines[i].find(' '));
                if (mail::iequals(keyword, "SIZE")) {
                    size_ = true;
                } else if (mail::iequals(keyword, "8BITMIME")) {
                    eight_bit_mime_ = true;
                } else if (mail::iequals(keyword, "SMTPUTF8")) {
                    smtputf8_ = true;
                } else if (mail::iequals(keyword, "STARTTLS")) {
                    starttls_ = true;
                }
            }
        }
        co_return reply;
    }

    // Sends `text` (a command without CRLF, or raw data when !is_command) and reads the reply.
    // (GCC 12 may destroy a temporary with a destructor twice when it is part of a co_await
    // expression: arguments here are named objects or string literals, never temporaries.)
    awaitable<smtp::Reply> command_reply(std::string_view text, std::chrono::milliseconds timeout,
                                         bool is_command = true) {
        error_code ec;
        watchdog_.arm(timeout);
        if (is_command) {
            std::string line(text);
            line += "\r\n";
            co_await stream_->write(line, ec);
        } else {
            co_await stream_->write(text, ec);
        }
        if (ec) {
            fail(watchdog_.expired() ? "timed out sending" : "cannot send: " + ec.message());
            co_return broken_;
        }
        co_return co_await read_reply(timeout);
    }

    awaitable<smtp::Reply> read_reply(std::chrono::milliseconds timeout) {
        smtp::ReplyParser parser;
        std::string line;
        watchdog_.arm(timeout);
        while (stream_) {
            const auto status = input_.next_line(line);
            if (status == smtp::LineBuffer::Status::line) {
                auto reply = parser.add_line(line);
                if (!reply) {
                    fail("malformed reply: " + reply.error());
                    break;
                }
                if (*reply) {
                    watchdog_.disarm();
                    co_return std::move(**reply);
                }
                continue;
            }
            if (status != smtp::LineBuffer::Status::need_more) {
                fail(status == smtp::LineBuffer::Status::too_long ? "reply line too long"
                                                                  : "bare CR or LF in a reply");
                break;
            }
            error_code ec;
            const std::size_t n = co_await stream_->read_some(asio::buffer(buffer_), ec);
            if (ec) {
                fail(watchdog_.expired() ? "timed out waiting for a reply"
                                         : "connection lost: " + ec.message());
                break;
            }
            input_.append(std::string_view(buffer_.data(), n));
        }
        co_return broken_;
    }

    void fail(const std::string& why) {
        const bool timed_out = watchdog_.expired();
        timed_out_ = timed_out;
        broken_ = local_reply(451, timed_out ? "4.4.2" : "4.4.0", hop_.describe() + ": " + why);
        close();
    }

    void close() {
        if (stream_) {
            stream_->close();
            stream_.reset();
        }
        input_ = smtp::LineBuffer(4096);
        watchdog_.disarm();
        watchdog_.reset_expired();
    }

    asio::any_io_executor executor_;
    const NextHop& hop_;
    std::string hostname_;
    ssl::context& tls_context_;
    Watchdog watchdog_;
    bool watchdog_running_ = false;
    bool timed_out_ = false;  // the last failure was a timeout
    std::unique_ptr<Stream> stream_;
    smtp::LineBuffer input_{4096};
    std::array<char, 16384> buffer_{};
    smtp::Reply broken_ = local_reply(451, "4.4.0", "connection lost");
    bool size_ = false;
    bool eight_bit_mime_ = false;
    bool smtputf8_ = false;
    bool starttls_ = false;
};

}  // namespace

NextHopFactory make_next_hop(const NextHop& hop, const std::string& hostname,
                             asio::thread_pool& blocking, ssl::context& client_tls,
                             const Clock& clock) {
    if (hop.kind == NextHop::Kind::maildir) {
        return [&hop, &blocking, &clock](const asio::any_io_executor&) {
            return std::make_shared<MaildirNextHop>(hop.maildir, blocking, clock);
        };
    }
    return [&hop, &hostname, &client_tls](const asio::any_io_executor& executor) {
        return std::make_shared<SmtpNextHop>(executor, hop, hostname, client_tls);
    };
}

}  // namespace dkim::relayd

#include "session.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <cstdio>

#include "auth.hpp"
#include "signing_policy.hpp"
#include "verifying_policy.hpp"

namespace dkim::relayd {

using namespace std::chrono_literals;

std::string session_hex_id(std::uint64_t salt, std::uint64_t n) {
    char buffer[40];
    (void)std::snprintf(buffer, sizeof buffer, "%06llx%06llx",
                        static_cast<unsigned long long>(salt & 0xffffff),
                        static_cast<unsigned long long>(n & 0xffffff));
    return buffer;
}

Session::Session(RelayContext& relay, const Listener& listener, ssl::context& tls,
                 tcp::socket socket)
    : relay_(relay),
      config_(relay.config),
      listener_(listener),
      stream_(std::move(socket), tls),
      watchdog_(stream_.socket().get_executor()),
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
    id_ = session_hex_id(relay_.id_salt, ++relay_.next_session);
    if (inbound_) {
        policy_ = std::make_unique<VerifyingPolicy>(config_, *relay_.inbound, relay_.metrics,
                                                    relay_.clock, Blocking(relay_.inbound_workers));
    } else {
        policy_ = std::make_unique<SigningPolicy>(config_, relay_.signing, relay_.metrics,
                                                  relay_.clock, Blocking(&relay_.workers));
    }
    ConnectionInfo connection;
    connection.id = id_;
    connection.address_text = address_text_;
    connection.network_client = config_.client_for(address_);
    connection.tls_offered = listener_.tls();
    connection.plain_auth = listener_.plain_auth;
    transaction_ = std::make_unique<Transaction>(config_, std::move(connection), *policy_, *this,
                                                 relay_.metrics, relay_.clock,
                                                 inbound_ ? relay_.reports : nullptr);
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
            try {
                co_await self->transaction_->finish();  // the next hop hears QUIT
            } catch (const std::exception&) {
            }
            self->stream_.close();
            self->watchdog_.stop();
        },
        asio::detached);
}

std::chrono::milliseconds Session::budget(std::chrono::milliseconds timeout) const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        session_end_ - relay_.clock.monotonic());
    return std::max(std::min(timeout, left), 1ms);
}

awaitable<bool> Session::fill(std::chrono::milliseconds timeout, std::string_view& got) {
    co_await write(out_);
    if (broken_) {
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
    got = std::string_view(data, n);
    co_return true;
}

awaitable<void> Session::write(std::string& bytes) {
    if (bytes.empty() || broken_) {
        bytes.clear();
        co_return;
    }
    watchdog_.arm(budget(config_.limits.command_timeout));
    error_code ec;
    co_await stream_.write(bytes, ec);
    watchdog_.disarm();
    bytes.clear();
    if (ec) {
        broken_ = true;
    }
}

awaitable<bool> Session::flush(std::string& output) {
    out_ += output;
    output.clear();
    co_await write(out_);
    co_return !broken_;
}

std::shared_ptr<NextHopSession> Session::next_hop(Route route) {
    const auto executor = stream_.socket().get_executor();
    if (route == Route::quarantine) {
        return relay_.quarantine_next_hop(executor);
    }
    return inbound_ ? relay_.inbound_next_hop(executor) : relay_.next_hop(executor);
}

awaitable<bool> Session::verify_password(const Client* client, const std::string& password) {
    const std::string* secret = &password;
    co_return co_await run_blocking(
        relay_.workers, [client, secret] { return verify_client_password(client, *secret); });
}

void Session::log(const std::string& line) {
    (void)std::fprintf(stderr, "%s\n", line.c_str());
}

// --- the session -----------------------------------------------------------------------------

awaitable<bool> Session::greet() {
    const auto& limits = config_.limits;
    relay_.metrics.connection_opened();
    counted_ = true;
    ++relay_.connections;
    const std::size_t from_here = ++relay_.per_address[address_];
    auto refuse = [this](int code, std::string_view enhanced, const std::string& text) {
        relay_.metrics.connection_refused();
        out_ += smtp::format_reply(code, enhanced, text);
    };
    if (!listener_.allows(address_)) {
        refuse(554, "5.7.1", config_.hostname + " Your address may not use this service");
        co_return false;
    }
    if (relay_.connections > limits.connections) {
        refuse(421, "4.7.0", config_.hostname + " Too many connections; try again later");
        co_return false;
    }
    if (from_here > limits.connections_per_client) {
        refuse(421, "4.7.0",
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
            refuse(554, "5.5.1", "Protocol error: data sent before the greeting");
            co_return false;
        }
    }
    out_ += smtp::format_reply(220, "", config_.hostname + " ESMTP dkim-relayd");
    co_return true;
}

awaitable<void> Session::starttls() {
    co_await write(out_);
    if (broken_) {
        transaction_->tls_failed();
        co_return;
    }
    watchdog_.arm(budget(config_.limits.command_timeout));
    error_code ec;
    co_await stream_.handshake(ssl::stream_base::server, ec);
    watchdog_.disarm();
    if (ec) {
        transaction_->tls_failed();
    } else {
        transaction_->tls_started();
    }
}

awaitable<void> Session::run() {
    session_end_ = relay_.clock.monotonic() + config_.limits.session_timeout;
    if (co_await greet()) {
        while (!transaction_->closing() && !broken_) {
            out_ += transaction_->take_output();
            if (transaction_->tls_requested()) {
                co_await starttls();
                continue;
            }
            const auto timeout = transaction_->in_data() ? config_.limits.data_timeout
                                                         : config_.limits.command_timeout;
            std::string_view got;
            if (!co_await fill(timeout, got)) {
                const bool timed_out = timed_out_;
                if (timed_out_) {
                    timed_out_ = false;
                    watchdog_.reset_expired();
                }
                co_await transaction_->input_ended(timed_out);
                break;
            }
            co_await transaction_->receive(got);
        }
    }
    out_ += transaction_->take_output();
    co_await write(out_);
}

}  // namespace dkim::relayd

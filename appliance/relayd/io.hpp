#pragma once
// Asio plumbing shared by the client sessions and the next-hop sessions: a TCP stream that
// can be upgraded to TLS in place (STARTTLS), a watchdog that enforces deadlines on every
// read and write, and a way to run blocking work (signerd calls, fsync, Argon2) on a thread
// pool without blocking the I/O thread.

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>

namespace dkim::relayd {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
template <class T = void>
using awaitable = asio::awaitable<T>;

class Stream {
  public:
    Stream(tcp::socket socket, ssl::context& context)
        : socket_(std::move(socket)), context_(context) {}

    tcp::socket& socket() { return ssl_ ? ssl_->next_layer() : socket_; }
    // The TLS layer, made on first use (before the handshake): a session that never says
    // STARTTLS never pays for an SSL object.
    ssl::stream<tcp::socket>& tls_stream();
    bool tls() const { return tls_; }

    awaitable<std::size_t> read_some(asio::mutable_buffer buffer, error_code& ec);
    awaitable<void> write(std::string_view bytes, error_code& ec);
    awaitable<void> write(const std::vector<asio::const_buffer>& buffers, error_code& ec);
    awaitable<void> handshake(ssl::stream_base::handshake_type type, error_code& ec);
    // Cancels pending operations (the watchdog's first step).
    void cancel();
    void close();

  private:
    tcp::socket socket_;
    ssl::context& context_;
    std::unique_ptr<ssl::stream<tcp::socket>> ssl_;
    bool tls_ = false;
};

// Deadlines for one stream: arm() before an operation, and when the deadline passes
// on_expiry runs (the session cancels or closes its socket). One coroutine per watchdog;
// stop() ends it. The owner keeps itself alive for as long as run() is pending.
class Watchdog {
  public:
    using clock = std::chrono::steady_clock;

    explicit Watchdog(const asio::any_io_executor& executor) : timer_(executor) {}

    void arm(std::chrono::milliseconds timeout);
    void disarm() { deadline_ = clock::time_point::max(); }
    bool expired() const { return expired_; }
    void reset_expired() { expired_ = false; }
    void stop();
    // `on_expiry` must outlive run().
    awaitable<void> run(const std::function<void()>& on_expiry);

  private:
    asio::steady_timer timer_;
    clock::time_point deadline_ = clock::time_point::max();
    bool expired_ = false;
    bool stopped_ = false;
};

// Runs `f` on `pool` and resumes the calling coroutine on its own executor with the result.
// (co_spawn needs a default-constructible result, hence the optional.)
// `f` captures only references and pointers: GCC 12 may destroy a non-trivial temporary
// inside a co_await expression twice.
template <class F>
awaitable<std::invoke_result_t<F>> run_blocking(asio::thread_pool& pool, F f) {
    static_assert(std::is_trivially_destructible_v<F>, "capture by reference or pointer");
    using R = std::invoke_result_t<F>;
    auto result = co_await asio::co_spawn(
        pool, [f = std::move(f)]() mutable -> awaitable<std::optional<R>> { co_return f(); },
        asio::use_awaitable);
    co_return std::move(*result);
}

}  // namespace dkim::relayd

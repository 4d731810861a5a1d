#include "io.hpp"

namespace dkim::relayd {

namespace {
auto token(error_code& ec) {
    return asio::redirect_error(asio::use_awaitable, ec);
}
}  // namespace

ssl::stream<tcp::socket>& Stream::tls_stream() {
    if (!ssl_) {
        ssl_ = std::make_unique<ssl::stream<tcp::socket>>(std::move(socket_), context_);
    }
    return *ssl_;
}

awaitable<std::size_t> Stream::read_some(asio::mutable_buffer buffer, error_code& ec) {
    if (tls_) {
        co_return co_await ssl_->async_read_some(buffer, token(ec));
    }
    co_return co_await socket().async_read_some(buffer, token(ec));
}

awaitable<void> Stream::write(std::string_view bytes, error_code& ec) {
    const asio::const_buffer buffer(bytes.data(), bytes.size());
    if (tls_) {
        co_await asio::async_write(*ssl_, buffer, token(ec));
    } else {
        co_await asio::async_write(socket(), buffer, token(ec));
    }
}

awaitable<void> Stream::write(const std::vector<asio::const_buffer>& buffers, error_code& ec) {
    if (tls_) {
        co_await asio::async_write(*ssl_, buffers, token(ec));
    } else {
        co_await asio::async_write(socket(), buffers, token(ec));
    }
}

awaitable<void> Stream::handshake(ssl::stream_base::handshake_type type, error_code& ec) {
    co_await tls_stream().async_handshake(type, token(ec));
    if (!ec) {
        tls_ = true;
    }
}

void Stream::cancel() {
    error_code ignored;
    socket().cancel(ignored);
}

void Stream::close() {
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
}

void Watchdog::arm(std::chrono::milliseconds timeout) {
    deadline_ = clock::now() + timeout;
    if (deadline_ < timer_.expiry()) {
        timer_.expires_at(deadline_);  // wakes run() to wait for the sooner deadline
    }
}

void Watchdog::stop() {
    stopped_ = true;
    timer_.cancel();
}

awaitable<void> Watchdog::run(const std::function<void()>& on_expiry) {
    while (!stopped_) {
        timer_.expires_at(deadline_);
        error_code ec;
        co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (stopped_) {
            break;
        }
        if (clock::now() >= deadline_) {
            expired_ = true;
            deadline_ = clock::time_point::max();
            on_expiry();
        }
    }
}

}  // namespace dkim::relayd

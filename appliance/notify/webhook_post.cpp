#include "webhook_post.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

#include "dkim/base/hex.hpp"

namespace dkim::notify {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

struct WebhookUrl {
    bool tls = false;
    std::string host;
    std::string port;
    std::string target;
};

std::optional<WebhookUrl> parse_webhook_url(const std::string& url) {
    WebhookUrl u;
    std::string_view rest = url;
    if (rest.rfind("https://", 0) == 0) {
        u.tls = true;
        rest.remove_prefix(8);
    } else if (rest.rfind("http://", 0) == 0) {
        rest.remove_prefix(7);
    } else {
        return std::nullopt;
    }
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        u.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        u.port = authority.rfind(':', 0) == 0 ? std::string(authority.substr(1)) : "";
    } else {
        const auto colon = authority.rfind(':');
        u.host = std::string(authority.substr(0, colon));
        u.port = colon == std::string_view::npos ? "" : std::string(authority.substr(colon + 1));
    }
    if (u.port.empty()) {
        u.port = u.tls ? "443" : "80";
    }
    if (u.host.empty()) {
        return std::nullopt;
    }
    return u;
}

}  // namespace

std::string webhook_signature(std::string_view key, std::int64_t timestamp, std::string_view body) {
    const std::string message = std::to_string(timestamp) + "." + std::string(body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &size);
    return "v1=" + base::hex_encode(std::span<const std::uint8_t>(mac, size));
}

bool valid_webhook_url(const std::string& url) {
    return parse_webhook_url(url).has_value();
}

std::string post_signed(const std::string& url_text, std::string_view key, const std::string& body,
                        std::chrono::milliseconds timeout, TimePoint now) {
    const auto url = parse_webhook_url(url_text);
    if (!url) {
        return "bad URL";
    }
    const auto timestamp =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    http::request<http::string_body> request{http::verb::post, url->target, 11};
    request.set(http::field::host, url->host);
    request.set(http::field::user_agent, "dkim-appliance-webhook");
    request.set(http::field::content_type, "application/json");
    request.set("X-DKIM-Signerd-Timestamp", std::to_string(timestamp));
    request.set("X-DKIM-Signerd-Signature", webhook_signature(key, timestamp, body));
    request.body() = body;
    request.prepare_payload();
    try {
        // Asynchronous operations under one deadline (beast::tcp_stream's timeouts apply only
        // to asynchronous operations).
        asio::io_context io;
        asio::ip::tcp::resolver resolver(io);
        const auto endpoints = resolver.resolve(url->host, url->port);
        beast::flat_buffer buffer;
        http::response<http::string_body> response;
        beast::error_code result = asio::error::timed_out;
        asio::ssl::context tls(asio::ssl::context::tls_client);
        tls.set_default_verify_paths();
        tls.set_verify_mode(asio::ssl::verify_peer);
        beast::ssl_stream<beast::tcp_stream> secure(io, tls);
        beast::tcp_stream plain(io);
        auto exchange = [&](auto& stream) {
            http::async_write(stream, request, [&](beast::error_code ec, std::size_t) {
                if (ec) {
                    result = ec;
                    return;
                }
                http::async_read(stream, buffer, response,
                                 [&](beast::error_code read_ec, std::size_t) { result = read_ec; });
            });
        };
        if (url->tls) {
            // SSL_set_tlsext_host_name, without the macro's C cast.
            if (SSL_ctrl(secure.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                         TLSEXT_NAMETYPE_host_name, const_cast<char*>(url->host.c_str())) != 1) {
                return "cannot set SNI";
            }
            secure.set_verify_callback(asio::ssl::host_name_verification(url->host));
            beast::get_lowest_layer(secure).expires_after(timeout);
            beast::get_lowest_layer(secure).async_connect(
                endpoints, [&](beast::error_code ec, const asio::ip::tcp::endpoint&) {
                    if (ec) {
                        result = ec;
                        return;
                    }
                    secure.async_handshake(asio::ssl::stream_base::client,
                                           [&](beast::error_code hs) {
                                               if (hs) {
                                                   result = hs;
                                                   return;
                                               }
                                               exchange(secure);
                                           });
                });
        } else {
            plain.expires_after(timeout);
            plain.async_connect(endpoints,
                                [&](beast::error_code ec, const asio::ip::tcp::endpoint&) {
                                    if (ec) {
                                        result = ec;
                                        return;
                                    }
                                    exchange(plain);
                                });
        }
        io.run_for(timeout + std::chrono::milliseconds(100));
        if (result) {
            return result.message();
        }
        if (response.result_int() / 100 != 2) {
            return "HTTP " + std::to_string(response.result_int());
        }
        return "";
    } catch (const boost::system::system_error& e) {
        return e.code().message();
    }
}

}  // namespace dkim::notify

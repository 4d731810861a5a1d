#include "server.hpp"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <future>
#include <optional>

#include "dkim/base/wipe.hpp"

namespace dkim::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// --- TLS --------------------------------------------------------------------------------------

Expected<std::unique_ptr<ssl::context>, std::string> make_tls_context(
    const std::string& certificate, const std::string& key) {
    auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                         ssl::context::no_tlsv1_1 | ssl::context::single_dh_use |
                         ssl::context::no_compression);
    SSL_CTX* native = context->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    // TLS 1.2: forward-secret AEAD suites only (TLS 1.3's suites are all of that kind).
    SSL_CTX_set_cipher_list(native,
                            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    boost::system::error_code ec;
    context->use_certificate_chain_file(certificate, ec);
    if (ec) {
        return unexpected("cannot read the TLS certificate " + certificate + ": " + ec.message());
    }
    context->use_private_key_file(key, ssl::context::pem, ec);
    if (ec) {
        return unexpected("cannot read the TLS key " + key + ": " + ec.message());
    }
    if (SSL_CTX_check_private_key(native) != 1) {
        return unexpected("the TLS key " + key + " does not belong to " + certificate);
    }
    return context;
}

namespace {

struct FileCloser {
    // NOLINTNEXTLINE(cppcoreguidelines-owning-memory): File's deleter, the owner of the FILE*
    void operator()(FILE* f) const { (void)std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;
struct X509Deleter {
    void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

}  // namespace

Expected<void, std::string> make_self_signed(const std::string& certificate, const std::string& key,
                                             const std::string& address) {
    std::unique_ptr<EVP_PKEY, PkeyDeleter> pkey(EVP_EC_gen("P-256"));
    std::unique_ptr<X509, X509Deleter> x(X509_new());
    if (!pkey || !x) {
        return unexpected(std::string("cannot make a key pair"));
    }
    X509_set_version(x.get(), 2);
    std::array<unsigned char, 16> serial{};
    RAND_bytes(serial.data(), static_cast<int>(serial.size()));
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -300);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 365L * 86400);
    X509_set_pubkey(x.get(), pkey.get());
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("dkim-webd (self-signed)"),
                               -1, -1, 0);
    X509_set_issuer_name(x.get(), name);
    // localhost for browsers (passkeys need a host name: WebAuthn refuses an IP address as the
    // relying party), the listen address for clients that use it; a wildcard address as this
    // machine's clients reach it.
    const std::string ip = address == "0.0.0.0" ? "127.0.0.1" : address == "::" ? "::1" : address;
    const std::string san = "DNS:localhost, IP:" + ip;
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x.get(), x.get(), nullptr, nullptr, 0);
    for (const auto& [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, san},
                                     {NID_basic_constraints, "critical,CA:FALSE"},
                                     {NID_key_usage, "critical,digitalSignature"},
                                     {NID_ext_key_usage, "serverAuth"}}) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
        if (ext == nullptr) {
            return unexpected("cannot make the certificate extension " + value);
        }
        X509_add_ext(x.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(x.get(), pkey.get(), EVP_sha256()) == 0) {
        return unexpected(std::string("cannot sign the certificate"));
    }
    const mode_t old = ::umask(077);
    File k(std::fopen(key.c_str(), "w"));
    ::umask(old);
    if (!k ||
        PEM_write_PrivateKey(k.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        return unexpected("cannot write " + key);
    }
    File c(std::fopen(certificate.c_str(), "w"));
    if (!c || PEM_write_X509(c.get(), x.get()) != 1) {
        return unexpected("cannot write " + certificate);
    }
    return {};
}

// --- connections ------------------------------------------------------------------------------

struct Server::Impl {
    const Config& config;
    Deps& deps;
    ssl::context& tls;
    asio::io_context io{1};
    asio::thread_pool workers;
    tcp::acceptor acceptor{asio::make_strand(io)};
    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> busy{0};  // requests being handled or answered
    std::atomic<unsigned> uploads{0};  // report uploads being received or handled
    std::atomic<bool> stopping{false};

    Impl(const Config& c, Deps& d, ssl::context& t)
        : config(c), deps(d), tls(t), workers(c.workers) {}
    void accept();
};

namespace {

// Report uploads received at once: each may hold [reports] upload_limit bytes (twice: the body
// and the frame to reportd), so they are few; another waits for its turn (503).
constexpr unsigned kMaxUploads = 2;

// A report upload: the one request whose body may be larger than body_limit. Only one that
// names a credential (checked after the body is read, as always) gets the larger limit.
bool is_report_upload(const http::request_parser<http::string_body>& parser, const Config& config) {
    const auto& req = parser.get();
    const std::string_view target = req.target();
    return !config.reports_socket.empty() && req.method() == http::verb::post &&
           target.substr(0, target.find('?')) == "/api/v1/reports/upload" &&
           (req.find(http::field::authorization) != req.end() ||
            req.find(http::field::cookie) != req.end());
}

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(tcp::socket socket, Server::Impl& server)
        : stream_(std::move(socket), server.tls), server_(server) {
        boost::system::error_code ec;
        const auto peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
        client_.address = ec ? std::string() : peer.address().to_string();
        ++server_.connections;
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() {
        release_upload();
        --server_.connections;
    }

    void start() {
        asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->handshake(); });
    }

  private:
    void handshake() {
        beast::get_lowest_layer(stream_).expires_after(server_.config.read_timeout);
        stream_.async_handshake(ssl::stream_base::server,
                                [self = shared_from_this()](beast::error_code ec) {
                                    if (!ec) {
                                        self->read(true);
                                    }
                                });
    }

    void read(bool first) {
        if (server_.stopping) {
            close();
            return;
        }
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(server_.config.header_limit));
        // Beast refuses a Content-Length over the limit as it reads the header: with reports, the
        // header is read under the upload limit, and on_header sets the request's own.
        body_limit_ = server_.config.body_limit;
        parser_->body_limit(server_.config.reports_socket.empty()
                                ? body_limit_
                                : std::max(body_limit_, server_.config.upload_limit));
        // Between requests a connection may idle longer than a request may take to arrive.
        beast::get_lowest_layer(stream_).expires_after(first ? server_.config.read_timeout
                                                             : server_.config.idle_timeout);
        http::async_read_header(stream_, buffer_, *parser_,
                                [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                    self->on_header(ec);
                                });
    }

    void on_header(beast::error_code ec) {
        if (ec) {
            on_error(ec);
            return;
        }
        auto timeout = server_.config.read_timeout;
        if (is_report_upload(*parser_, server_.config)) {
            if (server_.uploads.fetch_add(1) >= kMaxUploads) {
                --server_.uploads;
                respond(error_response(http::status::service_unavailable, "busy",
                                       "other report uploads are being received; try again in a "
                                       "moment",
                                       11, false));
                return;
            }
            upload_ = true;
            parser_->body_limit(server_.config.upload_limit);
            body_limit_ = server_.config.upload_limit;
            timeout = std::max(timeout, server_.config.upload_timeout);
        } else {
            parser_->body_limit(body_limit_);
            if (const auto length = parser_->content_length(); length && *length > body_limit_) {
                on_error(http::error::body_limit);
                return;
            }
        }
        beast::get_lowest_layer(stream_).expires_after(timeout);
        http::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code e, std::size_t) { self->on_read(e); });
    }

    void release_upload() {
        if (upload_.exchange(false)) {
            --server_.uploads;
        }
    }

    void on_error(beast::error_code ec) {
        release_upload();
        if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
            ec == asio::error::operation_aborted) {
            close();
            return;
        }
        // Malformed or oversized input: answer once, then close.
        http::status status = http::status::bad_request;
        std::string code = "bad_request";
        std::string message = "the request is not valid HTTP/1.1";
        if (ec == http::error::body_limit) {
            status = http::status::payload_too_large;
            code = "payload_too_large";
            message = "the body is larger than " + std::to_string(body_limit_) + " bytes";
        } else if (ec == http::error::header_limit) {
            status = http::status::request_header_fields_too_large;
            code = "headers_too_large";
            message = "the header section is larger than " +
                      std::to_string(server_.config.header_limit) + " bytes";
        } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
                   ec == asio::error::connection_reset) {
            close();
            return;
        }
        respond(error_response(status, code, message, 11, false));
    }

    void on_read(beast::error_code ec) {
        if (ec) {
            on_error(ec);
            return;
        }
        request_ = parser_->release();
        ++server_.busy;
        counted_ = true;
        // handle() may wait for signerd: never on the I/O thread.
        asio::post(server_.workers, [self = shared_from_this()] {
            Response response = handle(self->request_, self->client_, self->server_.deps);
            base::secure_wipe(self->request_.body().data(), self->request_.body().size());
            self->request_.body().clear();
            self->request_.body().shrink_to_fit();
            self->release_upload();
            asio::post(self->stream_.get_executor(),
                       [self, r = std::move(response)]() mutable { self->respond(std::move(r)); });
        });
        beast::get_lowest_layer(stream_).expires_never();
    }

    void respond(Response response) {
        response_ = std::make_shared<Response>(std::move(response));
        if (server_.stopping) {
            response_->keep_alive(false);
        }
        beast::get_lowest_layer(stream_).expires_after(server_.config.write_timeout);
        http::async_write(
            stream_, *response_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
    }

    void on_write(beast::error_code ec) {
        const bool keep = response_ && response_->keep_alive();
        if (counted_) {
            counted_ = false;
            --server_.busy;
        }
        response_.reset();
        if (ec || !keep) {
            close();
            return;
        }
        read(false);
    }

    void close() {
        beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
        stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
            beast::error_code ignored;
            beast::get_lowest_layer(self->stream_)
                .socket()
                .shutdown(tcp::socket::shutdown_both, ignored);
        });
    }

    beast::ssl_stream<beast::tcp_stream> stream_;
    Server::Impl& server_;
    ClientInfo client_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    Request request_;
    std::shared_ptr<Response> response_;
    bool counted_ = false;             // this connection's request is counted in server_.busy
    std::size_t body_limit_ = 0;       // the request's (body_limit, or upload_limit)
    std::atomic<bool> upload_{false};  // holds one of server_.uploads
};

}  // namespace

void Server::Impl::accept() {
    acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
        if (ec) {
            if (!stopping) {
                accept();
            }
            return;
        }
        if (connections >= config.max_connections) {
            beast::error_code ignored;
            socket.close(ignored);  // over the limit: refused before any TLS work
        } else {
            std::make_shared<Connection>(std::move(socket), *this)->start();
        }
        accept();
    });
}

Server::Server(const Config& config, Deps& deps, ssl::context& tls)
    : impl_(std::make_unique<Impl>(config, deps, tls)) {}

Server::~Server() {
    impl_->workers.join();
}

Expected<void, std::string> Server::open() {
    beast::error_code ec;
    const auto address = asio::ip::make_address(impl_->config.listen.host, ec);
    if (ec) {
        return unexpected("bad listen address " + impl_->config.listen.host);
    }
    const tcp::endpoint endpoint(address, impl_->config.listen.port);
    impl_->acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
        impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        impl_->acceptor.bind(endpoint, ec);
    }
    if (!ec) {
        impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        return unexpected("cannot listen on " + impl_->config.listen.to_string() + ": " +
                          ec.message());
    }
    return {};
}

Expected<void, std::string> Server::adopt(int listening_fd) {
    sockaddr_storage bound{};
    socklen_t size = sizeof bound;
    if (::getsockname(listening_fd, reinterpret_cast<sockaddr*>(&bound), &size) != 0 ||
        (bound.ss_family != AF_INET && bound.ss_family != AF_INET6)) {
        return unexpected("the socket passed by the service manager is not a TCP socket");
    }
    beast::error_code ec;
    impl_->acceptor.assign(bound.ss_family == AF_INET ? tcp::v4() : tcp::v6(), listening_fd, ec);
    if (ec) {
        return unexpected("cannot use the socket passed by the service manager: " + ec.message());
    }
    return {};
}

unsigned short Server::port() const {
    beast::error_code ec;
    return impl_->acceptor.local_endpoint(ec).port();
}

void Server::run() {
    impl_->accept();
    impl_->io.run();
}

bool Server::responsive(std::chrono::milliseconds budget) {
    auto answered = std::make_shared<std::promise<void>>();
    auto future = answered->get_future();
    asio::post(impl_->io, [answered] { answered->set_value(); });
    return future.wait_for(budget) == std::future_status::ready;
}

void Server::stop() {
    asio::post(impl_->acceptor.get_executor(), [impl = impl_.get()] {
        impl->stopping = true;
        beast::error_code ignored;
        impl->acceptor.close(ignored);
        // Requests in progress get up to 5 s to be answered; then everything stops.
        auto timer = std::make_shared<asio::steady_timer>(impl->io);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        auto check = std::make_shared<std::function<void()>>();
        *check = [impl, timer, deadline, check] {
            if (impl->busy == 0 || std::chrono::steady_clock::now() >= deadline) {
                impl->io.stop();
                *check = nullptr;  // break the cycle
                return;
            }
            timer->expires_after(std::chrono::milliseconds(50));
            timer->async_wait([check](beast::error_code) {
                if (*check) {
                    (*check)();
                }
            });
        };
        (*check)();
    });
}

}  // namespace dkim::web

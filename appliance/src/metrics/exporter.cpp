#include "dkim/metrics/exporter.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

namespace dkim::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

class BeastExporter final : public Exporter {
  public:
    BeastExporter(const asio::ip::tcp::endpoint& endpoint, std::function<std::string()> render)
        : acceptor_(io_, endpoint), render_(std::move(render)) {}

    void run() {
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~BeastExporter() override { stop(); }
    unsigned short port() const override { return acceptor_.local_endpoint().port(); }
    void stop() override {
        io_.stop();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

  private:
    void accept() {
        acceptor_.async_accept([this](beast::error_code ec, asio::ip::tcp::socket socket) {
            if (!ec) {
                serve(std::move(socket));
            }
            if (acceptor_.is_open()) {
                accept();
            }
        });
    }

    // One request per connection, with a deadline; scrapes are small and rare.
    void serve(asio::ip::tcp::socket socket) {
        auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
        auto buffer = std::make_shared<beast::flat_buffer>();
        auto request = std::make_shared<http::request<http::string_body>>();
        stream->expires_after(std::chrono::seconds(5));
        http::async_read(
            *stream, *buffer, *request,
            [this, stream, buffer, request](beast::error_code ec, std::size_t) {
                if (ec) {
                    return;
                }
                auto response = std::make_shared<http::response<http::string_body>>();
                response->version(request->version());
                response->keep_alive(false);
                if (request->method() == http::verb::get && request->target() == "/metrics") {
                    response->result(http::status::ok);
                    response->set(http::field::content_type,
                                  "text/plain; version=0.0.4; charset=utf-8");
                    response->body() = render_();
                } else {
                    response->result(http::status::not_found);
                    response->set(http::field::content_type, "text/plain");
                    response->body() = "only GET /metrics here\n";
                }
                response->prepare_payload();
                http::async_write(
                    *stream, *response, [stream, response](beast::error_code, std::size_t) {
                        beast::error_code ignored;
                        stream->socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                    });
            });
    }

    asio::io_context io_;
    asio::ip::tcp::acceptor acceptor_;
    std::function<std::string()> render_;
    std::thread thread_;
};

}  // namespace

std::unique_ptr<Exporter> Exporter::start(const std::string& listen,
                                          std::function<std::string()> render, std::string& error) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
        error = "metrics: expected host:port, got " + listen;
        return nullptr;
    }
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec || !address.is_loopback()) {
        error = "metrics: " + host + " is not a loopback address";
        return nullptr;
    }
    unsigned long port = 0;
    try {
        port = std::stoul(listen.substr(colon + 1));
    } catch (const std::exception&) {
        port = 65536;
    }
    if (port > 65535) {
        error = "metrics: bad port in " + listen;
        return nullptr;
    }
    try {
        auto server = std::make_unique<BeastExporter>(
            asio::ip::tcp::endpoint(address, static_cast<unsigned short>(port)), std::move(render));
        server->run();
        return server;
    } catch (const boost::system::system_error& e) {
        error = "metrics: cannot listen on " + listen + ": " + e.code().message();
        return nullptr;
    }
}

}  // namespace dkim::metrics

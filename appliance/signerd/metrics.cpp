#include "metrics.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sstream>
#include <thread>

namespace dkim::signerd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

void Metrics::audit_commit(std::uint64_t nanoseconds, std::size_t records, bool ok) {
    if (!ok) {
        ++audit_failures_;
        return;
    }
    ++audit_count_;
    audit_sum_ns_ += nanoseconds;
    audit_records_ += records;
    const double seconds = static_cast<double>(nanoseconds) / 1e9;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        if (seconds <= kBuckets[i]) {
            ++audit_buckets_[i];
        }
    }
}

std::string Metrics::render(const Gauges& g) const {
    std::ostringstream out;
    out << "# HELP dkim_signerd_active_grants Grants in force now.\n"
           "# TYPE dkim_signerd_active_grants gauge\n"
        << "dkim_signerd_active_grants " << g.active_grants << "\n"
        << "# HELP dkim_signerd_pending_requests Elevation requests awaiting a decision.\n"
           "# TYPE dkim_signerd_pending_requests gauge\n"
        << "dkim_signerd_pending_requests " << g.pending_requests << "\n"
        << "# HELP dkim_signerd_token_logged_in 1 while the token is logged in.\n"
           "# TYPE dkim_signerd_token_logged_in gauge\n"
        << "dkim_signerd_token_logged_in " << (g.logged_in ? 1 : 0) << "\n"
        << "# HELP dkim_signerd_audit_failing 1 while the last audit write failed (fail closed).\n"
           "# TYPE dkim_signerd_audit_failing gauge\n"
        << "dkim_signerd_audit_failing " << (g.audit_failing ? 1 : 0) << "\n";
    static constexpr const char* outcomes[] = {"ok", "failed", "locked", "refused", "unavailable"};
    out << "# HELP dkim_signerd_signatures_total Sign requests by outcome.\n"
           "# TYPE dkim_signerd_signatures_total counter\n";
    for (std::size_t i = 0; i < signatures_.size(); ++i) {
        out << "dkim_signerd_signatures_total{outcome=\"" << outcomes[i] << "\"} "
            << signatures_[i].load() << "\n";
    }
    static constexpr const char* reasons[] = {"no_grant", "mismatch", "malformed", "audit",
                                              "token",    "peer",     "protocol"};
    out << "# HELP dkim_signerd_refusals_total Refused requests by reason.\n"
           "# TYPE dkim_signerd_refusals_total counter\n";
    for (std::size_t i = 0; i < refusals_.size(); ++i) {
        out << "dkim_signerd_refusals_total{reason=\"" << reasons[i] << "\"} "
            << refusals_[i].load() << "\n";
    }
    out << "# HELP dkim_signerd_token_logins_total Logins to the token.\n"
           "# TYPE dkim_signerd_token_logins_total counter\n"
        << "dkim_signerd_token_logins_total " << logins_.load() << "\n"
        << "# HELP dkim_signerd_token_logouts_total Logouts from the token.\n"
           "# TYPE dkim_signerd_token_logouts_total counter\n"
        << "dkim_signerd_token_logouts_total " << logouts_.load() << "\n"
        << "# HELP dkim_signerd_audit_write_seconds Durable audit commits (group commits).\n"
           "# TYPE dkim_signerd_audit_write_seconds histogram\n";
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        out << "dkim_signerd_audit_write_seconds_bucket{le=\"" << kBuckets[i] << "\"} "
            << audit_buckets_[i].load() << "\n";
    }
    out << "dkim_signerd_audit_write_seconds_bucket{le=\"+Inf\"} " << audit_count_.load() << "\n"
        << "dkim_signerd_audit_write_seconds_sum "
        << static_cast<double>(audit_sum_ns_.load()) / 1e9 << "\n"
        << "dkim_signerd_audit_write_seconds_count " << audit_count_.load() << "\n"
        << "# HELP dkim_signerd_audit_records_total Audit records made durable.\n"
           "# TYPE dkim_signerd_audit_records_total counter\n"
        << "dkim_signerd_audit_records_total " << audit_records_.load() << "\n"
        << "# HELP dkim_signerd_audit_write_failures_total Audit commits that failed.\n"
           "# TYPE dkim_signerd_audit_write_failures_total counter\n"
        << "dkim_signerd_audit_write_failures_total " << audit_failures_.load() << "\n"
        << "# HELP dkim_signerd_webhook_deliveries_total Webhook deliveries by result.\n"
           "# TYPE dkim_signerd_webhook_deliveries_total counter\n"
        << "dkim_signerd_webhook_deliveries_total{result=\"delivered\"} " << webhook_ok_.load()
        << "\n"
        << "dkim_signerd_webhook_deliveries_total{result=\"failed\"} " << webhook_failed_.load()
        << "\n";
    return out.str();
}

namespace {

class BeastMetricsServer final : public MetricsServer {
  public:
    BeastMetricsServer(const asio::ip::tcp::endpoint& endpoint, std::function<std::string()> render)
        : acceptor_(io_, endpoint), render_(std::move(render)) {}

    void run() {
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~BeastMetricsServer() override { stop(); }
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

std::unique_ptr<MetricsServer> MetricsServer::start(const std::string& listen,
                                                    std::function<std::string()> render,
                                                    std::string& error) {
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
        auto server = std::make_unique<BeastMetricsServer>(
            asio::ip::tcp::endpoint(address, static_cast<unsigned short>(port)), std::move(render));
        server->run();
        return server;
    } catch (const boost::system::system_error& e) {
        error = "metrics: cannot listen on " + listen + ": " + e.code().message();
        return nullptr;
    }
}

}  // namespace dkim::signerd

#include "server.hpp"

#include <sys/stat.h>

#include <future>
#include <random>

#include "milter.hpp"

namespace dkim::relayd {

namespace {

void harden(ssl::context& context) {
    context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                        ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
}

}  // namespace

Relay::Relay(const Config& config, ipc::ClientOptions signerd_options)
    : config_(config),
      workers_(config.signing_workers),
      signing_(config, clock_, signerd_options) {}

Relay::~Relay() {
    try {
        stop();
        workers_.join();
        if (inbound_workers_) {
            inbound_workers_->join();
        }
        if (report_workers_) {
            report_workers_->join();
        }
    } catch (const std::exception&) {
        // Nothing left to do: the process is ending.
    }
}

Expected<NextHopFactory, std::string> Relay::next_hop(const NextHop& hop, const std::string& key) {
    auto tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    harden(*tls);
    error_code ec;
    if (!hop.ca_file.empty()) {
        tls->load_verify_file(hop.ca_file, ec);
    } else {
        tls->set_default_verify_paths(ec);
    }
    if (ec) {
        return unexpected(config_.file + ": key '" + key +
                          ".ca_file': cannot load CA certificates: " + ec.message());
    }
    client_tls_.push_back(std::move(tls));
    return make_next_hop(hop, config_.hostname, workers_, *client_tls_.back(), clock_);
}

Expected<void, std::string> Relay::open_inbound() {
    const Inbound& in = *config_.inbound;
    dns::UnboundOptions dns_options;
    dns_options.upstream = in.dns_server;
    dns_options.timeout = in.dns_timeout;
    dns_options.trust_anchor_file = in.dnssec_trust_anchor;
    auto resolver = dns::UnboundResolver::create(dns_options);
    if (!resolver) {
        return unexpected(config_.file + ": [inbound]: " + resolver.error());
    }
    resolver_ = std::move(*resolver);
    keys_ = std::make_unique<KeyFetcher>(*resolver_);
    inbound::Settings settings;
    settings.authserv_id = in.authserv_id;
    settings.check_helo = in.check_helo;
    settings.reject_dmarc = in.dmarc_reject;
    settings.quarantine_dmarc = in.quarantine != Quarantine::off;
    if (in.tree_walk) {
        settings.dmarc.method = dmarc::OrgDomainMethod::tree_walk;
    } else {
        auto psl = dmarc::PublicSuffixList::load(in.psl_file);
        if (!psl) {
            return unexpected(config_.file + ": key 'inbound.psl_file': " + psl.error());
        }
        settings.dmarc.psl = *psl;
    }
    verifier_ = std::make_unique<inbound::Verifier>(*resolver_, *keys_, settings);
    inbound_workers_ = std::make_unique<asio::thread_pool>(in.workers);
    context_->inbound = verifier_.get();
    context_->inbound_workers = inbound_workers_.get();
    auto hop = next_hop(in.next_hop, "inbound.next_hop");
    if (!hop) {
        return unexpected(hop.error());
    }
    context_->inbound_next_hop = std::move(*hop);
    if (in.quarantine_next_hop) {
        auto quarantine = next_hop(*in.quarantine_next_hop, "inbound.quarantine_next_hop");
        if (!quarantine) {
            return unexpected(quarantine.error());
        }
        context_->quarantine_next_hop = std::move(*quarantine);
    }
    if (in.reports) {
        // Submissions in flight at once; more wait for a thread (reportd serves 16 peers).
        constexpr std::size_t kReportThreads = 4;
        // A submission's write and reportd's answer each (reportd stores, then reads the
        // reports before it answers; the sender waits 10 minutes for the final reply).
        constexpr std::chrono::milliseconds kReportTimeout{std::chrono::minutes(2)};
        report_workers_ = std::make_unique<asio::thread_pool>(kReportThreads);
        report_submitter_ = std::make_unique<ChannelSubmitter>(in.reports->socket, *report_workers_,
                                                               kReportTimeout);
        report_intake_ = std::make_unique<ReportIntake>(*in.reports, *report_submitter_, clock_);
        context_->reports = report_intake_.get();
    }
    return {};
}

Expected<void, std::string> Relay::open() {
    error_code ec;
    auto primary = next_hop(config_.next_hop, "next_hop");
    if (!primary) {
        return unexpected(primary.error());
    }
    context_ = std::make_unique<RelayContext>(RelayContext{
        config_, workers_, signing_, std::move(*primary), metrics_, clock_, 0, 0, {}, 0, 0});
    context_->id_salt = std::random_device{}();
    if (config_.inbound) {
        if (auto opened = open_inbound(); !opened) {
            return opened;
        }
    }
    for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
        const Listener& l = config_.listeners[i];
        if (!l.unix_path.empty()) {
            server_tls_.push_back(nullptr);
            acceptors_.push_back(nullptr);
            if (auto opened = open_unix(i); !opened) {
                return opened;
            }
            continue;
        }
        unix_acceptors_.push_back(nullptr);
        auto tls = std::make_unique<ssl::context>(ssl::context::tls_server);
        harden(*tls);
        if (l.tls()) {
            tls->use_certificate_chain_file(l.tls_certificate, ec);
            if (!ec) {
                tls->use_private_key_file(l.tls_key, ssl::context::pem, ec);
            }
            if (ec) {
                return unexpected(config_.file + ": listener " + l.address.to_string() +
                                  ": cannot load tls_certificate/tls_key: " + ec.message());
            }
        }
        server_tls_.push_back(std::move(tls));
        const auto address = asio::ip::make_address(l.address.host, ec);
        if (ec) {
            return unexpected("cannot listen on " + l.address.to_string() + ": " + ec.message());
        }
        auto acceptor = std::make_unique<tcp::acceptor>(io_);
        const tcp::endpoint endpoint(address, l.address.port);
        acceptor->open(endpoint.protocol(), ec);
        if (!ec) {
            acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
            acceptor->bind(endpoint, ec);
        }
        if (!ec) {
            acceptor->listen(asio::socket_base::max_listen_connections, ec);
        }
        if (ec) {
            return unexpected("cannot listen on " + l.address.to_string() + ": " + ec.message());
        }
        acceptors_.push_back(std::move(acceptor));
    }
    for (std::size_t i = 0; i < acceptors_.size(); ++i) {
        if (acceptors_[i]) {
            accept(i);
        } else {
            accept_unix(i);
        }
    }
    return {};
}

Expected<void, std::string> Relay::open_unix(std::size_t listener) {
    const std::string& path = config_.listeners[listener].unix_path;
    // A socket file left by an earlier run is replaced; anything else at the path is an error.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return unexpected("cannot listen on unix:" + path + ": it exists and is no socket");
        }
        (void)::unlink(path.c_str());
    }
    error_code ec;
    auto acceptor = std::make_unique<asio::local::stream_protocol::acceptor>(io_);
    const asio::local::stream_protocol::endpoint endpoint(path);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) {
        // Anyone may connect; the peer's user is checked at once (allowed_users). The mode is
        // given at bind through the umask: a chmod by path afterwards would follow a symlink
        // planted there in between. (Nothing else of the relay makes files while it opens its
        // listeners, so the process-wide umask is changed for this one call.)
        const mode_t before = ::umask(0111);
        acceptor->bind(endpoint, ec);
        ::umask(before);
    }
    if (!ec) {
        acceptor->listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        return unexpected("cannot listen on unix:" + path + ": " + ec.message());
    }
    unix_acceptors_.push_back(std::move(acceptor));
    return {};
}

void Relay::accept_unix(std::size_t listener) {
    unix_acceptors_[listener]->async_accept(
        [this, listener](error_code ec, asio::local::stream_protocol::socket socket) {
            if (ec == asio::error::operation_aborted || !unix_acceptors_[listener]->is_open()) {
                return;
            }
            if (!ec) {
                const Listener& l = config_.listeners[listener];
                const std::string refusal = milter_refusal(l, socket);
                std::make_shared<MilterSession>(
                    *context_, l, asio::generic::stream_protocol::socket(std::move(socket)),
                    refusal)
                    ->start();
            }
            accept_unix(listener);
        });
}

std::vector<tcp::endpoint> Relay::endpoints() const {
    std::vector<tcp::endpoint> out;
    for (const auto& a : acceptors_) {
        error_code ec;
        out.push_back(a ? a->local_endpoint(ec) : tcp::endpoint());
    }
    return out;
}

void Relay::accept(std::size_t listener) {
    acceptors_[listener]->async_accept([this, listener](error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptors_[listener]->is_open()) {
            return;
        }
        const Listener& l = config_.listeners[listener];
        if (!ec && l.protocol == Listener::Protocol::milter) {
            const std::string refusal = milter_refusal(l, socket);
            std::make_shared<MilterSession>(
                *context_, l, asio::generic::stream_protocol::socket(std::move(socket)), refusal)
                ->start();
        } else if (!ec) {
            std::make_shared<Session>(*context_, l, *server_tls_[listener], std::move(socket))
                ->start();
        }
        accept(listener);
    });
}

void Relay::run() {
    io_.run();
}

bool Relay::responsive(std::chrono::milliseconds budget) {
    auto answered = std::make_shared<std::promise<void>>();
    auto future = answered->get_future();
    asio::post(io_, [answered] { answered->set_value(); });
    return future.wait_for(budget) == std::future_status::ready;
}

void Relay::stop() {
    asio::post(io_, [this] {
        for (auto& a : acceptors_) {
            error_code ignored;
            if (a) {
                a->close(ignored);
            }
        }
        for (auto& a : unix_acceptors_) {
            error_code ignored;
            if (a) {
                a->close(ignored);
            }
        }
    });
    io_.stop();
}

}  // namespace dkim::relayd

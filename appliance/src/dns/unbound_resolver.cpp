#include "dkim/dns/unbound_resolver.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <unbound.h>

#include <charconv>
#include <condition_variable>
#include <mutex>

namespace dkim::dns {
namespace {

constexpr int kTypeTxt = 16;
constexpr int kClassIn = 1;
constexpr int kRcodeNxdomain = 3;

struct CtxDelete {
    void operator()(ub_ctx* ctx) const { ub_ctx_delete(ctx); }
};

// One outstanding query; written by unbound's callback under Impl::mutex.
struct Pending {
    bool done = false;
    TxtResult result;
};

// TXT RDATA is a sequence of <length><bytes> character-strings; a record is their
// concatenation.
std::optional<std::string> txt_rdata(const char* data, int len) {
    std::string out;
    int pos = 0;
    while (pos < len) {
        const auto n = static_cast<unsigned char>(data[pos]);
        if (pos + 1 + n > len) {
            return std::nullopt;
        }
        out.append(data + pos + 1, n);
        pos += 1 + n;
    }
    return out;
}

void on_result(void* arg, int err, ub_result* result) {
    auto* pending = static_cast<Pending*>(arg);
    TxtResult& r = pending->result;
    if (err != 0) {
        r.status = LookupStatus::temporary_failure;
        r.error = ub_strerror(err);
    } else if (result->havedata) {
        r.status = LookupStatus::found;
        r.ttl = std::chrono::seconds(result->ttl);
        for (int i = 0; result->data[i] != nullptr; ++i) {
            auto txt = txt_rdata(result->data[i], result->len[i]);
            if (txt) {
                r.records.push_back(std::move(*txt));
            }
        }
    } else if (result->nxdomain || result->rcode == kRcodeNxdomain) {
        r.status = LookupStatus::no_such_name;
        r.ttl = std::chrono::seconds(result->ttl);
    } else if (result->rcode == 0) {
        r.status = LookupStatus::no_data;
        r.ttl = std::chrono::seconds(result->ttl);
    } else {
        r.status = LookupStatus::temporary_failure;
        r.error = "DNS rcode " + std::to_string(result->rcode);
    }
    if (result != nullptr) {
        ub_resolve_free(result);
    }
    pending->done = true;
}

}  // namespace

std::optional<std::string> unbound_forward_address(std::string_view upstream) {
    std::string host;
    std::string_view port;
    if (!upstream.empty() && upstream.front() == '[') {
        const std::size_t close = upstream.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        host = std::string(upstream.substr(1, close - 1));
        std::string_view rest = upstream.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return std::nullopt;
            }
            port = rest.substr(1);
        }
    } else {
        const std::size_t colon = upstream.find(':');
        if (colon != std::string_view::npos &&
            upstream.find(':', colon + 1) != std::string_view::npos) {
            host = std::string(upstream);  // a bare IPv6 address
        } else {
            host = std::string(upstream.substr(0, colon));
            if (colon != std::string_view::npos) {
                port = upstream.substr(colon + 1);
            }
        }
    }
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1) {
        return std::nullopt;
    }
    if (port.empty()) {
        return host;
    }
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
        return std::nullopt;
    }
    return host + "@" + std::to_string(value);
}

struct UnboundResolver::Impl {
    std::unique_ptr<ub_ctx, CtxDelete> ctx;
    std::chrono::milliseconds timeout{};
    // unbound's async calls are serialized here; one waiting thread at a time polls the
    // context's descriptor and its ub_process() completes everyone's queries.
    std::mutex mutex;
    std::condition_variable changed;
    bool polling = false;
};

UnboundResolver::UnboundResolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UnboundResolver::~UnboundResolver() = default;

Expected<std::unique_ptr<UnboundResolver>, std::string> UnboundResolver::create(
    const UnboundOptions& options) {
    auto impl = std::make_unique<Impl>();
    impl->timeout = options.timeout;
    impl->ctx.reset(ub_ctx_create());
    if (!impl->ctx) {
        return unexpected(std::string("cannot create the unbound context"));
    }
    ub_ctx* ctx = impl->ctx.get();
    // A worker thread, not a forked process: we may be a multi-threaded daemon.
    if (int err = ub_ctx_async(ctx, 1); err != 0) {
        return unexpected("unbound: " + std::string(ub_strerror(err)));
    }
    if (options.upstream) {
        const auto addr = unbound_forward_address(*options.upstream);
        if (!addr) {
            return unexpected("invalid DNS server address '" + *options.upstream +
                              "' (expected IP or IP:PORT)");
        }
        // Forwarding to a server on loopback is what tests and local caches do.
        if (int err = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no"); err != 0) {
            return unexpected("unbound: " + std::string(ub_strerror(err)));
        }
        if (int err = ub_ctx_set_fwd(ctx, addr->c_str()); err != 0) {
            return unexpected("unbound: cannot forward to " + *options.upstream + ": " +
                              ub_strerror(err));
        }
    } else if (int err = ub_ctx_resolvconf(ctx, nullptr); err != 0) {
        return unexpected("unbound: cannot read /etc/resolv.conf: " +
                          std::string(ub_strerror(err)));
    }
    return std::unique_ptr<UnboundResolver>(new UnboundResolver(std::move(impl)));
}

TxtResult UnboundResolver::lookup_txt(std::string_view name) {
    Impl& impl = *impl_;
    const std::string query(name);
    Pending pending;
    int async_id = 0;
    const auto deadline = std::chrono::steady_clock::now() + impl.timeout;
    std::unique_lock lock(impl.mutex);
    if (int err = ub_resolve_async(impl.ctx.get(), query.c_str(), kTypeTxt, kClassIn, &pending,
                                   on_result, &async_id);
        err != 0) {
        TxtResult r;
        r.error = ub_strerror(err);
        return r;
    }
    while (!pending.done) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            ub_cancel(impl.ctx.get(), async_id);
            TxtResult r;
            r.error = "DNS lookup timed out after " + std::to_string(impl.timeout.count()) + " ms";
            return r;
        }
        if (impl.polling) {
            impl.changed.wait_until(lock, deadline);
            continue;
        }
        impl.polling = true;
        const int fd = ub_fd(impl.ctx.get());
        lock.unlock();
        pollfd pfd{fd, POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(1, left.count())));
        lock.lock();
        if (ready > 0) {
            ub_process(impl.ctx.get());  // runs on_result for every finished query
        }
        impl.polling = false;
        impl.changed.notify_all();
    }
    return std::move(pending.result);
}

}  // namespace dkim::dns

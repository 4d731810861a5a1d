#include "dkim/dns/unbound_resolver.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <unbound.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>

#include "dkim/lock_guarded.hpp"

namespace dkim::dns {
namespace {

constexpr int kClassIn = 1;
constexpr int kRcodeNxdomain = 3;

struct CtxDelete {
    void operator()(ub_ctx* ctx) const { ub_ctx_delete(ctx); }
};

// One outstanding query; written by unbound's callback, which runs with Impl::context locked.
struct Pending {
    RecordType type = RecordType::txt;
    bool done = false;
    Answer result;
};

// TXT RDATA is a sequence of <length><bytes> character-strings; a record is their
// concatenation.
std::optional<std::string> txt_rdata(std::string_view data) {
    std::string out;
    std::size_t pos = 0;
    while (pos < data.size()) {
        const auto n = static_cast<unsigned char>(data[pos]);
        if (pos + 1 + n > data.size()) {
            return std::nullopt;
        }
        out.append(data.substr(pos + 1, n));
        pos += 1 + n;
    }
    return out;
}

// A domain name in wire form (unbound hands RDATA names uncompressed) as dotted text.
std::optional<std::string> wire_name(std::string_view data) {
    std::string out;
    std::size_t pos = 0;
    while (pos < data.size()) {
        const auto n = static_cast<unsigned char>(data[pos]);
        if (n == 0) {
            return out.empty() ? std::optional<std::string>(".") : out;
        }
        if (n > 63 || pos + 1 + n > data.size()) {
            return std::nullopt;  // a compression pointer or a truncated label
        }
        if (!out.empty()) {
            out += '.';
        }
        out.append(data.substr(pos + 1, n));
        pos += 1 + n;
    }
    return std::nullopt;
}

std::optional<std::string> address_rdata(std::string_view data, int family) {
    char text[INET6_ADDRSTRLEN] = {};
    const std::size_t want = family == AF_INET ? 4 : 16;
    if (data.size() != want || inet_ntop(family, data.data(), text, sizeof text) == nullptr) {
        return std::nullopt;
    }
    return std::string(text);
}

// Records of `type` from the answer's RDATA; malformed ones are left out. MX records come
// out by preference.
std::vector<std::string> records(RecordType type, const ub_result& result) {
    std::vector<std::pair<unsigned, std::string>> out;
    for (int i = 0; result.data[i] != nullptr; ++i) {
        const std::string_view data(result.data[i], static_cast<std::size_t>(result.len[i]));
        std::optional<std::string> value;
        unsigned preference = 0;
        switch (type) {
            case RecordType::txt: value = txt_rdata(data); break;
            case RecordType::a: value = address_rdata(data, AF_INET); break;
            case RecordType::aaaa: value = address_rdata(data, AF_INET6); break;
            case RecordType::ptr: value = wire_name(data); break;
            case RecordType::mx:
                if (data.size() > 2) {
                    preference = static_cast<unsigned>(static_cast<unsigned char>(data[0])) << 8 |
                                 static_cast<unsigned char>(data[1]);
                    value = wire_name(data.substr(2));
                }
                break;
        }
        if (value) {
            out.emplace_back(preference, std::move(*value));
        }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> values;
    values.reserve(out.size());
    for (auto& [preference, value] : out) {
        values.push_back(std::move(value));
    }
    return values;
}

void on_result(void* arg, int err, ub_result* result) {
    auto* pending = static_cast<Pending*>(arg);
    Answer& r = pending->result;
    if (err != 0) {
        r.status = LookupStatus::temporary_failure;
        r.error = ub_strerror(err);
    } else if (result->bogus) {
        // DNSSEC validation failed: an attack or a broken zone; never an answer.
        r.status = LookupStatus::temporary_failure;
        r.security = Security::bogus;
        r.error = std::string("DNSSEC validation failed") +
                  (result->why_bogus != nullptr ? std::string(": ") + result->why_bogus : "");
    } else {
        r.security = result->secure ? Security::secure : Security::insecure;
        r.ttl = std::chrono::seconds(result->ttl);
        if (result->havedata) {
            r.status = LookupStatus::found;
            r.records = records(pending->type, *result);
        } else if (result->nxdomain || result->rcode == kRcodeNxdomain) {
            r.status = LookupStatus::no_such_name;
        } else if (result->rcode == 0) {
            r.status = LookupStatus::no_data;
        } else {
            r.status = LookupStatus::temporary_failure;
            r.error = "DNS rcode " + std::to_string(result->rcode);
        }
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
    // unbound's async calls are serialized by this lock; one waiting thread at a time polls the
    // context's descriptor and its ub_process() completes everyone's queries.
    struct Context {
        std::unique_ptr<ub_ctx, CtxDelete> ctx;
        bool polling = false;
    };
    std::chrono::milliseconds timeout{};
    LockGuarded<Context> context;
    // Signalled when a poller is done; waited on with `context` locked.
    std::condition_variable changed;
};

UnboundResolver::UnboundResolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UnboundResolver::~UnboundResolver() = default;

Expected<std::unique_ptr<UnboundResolver>, std::string> UnboundResolver::create(
    const UnboundOptions& options) {
    auto impl = std::make_unique<Impl>();
    impl->timeout = options.timeout;
    // Set up before anyone else can reach it, then moved inside the lock.
    std::unique_ptr<ub_ctx, CtxDelete> context(ub_ctx_create());
    if (!context) {
        return unexpected(std::string("cannot create the unbound context"));
    }
    ub_ctx* ctx = context.get();
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
        // unbound answers the special-use names test. and invalid. (RFC 6761) itself, with
        // NXDOMAIN, and "nodefault" does not lift that through libunbound: "transparent" passes
        // the questions on to the server the operator named (a lab's zone, the demo's
        // example.test).
        for (const char* zone : {"test. transparent", "invalid. transparent"}) {
            if (int err = ub_ctx_set_option(ctx, "local-zone:", zone); err != 0) {
                return unexpected("unbound: " + std::string(ub_strerror(err)));
            }
        }
        if (int err = ub_ctx_set_fwd(ctx, addr->c_str()); err != 0) {
            return unexpected("unbound: cannot forward to " + *options.upstream + ": " +
                              ub_strerror(err));
        }
    } else if (int err = ub_ctx_resolvconf(ctx, nullptr); err != 0) {
        return unexpected("unbound: cannot read /etc/resolv.conf: " +
                          std::string(ub_strerror(err)));
    }
    if (options.trust_anchor_file) {
        if (int err = ub_ctx_add_ta_file(ctx, options.trust_anchor_file->c_str()); err != 0) {
            return unexpected("unbound: cannot read the trust anchor " +
                              *options.trust_anchor_file + ": " + ub_strerror(err));
        }
    }
    impl->context.lock()->ctx = std::move(context);
    return std::unique_ptr<UnboundResolver>(new UnboundResolver(std::move(impl)));
}

Answer UnboundResolver::lookup(std::string_view name, RecordType type) {
    Impl& impl = *impl_;
    const std::string query(name);
    Pending pending;
    pending.type = type;
    int async_id = 0;
    const auto deadline = std::chrono::steady_clock::now() + impl.timeout;
    auto context = impl.context.lock();
    if (int err = ub_resolve_async(context->ctx.get(), query.c_str(), static_cast<int>(type),
                                   kClassIn, &pending, on_result, &async_id);
        err != 0) {
        Answer r;
        r.error = ub_strerror(err);
        return r;
    }
    while (!pending.done) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            ub_cancel(context->ctx.get(), async_id);
            Answer r;
            r.error = "DNS lookup timed out after " + std::to_string(impl.timeout.count()) + " ms";
            return r;
        }
        if (context->polling) {
            impl.changed.wait_until(context.lock(), deadline);
            continue;
        }
        context->polling = true;
        const int fd = ub_fd(context->ctx.get());
        context.lock().unlock();  // while this thread polls
        pollfd pfd{fd, POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(1, left.count())));
        context.lock().lock();
        if (ready > 0) {
            ub_process(context->ctx.get());  // runs on_result for every finished query
        }
        context->polling = false;
        impl.changed.notify_all();
    }
    return std::move(pending.result);
}

}  // namespace dkim::dns

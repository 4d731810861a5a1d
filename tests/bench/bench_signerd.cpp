// Signatures per second through dkim-signerd's socket, with the audit log on (SQLite WAL,
// synchronous=FULL, on disk), against hsm/ in process (SigningPool) on the same SoftHSM2
// token and keys, 1, 2 and 8 client threads. Goal (issue 4): through signerd >= 0.9 x in
// process. tests/bench/run-signerd-bench prints the ratios.
//
// The breakdown, in the same run: gate/ (the token gate alone), service/ (the whole sign path
// with the durable audit write, without the socket), roundtrip/ (a status request on the
// socket) and floor/ (a bare socketpair ping-pong: what any process boundary costs here).
// summary/: dkim-reportd's read of the signing summary (issue 21), on a year of 50 domains.
//
// The daemon side is the real one (Server, Service, Authority, Journal, HsmTokenGate) in this
// process, listening on a Unix socket in a temporary folder; each client thread keeps one
// connection, as a relay worker does, and sends the header block of a real DKIM signature.
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "bench_token.hpp"
#include "dkim/ipc/client.hpp"
#include "dkim/jit/store.hpp"
#include "server.hpp"
#include "service.hpp"
#include "summary_handlers.hpp"
#include "token_gate.hpp"

namespace {

using namespace dkim;
using namespace std::chrono_literals;

// The exact block a relay sends: canonicalized header fields, then the DKIM-Signature field
// with an empty b= (relaxed header canonicalization).
// A relay's block as signerd's signing profile wants it: t= now, x= within the lifetime, the
// profile's fields oversigned.
std::string header_block(const std::string& selector, const std::string& algorithm) {
    const std::int64_t now = unix_seconds(std::chrono::system_clock::now());
    return "from:Joe SixPack <joe@bench.example>\r\n"
           "to:Suzie Q <suzie@shopping.example.net>\r\n"
           "subject:Is dinner ready?\r\n"
           "date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
           "message-id:<20030712040037.46341.5F8J@bench.example>\r\n"
           "mime-version:1.0\r\n"
           "content-type:text/plain; charset=utf-8\r\n"
           "dkim-signature:v=1; a=" +
           algorithm + "; c=relaxed/relaxed; d=bench.example; s=" + selector +
           "; t=" + std::to_string(now) + "; x=" + std::to_string(now + 3600) +
           "; h=from:to:subject:date:message-id:mime-version:content-type:from:to:cc:subject:"
           "date:reply-to:message-id; "
           "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=";
}

struct Daemon {
    std::filesystem::path dir;
    std::unique_ptr<jit::Store> store;
    std::unique_ptr<jit::Journal> journal;
    std::unique_ptr<jit::Authority> authority;
    std::unique_ptr<jit::Directory> directory;
    std::unique_ptr<jit::KeyRegistry> keys;
    SystemClock clock;
    signerd::Metrics metrics;
    std::unique_ptr<signerd::HsmTokenGate> gate;
    std::unique_ptr<signerd::Service> service;
    signerd::Config config;
    std::unique_ptr<signerd::Server> server;
    std::thread thread;
    std::string socket;

    Daemon() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "dkim-bench-XXXXXX").string();
        dir = ::mkdtemp(pattern.data());
        store = std::move(*jit::open_sqlite_store(dir / "signerd.db"));
        const auto state = *store->load();
        journal = std::make_unique<jit::Journal>(*store, state.audit_seq, state.audit_head);
        journal->set_commit_delay(jit::kSignerdCommitDelay);  // as dkim-signerd
        journal->on_commit([this](std::chrono::nanoseconds took, std::size_t records, bool ok) {
            metrics.audit_commit(static_cast<std::uint64_t>(took.count()), records, ok);
        });
        authority = std::make_unique<jit::Authority>(*journal, jit::Policy::defaults(), state);
        directory = std::make_unique<jit::Directory>(*journal, state, jit::PasswordCost::minimal());
        keys = std::make_unique<jit::KeyRegistry>(state.keys);
        // signerd owns the token's login from here on (one Login per token and process); the
        // in-process pool keeps working on the same logged-in token.
        (void)bench::bench_token().login->release();
        gate = std::make_unique<signerd::HsmTokenGate>(bench::bench_token().token);
        const auto pin = dir / "pin";
        std::ofstream(pin) << "bench-pin\n";
        ::chmod(pin.c_str(), 0600);
        signerd::ServiceOptions options;
        options.pin_source = signerd::PinSourceKind::file;
        options.pin_path = pin;
        service = std::make_unique<signerd::Service>(*journal, *authority, *directory, *keys, *gate,
                                                     clock, metrics, options);
        // One grant for the benchmark's domain, approved by someone else, no budget.
        const jit::Actor requester{
            jit::Actor::Kind::user, "alice", static_cast<jit::RoleSet>(jit::Role::requester), {}};
        const jit::Actor approver{
            jit::Actor::Kind::user, "bob", static_cast<jit::RoleSet>(jit::Role::approver), {}};
        jit::RequestInput in;
        in.scope = jit::Scope{jit::Operation::sign, "bench.example", "*", "*"};
        in.duration = 8h;
        in.reason = "benchmark";
        auto requested = authority->request(requester, in, clock.now());
        (void)authority->approve(approver, requested->request.id, clock.now());
        service->tick();  // logs in
        config.peers[static_cast<std::uint32_t>(::getuid())] = {signerd::PeerKind::relay, "bench"};
        socket = (dir / "signerd.sock").string();
        server = std::move(
            *signerd::Server::listen(socket, 0600, std::nullopt, config, *service, metrics));
        thread = std::thread([this] { server->run(); });
    }
    ~Daemon() {
        server->stop();
        thread.join();
        server.reset();
        service->shutdown();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

Daemon& daemon_instance() {
    static Daemon d;
    return d;
}

template <bool Ed25519>
void BM_InProcess(benchmark::State& state) {
    const hsm::KeyInfo& key = bench::bench_key(Ed25519);
    const std::string block =
        header_block(Ed25519 ? "ed" : "rsa", Ed25519 ? "ed25519-sha256" : "rsa-sha256");
    const std::span<const unsigned char> data(reinterpret_cast<const unsigned char*>(block.data()),
                                              block.size());
    for (auto _ : state) {
        auto signature = bench::bench_token().pool->sign(key, data);
        if (!signature) {
            state.SkipWithError(signature.error().to_string().c_str());
            break;
        }
        benchmark::DoNotOptimize(signature->data());
    }
    state.SetItemsProcessed(state.iterations());
}

template <bool Ed25519>
void BM_Signerd(benchmark::State& state) {
    Daemon& d = daemon_instance();
    const std::uint64_t commits_before = d.metrics.audit_commits();
    const std::uint64_t records_before = d.metrics.audit_records();
    const std::uint64_t nanoseconds_before = d.metrics.audit_nanoseconds();
    ipc::SignerClient client(d.socket);
    const ipc::Request request = ipc::SignRequest{
        "bench.example",
        Ed25519 ? "ed" : "rsa",
        Ed25519 ? "ed25519-sha256" : "rsa-sha256",
        header_block(Ed25519 ? "ed" : "rsa", Ed25519 ? "ed25519-sha256" : "rsa-sha256"),
        {}};
    for (auto _ : state) {
        auto reply = client.call(request);
        if (!reply || !std::holds_alternative<ipc::SignReply>(*reply)) {
            state.SkipWithError(reply ? std::get<ipc::ErrorReply>(*reply).message.c_str()
                                      : reply.error().c_str());
            break;
        }
        benchmark::DoNotOptimize(std::get<ipc::SignReply>(*reply).signature.data());
    }
    state.SetItemsProcessed(state.iterations());
    if (state.thread_index() == 0) {
        // Group commit at work: audit records per durable commit (fsync) during this run.
        const double commits = static_cast<double>(d.metrics.audit_commits() - commits_before);
        state.counters["records_per_commit"] =
            commits > 0 ? static_cast<double>(d.metrics.audit_records() - records_before) / commits
                        : 0;
        // What one commit takes (the store's transaction and its fsync), in microseconds.
        state.counters["commit_us"] =
            commits > 0 ? static_cast<double>(d.metrics.audit_nanoseconds() - nanoseconds_before) /
                              commits / 1000.0
                        : 0;
    }
}

// The same path without the socket (Service::handle in this thread), and the token gate alone:
// where the time between in-process and through-signerd goes.
template <bool Ed25519>
void BM_Service(benchmark::State& state) {
    Daemon& d = daemon_instance();
    const signerd::Peer peer{signerd::PeerKind::relay, "bench", 0};
    for (auto _ : state) {
        ipc::Request request = ipc::SignRequest{
            "bench.example",
            Ed25519 ? "ed" : "rsa",
            Ed25519 ? "ed25519-sha256" : "rsa-sha256",
            header_block(Ed25519 ? "ed" : "rsa", Ed25519 ? "ed25519-sha256" : "rsa-sha256"),
            {}};
        auto reply = d.service->handle(peer, request);
        if (!std::holds_alternative<ipc::SignReply>(reply)) {
            state.SkipWithError(std::get<ipc::ErrorReply>(reply).message.c_str());
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}

template <bool Ed25519>
void BM_Gate(benchmark::State& state) {
    Daemon& d = daemon_instance();
    const std::string block =
        header_block(Ed25519 ? "ed" : "rsa", Ed25519 ? "ed25519-sha256" : "rsa-sha256");
    for (auto _ : state) {
        auto signature = d.gate->sign(
            "bench.example", Ed25519 ? "ed" : "rsa",
            Ed25519 ? SigningAlgorithm::ed25519_sha256 : SigningAlgorithm::rsa_sha256, block);
        if (!signature) {
            state.SkipWithError(signature.error().message.c_str());
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}

// One round trip on the socket with no work behind it.
void BM_RoundTrip(benchmark::State& state) {
    ipc::SignerClient client(daemon_instance().socket);
    for (auto _ : state) {
        auto reply = client.call(ipc::StatusRequest{});
        if (!reply) {
            state.SkipWithError(reply.error().c_str());
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}

// The machine's floor for any process boundary: one byte there and back on a socketpair
// between two threads, each waiting in poll() as signerd and its clients do.
void BM_Floor(benchmark::State& state) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        state.SkipWithError("socketpair failed");
        return;
    }
    std::thread echo([fd = fds[1]] {
        char byte = 0;
        for (;;) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, -1) < 0 || ::read(fd, &byte, 1) != 1 || ::write(fd, &byte, 1) != 1) {
                return;
            }
        }
    });
    char byte = 'x';
    for (auto _ : state) {
        pollfd p{fds[0], POLLIN, 0};
        if (::write(fds[0], &byte, 1) != 1 || ::poll(&p, 1, -1) != 1 ||
            ::read(fds[0], &byte, 1) != 1) {
            state.SkipWithError("echo failed");
            break;
        }
    }
    ::close(fds[0]);
    echo.join();
    ::close(fds[1]);
    state.SetItemsProcessed(state.iterations());
}

// The signing profile's check of one relay block (issue 18): what it adds to each signature,
// next to gate/* (the token's signature) in the same run.
void BM_Profile(benchmark::State& state) {
    const std::string block = header_block("ed", "ed25519-sha256");
    const SigningProfile profile;
    const std::int64_t now = unix_seconds(std::chrono::system_clock::now());
    for (auto _ : state) {
        auto checked = check_signing_block(block, profile, SigningAlgorithm::ed25519_sha256, now);
        if (!checked) {
            state.SkipWithError(checked.error().to_string().c_str());
            break;
        }
        benchmark::DoNotOptimize(checked->fields.size());
    }
    state.SetItemsProcessed(state.iterations());
}

// The signing summary (issue 21): what dkim-reportd's request costs signerd (the store's read,
// the grants, the reply's size check), on a store holding a year of hours for 50 domains, one
// selector each signing every hour and a second one for 30 days of a rotation (474,000 rows).
// summary/domain_year: one domain's year (9,480 hours); summary/all_day: every domain's day;
// summary/all_year: every domain's year, refused once 10,000 rows are read.
struct SummaryStore {
    static constexpr std::int64_t kYearStart = 1'767'225'600;  // 2026-01-01T00:00:00Z
    std::filesystem::path dir;
    std::unique_ptr<jit::Store> store;
    std::unique_ptr<jit::Journal> journal;
    std::unique_ptr<jit::Authority> authority;
    std::unique_ptr<signerd::SummaryHandlers> handlers;

    SummaryStore() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "dkim-bench-summary-XXXXXX").string();
        dir = ::mkdtemp(pattern.data());
        store = std::move(*jit::open_sqlite_store(dir / "signerd.db"));
        std::vector<jit::Mutation> batch;
        const std::vector<jit::AuditRecord> none;
        for (int d = 0; d < 50; ++d) {
            const std::string domain = "domain" + std::to_string(d) + ".example";
            for (std::int64_t hour = 0; hour < 8760; ++hour) {
                const std::int64_t at = kYearStart + hour * 3600;
                batch.emplace_back(jit::SigningTally{domain, "s2026-01", at, 120 + hour % 7, 0});
                if (hour >= 4000 && hour < 4720) {
                    batch.emplace_back(jit::SigningTally{domain, "s2026-06", at, 3, hour % 2});
                }
            }
            if (!store->commit(batch, none)) {
                throw std::runtime_error("cannot fill the summary store");
            }
            batch.clear();
        }
        auto state = store->load();
        journal = std::make_unique<jit::Journal>(*store, state->audit_seq, state->audit_head);
        authority = std::make_unique<jit::Authority>(*journal, jit::Policy::defaults(), *state);
        handlers = std::make_unique<signerd::SummaryHandlers>(*journal, *authority,
                                                              std::chrono::hours(24 * 7));
    }
    ~SummaryStore() {
        handlers.reset();
        authority.reset();
        journal.reset();
        store.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    SummaryStore(const SummaryStore&) = delete;
    SummaryStore& operator=(const SummaryStore&) = delete;
};

template <int Kind>
void BM_Summary(benchmark::State& state) {
    static SummaryStore summary;
    constexpr std::int64_t kYear = std::int64_t{365} * 86400;
    const ipc::SigningSummaryRequest request =
        Kind == 0   ? ipc::SigningSummaryRequest{SummaryStore::kYearStart,
                                               SummaryStore::kYearStart + kYear, "domain17.example"}
        : Kind == 1 ? ipc::SigningSummaryRequest{SummaryStore::kYearStart + 180 * 86400,
                                                 SummaryStore::kYearStart + 181 * 86400, ""}
                    : ipc::SigningSummaryRequest{SummaryStore::kYearStart,
                                                 SummaryStore::kYearStart + kYear, ""};
    std::size_t rows = 0;
    for (auto _ : state) {
        const ipc::Reply reply = summary.handlers->signing_summary(request);
        if (const auto* ok = std::get_if<ipc::SigningSummaryReply>(&reply)) {
            rows = ok->hours.size();
        } else if (Kind != 2) {
            state.SkipWithError(std::get<ipc::ErrorReply>(reply).message.c_str());
            break;
        }
    }
    state.counters["rows"] = static_cast<double>(rows);
}

BENCHMARK_TEMPLATE(BM_Summary, 0)->Name("summary/domain_year")->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Summary, 1)->Name("summary/all_day")->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Summary, 2)->Name("summary/all_year")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Floor)->Name("floor/socketpair")->UseRealTime();
BENCHMARK(BM_Profile)->Name("profile/check");
BENCHMARK(BM_RoundTrip)->Name("roundtrip/status")->Threads(1)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Gate, false)->Name("gate/rsa2048")->Threads(1)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Gate, true)->Name("gate/ed25519")->Threads(1)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Service, false)->Name("service/rsa2048")->Threads(1)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Service, true)->Name("service/ed25519")->Threads(1)->UseRealTime();
BENCHMARK_TEMPLATE(BM_InProcess, false)
    ->Name("inprocess/rsa2048")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_InProcess, true)
    ->Name("inprocess/ed25519")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Signerd, false)
    ->Name("signerd/rsa2048")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Signerd, true)
    ->Name("signerd/ed25519")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
    return dkim::bench::run_with_bench_token(argc, argv);
}

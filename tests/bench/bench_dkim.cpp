// The DKIM engine's speed (issue 3), with the peers it is compared against measured in the
// same run. Figures only; tests/bench/run-dkim-bench prints the ratios.
//
//   sha256/SIZE                 OpenSSL SHA-256 over the body bytes: the bound for body hashing
//   bodyhash/CANON/SIZE         our streaming canonicalization + SHA-256 (64 KiB chunks)
//   tokensign/ALG/SIZE          a whole message signed by the engine with the key in SoftHSM2
//                               (header parse, body hash, header hash, C_Sign), 1 and 2 threads
//   rawtoken/ALG                a bare C_SignInit + C_Sign loop on the same token and key: the
//                               token's own rate, the ceiling for tokensign
//   softsign/rsa2048/SIZE       the engine with an in-memory OpenSSL key, and
//   opendkim/rsa2048/SIZE       OpenDKIM's libopendkim signing the same message with the same key
//   verify/ALG/1KiB             verification of a 1 KiB message, key cached (no DNS)
//
// Messages: a realistic header block and a text body of 1 KiB, 10 KiB, 100 KiB or 1 MiB.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <valgrind/callgrind.h>

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "bench_token.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/dkim/verifier.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/signing_pool.hpp"
#include "dkim/signing/token_signer.hpp"
#include "opendkim_peer.h"
#include "raw_pkcs11.hpp"
#include "softhsm_environment.hpp"
#include "software_signer.hpp"

namespace {

using namespace dkim;

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1764115200));

const std::string kHeader =
    "Received: from client.example.net (client.example.net [192.0.2.10])\r\n"
    "\tby mx.bench.example with ESMTPS id 4Q2xYz; Thu, 26 Nov 2026 10:00:00 +0000\r\n"
    "From: Alice Example <alice@bench.example>\r\n"
    "To: Bob Peer <bob@peer.example>, Carol <carol@peer.example>\r\n"
    "Subject: Quarterly figures and the plan for next year\r\n"
    "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <20261126100000.12345@bench.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n";

// Text lines of 60-76 bytes; a sentence end with two spaces now and then (relaxed rewrites it).
std::string body_of(std::size_t size) {
    static const char* words[] = {"the",     "quarterly", "figures", "show",   "steady", "growth",
                                  "in",      "signed",    "mail",    "volume", "across", "all",
                                  "domains", "and",       "regions", "while",  "costs",  "stay"};
    std::string body;
    body.reserve(size + 80);
    std::size_t w = 0;
    std::string line;
    while (body.size() < size) {
        const std::string word = words[(w * 7 + w / 5) % 18];
        ++w;
        if (line.size() + word.size() + 1 > 72) {
            body.append(line).append("\r\n");
            line.clear();
        }
        if (!line.empty()) {
            line.append(w % 23 == 0 ? ".  " : " ");
        }
        line.append(word);
    }
    body.resize(size - 2);
    body.append("\r\n");
    return body;
}

const std::string& message_of(std::size_t size) {
    static std::map<std::size_t, std::string> cache;
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    auto& m = cache[size];
    if (m.empty()) {
        m = kHeader + "\r\n" + body_of(size);
    }
    return m;
}

// --- the token ------------------------------------------------------------------------------

// One whole message through the engine, as the relay does it: split, hash the body, sign.
bool sign_once(std::string_view message, Signer& signer, std::string& out) {
    auto split = mail::split_message(message);
    if (!split) {
        return false;
    }
    MessageSigner s({SigningKey{"bench.example", "sel", &signer, {}}});
    s.update_body(split->body);
    auto fields = s.finish(split->header, kNow);
    if (!fields) {
        return false;
    }
    out = std::move(*fields);
    return true;
}

template <bool Ed25519>
void BM_TokenSign(benchmark::State& state) {
    const std::string& message = message_of(static_cast<std::size_t>(state.range(0)));
    signing::TokenSigner signer(*bench::bench_token().pool, bench::bench_key(Ed25519));
    std::string fields;
    const std::string dump_name = std::string("counted/tokensign/") +
                                  (Ed25519 ? "ed25519/" : "rsa2048/") +
                                  std::to_string(state.range(0));
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    for (auto _ : state) {
        if (!sign_once(message, signer, fields)) {
            state.SkipWithError("signing failed");
            break;
        }
        benchmark::DoNotOptimize(fields.data());
    }
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(dump_name.c_str());
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(message.size()));
}

template <bool Ed25519>
void BM_RawToken(benchmark::State& state) {
    // The floor: a session per thread, C_SignInit + C_Sign over a typical canonicalized
    // header block (what the engine hands the token), nothing else.
    static const std::string kHeaderBlock = [] {
        std::string h;
        canonicalize_header_relaxed(kHeader, h);
        return h + std::string(420, 'h');  // about the DKIM-Signature field's size
    }();
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SESSION_HANDLE session = raw.open_session(raw.slot("bench"));
    const CK_OBJECT_HANDLE key = raw.find(session, CKO_PRIVATE_KEY, bench::bench_key(Ed25519).id);
    CK_MECHANISM mechanism{Ed25519 ? CKM_EDDSA : CKM_SHA256_RSA_PKCS, nullptr, 0};
    std::array<unsigned char, 512> signature{};
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    for (auto _ : state) {
        auto* input = reinterpret_cast<unsigned char*>(const_cast<char*>(kHeaderBlock.data()));
        CK_ULONG input_size = kHeaderBlock.size();
        if (Ed25519) {
            SHA256(input, input_size, digest.data());
            input = digest.data();
            input_size = digest.size();
        }
        CK_ULONG size = signature.size();
        if (raw.fn().C_SignInit(session, &mechanism, key) != CKR_OK ||
            raw.fn().C_Sign(session, input, input_size, signature.data(), &size) != CKR_OK) {
            state.SkipWithError("C_Sign failed");
            break;
        }
        benchmark::DoNotOptimize(signature.data());
    }
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(Ed25519 ? "counted/rawtoken/ed25519" : "counted/rawtoken/rsa2048");
    raw.fn().C_CloseSession(session);
    state.SetItemsProcessed(state.iterations());
}

// --- in memory: the engine against OpenDKIM -------------------------------------------------

test::SoftwareSigner& software_rsa() {
    static auto signer =
        test::SoftwareSigner::from_pem(test::read_test_file("dkimpy/2048_testkey.key"));
    return *signer;
}

void BM_SoftSign(benchmark::State& state) {
    const std::string& message = message_of(static_cast<std::size_t>(state.range(0)));
    std::string fields;
    for (auto _ : state) {
        if (!sign_once(message, software_rsa(), fields)) {
            state.SkipWithError("signing failed");
            break;
        }
        benchmark::DoNotOptimize(fields.data());
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(message.size()));
}

void BM_OpenDkim(benchmark::State& state) {
    const std::string& message = message_of(static_cast<std::size_t>(state.range(0)));
    static const std::string pem = test::read_test_file("dkimpy/2048_testkey.key");
    void* lib = opendkim_peer_init();
    // The header fields one by one without their CRLF, as OpenDKIM's API wants them.
    auto header = mail::HeaderBlock::parse(kHeader);
    std::vector<std::string> fields;
    std::vector<const char*> pointers;
    std::vector<std::size_t> sizes;
    for (std::size_t i = 0; i < header->size(); ++i) {
        std::string_view raw = header->raw(i);
        fields.emplace_back(raw.substr(0, raw.size() - 2));
    }
    for (const std::string& f : fields) {
        pointers.push_back(f.data());
        sizes.push_back(f.size());
    }
    const std::string_view body = std::string_view(message).substr(message.find("\r\n\r\n") + 4);
    for (auto _ : state) {
        const std::size_t len =
            opendkim_peer_sign(lib, pem.c_str(), "sel", "bench.example", pointers.data(),
                               sizes.data(), fields.size(), body.data(), body.size());
        if (len == 0) {
            state.SkipWithError("OpenDKIM signing failed");
            break;
        }
        benchmark::DoNotOptimize(len);
    }
    opendkim_peer_close(lib);
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(message.size()));
}

// --- body hashing against SHA-256 alone -----------------------------------------------------

void BM_Sha256(benchmark::State& state) {
    const std::string body = body_of(static_cast<std::size_t>(state.range(0)));
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    for (auto _ : state) {
        EVP_Digest(body.data(), body.size(), digest.data(), nullptr, EVP_sha256(), nullptr);
        benchmark::DoNotOptimize(digest.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}

template <Canon C>
void BM_BodyHash(benchmark::State& state) {
    const std::string body = body_of(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        BodyHasher hasher(C);
        for (std::size_t pos = 0; pos < body.size(); pos += 65536) {
            hasher.update(std::string_view(body).substr(pos, 65536));
        }
        auto digest = hasher.finish();
        benchmark::DoNotOptimize(digest.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}

// --- verification, key cached ---------------------------------------------------------------

template <bool Ed25519>
void BM_Verify(benchmark::State& state) {
    static auto ed = test::SoftwareSigner::generate(0);
    test::SoftwareSigner& signer = Ed25519 ? *ed : software_rsa();
    dns::FakeResolver resolver;
    resolver.set_txt("sel._domainkey.bench.example", {signer.key_record()}, std::chrono::hours(1));
    KeyFetcher keys(resolver);
    std::string fields;
    const std::string& message = message_of(1024);
    if (!sign_once(message, signer, fields)) {
        state.SkipWithError("signing failed");
        return;
    }
    const std::string signed_message = fields + message;
    for (auto _ : state) {
        auto v = verify_message(signed_message, keys, kNow);
        if (!v || (*v)[0].result != mail::AuthResult::pass) {
            state.SkipWithError("verification failed");
            break;
        }
        benchmark::DoNotOptimize(v->data());
    }
    state.SetItemsProcessed(state.iterations());
}

constexpr std::int64_t kSizes[] = {1024, 10 * 1024, 100 * 1024, 1024 * 1024};

void sizes(benchmark::internal::Benchmark* b) {
    for (const auto s : kSizes) {
        b->Arg(s);
    }
}

BENCHMARK(BM_Sha256)->Name("sha256")->Apply(sizes);
BENCHMARK(BM_BodyHash<Canon::relaxed>)->Name("bodyhash/relaxed")->Apply(sizes);
BENCHMARK(BM_BodyHash<Canon::simple>)->Name("bodyhash/simple")->Apply(sizes);
BENCHMARK(BM_TokenSign<false>)
    ->Name("tokensign/rsa2048")
    ->Apply(sizes)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_TokenSign<true>)
    ->Name("tokensign/ed25519")
    ->Apply(sizes)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_RawToken<false>)->Name("rawtoken/rsa2048")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_RawToken<true>)->Name("rawtoken/ed25519")->Threads(1)->Threads(2)->UseRealTime();
// Fixed counts for instructions per message under callgrind (run-dkim-bench): SoftHSM2's
// wall-clock rate on this VM jumps between two levels from one repetition to the next, for
// the bare loop as much as for the engine; instruction counts do not.
constexpr int kCounted = 200;
BENCHMARK(BM_TokenSign<false>)
    ->Name("counted/tokensign/rsa2048")
    ->Arg(1024)
    ->Arg(10240)
    ->Iterations(kCounted);
BENCHMARK(BM_TokenSign<true>)
    ->Name("counted/tokensign/ed25519")
    ->Arg(1024)
    ->Arg(10240)
    ->Iterations(kCounted);
BENCHMARK(BM_RawToken<false>)->Name("counted/rawtoken/rsa2048")->Iterations(kCounted);
BENCHMARK(BM_RawToken<true>)->Name("counted/rawtoken/ed25519")->Iterations(kCounted);
BENCHMARK(BM_SoftSign)->Name("softsign/rsa2048")->Apply(sizes);
BENCHMARK(BM_OpenDkim)->Name("opendkim/rsa2048")->Apply(sizes);
BENCHMARK(BM_Verify<false>)->Name("verify/rsa2048/1KiB");
BENCHMARK(BM_Verify<true>)->Name("verify/ed25519/1KiB");

}  // namespace

int main(int argc, char** argv) {
    // --write-corpus DIR: write the messages (message-SIZE.eml) for peers outside this
    // process (Mail::DKIM in run-dkim-bench) and exit.
    if (argc == 3 && std::string_view(argv[1]) == "--write-corpus") {
        for (const auto size : kSizes) {
            const std::string path =
                std::string(argv[2]) + "/message-" + std::to_string(size) + ".eml";
            std::FILE* f = std::fopen(path.c_str(), "wb");
            const std::string& m = message_of(static_cast<std::size_t>(size));
            if (f == nullptr || std::fwrite(m.data(), 1, m.size(), f) != m.size() ||
                std::fclose(f) != 0) {
                std::perror(path.c_str());
                return 1;
            }
        }
        return 0;
    }
    return dkim::bench::run_with_bench_token(argc, argv);
}

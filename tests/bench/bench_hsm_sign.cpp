// Signing throughput through hsm/ (SigningPool) against, in the same run and on the same
// SoftHSM2 token and keys:
//  - a bare loop of C_SignInit + C_Sign on a session owned by each thread (the floor that
//    hsm/ adds its cost to), and
//  - OpenSSL signing with an in-memory key of the same kind (what the token itself costs).
// The data signed is a typical DKIM canonicalized header block (about 600 bytes).
// Goal (issue 2): the layer costs at most 5% against the bare loop. tests/bench/run-hsm-bench
// prints the ratios.
//
// Wall-clock rates of SoftHSM2 drift by ±20% between runs on a small VM, so the "counted/"
// variants run a fixed number of iterations with callgrind's collection switched on only
// inside the loop: under `valgrind --tool=callgrind --collect-atstart=no` they give the
// instructions per signature, which do not drift. Outside valgrind the toggles do nothing.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <valgrind/callgrind.h>

#include <array>
#include <cstdio>
#include <memory>
#include <mutex>

#include "bench_token.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/signing_pool.hpp"
#include "raw_pkcs11.hpp"
#include "softhsm_environment.hpp"

namespace {

using namespace dkim;

const std::string kHeaderBlock =
    "from:Joe SixPack <joe@football.example.com>\r\n"
    "to:Suzie Q <suzie@shopping.example.net>\r\n"
    "subject:Is dinner ready?\r\n"
    "date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "message-id:<20030712040037.46341.5F8J@football.example.com>\r\n"
    "mime-version:1.0\r\n"
    "content-type:text/plain; charset=utf-8\r\n"
    "dkim-signature:v=1; a=rsa-sha256; c=relaxed/relaxed; d=football.example.com; "
    "s=brisbane; t=1528637909; h=from:to:subject:date:message-id:mime-version:content-type; "
    "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=";

std::span<const unsigned char> data() {
    return {reinterpret_cast<const unsigned char*>(kHeaderBlock.data()), kHeaderBlock.size()};
}

const hsm::KeyInfo& key_for(bool ed25519) {
    return bench::bench_key(ed25519);
}

template <bool Ed25519>
void BM_Layer(benchmark::State& state) {
    const hsm::KeyInfo& key = key_for(Ed25519);
    CALLGRIND_TOGGLE_COLLECT;
    for (auto _ : state) {
        auto signature = bench::bench_token().pool->sign(key, data());
        if (!signature) {
            state.SkipWithError(signature.error().to_string().c_str());
            break;
        }
        benchmark::DoNotOptimize(signature->data());
    }
    CALLGRIND_TOGGLE_COLLECT;
    state.SetItemsProcessed(state.iterations());
}

template <bool Ed25519>
void BM_BareLoop(benchmark::State& state) {
    // Each thread: its own session and key handle, the same work hsm/ does per signature
    // (SHA-256 of the data for Ed25519, C_SignInit, C_Sign) and nothing else.
    test::RawPkcs11 raw(test::SoftHsmEnvironment::module_path());
    const CK_SESSION_HANDLE session = raw.open_session(raw.slot("bench"));
    const CK_OBJECT_HANDLE key = raw.find(session, CKO_PRIVATE_KEY, key_for(Ed25519).id);
    CK_MECHANISM mechanism{Ed25519 ? CKM_EDDSA : CKM_SHA256_RSA_PKCS, nullptr, 0};
    std::array<unsigned char, 512> signature{};
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    CALLGRIND_TOGGLE_COLLECT;
    for (auto _ : state) {
        auto input = data();
        if (Ed25519) {
            SHA256(input.data(), input.size(), digest.data());
            input = digest;
        }
        CK_ULONG size = signature.size();
        if (raw.fn().C_SignInit(session, &mechanism, key) != CKR_OK ||
            raw.fn().C_Sign(session, const_cast<unsigned char*>(input.data()), input.size(),
                            signature.data(), &size) != CKR_OK) {
            state.SkipWithError("C_Sign failed");
            break;
        }
        benchmark::DoNotOptimize(signature.data());
    }
    CALLGRIND_TOGGLE_COLLECT;
    raw.fn().C_CloseSession(session);
    state.SetItemsProcessed(state.iterations());
}

template <bool Ed25519>
void BM_OpenSSL(benchmark::State& state) {
    EVP_PKEY* key = nullptr;
    {
        std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
            EVP_PKEY_CTX_new_id(Ed25519 ? EVP_PKEY_ED25519 : EVP_PKEY_RSA, nullptr),
            EVP_PKEY_CTX_free);
        EVP_PKEY_keygen_init(ctx.get());
        if (!Ed25519) {
            EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048);
        }
        EVP_PKEY_keygen(ctx.get(), &key);
    }
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> owned(key, EVP_PKEY_free);
    std::array<unsigned char, 512> signature{};
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    for (auto _ : state) {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                    EVP_MD_CTX_free);
        auto input = data();
        if (Ed25519) {
            SHA256(input.data(), input.size(), digest.data());
            input = digest;
        }
        std::size_t size = signature.size();
        if (EVP_DigestSignInit(ctx.get(), nullptr, Ed25519 ? nullptr : EVP_sha256(), nullptr,
                               key) != 1 ||
            EVP_DigestSign(ctx.get(), signature.data(), &size, input.data(), input.size()) != 1) {
            state.SkipWithError("OpenSSL signing failed");
            break;
        }
        benchmark::DoNotOptimize(signature.data());
    }
    state.SetItemsProcessed(state.iterations());
}

#define DKIM_SIGN_BENCHMARK(fn, ed, name) \
    BENCHMARK(fn<ed>)->Name(name)->Threads(1)->Threads(2)->UseRealTime()->MinTime(1.0)

DKIM_SIGN_BENCHMARK(BM_Layer, false, "layer/rsa2048");
DKIM_SIGN_BENCHMARK(BM_BareLoop, false, "bare/rsa2048");
DKIM_SIGN_BENCHMARK(BM_OpenSSL, false, "openssl/rsa2048");
DKIM_SIGN_BENCHMARK(BM_Layer, true, "layer/ed25519");
DKIM_SIGN_BENCHMARK(BM_BareLoop, true, "bare/ed25519");
DKIM_SIGN_BENCHMARK(BM_OpenSSL, true, "openssl/ed25519");

// Fixed iteration counts for instruction counting under callgrind (run-hsm-bench).
constexpr int kCountedIterations = 300;
BENCHMARK(BM_Layer<false>)->Name("counted/layer/rsa2048")->Iterations(kCountedIterations);
BENCHMARK(BM_BareLoop<false>)->Name("counted/bare/rsa2048")->Iterations(kCountedIterations);
BENCHMARK(BM_Layer<true>)->Name("counted/layer/ed25519")->Iterations(kCountedIterations);
BENCHMARK(BM_BareLoop<true>)->Name("counted/bare/ed25519")->Iterations(kCountedIterations);

}  // namespace

int main(int argc, char** argv) {
    return dkim::bench::run_with_bench_token(argc, argv);
}

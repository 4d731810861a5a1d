#pragma once
// The benchmarks' token: a SoftHSM2 token "bench" (made by SoftHsmEnvironment in main), logged
// in, with one RSA-2048 and one Ed25519 key and a SigningPool, made once per process before
// any timing starts.
#include <benchmark/benchmark.h>

#include <memory>

#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/signing_pool.hpp"
#include "dkim/hsm/token.hpp"
#include "softhsm_environment.hpp"

namespace dkim::bench {

struct BenchToken {
    std::shared_ptr<hsm::Token> token;
    std::unique_ptr<hsm::Login> login;
    std::unique_ptr<hsm::SigningPool> pool;
    hsm::KeyInfo rsa;
    hsm::KeyInfo ed25519;
};

inline BenchToken& bench_token() {
    static BenchToken t = [] {
        BenchToken made;
        auto module = hsm::Module::load(test::SoftHsmEnvironment::module_path());
        made.token = *hsm::Token::open(*module, hsm::TokenSelector::by_label("bench"));
        made.login = std::make_unique<hsm::Login>(
            *hsm::Login::acquire(made.token, hsm::Secret::from_string("bench-pin")));
        hsm::KeyStore store(made.token);
        made.rsa = *store.generate(*hsm::KeyName::make("bench.example", "rsa"),
                                   hsm::KeyAlgorithm::rsa2048);
        made.ed25519 =
            *store.generate(*hsm::KeyName::make("bench.example", "ed"), hsm::KeyAlgorithm::ed25519);
        made.pool = std::make_unique<hsm::SigningPool>(made.token);
        return made;
    }();
    return t;
}

inline const hsm::KeyInfo& bench_key(bool ed25519) {
    return ed25519 ? bench_token().ed25519 : bench_token().rsa;
}

// main() of a benchmark binary that uses the token: a temporary SoftHSM2 store with the
// "bench" token, the keys made before any timing starts, then the benchmarks.
inline int run_with_bench_token(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    test::SoftHsmEnvironment::create({{"bench", "bench-so", "bench-pin"}});
    bench_token();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace dkim::bench

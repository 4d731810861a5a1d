// libFuzzer target: the whole verifier on an attacker's message, with a fake resolver that
// knows one RSA and one Ed25519 key (so signatures get as far as the crypto). Every
// signature gets exactly one verdict, and no verdict is "pass" for bytes we did not sign.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dkim/dkim/verifier.hpp"
#include "dkim/dns/resolver.hpp"

namespace {

dkim::dns::FakeResolver& resolver() {
    static dkim::dns::FakeResolver* r = [] {
        auto* fake = new dkim::dns::FakeResolver;
        fake->set_txt("brisbane._domainkey.football.example.com",
                      {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="});
        fake->set_txt("test._domainkey.football.example.com",
                      {"v=DKIM1; k=rsa; "
                       "p="
                       "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6"
                       "wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/"
                       "8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/"
                       "K4w3QIDAQAB"});
        fake->set_status("temp._domainkey.football.example.com",
                         dkim::dns::LookupStatus::temporary_failure);
        return fake;
    }();
    return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view message(reinterpret_cast<const char*>(data), size);
    dkim::KeyFetcher keys(resolver());
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1764115200));
    auto verdicts = dkim::verify_message(message, keys, now);
    if (!verdicts) {
        return 0;
    }
    if (verdicts->empty()) {
        std::abort();
    }
    for (const auto& v : *verdicts) {
        if (v.result != dkim::mail::AuthResult::pass && v.result != dkim::mail::AuthResult::none &&
            v.reason.empty()) {
            std::abort();  // every non-pass says why
        }
    }
    (void)dkim::mail::render_authentication_results("fuzz", dkim::to_method_results(*verdicts));
    return 0;
}

// libFuzzer target: signerd's signing profile (dkim/dkim/signing_profile.hpp) over arbitrary
// header blocks, as a compromised relay could send them. A refusal must name its rule and say
// why; a block that is accepted must mean to a verifier exactly what it meant to signerd
// (signing_profile_oracle.hpp): the same fields, the same d=, s=, a= and h=, the same bytes.
// The clock is set to the block's own t= so that the fuzzer reaches the rules past the time
// checks.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dkim/dkim/signing_profile.hpp"
#include "signing_profile_oracle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view block(reinterpret_cast<const char*>(data), size);
    const auto parsed = dkim::parse_signing_block(block);
    if (!parsed) {
        if (parsed.error().message.empty()) {
            std::abort();
        }
        return 0;
    }
    const dkim::SigningProfile profile;
    const std::int64_t now = parsed->signature.timestamp.value_or(0);
    const auto checked =
        dkim::check_signing_block(block, profile, parsed->signature.algorithm, now);
    if (!checked) {
        if (checked.error().message.empty()) {
            std::abort();
        }
        return 0;
    }
    if (!dkim::test::profile_disagreement(block, *checked).empty()) {
        std::abort();
    }
    return 0;
}

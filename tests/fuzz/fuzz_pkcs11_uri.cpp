// libFuzzer target: RFC 7512 URI parsing (configuration and command lines are untrusted).
// Beyond "no crash", it checks the round-trip property: whatever parses, prints to a
// canonical form that parses back to the same value.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dkim/hsm/uri.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto uri = dkim::hsm::Pkcs11Uri::parse(text);
    if (!uri) {
        if (uri.error().empty()) {
            std::abort();  // every refusal must say why
        }
        return 0;
    }
    const std::string canonical = uri->to_string();
    auto again = dkim::hsm::Pkcs11Uri::parse(canonical);
    if (!again || !(*again == *uri) || again->to_string() != canonical) {
        std::abort();
    }
    return 0;
}

// libFuzzer target: what reaches signerd (through dkim-webd) or the CLI for the PIN's custody:
// sealed envelopes (parsed, then opened with a fixed key), share texts (parsed, formatted again,
// committed to), and share files (decrypted with a fixed passphrase). The first byte chooses the
// reading; the rest is the input.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/custody/envelope.hpp"
#include "dkim/custody/shares.hpp"

namespace {

namespace custody = dkim::custody;

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

const custody::RecipientKey& fuzz_recipient() {
    static const custody::RecipientKey key = [] {
        auto made = custody::generate_recipient_key();
        require(made.has_value());
        return std::move(*made);
    }();
    return key;
}

// scrypt's cost comes from the file: skip the (legitimate, bounded) costs above 2^10, which
// would only make each input slow.
bool cheap(std::string_view json) {
    const auto at = json.find("\"n\":");
    if (at == std::string_view::npos) {
        return true;
    }
    std::uint64_t n = 0;
    for (std::size_t i = at + 4; i < json.size() && i < at + 14 && json[i] >= '0' && json[i] <= '9';
         ++i) {
        n = n * 10 + static_cast<std::uint64_t>(json[i] - '0');
    }
    return n <= 1024;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);  // NOLINT
    switch (data[0] % 3) {
        case 0: {
            auto envelope = custody::parse_envelope(input);
            if (envelope) {
                require(custody::format_envelope(*envelope) == input);  // one text per envelope
                auto opened = custody::open(*envelope, fuzz_recipient(), "fuzz");
                require(opened || opened.error() == "the envelope does not open");
            }
            break;
        }
        case 1: {
            auto share = custody::parse_share(input);
            if (share) {
                const auto text = custody::format_share(*share);
                auto again = custody::parse_share(std::string_view(
                    reinterpret_cast<const char*>(text.bytes().data()), text.size()));  // NOLINT
                require(again && again->data.equals(share->data) && again->index == share->index);
                require(custody::share_commitment(*again) == custody::share_commitment(*share));
            }
            break;
        }
        default:
            if (cheap(input)) {
                (void)custody::decrypt_share_file(input, dkim::hsm::Secret::from_string("fuzz"));
            }
            break;
    }
    return 0;
}

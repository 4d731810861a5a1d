#include "dkim/base/hex.hpp"

#include <algorithm>

namespace dkim::base {

namespace {
constexpr std::string_view kHexDigits = "0123456789abcdef";
}

std::string hex_encode(std::span<const std::uint8_t> bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const std::uint8_t b : bytes) {
        out += kHexDigits[b >> 4];
        out += kHexDigits[b & 0x0f];
    }
    return out;
}

std::string hex_encode(std::string_view bytes) {
    return hex_encode(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

int hex_digit_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool hex_decode_into(std::string_view text, std::span<std::uint8_t> out) {
    if (text.size() != out.size() * 2) {
        return false;
    }
    const bool all_digits =
        std::all_of(text.begin(), text.end(), [](char c) { return hex_digit_value(c) >= 0; });
    if (!all_digits) {
        return false;
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::uint8_t>(hex_digit_value(text[2 * i]) * 16 +
                                           hex_digit_value(text[2 * i + 1]));
    }
    return true;
}

std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view text) {
    if (text.size() % 2 != 0) {
        return std::nullopt;
    }
    std::vector<std::uint8_t> out(text.size() / 2);
    if (!hex_decode_into(text, out)) {
        return std::nullopt;
    }
    return out;
}

}  // namespace dkim::base

#pragma once
// Lower-case hexadecimal, the one encoder and decoder of the tree (audit chain heads, key
// IDs, HMACs, fingerprints, request IDs).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dkim::base {

// "00ff..." for the bytes, two lower-case digits each.
std::string hex_encode(std::span<const std::uint8_t> bytes);
std::string hex_encode(std::string_view bytes);

// The value of one hex digit (either case), or -1.
int hex_digit_value(char c) noexcept;

// The bytes of an even-length string of hex digits (either case); nullopt for anything else.
std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view text);
// Decodes exactly out.size() bytes (text must be twice as long); false, and out untouched,
// when it is not.
bool hex_decode_into(std::string_view text, std::span<std::uint8_t> out);

}  // namespace dkim::base

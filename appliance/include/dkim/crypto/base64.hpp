#pragma once
// Base64 (RFC 4648 §4) as DKIM uses it: b=, bh= and p= values may contain folding white
// space, which decoding skips; anything else outside the alphabet, or bad padding, is an error.

#include <optional>
#include <string>
#include <string_view>

namespace dkim::crypto {

std::string base64_encode(std::string_view bytes);
// std::nullopt for malformed input. White space (SP, TAB, CR, LF) anywhere is ignored.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace dkim::crypto

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

// base64url without padding (RFC 4648 §5), as WebAuthn and its JSON use it. Decoding is strict:
// no padding, no white space, no other character, and the bits left over at the end must be
// zero (so that one text decodes to one byte string and back).
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace dkim::crypto

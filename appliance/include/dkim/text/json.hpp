#pragma once
// JSON text for the few places that write it by hand (webhook bodies, audit exports): one
// string, quoted and escaped (RFC 8259 §7). Bytes that are not valid UTF-8 pass through as they
// are; the callers write their own ASCII and user-supplied one-line texts.

#include <string>
#include <string_view>

namespace dkim::text {

// "\"a\\\"b\"" for a"b; control characters as \n, \r, \t or \u00XX.
std::string json_quote(std::string_view text);

}  // namespace dkim::text

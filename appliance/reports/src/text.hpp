#pragma once
// Small text helpers the report parsers share.

#include <string>
#include <string_view>

namespace dkim::reports::text {

// Without leading and trailing white space (space, tab, CR, LF).
std::string_view trim(std::string_view s);
// ASCII letters lower-cased.
std::string lower(std::string_view s);
// For error messages: at most 64 bytes, control characters and non-ASCII as '?'.
std::string printable(std::string_view s);

}  // namespace dkim::reports::text

#pragma once
// Secrets are wiped after use (OPENSSL_cleanse: a store the compiler may not drop) and
// compared in constant time. The one implementation of each for the whole tree.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dkim::base {

// Overwrites size bytes at data with zeros.
void secure_wipe(void* data, std::size_t size) noexcept;
// Overwrites the string's bytes (its whole capacity) and empties it.
void wipe(std::string& secret) noexcept;
void wipe(std::vector<std::uint8_t>& secret) noexcept;

// Whether a and b hold the same bytes; the time taken depends on their lengths only.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace dkim::base

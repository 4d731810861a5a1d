#pragma once
// Milter packets as an MTA writes them, for the protocol's and the conversation's tests
// (tests/appliance/milter/protocol_test.cpp, tests/relayd/milter_test.cpp).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dkim::test {

// A literal with its NULs.
template <std::size_t N>
std::string bin(const char (&s)[N]) {
    return std::string(s, N - 1);
}

// A 32-bit word, big-endian.
inline std::string u32(std::uint32_t v) {
    std::string s(4, '\0');
    s[0] = static_cast<char>(v >> 24);
    s[1] = static_cast<char>(v >> 16);
    s[2] = static_cast<char>(v >> 8);
    s[3] = static_cast<char>(v);
    return s;
}

// A packet: its length (the command byte and the data), the command, the data.
inline std::string packet(char command, std::string_view data = {}) {
    return u32(static_cast<std::uint32_t>(data.size() + 1)) + command + std::string(data);
}

}  // namespace dkim::test

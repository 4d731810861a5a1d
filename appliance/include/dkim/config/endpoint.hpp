#pragma once
// A listening or connecting address as configured: "127.0.0.1:25", "[::1]:8443".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dkim::config {

struct Endpoint {
    std::string host;  // an IP address (or a host name, for a next hop)
    std::uint16_t port = 0;
    std::string to_string() const;  // brackets around IPv6 addresses
};
// "127.0.0.1:25", "[::1]:25", "localhost:25" (host names are resolved later).
std::optional<Endpoint> parse_endpoint(std::string_view text);

}  // namespace dkim::config

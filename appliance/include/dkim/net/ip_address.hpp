#pragma once
// An IPv4 or IPv6 address as SPF and Authentication-Results need it: parsed from text,
// compared within a CIDR prefix, written back, and as the nibbles of a reverse name.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dkim::net {

class IpAddress {
  public:
    enum class Family : std::uint8_t { v4, v6 };

    // "192.0.2.1", "2001:db8::1" (no brackets, no zone index). An IPv4-mapped IPv6 address
    // (::ffff:192.0.2.1) stays IPv6 here; see unmapped().
    static std::optional<IpAddress> parse(std::string_view text);

    Family family() const { return family_; }
    bool is_v4() const { return family_ == Family::v4; }
    // The IPv4 address inside ::ffff:a.b.c.d, or the address itself.
    IpAddress unmapped() const;
    // The first `prefix` bits equal those of `network` (of the same family; prefix is capped
    // at the family's width).
    bool in_network(const IpAddress& network, unsigned prefix) const;

    std::string to_string() const;
    // RFC 7208 §7.3 %{i}: dotted quad, or 32 dot-separated lowercase nibbles for IPv6.
    std::string to_dotted() const;
    // The name for a PTR lookup: "1.2.0.192.in-addr.arpa" or the nibbles reversed + "ip6.arpa".
    std::string reverse_name() const;

    friend bool operator==(const IpAddress&, const IpAddress&) = default;

  private:
    Family family_ = Family::v4;
    std::array<std::uint8_t, 16> bytes_{};  // IPv4 uses the first 4
};

}  // namespace dkim::net

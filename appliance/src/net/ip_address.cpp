#include "dkim/net/ip_address.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace dkim::net {
namespace {

constexpr std::string_view kHex = "0123456789abcdef";

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
        return std::nullopt;
    }
    const std::string copy(text);
    IpAddress out;
    if (inet_pton(AF_INET, copy.c_str(), out.bytes_.data()) == 1) {
        out.family_ = Family::v4;
        return out;
    }
    if (inet_pton(AF_INET6, copy.c_str(), out.bytes_.data()) == 1) {
        out.family_ = Family::v6;
        return out;
    }
    return std::nullopt;
}

IpAddress IpAddress::unmapped() const {
    constexpr std::array<std::uint8_t, 12> kMapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family_ != Family::v6 || !std::equal(kMapped.begin(), kMapped.end(), bytes_.begin())) {
        return *this;
    }
    IpAddress v4;
    std::copy_n(bytes_.begin() + 12, 4, v4.bytes_.begin());
    return v4;
}

bool IpAddress::in_network(const IpAddress& network, unsigned prefix) const {
    if (family_ != network.family_) {
        return false;
    }
    prefix = std::min(prefix, is_v4() ? 32U : 128U);
    const unsigned whole = prefix / 8;
    if (!std::equal(bytes_.begin(), bytes_.begin() + whole, network.bytes_.begin())) {
        return false;
    }
    const unsigned rest = prefix % 8;
    if (rest == 0) {
        return true;
    }
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (bytes_.at(whole) & mask) == (network.bytes_.at(whole) & mask);
}

std::string IpAddress::to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), text, sizeof text);
    return text;
}

std::string IpAddress::to_dotted() const {
    if (is_v4()) {
        return to_string();
    }
    std::string out;
    for (const std::uint8_t b : bytes_) {
        if (!out.empty()) {
            out += '.';
        }
        out += kHex.at(b >> 4);
        out += '.';
        out += kHex.at(b & 15U);
    }
    return out;
}

std::string IpAddress::reverse_name() const {
    std::string out;
    if (is_v4()) {
        for (int i = 3; i >= 0; --i) {
            out += std::to_string(bytes_.at(static_cast<std::size_t>(i))) + ".";
        }
        return out + "in-addr.arpa";
    }
    for (auto it = bytes_.rbegin(); it != bytes_.rend(); ++it) {
        out += kHex.at(*it & 15U);
        out += '.';
        out += kHex.at(*it >> 4);
        out += '.';
    }
    return out + "ip6.arpa";
}

}  // namespace dkim::net

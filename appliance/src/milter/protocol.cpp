#include "dkim/milter/protocol.hpp"

#include <cstdio>

namespace dkim::milter {

namespace {

std::uint32_t read_u32(std::string_view data, std::size_t at) {
    return (static_cast<std::uint32_t>(static_cast<unsigned char>(data[at])) << 24) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(data[at + 1])) << 16) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(data[at + 2])) << 8) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(data[at + 3]));
}

void append_u32(std::string& out, std::uint32_t v) {
    out.push_back(static_cast<char>((v >> 24) & 0xff));
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
}

// The NUL-terminated string at `at`; advances past its NUL. nullopt when there is no NUL.
std::optional<std::string> take_string(std::string_view data, std::size_t& at) {
    const auto end = data.find('\0', at);
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    std::string s(data.substr(at, end - at));
    at = end + 1;
    return s;
}

Unexpected<ProtocolError> error(std::string message) {
    return unexpected(ProtocolError{std::move(message)});
}

// A string field for a packet: an embedded NUL would end it early at the MTA.
std::string_view without_nul(std::string_view s) {
    return s.substr(0, s.find('\0'));
}

}  // namespace

Expected<std::optional<Packet>, ProtocolError> PacketReader::next() {
    if (buffered() < 4) {
        return std::optional<Packet>();
    }
    const std::uint32_t length = read_u32(buffer_, offset_);
    if (length == 0) {
        return error("a packet of length 0");
    }
    if (length > max_packet_) {
        return error("a packet of " + std::to_string(length) + " bytes (the limit is " +
                     std::to_string(max_packet_) + ")");
    }
    if (buffered() - 4 < length) {
        return std::optional<Packet>();
    }
    Packet p;
    p.command = buffer_[offset_ + 4];
    p.data.assign(buffer_, offset_ + 5, length - 1);
    offset_ += 4 + length;
    // Drop what was read once it is most of the buffer (amortised: no quadratic copying).
    if (offset_ == buffer_.size()) {
        buffer_.clear();
        offset_ = 0;
    } else if (offset_ > 65536 && offset_ * 2 > buffer_.size()) {
        buffer_.erase(0, offset_);
        offset_ = 0;
    }
    return std::optional<Packet>(std::move(p));
}

Expected<Negotiation, ProtocolError> parse_negotiation(std::string_view data) {
    // Three 32-bit words; an MTA may append more (Sendmail's macro lists in newer versions).
    if (data.size() < 12) {
        return error("an option negotiation of " + std::to_string(data.size()) +
                     " bytes (12 expected)");
    }
    return Negotiation{read_u32(data, 0), read_u32(data, 4), read_u32(data, 8)};
}

Expected<Connect, ProtocolError> parse_connect(std::string_view data) {
    std::size_t at = 0;
    auto hostname = take_string(data, at);
    if (!hostname) {
        return error("a connect packet without its host name's end");
    }
    if (at >= data.size()) {
        return error("a connect packet without an address family");
    }
    Connect c;
    c.hostname = std::move(*hostname);
    const char family = data[at++];
    switch (family) {
        case 'U': c.family = Connect::Family::unknown; return c;  // nothing follows
        case 'L': c.family = Connect::Family::unix_socket; break;
        case '4': c.family = Connect::Family::ipv4; break;
        case '6': c.family = Connect::Family::ipv6; break;
        default: return error("a connect packet with an unknown address family");
    }
    if (data.size() - at < 2) {
        return error("a connect packet without a port");
    }
    c.port = static_cast<std::uint16_t>((static_cast<unsigned char>(data[at]) << 8) |
                                        static_cast<unsigned char>(data[at + 1]));
    at += 2;
    auto address = take_string(data, at);
    if (!address) {
        return error("a connect packet without its address's end");
    }
    if (at != data.size()) {
        return error("a connect packet with bytes after the address");
    }
    c.address = std::move(*address);
    return c;
}

Expected<std::vector<std::string>, ProtocolError> parse_strings(std::string_view data) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < data.size()) {
        auto s = take_string(data, at);
        if (!s) {
            return error("a string without its terminating NUL");
        }
        out.push_back(std::move(*s));
    }
    return out;
}

Expected<Header, ProtocolError> parse_header(std::string_view data) {
    std::size_t at = 0;
    auto name = take_string(data, at);
    auto value = name ? take_string(data, at) : std::nullopt;
    if (!name || !value || at != data.size()) {
        return error("a header packet that is not a name and a value, each ending in NUL");
    }
    if (name->empty()) {
        return error("a header packet with an empty field name");
    }
    for (const char ch : *name) {
        // RFC 5322 §2.2: printable US-ASCII except ':'.
        if (ch < 33 || ch > 126 || ch == ':') {
            return error("a header field name with a character RFC 5322 does not allow");
        }
    }
    return Header{std::move(*name), std::move(*value)};
}

Expected<Macros, ProtocolError> parse_macros(std::string_view data) {
    if (data.empty()) {
        return error("a macro packet without the command it is for");
    }
    Macros m;
    m.for_command = data[0];
    std::size_t at = 1;
    while (at < data.size()) {
        auto name = take_string(data, at);
        auto value = name ? take_string(data, at) : std::nullopt;
        if (!value) {
            return error("a macro packet whose names and values do not pair up");
        }
        m.values.emplace_back(std::move(*name), std::move(*value));
    }
    return m;
}

std::string encode(char reply_command, std::string_view data) {
    std::string out;
    out.reserve(5 + data.size());
    append_u32(out, static_cast<std::uint32_t>(data.size() + 1));
    out.push_back(reply_command);
    out.append(data);
    return out;
}

std::string encode_negotiation(const Negotiation& n) {
    std::string data;
    append_u32(data, n.version);
    append_u32(data, n.actions);
    append_u32(data, n.steps);
    return encode(reply::option_negotiation, data);
}

std::string reply_text(std::string_view text, std::size_t limit) {
    std::string out;
    for (const char ch : text) {
        if (out.size() + 2 > limit) {
            break;
        }
        const auto u = static_cast<unsigned char>(ch);
        if (u >= 32 && u < 127 && ch != '%') {
            out.push_back(ch);
        } else if (ch == '\r' || ch == '\n' || ch == '\t') {
            if (!out.empty() && out.back() != ' ') {
                out.push_back(' ');
            }
        } else {
            out.push_back('?');
        }
    }
    while (!out.empty() && out.back() == ' ') {
        out.pop_back();
    }
    return out;
}

std::string encode_reply_code(int code, std::string_view enhanced, std::string_view text) {
    char head[16];
    (void)std::snprintf(head, sizeof head, "%03d ", code);
    std::string data = head;
    if (!enhanced.empty()) {
        data.append(reply_text(enhanced, 16));
        data.push_back(' ');
    }
    data.append(reply_text(text));
    data.push_back('\0');
    return encode(reply::reply_code, data);
}

namespace {

// INSHEADER and CHGHEADER: an index, then the field's name and value, each ending in NUL.
std::string encode_header_edit(char reply_command, std::uint32_t index, std::string_view name,
                               std::string_view value) {
    std::string data;
    append_u32(data, index);
    data.append(without_nul(name));
    data.push_back('\0');
    data.append(without_nul(value));
    data.push_back('\0');
    return encode(reply_command, data);
}

}  // namespace

std::string encode_insert_header(std::uint32_t index, std::string_view name,
                                 std::string_view value) {
    return encode_header_edit(reply::insert_header, index, name, value);
}

std::string encode_change_header(std::uint32_t index, std::string_view name,
                                 std::string_view value) {
    return encode_header_edit(reply::change_header, index, name, value);
}

std::string encode_quarantine(std::string_view reason) {
    std::string data = reply_text(reason);
    if (data.empty()) {
        data = "quarantined";
    }
    data.push_back('\0');
    return encode(reply::quarantine, data);
}

}  // namespace dkim::milter

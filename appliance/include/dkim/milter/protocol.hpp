#pragma once
// The Sendmail/Postfix milter protocol (version 6, as libmilter's mfdef.h defines it and
// Postfix's milter8 speaks it), both directions, without I/O: packets from an MTA framed and
// decoded, the milter's replies encoded. Every byte here comes from the MTA, which the
// appliance does not trust to be well-formed: a packet is a 4-byte big-endian length (the
// command byte and its data) and its bytes, and nothing longer than the reader's limit is
// buffered. A malformed packet is an error for that connection alone.
//
// What the appliance uses: OPTNEG (version, actions, protocol steps), CONNECT, HELO, MAIL,
// RCPT, HEADER, EOH, BODY, BODYEOB, ABORT, QUIT, QUIT_NC, MACRO; the replies CONTINUE, ACCEPT,
// TEMPFAIL, REPLYCODE, INSHEADER, CHGHEADER, QUARANTINE and OPTNEG.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::milter {

// The protocol version this implementation speaks (Postfix >= 2.6 and Sendmail 8.14 offer it).
inline constexpr std::uint32_t kVersion = 6;

// Commands (MTA to milter), mfdef.h's SMFIC_*.
namespace command {
inline constexpr char abort = 'A';
inline constexpr char body = 'B';
inline constexpr char connect = 'C';
inline constexpr char macro = 'D';
inline constexpr char end_of_body = 'E';
inline constexpr char helo = 'H';
inline constexpr char quit_new_connection = 'K';
inline constexpr char header = 'L';
inline constexpr char mail = 'M';
inline constexpr char end_of_header = 'N';
inline constexpr char option_negotiation = 'O';
inline constexpr char quit = 'Q';
inline constexpr char rcpt = 'R';
inline constexpr char data = 'T';
inline constexpr char unknown = 'U';
}  // namespace command

// Replies (milter to MTA), mfdef.h's SMFIR_*.
namespace reply {
inline constexpr char accept = 'a';
inline constexpr char continue_ = 'c';
inline constexpr char discard = 'd';
inline constexpr char add_header = 'h';
inline constexpr char insert_header = 'i';
inline constexpr char change_header = 'm';
inline constexpr char progress = 'p';
inline constexpr char quarantine = 'q';
inline constexpr char reject = 'r';
inline constexpr char tempfail = 't';
inline constexpr char reply_code = 'y';
inline constexpr char option_negotiation = 'O';
}  // namespace reply

// Actions the milter may take (SMFIF_*), negotiated in OPTNEG.
namespace action {
inline constexpr std::uint32_t add_headers = 0x01;
inline constexpr std::uint32_t change_body = 0x02;
inline constexpr std::uint32_t add_rcpt = 0x04;
inline constexpr std::uint32_t delete_rcpt = 0x08;
inline constexpr std::uint32_t change_headers = 0x10;
inline constexpr std::uint32_t quarantine = 0x20;
}  // namespace action

// Protocol steps (SMFIP_*): what the MTA leaves out, and which steps expect no reply.
namespace step {
inline constexpr std::uint32_t no_connect = 0x01;
inline constexpr std::uint32_t no_helo = 0x02;
inline constexpr std::uint32_t no_mail = 0x04;
inline constexpr std::uint32_t no_rcpt = 0x08;
inline constexpr std::uint32_t no_body = 0x10;
inline constexpr std::uint32_t no_headers = 0x20;
inline constexpr std::uint32_t no_end_of_header = 0x40;
inline constexpr std::uint32_t no_reply_header = 0x80;
inline constexpr std::uint32_t no_unknown = 0x100;
inline constexpr std::uint32_t no_data = 0x200;
inline constexpr std::uint32_t skip = 0x400;
inline constexpr std::uint32_t rcpt_rejected = 0x800;
inline constexpr std::uint32_t no_reply_connect = 0x1000;
inline constexpr std::uint32_t no_reply_helo = 0x2000;
inline constexpr std::uint32_t no_reply_mail = 0x4000;
inline constexpr std::uint32_t no_reply_rcpt = 0x8000;
inline constexpr std::uint32_t no_reply_data = 0x10000;
inline constexpr std::uint32_t no_reply_unknown = 0x20000;
inline constexpr std::uint32_t no_reply_end_of_header = 0x40000;
inline constexpr std::uint32_t no_reply_body = 0x80000;
inline constexpr std::uint32_t header_leading_space = 0x100000;
}  // namespace step

struct ProtocolError {
    std::string message;  // says what is wrong; never echoes more than a few bytes of input
};

// One packet from the MTA: its command byte and data (the length prefix gone).
struct Packet {
    char command = 0;
    std::string data;
};

// Frames packets out of a byte stream. `max_packet` bounds the length an MTA may announce
// (command byte included): a longer one is an error, before its bytes are buffered.
class PacketReader {
  public:
    explicit PacketReader(std::size_t max_packet) : max_packet_(max_packet) {}
    // Takes bytes as they arrive.
    void feed(std::string_view bytes) { buffer_.append(bytes); }
    // The next complete packet, nullopt when more bytes are needed, or the error that ends the
    // connection (a zero length, or a length above the limit).
    Expected<std::optional<Packet>, ProtocolError> next();
    // Bytes held that are not yet a whole packet.
    std::size_t buffered() const { return buffer_.size() - offset_; }

  private:
    std::size_t max_packet_;
    std::string buffer_;
    std::size_t offset_ = 0;
};

// OPTNEG, both ways: the MTA offers, the milter answers with what it takes.
struct Negotiation {
    std::uint32_t version = 0;
    std::uint32_t actions = 0;
    std::uint32_t steps = 0;
};
Expected<Negotiation, ProtocolError> parse_negotiation(std::string_view data);

// CONNECT: the client's host name as the MTA resolved it, and its address.
struct Connect {
    enum class Family : std::uint8_t { unknown, unix_socket, ipv4, ipv6 };
    std::string hostname;
    Family family = Family::unknown;
    std::uint16_t port = 0;
    std::string address;  // as text ("192.0.2.1", "2001:db8::1", a socket path), may be empty
};
Expected<Connect, ProtocolError> parse_connect(std::string_view data);

// MAIL, RCPT and HELO: NUL-terminated strings (the path first, then ESMTP parameters).
Expected<std::vector<std::string>, ProtocolError> parse_strings(std::string_view data);

// HEADER: a field name and its value (with the leading space when step::header_leading_space
// was negotiated; continuation lines as the MTA keeps them, "\n" or "\r\n" then white space).
struct Header {
    std::string name;
    std::string value;
};
Expected<Header, ProtocolError> parse_header(std::string_view data);

// MACRO: the command it is for and name/value pairs ("{auth_authen}", "i", ...).
struct Macros {
    char for_command = 0;
    std::vector<std::pair<std::string, std::string>> values;
};
Expected<Macros, ProtocolError> parse_macros(std::string_view data);

// The milter's replies, each a whole packet (length prefix included).
std::string encode(char reply_command, std::string_view data = {});
std::string encode_negotiation(const Negotiation& n);
// REPLYCODE: "451 4.7.0 text" (RFC 5321 code, RFC 3463 enhanced code, one line of text; the
// text is made printable ASCII without '%', which Sendmail would expand and Postfix not).
std::string encode_reply_code(int code, std::string_view enhanced, std::string_view text);
// INSHEADER at `index` (0: above every field the milter saw), ADDHEADER, and CHGHEADER of the
// `index`-th (from 1) field named `name` (an empty value removes it).
std::string encode_insert_header(std::uint32_t index, std::string_view name,
                                 std::string_view value);
std::string encode_change_header(std::uint32_t index, std::string_view name,
                                 std::string_view value);
// QUARANTINE with a reason (Postfix puts the message on hold).
std::string encode_quarantine(std::string_view reason);

// The reply text's safe form (printable ASCII but '%', at most `limit` bytes).
std::string reply_text(std::string_view text, std::size_t limit = 400);

}  // namespace dkim::milter

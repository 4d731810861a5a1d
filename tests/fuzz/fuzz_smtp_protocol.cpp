// The SMTP wire syntax that dkim-relayd reads from untrusted clients and next hops: command
// lines and paths, the line buffer, the DATA decoder, replies, xtext and From: mailbox
// domains. What is accepted is checked, not discarded:
//   - the line buffer's lines hold no CR or LF and, with their CRLFs, are the input's bytes;
//   - a command line written back (verb, space, argument) reads as the same command;
//   - a MAIL or RCPT path written back as the relay writes it to the next hop
//     ("MAIL FROM:<address>", the parameters after it) reads as the same path, and holds no
//     byte that could end or split the next hop's line (no control character);
//   - a reply formatted (format_reply) parses back to the same reply, also with its enhanced
//     code given to the formatter;
//   - xtext encoded and decoded gives the bytes back; domains from From: are valid and
//     lower case;
//   - the DATA decoder finds the same end and message however the bytes are split, its
//     message has only CRLF line ends and ends in one, and dot-stuffing it gives it back.
// The first failed check aborts (libFuzzer reports it as a crash with the input).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/mail/address.hpp"
#include "dkim/smtp/protocol.hpp"

using namespace dkim;

namespace {

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

struct Decoded {
    smtp::DataDecoder::Status status = smtp::DataDecoder::Status::more;
    std::string message;
    std::size_t consumed = 0;
    bool line_too_long = false;
    bool eight_bit = false;
    std::uint64_t size = 0;
};

Decoded decode(std::string_view wire, std::size_t piece) {
    smtp::DataDecoder decoder(998);
    Decoded out;
    for (std::size_t i = 0; i < wire.size(); i += piece) {
        const auto r = decoder.feed(wire.substr(i, piece), out.message,
                                    std::numeric_limits<std::size_t>::max());
        out.consumed += r.consumed;
        if (r.status != smtp::DataDecoder::Status::more) {
            out.status = r.status;
            break;
        }
    }
    require(!decoder.oversized());  // nothing is too big for SIZE_MAX
    out.line_too_long = decoder.line_too_long();
    out.eight_bit = decoder.eight_bit();
    out.size = decoder.size();
    return out;
}

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool same_path(const smtp::Path& a, const smtp::Path& b) {
    if (a.address != b.address || a.local_part != b.local_part || a.domain != b.domain ||
        a.utf8 != b.utf8 || a.parameters.size() != b.parameters.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.parameters.size(); ++i) {
        if (a.parameters[i].keyword != b.parameters[i].keyword ||
            a.parameters[i].value != b.parameters[i].value) {
            return false;
        }
    }
    return true;
}

// A path the parser accepted, checked on its own and written back.
void check_path(const smtp::Path& path, bool mail) {
    for (const char c : path.address) {
        const auto u = static_cast<unsigned char>(c);
        require(u >= 0x20 && u != 0x7f);  // no NUL, CR, LF or other control in the next hop's line
    }
    if (path.address.empty()) {
        require(mail && path.local_part.empty() && path.domain.empty() && !path.utf8);
    } else if (path.domain.empty()) {
        require(!mail && path.local_part == path.address);  // <Postmaster>
    } else {
        const std::size_t at = path.local_part.size();
        require(path.address.size() == at + 1 + path.domain.size() &&
                path.address.compare(0, at, path.local_part) == 0 && path.address[at] == '@');
        for (std::size_t i = 0; i < path.domain.size(); ++i) {
            require(path.domain[i] == lower(path.address[at + 1 + i]));
        }
        require(smtp::is_valid_domain(path.domain, true));
    }
    for (const auto& p : path.parameters) {
        require(!p.keyword.empty());
        for (const char c : p.keyword) {
            require(!(c >= 'a' && c <= 'z'));
        }
    }
    // As dkim-relayd's next hop client writes it (next_hop.cpp), with the parameters.
    std::string line = std::string(mail ? "MAIL FROM:<" : "RCPT TO:<") + path.address + ">";
    for (const auto& p : path.parameters) {
        line += " " + p.keyword + (p.value ? "=" + *p.value : "");
    }
    const auto command = smtp::parse_command(line);
    require(command.verb == (mail ? smtp::Verb::mail : smtp::Verb::rcpt));
    const auto again =
        mail ? smtp::parse_mail_from(command.argument) : smtp::parse_rcpt_to(command.argument);
    require(again.has_value() && same_path(*again, path));
}

bool same_reply(const smtp::Reply& a, const smtp::Reply& b) {
    return a.code == b.code && a.enhanced == b.enhanced && a.text == b.text && a.lines == b.lines;
}

// Feeds formatted reply bytes to a fresh parser: exactly one reply, complete at the end.
std::optional<smtp::Reply> parse_formatted(std::string_view wire) {
    smtp::ReplyParser parser;
    smtp::LineBuffer lines(1 << 16);
    lines.append(wire);
    std::string line;
    std::optional<smtp::Reply> out;
    while (lines.next_line(line) == smtp::LineBuffer::Status::line) {
        require(!out.has_value());  // nothing after the last line
        auto r = parser.add_line(line);
        require(r.has_value());
        out = *r;
    }
    require(!lines.has_pending());
    return out;
}

void check_reply(const smtp::Reply& reply) {
    require(reply.code >= 200 && reply.code <= 599 && !reply.lines.empty());
    require(reply.summary().rfind(std::to_string(reply.code), 0) == 0);
    const auto again = parse_formatted(smtp::format_reply(reply.code, "", reply.lines));
    require(again.has_value() && same_reply(*again, reply));
    if (!reply.enhanced.empty()) {
        // One line with the enhanced code given apart, as the relay writes its own replies.
        const auto one = parse_formatted(smtp::format_reply(reply.code, reply.enhanced, "x"));
        require(one.has_value() && one->code == reply.code && one->enhanced == reply.enhanced &&
                one->text == "x");
    }
}

// RFC 3461 §4: xtext = *( xchar / hexchar ), xchar = "!".."~" except "+" and "=".
std::string encode_xtext(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : bytes) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 33 && u <= 126 && c != '+' && c != '=') {
            out.push_back(c);
        } else {
            out.push_back('+');
            out.push_back(kHex[u >> 4]);
            out.push_back(kHex[u & 0xf]);
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    smtp::LineBuffer lines(512);
    lines.append(input);
    std::string line;
    std::string rebuilt;
    smtp::ReplyParser replies;
    smtp::LineBuffer::Status status = smtp::LineBuffer::Status::line;
    while ((status = lines.next_line(line)) == smtp::LineBuffer::Status::line) {
        require(line.size() <= 512 && line.find_first_of("\r\n") == std::string::npos);
        rebuilt += line + "\r\n";

        const auto command = smtp::parse_command(line);
        require(command.verb_text.size() <= 16 && command.verb_text.find(' ') == std::string::npos);
        if (command.verb_text.size() < 16) {
            const auto again = smtp::parse_command(
                command.verb_text + (command.argument.empty() ? "" : " " + command.argument));
            require(again.verb == command.verb && again.verb_text == command.verb_text &&
                    again.argument == command.argument);
        }
        if (command.verb == smtp::Verb::mail) {
            if (auto path = smtp::parse_mail_from(command.argument)) {
                check_path(*path, true);
            }
        } else if (command.verb == smtp::Verb::rcpt) {
            if (auto path = smtp::parse_rcpt_to(command.argument)) {
                check_path(*path, false);
            }
        }

        if (auto reply = replies.add_line(line); !reply) {
            replies = smtp::ReplyParser();
        } else if (reply->has_value()) {
            check_reply(**reply);
        }

        if (const auto decoded = smtp::decode_xtext(line)) {
            require(smtp::decode_xtext(encode_xtext(*decoded)) == decoded);
        }
        require(smtp::decode_xtext(encode_xtext(line)) == line);

        if (const auto domains = mail::mailbox_domains(line)) {
            require(!domains->empty());
            for (const auto& d : *domains) {
                require(smtp::is_valid_domain(d, true));
                for (const char c : d) {
                    require(!(c >= 'A' && c <= 'Z'));
                }
            }
        }
    }
    if (status == smtp::LineBuffer::Status::need_more) {
        require(rebuilt + std::string(lines.pending()) == input);
    } else {
        require(input.substr(0, rebuilt.size()) == rebuilt);
    }

    // However the bytes are split, the decoder finds the same end and the same message.
    const auto whole = decode(input, input.size() + 1);
    const auto split = decode(input, 1 + (size % 7));
    require(whole.status == split.status && whole.consumed == split.consumed &&
            whole.message == split.message && whole.line_too_long == split.line_too_long &&
            whole.eight_bit == split.eight_bit && whole.size == split.size);
    require(whole.size == whole.message.size());
    bool eight_bit = false;
    for (std::size_t i = 0; i < whole.message.size(); ++i) {
        const char c = whole.message[i];
        eight_bit = eight_bit || static_cast<unsigned char>(c) >= 0x80;
        // Only CRLF line ends: the next hop must see the lines the relay saw.
        require(c != '\r' || (i + 1 < whole.message.size() && whole.message[i + 1] == '\n'));
        require(c != '\n' || (i > 0 && whole.message[i - 1] == '\r'));
    }
    require(whole.eight_bit == eight_bit);
    if (whole.status == smtp::DataDecoder::Status::done) {
        require(whole.message.empty() ||
                (whole.message.size() >= 2 &&
                 whole.message.compare(whole.message.size() - 2, 2, "\r\n") == 0));
        std::string wire;
        smtp::dot_stuff(whole.message, wire);
        wire += ".\r\n";
        const auto again = decode(wire, wire.size() + 1);
        require(again.status == smtp::DataDecoder::Status::done && again.message == whole.message &&
                again.consumed == wire.size());
    }
    return 0;
}

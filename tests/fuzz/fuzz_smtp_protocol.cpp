// The SMTP wire syntax that dkim-relayd reads from untrusted clients and next hops: command
// lines and paths, the line buffer, the DATA decoder (checked against itself fed in other
// chunks, and round-tripped through dot-stuffing), replies, and From: mailbox domains.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/mail/address.hpp"
#include "dkim/smtp/protocol.hpp"

using namespace dkim;

namespace {

struct Decoded {
    smtp::DataDecoder::Status status = smtp::DataDecoder::Status::more;
    std::string message;
    std::size_t consumed = 0;
};

Decoded decode(std::string_view wire, std::size_t piece) {
    smtp::DataDecoder decoder(998);
    Decoded out;
    for (std::size_t i = 0; i < wire.size(); i += piece) {
        const auto r = decoder.feed(wire.substr(i, piece), out.message, 1 << 20);
        out.consumed += r.consumed;
        if (r.status != smtp::DataDecoder::Status::more) {
            out.status = r.status;
            break;
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
    smtp::ReplyParser replies;
    while (lines.next_line(line) == smtp::LineBuffer::Status::line) {
        const auto command = smtp::parse_command(line);
        if (command.verb == smtp::Verb::mail) {
            (void)smtp::parse_mail_from(command.argument);
        } else if (command.verb == smtp::Verb::rcpt) {
            (void)smtp::parse_rcpt_to(command.argument);
        }
        if (auto reply = replies.add_line(line); !reply) {
            replies = smtp::ReplyParser();
        }
        (void)smtp::decode_xtext(line);
        (void)mail::mailbox_domains(line);
    }

    // However the bytes are split, the decoder finds the same end and the same message.
    const auto whole = decode(input, input.size() + 1);
    const auto split = decode(input, 1 + (size % 7));
    if (whole.status != split.status || whole.consumed != split.consumed ||
        whole.message != split.message) {
        std::abort();
    }
    if (whole.status == smtp::DataDecoder::Status::done) {
        std::string wire;
        smtp::dot_stuff(whole.message, wire);
        wire += ".\r\n";
        const auto again = decode(wire, wire.size() + 1);
        if (again.status != smtp::DataDecoder::Status::done || again.message != whole.message ||
            again.consumed != wire.size()) {
            std::abort();
        }
    }
    return 0;
}

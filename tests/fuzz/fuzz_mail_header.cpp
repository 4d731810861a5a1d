// libFuzzer target: RFC 5322 header sections from the network (SMTP DATA). Beyond "no crash":
// the splitter finds the same header and body whatever the chunking, a parsed block's fields
// tile the text exactly, and both header canonicalizations accept every field.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/dkim/canonicalization.hpp"
#include "dkim/mail/header.hpp"

namespace {

struct Split {
    bool ok = false;
    std::string header;
    std::string body;
};

Split split(std::string_view message, std::size_t chunk) {
    Split out;
    dkim::mail::MessageSplitter splitter(8192);
    for (std::size_t pos = 0; pos < message.size(); pos += chunk) {
        auto body = splitter.feed(message.substr(pos, chunk));
        if (!body) {
            return out;
        }
        out.body.append(*body);
    }
    if (!splitter.finish()) {
        return out;
    }
    auto header = splitter.take_header();
    out.ok = true;
    out.header = header ? std::string(header->text()) : "<error: " + header.error().message + ">";
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::size_t chunk = 1 + data[0] % 17;
    const std::string_view message(reinterpret_cast<const char*>(data) + 1, size - 1);
    const Split whole = split(message, message.size() + 1);
    const Split chunked = split(message, chunk);
    if (whole.ok != chunked.ok || whole.header != chunked.header || whole.body != chunked.body) {
        std::abort();
    }
    const std::size_t end = message.find("\r\n\r\n");
    auto block = dkim::mail::HeaderBlock::parse(
        std::string(message.substr(0, end == std::string_view::npos ? message.size() : end + 2)));
    if (!block) {
        if (block.error().message.empty()) {
            std::abort();
        }
        return 0;
    }
    std::string tiled;
    std::string canonical;
    for (std::size_t i = 0; i < block->size(); ++i) {
        tiled.append(block->raw(i));
        if (block->name(i).empty() || block->find_first(block->name(i)) > i) {
            std::abort();
        }
        (void)block->unfolded_value(i);
        dkim::canonicalize_header_relaxed(block->raw(i), canonical);
        dkim::canonicalize_header_simple(block->raw(i), canonical);
    }
    if (tiled != block->text()) {
        std::abort();
    }
    return 0;
}

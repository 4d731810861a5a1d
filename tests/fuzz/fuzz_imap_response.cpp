// libFuzzer target: what an IMAP server says to `reports fetch-imap` (dkim_imap). The input is
// split into chunks by its first byte; properties: the responses read do not depend on the
// chunking; every literal is within its cap and every response line within its own; SEARCH
// gives sorted, distinct UIDs from 1; FETCH's body is a whole literal or string; the URL and
// --after-store parsers take any text without crashing and never echo a password.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/imap/response.hpp"

namespace {

struct FuzzImapRead {
    std::vector<dkim::imap::Response> responses;
    bool failed = false;
};

FuzzImapRead fuzz_imap_read(std::string_view bytes, std::size_t chunk,
                            const dkim::imap::Limits& limits) {
    dkim::imap::ResponseReader reader(limits);
    FuzzImapRead out;
    for (std::size_t i = 0; i < bytes.size() && !out.failed; i += chunk) {
        reader.feed(bytes.substr(i, chunk));
        while (true) {
            auto next = reader.next();
            if (!next) {
                if (next.error().empty()) {
                    std::abort();
                }
                out.failed = true;
                break;
            }
            if (!*next) {
                break;
            }
            out.responses.push_back(std::move(**next));
        }
    }
    return out;
}

bool fuzz_imap_same(const dkim::imap::Response& a, const dkim::imap::Response& b) {
    return a.kind == b.kind && a.tag == b.tag && a.text == b.text && a.literals == b.literals;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::size_t chunk = 1 + data[0] % 17;
    const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    dkim::imap::Limits limits;
    limits.max_line = 512;
    limits.max_literal = 256;
    limits.max_literals = 4;
    limits.max_depth = 4;

    const FuzzImapRead whole = fuzz_imap_read(bytes, bytes.size() + 1, limits);
    const FuzzImapRead pieces = fuzz_imap_read(bytes, chunk, limits);
    // The same responses however the bytes arrive (one that failed may have failed at a
    // different point only if it failed in both).
    if (whole.failed != pieces.failed) {
        std::abort();
    }
    if (!whole.failed && whole.responses.size() != pieces.responses.size()) {
        std::abort();
    }
    const std::size_t common = std::min(whole.responses.size(), pieces.responses.size());
    for (std::size_t i = 0; i < common; ++i) {
        if (!fuzz_imap_same(whole.responses[i], pieces.responses[i])) {
            std::abort();
        }
    }

    for (dkim::imap::Response r : whole.responses) {
        if (r.literals.size() > limits.max_literals) {
            std::abort();
        }
        for (const std::string& l : r.literals) {
            if (l.size() > limits.max_literal) {
                std::abort();
            }
        }
        (void)dkim::imap::untagged_keyword(r);
        (void)dkim::imap::parse_completion(r);
        (void)dkim::imap::parse_capability(r);
        if (auto uids = dkim::imap::parse_search(r)) {
            for (std::size_t i = 0; i < uids->size(); ++i) {
                if ((*uids)[i] == 0 || (i > 0 && (*uids)[i - 1] >= (*uids)[i])) {
                    std::abort();
                }
            }
        }
        if (auto f = dkim::imap::parse_fetch(r, limits)) {
            if (f->sequence == 0 || (f->uid && *f->uid == 0)) {
                std::abort();
            }
            if (f->body && f->body->size() > limits.max_line + limits.max_literal) {
                std::abort();
            }
        }
    }

    const std::string text(bytes.substr(0, 300));
    if (auto url = dkim::imap::parse_url(text)) {
        if (url->host.empty() || url->port == 0 || !dkim::imap::quote_mailbox(url->mailbox)) {
            std::abort();
        }
    } else if (text.find('@') != std::string::npos && url.error().find('@') != std::string::npos) {
        std::abort();  // an error never quotes what may be user:password@
    }
    if (auto after = dkim::imap::parse_after_store(text)) {
        if (after->action == dkim::imap::AfterStore::Action::move &&
            !dkim::imap::quote_mailbox(after->folder)) {
            std::abort();
        }
    }
    for (const char c : dkim::imap::printable(text)) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
            std::abort();
        }
    }
    return 0;
}

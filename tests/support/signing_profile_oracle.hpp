#pragma once
// The oracle for dkim::check_signing_block (signerd's signing profile): a block that signerd
// accepts must mean to a verifier exactly what it meant to signerd. The block's fields are put
// back into a message header (in reverse order, so that RFC 6376 §5.4.2's bottom-up selection
// takes each name's instances in block order), the DKIM-Signature field gets a b= value, and
// then, with the code a verifier runs:
//   - mail::HeaderBlock::parse sees the same fields, names and bytes as signerd's splitter;
//   - parse_signature on that field sees the same d=, s=, a=, c= and h=;
//   - canonicalize_signed_headers + canonicalize_signature_header rebuild the very block.
// Used by tests/fuzz/fuzz_signing_profile.cpp over arbitrary blocks and by the unit tests.

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dkim/canonicalization.hpp"
#include "dkim/dkim/signing_profile.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::test {

// "" when the verifier's view agrees with `block` (what signerd saw of `data`), else how not.
inline std::string profile_disagreement(std::string_view data, const SigningBlock& block) {
    std::string header;
    for (auto it = block.fields.rbegin(); it != block.fields.rend(); ++it) {
        header += it->raw;
    }
    header += block.signature_field;
    header += "AAAA\r\n";
    auto parsed = mail::HeaderBlock::parse(header);
    if (!parsed) {
        return "the header parser refuses the fields: " + parsed.error().to_string();
    }
    const std::size_t n = block.fields.size();
    if (parsed->size() != n + 1) {
        return "the header parser sees " + std::to_string(parsed->size()) + " fields, signerd " +
               std::to_string(n + 1);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t at = n - 1 - i;
        if (parsed->name(at) != block.fields[i].name || parsed->raw(at) != block.fields[i].raw) {
            return "field " + std::to_string(i + 1) + " differs: '" +
                   std::string(parsed->name(at)) + "' / '" + std::string(block.fields[i].name) +
                   "'";
        }
    }
    if (!mail::iequals(parsed->name(n), kSignatureFieldName)) {
        return "the header parser's last field is not the DKIM-Signature";
    }
    auto sig = parse_signature(parsed->value(n));
    if (!sig) {
        return "the verifier cannot parse the signature: " + sig.error().message;
    }
    const Signature& seen = block.signature;
    if (sig->domain != seen.domain || sig->selector != seen.selector ||
        sig->algorithm != seen.algorithm || sig->canonicalization != seen.canonicalization ||
        sig->signed_headers != seen.signed_headers || sig->timestamp != seen.timestamp ||
        sig->expiration != seen.expiration || sig->body_length != seen.body_length) {
        return "the verifier reads other tags (d=" + sig->domain + " s=" + sig->selector + ")";
    }
    // h= as dkimpy splits it (re.split(r"\s*:\s*") on the tag's value, trimmed): an
    // independent reading, not our tag-list parser's.
    {
        const std::string_view field = block.signature_field;
        std::string_view rest = field.substr(field.find(':') + 1);
        const auto is_space = [](char c) {
            return c == ' ' || c == '\t' || c == '\r' || c == '\n';
        };
        const auto trim = [&](std::string_view v) {
            while (!v.empty() && is_space(v.front())) {
                v.remove_prefix(1);
            }
            while (!v.empty() && is_space(v.back())) {
                v.remove_suffix(1);
            }
            return v;
        };
        std::vector<std::string> names;
        while (!rest.empty()) {
            const std::size_t semi = std::min(rest.find(';'), rest.size());
            const std::string_view tag = rest.substr(0, semi);
            rest.remove_prefix(std::min(semi + 1, rest.size()));
            const std::size_t eq = tag.find('=');
            if (eq == std::string_view::npos || trim(tag.substr(0, eq)) != "h") {
                continue;
            }
            std::string_view value = trim(tag.substr(eq + 1));
            for (;;) {
                const std::size_t colon = value.find(':');
                names.emplace_back(trim(value.substr(0, colon)));
                if (colon == std::string_view::npos) {
                    break;
                }
                value.remove_prefix(colon + 1);
            }
        }
        if (names != seen.signed_headers) {
            return "dkimpy would read another h= than signerd";
        }
    }
    std::string rebuilt;
    canonicalize_signed_headers(*parsed, sig->signed_headers, sig->canonicalization.header, n,
                                rebuilt);
    canonicalize_signature_header(sig->canonicalization.header, parsed->raw(n), rebuilt);
    if (rebuilt != data) {
        return "the verifier's signed data differs from the block";
    }
    return "";
}

}  // namespace dkim::test

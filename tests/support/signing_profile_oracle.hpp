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

#include <string>
#include <string_view>

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

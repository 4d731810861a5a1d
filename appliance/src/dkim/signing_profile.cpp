#include "dkim/dkim/signing_profile.hpp"

#include <algorithm>
#include <map>

#include "dkim/dkim/canonicalization.hpp"
#include "dkim/mail/header.hpp"

namespace dkim {
namespace {

Unexpected<ProfileViolation> violation(ProfileRule rule, std::string message) {
    return unexpected(ProfileViolation{rule, std::move(message)});
}

// RFC 5322 ftext: printable US-ASCII but the colon.
bool is_ftext(char c) {
    return c >= 33 && c <= 126 && c != ':';
}

bool is_fws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// The name of the field that starts at `field`, or nullopt: name characters, optional WSP,
// then the colon, on the field's first line (mail::HeaderBlock's rule).
std::optional<std::string_view> field_name(std::string_view field) {
    std::size_t i = 0;
    while (i < field.size() && is_ftext(field[i])) {
        ++i;
    }
    const std::size_t name_end = i;
    while (i < field.size() && mail::is_wsp(field[i])) {
        ++i;
    }
    if (name_end == 0 || i >= field.size() || field[i] != ':') {
        return std::nullopt;
    }
    return field.substr(0, name_end);
}

std::string lowercase(std::string_view s) {
    return mail::ascii_lowercase(s);
}

// The number of fields named `name` (case-insensitive) in `fields`.
std::size_t count_named(const std::vector<BlockField>& fields, std::string_view name) {
    return static_cast<std::size_t>(
        std::count_if(fields.begin(), fields.end(),
                      [&](const BlockField& f) { return mail::iequals(f.name, name); }));
}

}  // namespace

std::string_view to_string(ProfileRule rule) {
    switch (rule) {
        case ProfileRule::structure: return "structure";
        case ProfileRule::b_tag: return "b_tag";
        case ProfileRule::syntax: return "syntax";
        case ProfileRule::canonical_form: return "canonical_form";
        case ProfileRule::body_length: return "body_length";
        case ProfileRule::algorithm: return "algorithm";
        case ProfileRule::timestamp: return "timestamp";
        case ProfileRule::expiration: return "expiration";
        case ProfileRule::oversigning: return "oversigning";
        case ProfileRule::from: return "from";
        case ProfileRule::signature_field: return "signature_field";
        case ProfileRule::field_order: return "field_order";
        case ProfileRule::count_: break;
    }
    return "?";
}

std::string ProfileViolation::to_string() const {
    return "signing profile: " + std::string(dkim::to_string(rule)) + ": " + message;
}

Expected<SigningBlock, ProfileViolation> parse_signing_block(std::string_view data) {
    // Line ends: CRLF only, so that no two parsers can disagree on where a field ends.
    for (std::size_t i = 0; i < data.size(); ++i) {
        if ((data[i] == '\r' && (i + 1 >= data.size() || data[i + 1] != '\n')) ||
            (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))) {
            return violation(
                ProfileRule::structure,
                "a bare CR or LF at byte " + std::to_string(i) + " (header lines end in CRLF)");
        }
    }
    if (data.size() >= 2 && data.substr(data.size() - 2) == "\r\n") {
        return violation(ProfileRule::structure,
                         "the block ends in CRLF: the DKIM-Signature field comes last, "
                         "without its CRLF (RFC 6376 §3.7)");
    }
    // Fields: a line that does not start with WSP starts one; continuation lines belong to it.
    std::vector<std::string_view> raw_fields;
    std::size_t start = 0;
    std::size_t line = 0;
    while (line < data.size()) {
        const std::size_t crlf = data.find("\r\n", line);
        const std::size_t next = crlf == std::string_view::npos ? data.size() : crlf + 2;
        if (next - line == 2) {
            return violation(ProfileRule::structure,
                             "an empty line inside the block (it would end the header section)");
        }
        if (mail::is_wsp(data[line])) {
            if (line == 0) {
                return violation(ProfileRule::structure,
                                 "the block starts with a continuation line");
            }
        } else if (line != 0) {
            raw_fields.push_back(data.substr(start, line - start));
            start = line;
        }
        line = next;
    }
    if (data.empty()) {
        return violation(ProfileRule::structure, "the block is empty");
    }
    raw_fields.push_back(data.substr(start));

    SigningBlock block;
    for (std::size_t i = 0; i < raw_fields.size(); ++i) {
        const auto name = field_name(raw_fields[i]);
        if (!name) {
            return violation(ProfileRule::structure,
                             "field " + std::to_string(i + 1) +
                                 " has no valid name and colon on its first line");
        }
        if (i + 1 < raw_fields.size()) {
            block.fields.push_back(BlockField{*name, raw_fields[i]});
        } else if (!mail::iequals(*name, kSignatureFieldName)) {
            return violation(ProfileRule::structure,
                             "the block does not end in a DKIM-Signature field");
        }
    }
    block.signature_field = raw_fields.back();

    // b=: the last tag, empty, with nothing after its '=' (render_signature_field's form), so
    // that the b= value a relay appends is all that a verifier deletes again.
    const std::string_view value =
        block.signature_field.substr(block.signature_field.find(':') + 1);
    std::size_t b = value.size();
    if (value.size() < 2 || value.substr(value.size() - 2) != "b=") {
        return violation(ProfileRule::b_tag,
                         "the DKIM-Signature field must end in its b= tag, empty");
    }
    b -= 2;
    while (b > 0 && is_fws(value[b - 1])) {
        --b;
    }
    if (b > 0 && value[b - 1] != ';') {
        return violation(ProfileRule::b_tag, "b= is not a tag of its own");
    }
    // Parsed with a placeholder in b= (an empty base64string is not valid); a second b= is a
    // duplicate tag and refused by the tag-list parser.
    std::string placeholder(value);
    placeholder += "AAAA";
    auto parsed = parse_signature(placeholder);
    if (!parsed) {
        if (parsed.error().message.find("duplicate tag 'b'") != std::string::npos) {
            return violation(ProfileRule::b_tag, "b= appears twice");
        }
        return violation(ProfileRule::syntax,
                         "the DKIM-Signature field is not valid: " + parsed.error().message);
    }
    block.signature = std::move(*parsed);
    return block;
}

Expected<SigningBlock, ProfileViolation> check_signing_block(std::string_view data,
                                                             const SigningProfile& profile,
                                                             SigningAlgorithm algorithm,
                                                             std::int64_t now) {
    auto block = parse_signing_block(data);
    if (!block) {
        return block;
    }
    const Signature& sig = block->signature;

    if (sig.canonicalization.header == Canon::relaxed) {
        std::string canonical;
        for (const BlockField& f : block->fields) {
            canonical.clear();
            canonicalize_header_relaxed(f.raw, canonical);
            if (canonical != f.raw) {
                return violation(ProfileRule::canonical_form, "c=relaxed, but the field '" +
                                                                  std::string(f.name) +
                                                                  "' is not in relaxed form");
            }
        }
        canonical.clear();
        canonicalize_signature_header(Canon::relaxed, std::string(block->signature_field) + "\r\n",
                                      canonical);
        if (canonical != block->signature_field) {
            return violation(ProfileRule::canonical_form,
                             "c=relaxed, but the DKIM-Signature field is not in relaxed form");
        }
    }
    // Each h= entry a field name: "sub ject" names no field for dkimpy and Mail::DKIM, and
    // must not be counted as Subject here.
    for (const std::string& h : sig.signed_headers) {
        if (!std::all_of(h.begin(), h.end(), is_ftext)) {
            return violation(ProfileRule::syntax, "h= entry '" + h + "' is not a field name");
        }
    }
    if (sig.body_length) {
        return violation(ProfileRule::body_length,
                         "l= is never signed: anything could be appended to the body");
    }
    if (sig.algorithm != algorithm) {
        return violation(ProfileRule::algorithm, "a=" + std::string(to_string(sig.algorithm)) +
                                                     ", the key is " +
                                                     std::string(to_string(algorithm)));
    }

    const std::int64_t skew = profile.max_clock_skew.count();
    if (!sig.timestamp) {
        return violation(ProfileRule::timestamp, "t= is required");
    }
    if (*sig.timestamp < now - skew || *sig.timestamp > now + skew) {
        return violation(ProfileRule::timestamp, "t=" + std::to_string(*sig.timestamp) +
                                                     " is more than " + std::to_string(skew) +
                                                     "s from signerd's clock (" +
                                                     std::to_string(now) + ")");
    }
    if (!sig.expiration) {
        return violation(ProfileRule::expiration, "x= is required");
    }
    if (*sig.expiration > *sig.timestamp + profile.max_lifetime.count()) {
        return violation(
            ProfileRule::expiration,
            "x= is more than " + std::to_string(profile.max_lifetime.count()) + "s after t=");
    }

    // Other DKIM-Signature fields: never signed, never listed.
    for (const std::string& h : sig.signed_headers) {
        if (mail::iequals(h, kSignatureFieldName)) {
            return violation(ProfileRule::signature_field, "h= lists DKIM-Signature");
        }
    }
    if (count_named(block->fields, kSignatureFieldName) != 0) {
        return violation(ProfileRule::signature_field,
                         "the block holds another DKIM-Signature field");
    }
    if (const std::size_t from = count_named(block->fields, "From"); from != 1) {
        return violation(ProfileRule::from, "the block holds " + std::to_string(from) +
                                                " From fields; exactly one is signed");
    }

    // RFC 6376 §5.4.2 from the block's side: walking h=, each name either takes the next
    // field of the block, or has no instance left in the message, and then takes none later.
    std::size_t next = 0;
    std::map<std::string, bool> exhausted;
    for (const std::string& h : sig.signed_headers) {
        const std::string name = lowercase(h);
        if (next < block->fields.size() && mail::iequals(block->fields[next].name, name)) {
            if (exhausted[name]) {
                return violation(ProfileRule::field_order,
                                 "field " + std::to_string(next + 1) + " '" +
                                     std::string(block->fields[next].name) +
                                     "' follows an h= entry that found no such field");
            }
            ++next;
        } else {
            exhausted[name] = true;
        }
    }
    if (next != block->fields.size()) {
        return violation(ProfileRule::field_order, "field " + std::to_string(next + 1) + " '" +
                                                       std::string(block->fields[next].name) +
                                                       "' is not the one h= selects there");
    }

    for (const std::string& name : profile.oversigned) {
        const std::size_t listed = static_cast<std::size_t>(
            std::count_if(sig.signed_headers.begin(), sig.signed_headers.end(),
                          [&](const std::string& h) { return mail::iequals(h, name); }));
        const std::size_t present = count_named(block->fields, name);
        if (listed != present + 1) {
            return violation(ProfileRule::oversigning,
                             "h= lists " + lowercase(name) + " " + std::to_string(listed) +
                                 " times for " + std::to_string(present) + " in the block (" +
                                 std::to_string(present + 1) + " needed: oversigned)");
        }
    }
    return block;
}

}  // namespace dkim

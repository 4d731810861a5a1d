#include "header_block.hpp"

#include <optional>
#include <utility>

#include "dkim/mail/header.hpp"

namespace dkim::signerd {
namespace {

// The DKIM-Signature field at the end of the header block to be signed: after the last CRLF
// that is not followed by folding whitespace (RFC 6376 §3.7: the signature field comes last,
// without its trailing CRLF).
std::optional<std::pair<std::string_view, std::string_view>> last_field(std::string_view data) {
    std::size_t start = 0;
    for (std::size_t pos = data.rfind("\r\n"); pos != std::string_view::npos;
         pos = pos == 0 ? std::string_view::npos : data.rfind("\r\n", pos - 1)) {
        if (pos + 2 < data.size() && data[pos + 2] != ' ' && data[pos + 2] != '\t') {
            start = pos + 2;
            break;
        }
    }
    const std::string_view field = data.substr(start);
    const auto colon = field.find(':');
    if (colon == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view name = field.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) {
        name.remove_suffix(1);  // relaxed canonicalization already removed these; simple keeps them
    }
    return std::make_pair(name, field.substr(colon + 1));
}

std::string_view trim_fws(std::string_view s) {
    auto is_fws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && is_fws(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_fws(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// A field to be signed carries b= with an empty value, which parse_signature() rightly
// refuses (RFC 6376's base64string is never empty). Returns the value with a placeholder in
// b=, or none when b= is missing or not empty. Tag values cannot contain ';' (§3.2).
std::optional<std::string> with_placeholder_b(std::string_view value) {
    std::string out;
    bool found = false;
    std::size_t start = 0;
    while (start <= value.size()) {
        const auto end = std::min(value.find(';', start), value.size());
        const std::string_view tag = value.substr(start, end - start);
        const auto eq = tag.find('=');
        if (eq != std::string_view::npos && trim_fws(tag.substr(0, eq)) == "b") {
            if (found || !trim_fws(tag.substr(eq + 1)).empty()) {
                return std::nullopt;
            }
            found = true;
            out += "b=AAAA";
        } else {
            out += tag;
        }
        if (end < value.size()) {
            out += ';';
        }
        start = end + 1;
    }
    if (!found) {
        return std::nullopt;
    }
    return out;
}

}  // namespace

Expected<Signature, std::string> inspect_header_block(std::string_view data) {
    const auto field = last_field(data);
    if (!field || !mail::iequals(field->first, kSignatureFieldName)) {
        return unexpected(std::string("the header block does not end in a DKIM-Signature field"));
    }
    const auto placeholder = with_placeholder_b(field->second);
    if (!placeholder) {
        return unexpected(
            std::string("the DKIM-Signature field to be signed must have one empty b= tag"));
    }
    auto parsed = parse_signature(*placeholder);
    if (!parsed) {
        return unexpected("the DKIM-Signature field is not valid: " + parsed.error().message);
    }
    return std::move(*parsed);
}

}  // namespace dkim::signerd

#include "dkim/spf/macro.hpp"

#include <algorithm>
#include <vector>

#include "chars.hpp"

namespace dkim::spf {
namespace {

constexpr std::string_view kDelimiters = ".-+,/_=";
constexpr std::string_view kHexUpper = "0123456789ABCDEF";

using chars::is_alnum;
using chars::is_alpha;
using chars::is_digit;
using chars::lower;

// One %{...} macro, parsed.
struct Macro {
    char letter = 0;  // lowercase
    bool url_escape = false;
    unsigned keep = 0;  // 0: every part
    bool reverse = false;
    std::string delimiters;
};

bool letter_allowed(char letter, MacroUse use) {
    constexpr std::string_view kAlways = "slodiphv";
    constexpr std::string_view kExplanation = "crt";
    return kAlways.find(letter) != std::string_view::npos ||
           (use == MacroUse::explanation && kExplanation.find(letter) != std::string_view::npos);
}

// Parses the inside of "%{...}" (without the braces).
Expected<Macro, std::string> parse_macro(std::string_view body, MacroUse use) {
    Macro m;
    if (body.empty() || !is_alpha(body.front())) {
        return unexpected("macro %{" + std::string(body) + "} has no macro letter");
    }
    m.letter = lower(body.front());
    m.url_escape = body.front() != m.letter;
    if (!letter_allowed(m.letter, use)) {
        return unexpected("macro letter '" + std::string(1, body.front()) + "' is not allowed " +
                          (use == MacroUse::explanation ? "" : "outside explanations"));
    }
    std::size_t pos = 1;
    bool digits = false;
    while (pos < body.size() && is_digit(body[pos])) {
        digits = true;
        // Any count at or above the number of parts keeps them all; cap to avoid overflow.
        m.keep = std::min(m.keep * 10 + static_cast<unsigned>(body[pos] - '0'), 1000U);
        ++pos;
    }
    if (digits && m.keep == 0) {
        return unexpected("macro %{" + std::string(body) + "} keeps zero parts");
    }
    if (pos < body.size() && lower(body[pos]) == 'r') {
        m.reverse = true;
        ++pos;
    }
    for (; pos < body.size(); ++pos) {
        if (kDelimiters.find(body[pos]) == std::string_view::npos) {
            return unexpected("macro %{" + std::string(body) + "} has an invalid delimiter");
        }
        m.delimiters += body[pos];
    }
    if (m.delimiters.empty()) {
        m.delimiters = ".";
    }
    return m;
}

// Walks a macro-string: calls `literal(text)` and `macro(m)` in order; an error for anything
// that is neither.
template <typename Literal, typename OnMacro>
std::optional<std::string> walk(std::string_view text, MacroUse use, Literal&& literal,
                                OnMacro&& on_macro) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        const char c = text[pos];
        if (c != '%') {
            const auto u = static_cast<unsigned char>(c);
            // macro-literal = %x21-24 / %x26-7E; explanations also allow spaces (§6.2: the
            // TXT record is a macro-string whose spaces are kept).
            if (u > 0x7e || u < 0x20 || (u == 0x20 && use != MacroUse::explanation)) {
                return std::string("invalid character in macro string");
            }
            literal(text.substr(pos, 1));
            ++pos;
            continue;
        }
        if (pos + 1 >= text.size()) {
            return std::string("'%' at the end of a macro string");
        }
        const char next = text[pos + 1];
        if (next == '%') {
            literal("%");
            pos += 2;
        } else if (next == '_') {
            literal(" ");
            pos += 2;
        } else if (next == '-') {
            literal("%20");
            pos += 2;
        } else if (next == '{') {
            const std::size_t close = text.find('}', pos + 2);
            if (close == std::string_view::npos) {
                return std::string("unterminated macro");
            }
            auto m = parse_macro(text.substr(pos + 2, close - pos - 2), use);
            if (!m) {
                return m.error();
            }
            if (auto failed = on_macro(*m); failed) {
                return failed;
            }
            pos = close + 1;
        } else {
            return "invalid macro '%" + std::string(1, next) + "'";
        }
    }
    return std::nullopt;
}

// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool is_toplabel(std::string_view label) {
    if (label.empty() || !is_alnum(label.front()) || !is_alnum(label.back())) {
        return false;
    }
    bool alpha = false;
    bool hyphen = false;
    for (const char c : label) {
        if (c == '-') {
            hyphen = true;
        } else if (is_alpha(c)) {
            alpha = true;
        } else if (!is_digit(c)) {
            return false;
        }
    }
    return alpha || hyphen;
}

std::string url_escape(std::string_view value) {
    std::string out;
    for (const char c : value) {
        if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            const auto u = static_cast<unsigned char>(c);
            out += '%';
            out += kHexUpper.at(u >> 4);
            out += kHexUpper.at(u & 15U);
        }
    }
    return out;
}

std::string render(const Macro& m, std::string_view value) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= value.size(); ++i) {
        if (i == value.size() || m.delimiters.find(value[i]) != std::string::npos) {
            parts.push_back(value.substr(start, i - start));
            start = i + 1;
        }
    }
    if (m.reverse) {
        std::reverse(parts.begin(), parts.end());
    }
    std::size_t first = 0;
    if (m.keep != 0 && m.keep < parts.size()) {
        first = parts.size() - m.keep;
    }
    std::string out;
    for (std::size_t i = first; i < parts.size(); ++i) {
        if (i != first) {
            out += '.';
        }
        out += parts[i];
    }
    return m.url_escape ? url_escape(out) : out;
}

}  // namespace

std::optional<std::string> macro_string_error(std::string_view text, MacroUse use) {
    return walk(
        text, use, [](std::string_view) {},
        [](const Macro&) -> std::optional<std::string> { return std::nullopt; });
}

std::optional<std::string> domain_spec_error(std::string_view text) {
    if (auto error = macro_string_error(text, MacroUse::domain_spec)) {
        return error;
    }
    if (text.empty()) {
        return std::string("empty domain");
    }
    // domain-end: a macro-expand ending the string...
    if (text.back() == '}') {
        return std::nullopt;
    }
    if (text.size() >= 2 && text[text.size() - 2] == '%' &&
        (text.back() == '%' || text.back() == '_' || text.back() == '-')) {
        // "%%" is a macro-expand by the ABNF, but only if that '%' is not itself escaped.
        std::size_t percents = 0;
        for (std::size_t i = text.size() - 1; i-- > 0 && text[i] == '%';) {
            ++percents;
        }
        if (percents % 2 == 1) {
            return std::nullopt;
        }
    }
    // ...or "." toplabel ["."]
    std::string_view rest = text;
    if (rest.back() == '.') {
        rest.remove_suffix(1);
    }
    const std::size_t dot = rest.rfind('.');
    if (dot == std::string_view::npos || !is_toplabel(rest.substr(dot + 1))) {
        return "'" + std::string(text) + "' does not end in a valid top-level label";
    }
    return std::nullopt;
}

Expected<std::string, std::string> expand_macros(std::string_view text, const MacroContext& context,
                                                 MacroUse use) {
    std::string out;
    std::optional<std::string> validated;
    auto error = walk(
        text, use, [&](std::string_view literal) { out += literal; },
        [&](const Macro& m) -> std::optional<std::string> {
            switch (m.letter) {
                case 's': out += render(m, context.sender); break;
                case 'l': out += render(m, context.local_part); break;
                case 'o': out += render(m, context.sender_domain); break;
                case 'd': out += render(m, context.domain); break;
                case 'i': out += render(m, context.ip.to_dotted()); break;
                case 'p':
                    if (!validated) {
                        validated = context.validated_name ? context.validated_name() : "unknown";
                    }
                    out += render(m, *validated);
                    break;
                case 'h': out += render(m, context.helo); break;
                case 'v': out += render(m, context.ip.is_v4() ? "in-addr" : "ip6"); break;
                case 'c': out += render(m, context.ip.to_string()); break;
                case 'r':
                    out += render(m, context.receiver.empty() ? "unknown" : context.receiver);
                    break;
                case 't': out += render(m, std::to_string(context.timestamp)); break;
                default: return "unknown macro letter";
            }
            return std::nullopt;
        });
    if (error) {
        return unexpected(std::move(*error));
    }
    return out;
}

}  // namespace dkim::spf

#include "dkim/dkim/tag_list.hpp"

#include "dkim/mail/header.hpp"

namespace dkim {
namespace {

using mail::is_wsp;

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_alnumpunc(char c) {
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}
bool is_valchar(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x21 && u <= 0x7E && u != ';';
}

// Skips FWS = [*WSP CRLF] 1*WSP (and, leniently, plain runs of WSP) at `pos`.
std::size_t skip_fws(std::string_view s, std::size_t pos) {
    for (;;) {
        while (pos < s.size() && is_wsp(s[pos])) {
            ++pos;
        }
        if (pos + 2 < s.size() && s[pos] == '\r' && s[pos + 1] == '\n' && is_wsp(s[pos + 2])) {
            pos += 2;
            continue;
        }
        return pos;
    }
}

}  // namespace

Expected<TagList, std::string> TagList::parse(std::string_view text) {
    TagList list;
    std::size_t pos = 0;
    for (;;) {
        pos = skip_fws(text, pos);
        if (pos >= text.size()) {
            if (list.tags_.empty()) {
                return unexpected(std::string("empty tag list"));
            }
            return list;  // after a trailing ";"
        }
        const std::size_t name_begin = pos;
        if (!is_alpha(text[pos])) {
            return unexpected("tag name must start with a letter at offset " + std::to_string(pos));
        }
        while (pos < text.size() && is_alnumpunc(text[pos])) {
            ++pos;
        }
        const std::string_view name = text.substr(name_begin, pos - name_begin);
        pos = skip_fws(text, pos);
        if (pos >= text.size() || text[pos] != '=') {
            return unexpected("tag '" + std::string(name) + "' without '='");
        }
        pos = skip_fws(text, pos + 1);
        const std::size_t value_begin = pos;
        std::size_t value_end = pos;
        while (pos < text.size() && text[pos] != ';') {
            if (is_valchar(text[pos])) {
                ++pos;
                value_end = pos;
                continue;
            }
            const std::size_t after = skip_fws(text, pos);
            if (after == pos) {
                return unexpected("invalid character in the value of tag '" + std::string(name) +
                                  "'");
            }
            pos = after;
        }
        for (const Tag& t : list.tags_) {
            if (t.name == name) {
                return unexpected("duplicate tag '" + std::string(name) + "'");
            }
        }
        list.tags_.push_back(Tag{name, text.substr(value_begin, value_end - value_begin)});
        if (pos >= text.size()) {
            return list;
        }
        ++pos;  // the ';'
    }
}

const std::string_view* TagList::find(std::string_view name) const {
    for (const Tag& t : tags_) {
        if (t.name == name) {
            return &t.value;
        }
    }
    return nullptr;
}

std::string strip_fws(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (!is_wsp(c) && c != '\r' && c != '\n') {
            out.push_back(c);
        }
    }
    return out;
}

std::string trim_fws(std::string_view value) {
    auto fws = [](char c) { return is_wsp(c) || c == '\r' || c == '\n'; };
    while (!value.empty() && fws(value.front())) {
        value.remove_prefix(1);
    }
    while (!value.empty() && fws(value.back())) {
        value.remove_suffix(1);
    }
    return std::string(value);
}

std::vector<std::string> split_colon_list(std::string_view value) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t colon = value.find(':', start);
        out.push_back(trim_fws(value.substr(
            start, colon == std::string_view::npos ? std::string_view::npos : colon - start)));
        if (colon == std::string_view::npos) {
            return out;
        }
        start = colon + 1;
    }
}

}  // namespace dkim

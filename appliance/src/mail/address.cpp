#include "dkim/mail/address.hpp"

#include "dkim/mail/header.hpp"
#include "dkim/smtp/protocol.hpp"

namespace dkim::mail {

namespace {

// Removes comments (nested, with quoted-pairs) outside quoted strings; keeps quoted strings.
Expected<std::string, std::string> strip_comments(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    int depth = 0;
    bool quoted = false;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if (c == '\\' && (quoted || depth > 0)) {
            if (depth == 0 && i + 1 < value.size()) {
                out.push_back(c);
                out.push_back(value[i + 1]);
            }
            ++i;
            continue;
        }
        if (depth > 0) {
            if (c == '(') {
                ++depth;
            } else if (c == ')') {
                --depth;
            }
            continue;
        }
        if (c == '"') {
            quoted = !quoted;
        } else if (c == '(' && !quoted) {
            depth = 1;
            out.push_back(' ');
            continue;
        }
        out.push_back(c);
    }
    if (depth > 0 || quoted) {
        return unexpected(std::string("unbalanced comment or quoted string"));
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

// Splits at `separators` outside quoted strings and angle brackets.
std::vector<std::string_view> split_top(std::string_view s, char separator) {
    std::vector<std::string_view> out;
    bool quoted = false;
    int angle = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '\\' && quoted) {
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (!quoted && c == '<') {
            ++angle;
        } else if (!quoted && c == '>' && angle > 0) {
            --angle;
        } else if (!quoted && angle == 0 && c == separator) {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    out.push_back(s.substr(start));
    return out;
}

std::size_t find_top(std::string_view s, char wanted) {
    bool quoted = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && quoted) {
            ++i;
        } else if (s[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && s[i] == wanted) {
            return i;
        }
    }
    return std::string_view::npos;
}

Expected<std::string, std::string> mailbox_domain(std::string_view mailbox) {
    std::string_view spec = trim(mailbox);
    const std::size_t open = find_top(spec, '<');
    if (open != std::string_view::npos) {
        const std::size_t close = spec.find('>', open);
        if (close == std::string_view::npos) {
            return unexpected(std::string("unclosed angle bracket"));
        }
        spec = trim(spec.substr(open + 1, close - open - 1));
        // obs-route: "<@a,@b:user@c>"
        if (!spec.empty() && spec.front() == '@') {
            const std::size_t colon = spec.find(':');
            if (colon == std::string_view::npos) {
                return unexpected(std::string("malformed route"));
            }
            spec = spec.substr(colon + 1);
        }
    }
    std::size_t at = std::string_view::npos;
    bool quoted = false;
    for (std::size_t i = 0; i < spec.size(); ++i) {
        if (spec[i] == '\\' && quoted) {
            ++i;
        } else if (spec[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && spec[i] == '@') {
            at = i;
        }
    }
    if (at == std::string_view::npos || at == 0) {
        return unexpected(std::string("a mailbox without a domain"));
    }
    const std::string_view domain = trim(spec.substr(at + 1));
    if (!smtp::is_valid_domain(domain, true)) {
        return unexpected(std::string("a mailbox with an invalid domain"));
    }
    return ascii_lowercase(domain);
}

}  // namespace

Expected<std::vector<std::string>, std::string> mailbox_domains(std::string_view value) {
    auto text = strip_comments(value);
    if (!text) {
        return unexpected(text.error());
    }
    std::vector<std::string> out;
    for (std::string_view item : split_top(*text, ',')) {
        item = trim(item);
        // group: display-name ":" [mailbox-list] ";"
        const std::size_t colon = find_top(item, ':');
        const std::size_t angle = find_top(item, '<');
        if (colon != std::string_view::npos && (angle == std::string_view::npos || colon < angle)) {
            item = trim(item.substr(colon + 1));
        }
        if (!item.empty() && item.back() == ';') {
            item = trim(item.substr(0, item.size() - 1));
        }
        if (item.empty()) {
            continue;
        }
        auto domain = mailbox_domain(item);
        if (!domain) {
            return unexpected(domain.error());
        }
        out.push_back(std::move(*domain));
    }
    if (out.empty()) {
        return unexpected(std::string("no mailbox"));
    }
    return out;
}

}  // namespace dkim::mail

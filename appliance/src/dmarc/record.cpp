#include "dkim/dmarc/record.hpp"

#include <charconv>

#include "dkim/mail/header.hpp"

namespace dkim::dmarc {
namespace {

bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_wsp(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_wsp(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

std::optional<Policy> policy_value(std::string_view value) {
    const std::string v = mail::ascii_lowercase(value);
    if (v == "none") {
        return Policy::none;
    }
    if (v == "quarantine") {
        return Policy::quarantine;
    }
    if (v == "reject") {
        return Policy::reject;
    }
    return std::nullopt;
}

// RFC 3986 absolute URI, as far as DMARC needs: scheme ":" something, no spaces. A size
// limit suffix ("!10m") is allowed (§6.4 dmarc-uri).
bool is_uri(std::string_view uri) {
    const std::size_t colon = uri.find(':');
    if (colon == 0 || colon == std::string_view::npos || colon + 1 == uri.size()) {
        return false;
    }
    const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (!alpha(uri.front())) {
        return false;
    }
    for (std::size_t i = 0; i < colon; ++i) {
        const char c = uri[i];
        if (!alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') {
            return false;
        }
    }
    for (const char c : uri) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) {
            return false;
        }
    }
    return true;
}

std::vector<std::string> uri_list(std::string_view value) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= value.size()) {
        std::size_t comma = value.find(',', start);
        if (comma == std::string_view::npos) {
            comma = value.size();
        }
        const std::string_view uri = trim(value.substr(start, comma - start));
        if (is_uri(uri)) {
            out.emplace_back(uri);
        }
        start = comma + 1;
    }
    return out;
}

}  // namespace

std::string_view to_string(Policy policy) {
    switch (policy) {
        case Policy::none: return "none";
        case Policy::quarantine: return "quarantine";
        case Policy::reject: return "reject";
    }
    return "none";
}

bool is_dmarc_record(std::string_view txt) {
    std::string_view rest = trim(txt);
    if (rest.empty() || (rest.front() != 'v' && rest.front() != 'V')) {
        return false;
    }
    rest = trim(rest.substr(1));
    if (rest.empty() || rest.front() != '=') {
        return false;
    }
    rest = trim(rest.substr(1));
    constexpr std::string_view kVersion = "DMARC1";  // §6.3: must match precisely
    if (rest.substr(0, kVersion.size()) != kVersion) {
        return false;
    }
    rest = trim(rest.substr(kVersion.size()));
    return rest.empty() || rest.front() == ';';
}

Expected<Record, std::string> parse_record(std::string_view txt) {
    if (!is_dmarc_record(txt)) {
        return unexpected(std::string("not a DMARC record (must start with v=DMARC1)"));
    }
    Record r;
    bool seen_p = false;
    bool seen_sp = false;
    std::size_t start = txt.find(';');
    while (start != std::string_view::npos && start < txt.size()) {
        std::size_t end = txt.find(';', start + 1);
        const std::string_view pair =
            trim(txt.substr(start + 1, end == std::string_view::npos ? txt.npos : end - start - 1));
        start = end;
        if (pair.empty()) {
            continue;  // "; ;" and a trailing ';'
        }
        const std::size_t eq = pair.find('=');
        if (eq == std::string_view::npos) {
            return unexpected("'" + std::string(pair) + "' is not tag=value");
        }
        const std::string tag = mail::ascii_lowercase(trim(pair.substr(0, eq)));
        const std::string_view value = trim(pair.substr(eq + 1));
        if (tag == "p" && !seen_p) {
            seen_p = true;
            if (const auto p = policy_value(value)) {
                r.p = *p;
                r.p_valid = true;
            }
        } else if (tag == "sp" && !seen_sp) {
            seen_sp = true;
            r.sp = policy_value(value);
            r.sp_invalid = !r.sp;
        } else if (tag == "np" && !r.np) {
            r.np = policy_value(value);  // invalid: as if absent
        } else if (tag == "adkim" || tag == "aspf") {
            const std::string v = mail::ascii_lowercase(value);
            if (v == "s" || v == "r") {
                (tag == "adkim" ? r.adkim : r.aspf) =
                    v == "s" ? Alignment::strict : Alignment::relaxed;
            }
        } else if (tag == "pct") {
            unsigned pct = 0;
            const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), pct);
            if (ec == std::errc() && ptr == value.data() + value.size() && pct <= 100) {
                r.pct = pct;
            }
        } else if (tag == "t") {
            r.testing = mail::ascii_lowercase(value) == "y";
        } else if (tag == "psd") {
            const std::string v = mail::ascii_lowercase(value);
            r.psd = v == "y" ? PsdFlag::yes : v == "n" ? PsdFlag::no : PsdFlag::unset;
        } else if (tag == "rua") {
            r.rua = uri_list(value);
        } else if (tag == "ruf") {
            r.ruf = uri_list(value);
        }
        // Other tags (fo, rf, ri, and future ones) change nothing we decide.
    }
    return r;
}

}  // namespace dkim::dmarc

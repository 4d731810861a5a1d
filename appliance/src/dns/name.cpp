#include "dkim/dns/name.hpp"

namespace dkim::dns {
namespace {

bool is_name_letter_or_digit(char c, LabelSyntax syntax) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return syntax == LabelSyntax::ldh_utf8 && static_cast<unsigned char>(c) >= 0x80;
}

constexpr std::string_view kKeyRecordInfix = "._domainkey.";

std::string_view without_root_dot(std::string_view name) noexcept {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    return name;
}

}  // namespace

bool is_valid_label(std::string_view label, LabelSyntax syntax) noexcept {
    if (label.empty() || label.size() > kMaxLabelLength) {
        return false;
    }
    if (syntax == LabelSyntax::any_octet) {
        return label.find('.') == std::string_view::npos;
    }
    if (label.front() == '-' || label.back() == '-') {
        return false;
    }
    for (const char c : label) {
        if (!is_name_letter_or_digit(c, syntax) && c != '-' &&
            !(c == '_' && syntax == LabelSyntax::ldh_underscore)) {
            return false;
        }
    }
    return true;
}

bool is_valid_name(std::string_view name, NameRules rules) noexcept {
    if (name.empty() || name.size() > kMaxNameLength) {
        return false;
    }
    std::size_t labels = 0;
    while (true) {
        const std::size_t dot = name.find('.');
        if (!is_valid_label(name.substr(0, dot), rules.labels)) {
            return false;
        }
        ++labels;
        if (dot == std::string_view::npos) {
            return labels >= rules.min_labels;
        }
        name.remove_prefix(dot + 1);
    }
}

bool fits_key_record_name(std::string_view selector, std::string_view domain) noexcept {
    return selector.size() + kKeyRecordInfix.size() + domain.size() <= kMaxNameLength;
}

std::string key_name_problem(std::string_view domain, std::string_view selector) {
    const std::string_view relative = without_root_dot(domain);
    if (!is_valid_name(relative, kKeyDomain)) {
        return "domain '" + std::string(domain) + "' is not a valid domain name";
    }
    if (!is_key_selector(selector)) {
        return "selector '" + std::string(selector) +
               "' is not a valid selector (letters, digits, '-', '.')";
    }
    if (!fits_key_record_name(selector, relative)) {
        return "selector and domain together exceed a DNS name's 253 characters";
    }
    return {};
}

bool is_key_domain(std::string_view domain) noexcept {
    const std::string_view relative = without_root_dot(domain);
    return is_valid_name(relative, kKeyDomain) && fits_key_record_name("s", relative);
}

bool is_key_selector(std::string_view selector) noexcept {
    return is_valid_name(selector, kKeySelector);
}

}  // namespace dkim::dns

namespace dkim {

bool is_valid_domain(std::string_view name) noexcept {
    return dns::is_valid_name(name);
}

bool is_valid_selector(std::string_view name) noexcept {
    return dns::is_valid_name(name, {dns::LabelSyntax::ldh_underscore, 1});
}

}  // namespace dkim

#include "dkim/spf/record.hpp"

#include <charconv>

#include "chars.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/spf/macro.hpp"

namespace dkim::spf {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && mail::ascii_lowercase(a) == mail::ascii_lowercase(b);
}

// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
bool is_modifier_name(std::string_view name) {
    if (name.empty() || !chars::is_alpha(name.front())) {
        return false;
    }
    for (const char c : name) {
        if (!chars::is_alpha(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.') {
            return false;
        }
    }
    return true;
}

// "/" ("0" / %x31-39 0*nDIGIT) within 0..max; no leading zeros.
std::optional<unsigned> cidr_length(std::string_view digits, unsigned max) {
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits.front() == '0')) {
        return std::nullopt;
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size() || value > max) {
        return std::nullopt;
    }
    return value;
}

// Splits "domain-spec/24//64" (a, mx) or "192.0.2.0/24" (ip4, ip6) into the part before the
// CIDR lengths and the lengths. `dual`: "/n" is the IPv4 length and "//n" the IPv6 one.
struct CidrSplit {
    std::string_view head;
    std::optional<std::string_view> v4;
    std::optional<std::string_view> v6;
};

bool all_digits(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// A domain-spec may itself contain '/' (any visible character but '%'), but never ends in
// "/digits": a domain-end is a toplabel (with a letter or a hyphen) or a macro.
CidrSplit split_cidr(std::string_view value, bool dual) {
    CidrSplit out{value, std::nullopt, std::nullopt};
    const auto take = [&](std::string_view prefix) -> std::optional<std::string_view> {
        const std::size_t at = value.rfind(prefix);
        if (at == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view digits = value.substr(at + prefix.size());
        // Digits, or nothing at all: "a:example.com/" is a bad length, not part of the name.
        if (!digits.empty() && !all_digits(digits)) {
            return std::nullopt;
        }
        value = value.substr(0, at);
        return digits;
    };
    if (dual) {
        out.v6 = take("//");
        out.v4 = take("/");
    } else {
        out.v4 = take("/");  // the only length, of the network's family
    }
    out.head = value;
    return out;
}

Expected<Directive, std::string> parse_directive(std::string_view term) {
    Directive d;
    d.text = std::string(term);
    std::string_view rest = term;
    switch (rest.front()) {
        case '+':
            d.qualifier = Qualifier::pass;
            rest.remove_prefix(1);
            break;
        case '-':
            d.qualifier = Qualifier::fail;
            rest.remove_prefix(1);
            break;
        case '~':
            d.qualifier = Qualifier::softfail;
            rest.remove_prefix(1);
            break;
        case '?':
            d.qualifier = Qualifier::neutral;
            rest.remove_prefix(1);
            break;
        default: break;
    }
    const std::size_t sep = rest.find_first_of(":/");
    const std::string name = mail::ascii_lowercase(rest.substr(0, sep));
    std::string_view arg = sep == std::string_view::npos ? std::string_view() : rest.substr(sep);
    const auto bad = [&](const std::string& why) {
        return unexpected("'" + std::string(term) + "': " + why);
    };

    if (name == "all") {
        if (!arg.empty()) {
            return bad("'all' takes no argument");
        }
        d.mechanism = Mechanism::all;
        return d;
    }
    if (name == "include" || name == "exists") {
        d.mechanism = name == "include" ? Mechanism::include : Mechanism::exists;
        if (arg.empty() || arg.front() != ':') {
            return bad("needs ':domain'");
        }
        d.domain_spec = std::string(arg.substr(1));
        if (auto error = domain_spec_error(d.domain_spec)) {
            return bad(*error);
        }
        return d;
    }
    if (name == "a" || name == "mx" || name == "ptr") {
        d.mechanism = name == "a" ? Mechanism::a : name == "mx" ? Mechanism::mx : Mechanism::ptr;
        const CidrSplit split =
            d.mechanism == Mechanism::ptr ? CidrSplit{arg, {}, {}} : split_cidr(arg, true);
        if (split.v4) {
            const auto len = cidr_length(*split.v4, 32);
            if (!len) {
                return bad("invalid IPv4 prefix length");
            }
            d.cidr4 = *len;
        }
        if (split.v6) {
            const auto len = cidr_length(*split.v6, 128);
            if (!len) {
                return bad("invalid IPv6 prefix length");
            }
            d.cidr6 = *len;
        }
        if (!split.head.empty()) {
            if (split.head.front() != ':') {
                return bad("unexpected '" + std::string(split.head) + "'");
            }
            d.domain_spec = std::string(split.head.substr(1));
            if (auto error = domain_spec_error(d.domain_spec)) {
                return bad(*error);
            }
        }
        return d;
    }
    if (name == "ip4" || name == "ip6") {
        const bool v4 = name == "ip4";
        d.mechanism = v4 ? Mechanism::ip4 : Mechanism::ip6;
        if (arg.empty() || arg.front() != ':') {
            return bad("needs ':network'");
        }
        const CidrSplit split = split_cidr(arg.substr(1), false);
        d.network = net::IpAddress::parse(split.head);
        if (!d.network || d.network->is_v4() != v4) {
            return bad(std::string("invalid ") + (v4 ? "IPv4" : "IPv6") + " network");
        }
        if (split.v4) {
            const auto len = cidr_length(*split.v4, v4 ? 32 : 128);
            if (!len) {
                return bad("invalid prefix length");
            }
            (v4 ? d.cidr4 : d.cidr6) = *len;
        }
        return d;
    }
    return bad("unknown mechanism");
}

}  // namespace

std::string_view to_string(Mechanism mechanism) {
    switch (mechanism) {
        case Mechanism::all: return "all";
        case Mechanism::include: return "include";
        case Mechanism::a: return "a";
        case Mechanism::mx: return "mx";
        case Mechanism::ptr: return "ptr";
        case Mechanism::ip4: return "ip4";
        case Mechanism::ip6: return "ip6";
        case Mechanism::exists: return "exists";
    }
    return "?";
}

unsigned Record::dns_terms() const {
    unsigned n = redirect ? 1 : 0;
    for (const Directive& d : directives) {
        switch (d.mechanism) {
            case Mechanism::include:
            case Mechanism::a:
            case Mechanism::mx:
            case Mechanism::ptr:
            case Mechanism::exists: ++n; break;
            default: break;
        }
    }
    return n;
}

bool is_spf_record(std::string_view txt) {
    constexpr std::string_view kVersion = "v=spf1";
    return txt.size() >= kVersion.size() && iequals(txt.substr(0, kVersion.size()), kVersion) &&
           (txt.size() == kVersion.size() || txt[kVersion.size()] == ' ');
}

Expected<Record, std::string> parse_record(std::string_view txt) {
    if (!is_spf_record(txt)) {
        return unexpected(std::string("not an SPF record (no v=spf1)"));
    }
    Record record;
    std::string_view rest = txt.substr(6);
    while (!rest.empty()) {
        // terms = *( 1*SP ( directive / modifier ) ); only spaces separate terms.
        if (rest.front() != ' ') {
            return unexpected(std::string("terms must be separated by spaces"));
        }
        while (!rest.empty() && rest.front() == ' ') {
            rest.remove_prefix(1);
        }
        if (rest.empty()) {
            break;  // trailing spaces are allowed
        }
        const std::size_t end = rest.find(' ');
        const std::string_view term = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
        for (const char c : term) {
            const auto u = static_cast<unsigned char>(c);
            if (u < 0x21 || u > 0x7e) {
                return unexpected("'" + std::string(term) +
                                  "': only printable US-ASCII is allowed in SPF records");
            }
        }

        // A modifier is name "=" ...; a mechanism's own argument never starts before an '='
        // (mechanism names are letters and digits, followed by ':' or '/').
        const std::size_t eq = term.find('=');
        const std::size_t colon = term.find_first_of(":/");
        if (eq != std::string_view::npos && (colon == std::string_view::npos || eq < colon)) {
            const std::string_view name = term.substr(0, eq);
            const std::string_view value = term.substr(eq + 1);
            if (!is_modifier_name(name)) {
                return unexpected("'" + std::string(term) + "': invalid modifier name");
            }
            const std::string lname = mail::ascii_lowercase(name);
            if (lname == "redirect" || lname == "exp") {
                auto& slot = lname == "redirect" ? record.redirect : record.explanation;
                if (slot) {
                    return unexpected("more than one " + lname + "= modifier");
                }
                if (auto error = domain_spec_error(value)) {
                    return unexpected("'" + std::string(term) + "': " + *error);
                }
                slot = std::string(value);
            } else if (auto error = macro_string_error(value, MacroUse::explanation)) {
                // Unknown modifiers are ignored (§6), but must still be well-formed (any
                // macro letter: §7.3 limits c, r and t by use, and these are never used).
                return unexpected("'" + std::string(term) + "': " + *error);
            }
            continue;
        }
        auto directive = parse_directive(term);
        if (!directive) {
            return unexpected(directive.error());
        }
        record.directives.push_back(std::move(*directive));
    }
    return record;
}

}  // namespace dkim::spf

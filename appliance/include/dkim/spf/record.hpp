#pragma once
// SPF records (RFC 7208 §4.5, §4.6, §12): selecting the record among a name's TXT records and
// parsing it into directives and modifiers. Records come from DNS, untrusted: any syntax error
// anywhere makes the whole record a permerror (§4.6), before anything is evaluated.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/net/ip_address.hpp"

namespace dkim::spf {

enum class Qualifier : std::uint8_t { pass, fail, softfail, neutral };
enum class Mechanism : std::uint8_t { all, include, a, mx, ptr, ip4, ip6, exists };

std::string_view to_string(Mechanism mechanism);

struct Directive {
    Qualifier qualifier = Qualifier::pass;
    Mechanism mechanism = Mechanism::all;
    // include, exists: required; a, mx, ptr: optional (empty means <domain>). Unexpanded.
    std::string domain_spec;
    std::optional<net::IpAddress> network;  // ip4, ip6
    unsigned cidr4 = 32;                    // ip4, a, mx
    unsigned cidr6 = 128;                   // ip6, a, mx
    std::string text;                       // the term as written, for reasons
};

struct Record {
    std::vector<Directive> directives;
    std::optional<std::string> redirect;     // domain-spec
    std::optional<std::string> explanation;  // exp= domain-spec
    // How many terms cause DNS queries (include, a, mx, ptr, exists, and redirect).
    unsigned dns_terms() const;
};

// §4.5: a TXT record is an SPF record when it is "v=spf1" (any case) alone or followed by a
// space.
bool is_spf_record(std::string_view txt);

// The record's terms; an error names the offending term.
Expected<Record, std::string> parse_record(std::string_view txt);

}  // namespace dkim::spf

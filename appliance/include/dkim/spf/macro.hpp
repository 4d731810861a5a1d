#pragma once
// SPF macros (RFC 7208 §7): the syntax check the record parser applies to every domain-spec
// and modifier value, and the expansion check_host() applies when it evaluates a term or an
// explanation. Macro strings come from DNS, untrusted.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "dkim/expected.hpp"
#include "dkim/net/ip_address.hpp"

namespace dkim::spf {

enum class MacroUse : std::uint8_t {
    domain_spec,  // letters s l o d i p h v
    explanation,  // also c r t (§7.3); the text of an exp= TXT record
};

// Whether `text` is a macro-string (§7.1) for `use`; the error says what is wrong.
std::optional<std::string> macro_string_error(std::string_view text, MacroUse use);
// Whether `text` is a domain-spec: a macro-string ending in "." toplabel ["."] or a macro.
std::optional<std::string> domain_spec_error(std::string_view text);

struct MacroContext {
    std::string_view sender;         // s: local-part@domain of the identity checked
    std::string_view local_part;     // l
    std::string_view sender_domain;  // o
    std::string_view domain;         // d: the domain whose record is evaluated
    net::IpAddress ip;               // i, c, v
    std::string_view helo;           // h
    std::string_view receiver;       // r ("unknown" when empty)
    std::int64_t timestamp = 0;      // t
    // p: the validated domain name of the client (§5.5), resolved on first use only.
    std::function<std::string()> validated_name;
};

Expected<std::string, std::string> expand_macros(std::string_view text, const MacroContext& context,
                                                 MacroUse use);

}  // namespace dkim::spf

// libFuzzer target: SPF macro strings (RFC 7208 §7) in domain-specs and explanation records,
// attacker-controlled. Properties: the syntax check and the expansion agree on what is valid,
// for both uses; every refusal says why; expansion output is bounded by the input (no macro
// can multiply its value beyond URL-escaping it).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/spf/macro.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    dkim::spf::MacroContext context;
    context.sender = "strong-bad@email.example.com";
    context.local_part = "strong-bad";
    context.sender_domain = "email.example.com";
    context.domain = "email.example.com";
    context.ip = *dkim::net::IpAddress::parse("2001:db8::cb01");
    context.helo = "mx.example.org";
    context.receiver = "receiver.example.net";
    context.timestamp = 1'700'000'000;
    context.validated_name = [] { return std::string("mx.example.org"); };
    for (const auto use : {dkim::spf::MacroUse::domain_spec, dkim::spf::MacroUse::explanation}) {
        const auto error = dkim::spf::macro_string_error(text, use);
        const auto expanded = dkim::spf::expand_macros(text, context, use);
        if (error.has_value() == expanded.has_value()) {
            std::abort();
        }
        if (error && error->empty()) {
            std::abort();
        }
        // The longest value is %{i} of an IPv6 address (63 octets), 3 octets each once
        // escaped; a macro takes at least 4 input octets ("%{i}").
        if (expanded && expanded->size() > text.size() * 3 * 63) {
            std::abort();
        }
    }
    (void)dkim::spf::domain_spec_error(text);
    return 0;
}

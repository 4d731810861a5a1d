// libFuzzer target: SPF records (RFC 7208 §4.6, §12) come from any domain's DNS. The input is
// the record of example.com, parsed and then evaluated by check_host() for an IPv4 and an IPv6
// client, with a few names around it (an include target, MX and PTR data). Properties: every
// refusal says why; a parsed record's domain-specs are valid; an evaluation ends with one of
// the seven results and stays within the DNS lookups the processing limits allow (§4.6.4),
// whatever the record asks for.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/dns/resolver.hpp"
#include "dkim/spf/check.hpp"
#include "dkim/spf/macro.hpp"
#include "dkim/spf/record.hpp"

namespace {

void fill(dkim::dns::FakeResolver& r) {
    using dkim::dns::RecordType;
    r.set_txt("inc.example.com", {"v=spf1 a mx ptr include:example.com -all"});
    r.set_txt("loop.example.com", {"v=spf1 redirect=%{d}"});
    r.set_txt("why.example.com", {"%{s} from %{c} (%{p}) at %{t} via %{r}: %{L2r-}"});
    r.add("example.com", RecordType::a, "192.0.2.1");
    r.add("example.com", RecordType::aaaa, "2001:db8::1");
    for (int i = 0; i < 12; ++i) {
        const std::string mx = "mx" + std::to_string(i) + ".example.com";
        r.add("example.com", RecordType::mx, mx);
        r.add(mx, RecordType::a, "192.0.2." + std::to_string(10 + i));
        r.add("1.2.0.192.in-addr.arpa", RecordType::ptr, mx);
    }
    r.set_status("timeout.example.com", dkim::dns::LookupStatus::temporary_failure);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string record(reinterpret_cast<const char*>(data), size);
    auto parsed = dkim::spf::parse_record(record);
    if (!parsed) {
        if (parsed.error().empty()) {
            std::abort();
        }
    } else {
        for (const auto& d : parsed->directives) {
            if (!d.domain_spec.empty() && dkim::spf::domain_spec_error(d.domain_spec)) {
                std::abort();
            }
            if ((d.mechanism == dkim::spf::Mechanism::ip4 ||
                 d.mechanism == dkim::spf::Mechanism::ip6) &&
                (!d.network || d.network->is_v4() != (d.mechanism == dkim::spf::Mechanism::ip4))) {
                std::abort();
            }
        }
    }
    static dkim::dns::FakeResolver resolver;
    static const bool filled = (fill(resolver), true);
    (void)filled;
    resolver.set_txt("example.com", {record});
    const dkim::spf::Checker checker(resolver, "mx.receiver.example");
    for (const char* client : {"192.0.2.1", "2001:db8::2"}) {
        const std::size_t before = resolver.lookups();
        const auto ip = dkim::net::IpAddress::parse(client);
        const auto out = checker.check_host(*ip, "example.com", "user@example.com", "helo.example",
                                            1'700'000'000);
        if (dkim::spf::to_string(out.result).empty()) {
            std::abort();
        }
        // 1 TXT, then at most 10 terms of at most 1 + 10 lookups each, each with a %{p}
        // (1 + 10), and the explanation (1 + 2 x 11).
        if (resolver.lookups() - before > 1 + 10 * 22 + 23) {
            std::abort();
        }
    }
    return 0;
}

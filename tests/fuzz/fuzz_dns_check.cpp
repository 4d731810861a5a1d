// libFuzzer target: `dns check` and `dns records` over whatever a domain publishes. Each input
// line is one TXT record: the first at example.com (SPF), the second at _dmarc.example.com,
// the third at s1._domainkey.example.com, the rest at i0.example.com, i1.example.com, ... (for
// includes and redirects to land on). Properties: one finding per key plus SPF and DMARC (and one
// per external report domain), each with a message; a problem always says what is wrong; the SPF
// cost walk stays bounded; the records to publish are always produced.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dns/resolver.hpp"
#include "dkim/provisioning/dns_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> lines;
    while (!input.empty() && lines.size() < 16) {
        const auto end = input.find('\n');
        lines.emplace_back(input.substr(0, end));
        input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
    }
    dkim::dns::FakeResolver zone;
    const char* fixed[] = {"example.com", "_dmarc.example.com", "s1._domainkey.example.com"};
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string name = i < 3 ? fixed[i] : "i" + std::to_string(i - 3) + ".example.com";
        zone.set_txt(name, {lines[i]});
    }
    dkim::provisioning::CheckInput in;
    in.domain = "example.com";
    in.keys = {{"s1", "ed25519", "active",
                "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
               {"old", "rsa-2048", "retired", "v=DKIM1; k=rsa; p=AAAA"}};
    in.addresses = {*dkim::provisioning::OutboundAddress::parse("192.0.2.25"),
                    *dkim::provisioning::OutboundAddress::parse("2001:db8::/64")};
    const auto findings = dkim::provisioning::check_domain(zone, in, 1'795'694'400);
    // The two keys, SPF and DMARC always; TLS-RPT when a record is published at
    // _smtp._tls.example.com (never here: not a fixed name), and one more for each external
    // report domain the published DMARC record names.
    if (findings.size() < 4) {
        std::abort();
    }
    for (const auto& f : findings) {
        if (f.message.empty() && f.status != dkim::provisioning::Status::ok) {
            std::abort();
        }
    }
    // Every include/redirect target is one of the 13 names at most, each followed once per
    // path: the walk ends, and costs a bounded number of lookups.
    const std::size_t before = zone.lookups();
    (void)dkim::provisioning::spf_cost(zone, "example.com");
    if (zone.lookups() - before > 4096) {
        std::abort();
    }
    dkim::provisioning::RecordsInput records;
    records.domain = "example.com";
    records.keys = in.keys;
    records.addresses = in.addresses;
    if (dkim::provisioning::records_for(records, &zone).size() != 3) {
        std::abort();
    }
    return 0;
}

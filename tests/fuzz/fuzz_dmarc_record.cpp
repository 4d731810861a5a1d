// libFuzzer target: DMARC records (RFC 7489 §6.4) from any author domain's DNS. The input is
// parsed, then evaluated as the record of example.com for a failing message from a subdomain,
// by both organizational-domain methods. Properties: a parsed record started with the version
// tag and keeps every value in range; every refusal says why; evaluation ends with a result
// and never asks for more than the tree walk's bounded queries.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/dmarc/policy.hpp"
#include "dkim/dmarc/record.hpp"
#include "dkim/dns/resolver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto record = dkim::dmarc::parse_record(text);
    if (!record) {
        if (record.error().empty()) {
            std::abort();
        }
    } else {
        if (!dkim::dmarc::is_dmarc_record(text) || record->pct > 100) {
            std::abort();
        }
        for (const auto* list : {&record->rua, &record->ruf}) {
            for (const std::string& uri : *list) {
                if (uri.find(':') == std::string::npos || uri.find(' ') != std::string::npos) {
                    std::abort();
                }
            }
        }
    }
    static const auto psl = dkim::dmarc::PublicSuffixList::load();
    if (!psl) {
        std::abort();
    }
    static dkim::dns::FakeResolver resolver;
    resolver.set_txt("_dmarc.example.com", {text});
    for (const auto method : {dkim::dmarc::OrgDomainMethod::public_suffix_list,
                              dkim::dmarc::OrgDomainMethod::tree_walk}) {
        const dkim::dmarc::Evaluator evaluator(resolver, {method, *psl}, [] { return 50U; });
        dkim::dmarc::Identifiers ids;
        ids.from_domain = "a.b.example.com";
        ids.spf_pass = true;
        ids.spf_domain = "other.example.net";
        ids.dkim_pass_domains = {"mail.example.com"};
        const std::size_t before = resolver.lookups();
        const auto e = evaluator.evaluate(ids);
        if (dkim::dmarc::to_string(e.result).empty()) {
            std::abort();
        }
        // Discovery and the From domain's walk (8 queries each), two walks for each of the two
        // alignments (16 each), np's three lookups.
        if (resolver.lookups() - before > 8 + 8 + 2 * 16 + 3) {
            std::abort();
        }
    }
    return 0;
}

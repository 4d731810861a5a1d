#include "dkim/dns/record_text.hpp"

#include <algorithm>
#include <utility>

namespace dkim::dns {

std::vector<std::string> split_character_strings(std::string_view value, std::size_t max) {
    std::vector<std::string> strings;
    for (std::size_t at = 0; at < value.size(); at += max) {
        strings.emplace_back(value.substr(at, max));
    }
    if (strings.empty()) {
        strings.emplace_back();
    }
    return strings;
}

std::string quoted_character_string(std::string_view part) {
    std::string out = "\"";
    for (const char c : part) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + '"';
}

std::string zone_line(std::string_view name, std::string_view value) {
    std::string line = std::string(name) + ". IN TXT (";
    for (const auto& part : split_character_strings(value)) {
        line += ' ';
        line += quoted_character_string(part);
    }
    return line + " )";
}

std::string dnsmasq_txt_line(std::string_view name, std::string_view value) {
    std::string line = "txt-record=" + std::string(name);
    for (const auto& part : split_character_strings(value)) {
        line += ',';
        line += quoted_character_string(part);
    }
    return line;
}

std::string dkim_key_record_text(std::string_view key_type, std::string_view p_base64) {
    std::string record = "v=DKIM1; k=";
    record.append(key_type);
    record.append("; p=");
    record.append(p_base64);
    return record;
}

std::string spf_address_term(std::string_view address) {
    return (address.find(':') != std::string_view::npos ? "ip6:" : "ip4:") + std::string(address);
}

std::string spf_record_text(const std::vector<std::string>& addresses) {
    std::string record = "v=spf1";
    for (const std::string& a : addresses) {
        record += " " + spf_address_term(a);
    }
    return record + " -all";
}

std::string spf_record_with_terms(std::string_view published,
                                  const std::vector<std::string>& terms) {
    constexpr std::size_t kVersion = std::string_view("v=spf1").size();
    std::string merged(published.substr(0, kVersion));
    for (const std::string& term : terms) {
        merged += " " + term;
    }
    merged.append(published.substr(std::min(kVersion, published.size())));
    return merged;
}

std::string dmarc_record_text(const DmarcRecordFields& fields) {
    std::string record = "v=DMARC1; p=" + fields.policy;
    if (fields.pct) {
        record += "; pct=" + std::to_string(*fields.pct);
    }
    if (!fields.rua.empty()) {
        record += "; rua=" + fields.rua;
    }
    if (!fields.adkim.empty()) {
        record += "; adkim=" + fields.adkim;
    }
    if (!fields.aspf.empty()) {
        record += "; aspf=" + fields.aspf;
    }
    return record;
}

std::vector<DmarcStage> dmarc_ramp(const std::string& rua) {
    auto stage = [&rua](std::string policy, std::optional<unsigned> pct) {
        DmarcRecordFields fields;
        fields.policy = std::move(policy);
        fields.pct = pct;
        fields.rua = rua;
        return dmarc_record_text(fields);
    };
    return {
        {stage("none", std::nullopt), "now: monitor, and read the aggregate reports"},
        {stage("quarantine", 25),
         "when the reports show only your own mail passing (SPF or DKIM aligned)"},
        {stage("quarantine", 100), "after a few weeks without surprises"},
        {stage("reject", std::nullopt), "when quarantine shows nothing legitimate failing"},
    };
}

}  // namespace dkim::dns

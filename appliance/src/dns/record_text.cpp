#include "dkim/dns/record_text.hpp"

#include <algorithm>
#include <utility>

#include "dkim/dmarc/policy.hpp"
#include "dkim/dns/name.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::dns {

namespace {

std::string_view without_spaces_around(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// The parts of `text` between `separator`s, without the spaces around them; empty ones dropped.
std::vector<std::string_view> spaced_parts(std::string_view text, char separator) {
    std::vector<std::string_view> out;
    std::size_t at = 0;
    while (at <= text.size()) {
        auto end = text.find(separator, at);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const auto part = without_spaces_around(text.substr(at, end - at));
        if (!part.empty()) {
            out.push_back(part);
        }
        at = end + 1;
    }
    return out;
}

std::string joined_uris(const std::vector<std::string>& uris) {
    std::string out;
    for (const std::string& u : uris) {
        out += (out.empty() ? "" : ",") + u;
    }
    return out;
}

// A URI as records are compared: lower case, without a size limit ("!10m", RFC 7489 §6.2).
std::string comparable_uri(std::string_view uri) {
    return mail::ascii_lowercase(uri.substr(0, uri.find('!')));
}

// RFC 7489 §6.2: "size = 1*DIGIT [ "k" / "m" / "g" / "t" ]" after the '!'.
bool is_size_limit(std::string_view size) {
    const auto digits = size.find_first_not_of("0123456789");
    return digits != 0 && !size.empty() &&
           (digits == std::string_view::npos ||
            (digits + 1 == size.size() &&
             std::string_view("kmgt").find(size[digits]) != std::string_view::npos));
}

std::string_view without_root_dot_of(std::string_view name) {
    return !name.empty() && name.back() == '.' ? name.substr(0, name.size() - 1) : name;
}

}  // namespace

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
    if (!fields.ruf.empty()) {
        record += "; ruf=" + fields.ruf;
    }
    if (!fields.adkim.empty()) {
        record += "; adkim=" + fields.adkim;
    }
    if (!fields.aspf.empty()) {
        record += "; aspf=" + fields.aspf;
    }
    return record;
}

std::vector<DmarcStage> dmarc_ramp(const std::string& rua, const std::string& ruf) {
    auto stage = [&rua, &ruf](std::string policy, std::optional<unsigned> pct) {
        DmarcRecordFields fields;
        fields.policy = std::move(policy);
        fields.pct = pct;
        fields.rua = rua;
        fields.ruf = ruf;
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

// --- report addresses ------------------------------------------------------------------------

std::vector<std::string> report_uris(std::string_view value) {
    std::vector<std::string> out;
    for (const std::string_view uri : spaced_parts(value, ',')) {
        out.emplace_back(uri);
    }
    return out;
}

std::string report_uri_domain(std::string_view uri) {
    const std::string lowered = mail::ascii_lowercase(uri);
    std::string_view rest = lowered;
    if (rest.rfind("mailto:", 0) == 0) {
        rest = rest.substr(7);
        rest = rest.substr(0, rest.find_first_of("!?"));
        const auto at = rest.rfind('@');
        return at == std::string_view::npos ? "" : std::string(rest.substr(at + 1));
    }
    if (rest.rfind("https://", 0) == 0) {
        rest = rest.substr(8);
        rest = rest.substr(0, rest.find_first_of("/?#"));
        rest = rest.substr(rest.rfind('@') == std::string_view::npos ? 0 : rest.rfind('@') + 1);
        return std::string(rest.substr(0, rest.find(':')));
    }
    return "";
}

std::string report_uris_problem(std::string_view value, bool https_allowed) {
    if (value.find_first_of("; \t\"\\") != std::string_view::npos) {
        return "no ';', spaces, quotes or backslashes";
    }
    const std::string expected =
        https_allowed ? "a mailto: URI (or an https:// URL)" : "a mailto: URI";
    const auto uris = report_uris(value);
    if (uris.empty()) {
        return "expected " + expected;
    }
    for (const std::string& uri : uris) {
        const std::string_view u = uri;
        const auto bang = u.find('!');
        const bool size_ok = bang == std::string_view::npos || is_size_limit(u.substr(bang + 1));
        const std::string domain = report_uri_domain(u);
        const bool mailto = u.rfind("mailto:", 0) == 0;
        const bool https = https_allowed && u.rfind("https://", 0) == 0;
        const auto at = u.find('@');
        const bool addressed = !mailto || (at != std::string_view::npos && at > 7);
        if (!(mailto || https) || !size_ok || !addressed || !is_valid_domain(domain)) {
            return "'" + uri + "': expected " + expected +
                   (https_allowed ? "" : " with an address") + " at a domain name";
        }
    }
    return "";
}

bool is_report_address(std::string_view address) {
    const auto at = address.find('@');
    return at != 0 && at != std::string_view::npos &&
           address.find('@', at + 1) == std::string_view::npos &&
           address.find_first_of(",!;?:/ \t\"\\<>()[]") == std::string_view::npos &&
           std::all_of(address.begin(), address.end(),
                       [](char c) { return c > ' ' && c < 0x7f; }) &&
           is_valid_domain(address.substr(at + 1));
}

std::vector<std::string> missing_report_uris(const std::vector<std::string>& published,
                                             const std::vector<std::string>& wanted) {
    std::vector<std::string> missing;
    for (const std::string& w : wanted) {
        const bool named = std::any_of(published.begin(), published.end(), [&w](const auto& p) {
            return comparable_uri(p) == comparable_uri(w);
        });
        if (!named) {
            missing.push_back(w);
        }
    }
    return missing;
}

std::string record_with_report_uris(std::string_view record, std::string_view tag,
                                    const std::vector<std::string>& uris) {
    std::string out;
    bool found = false;
    for (const std::string_view part : spaced_parts(record, ';')) {
        std::string text(part);
        const auto equals = part.find('=');
        if (equals != std::string_view::npos &&
            mail::ascii_lowercase(without_spaces_around(part.substr(0, equals))) == tag) {
            auto named = report_uris(part.substr(equals + 1));
            for (std::string& uri : missing_report_uris(named, uris)) {
                named.push_back(std::move(uri));
            }
            text = std::string(tag) + "=" + joined_uris(named);
            found = true;
        }
        out += (out.empty() ? "" : "; ") + text;
    }
    if (!found) {
        out += (out.empty() ? "" : "; ") + std::string(tag) + "=" + joined_uris(uris);
    }
    return out;
}

// --- TLS-RPT ---------------------------------------------------------------------------------

std::string tlsrpt_record_name(std::string_view domain) {
    return "_smtp._tls." + std::string(domain);
}

std::string tlsrpt_record_text(std::string_view rua) {
    return "v=TLSRPTv1; rua=" + std::string(rua);
}

bool is_tlsrpt_record(std::string_view txt) {
    constexpr std::string_view kVersion = "v=TLSRPTv1";
    return txt.rfind(kVersion, 0) == 0 &&
           (txt.size() == kVersion.size() || txt[kVersion.size()] == ';' ||
            txt[kVersion.size()] == ' ' || txt[kVersion.size()] == '\t');
}

std::optional<std::vector<std::string>> tlsrpt_record_rua(std::string_view txt,
                                                          std::string* problem) {
    const auto refuse = [problem](std::string why) -> std::optional<std::vector<std::string>> {
        if (problem != nullptr) {
            *problem = std::move(why);
        }
        return std::nullopt;
    };
    if (!is_tlsrpt_record(txt)) {
        return refuse("it does not start with v=TLSRPTv1");
    }
    std::optional<std::vector<std::string>> rua;
    const auto fields = spaced_parts(txt, ';');
    for (std::size_t i = 1; i < fields.size(); ++i) {
        const auto equals = fields[i].find('=');
        if (equals == std::string_view::npos || equals == 0) {
            return refuse("'" + std::string(fields[i]) + "' is not a field (name=value)");
        }
        if (fields[i].substr(0, equals) != "rua") {
            continue;  // tlsrpt-extension: ignored
        }
        if (rua) {
            return refuse("rua= is given twice");
        }
        rua = report_uris(fields[i].substr(equals + 1));
        for (const std::string& uri : *rua) {
            if (uri.rfind("mailto:", 0) != 0 && uri.rfind("https:", 0) != 0) {
                return refuse("'" + uri + "' is neither a mailto: nor an https: URI");
            }
        }
        if (rua->empty()) {
            return refuse("rua= names no URI");
        }
    }
    if (!rua) {
        return refuse("rua= is missing (it is required)");
    }
    return rua;
}

// --- verifying external destinations ---------------------------------------------------------

std::string report_authorization_name(std::string_view policy_domain,
                                      std::string_view report_domain) {
    return mail::ascii_lowercase(without_root_dot_of(policy_domain)) + "._report._dmarc." +
           mail::ascii_lowercase(without_root_dot_of(report_domain));
}

bool is_external_report_domain(const dmarc::PublicSuffixList* psl, std::string_view policy_domain,
                               std::string_view report_domain) {
    const std::string policy = mail::ascii_lowercase(without_root_dot_of(policy_domain));
    const std::string report = mail::ascii_lowercase(without_root_dot_of(report_domain));
    if (psl != nullptr) {
        return psl->organizational_domain(policy) != psl->organizational_domain(report);
    }
    return policy != report && !policy.ends_with("." + report) && !report.ends_with("." + policy);
}

std::vector<ReportAuthorization> report_authorizations(const dmarc::PublicSuffixList* psl,
                                                       std::string_view policy_domain,
                                                       const std::vector<std::string>& uris) {
    std::vector<ReportAuthorization> out;
    for (const std::string& uri : uris) {
        const std::string domain = report_uri_domain(uri);
        const bool listed = std::any_of(
            out.begin(), out.end(), [&domain](const auto& a) { return a.report_domain == domain; });
        if (!domain.empty() && !listed && is_external_report_domain(psl, policy_domain, domain)) {
            out.push_back({domain, report_authorization_name(policy_domain, domain)});
        }
    }
    return out;
}

}  // namespace dkim::dns

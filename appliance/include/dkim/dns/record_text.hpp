#pragma once
// The text of the DNS records the appliance asks a domain to publish (DKIM key, SPF, DMARC,
// TLS-RPT, the authorization of an external report domain) and the zone-file or dnsmasq line
// that carries one: text only, no token, no lookups. provisioning, webd and the CLI build every
// record here, so that they propose the same text and quote it the same way.
//
// STANDARDS: RFC 1035 §3.3.14 and §5.1 (TXT character-strings, zone-file quoting), RFC 6376
// §3.6.1 (DKIM key records), RFC 8463 (Ed25519 keys), RFC 7208 §4.5 and §5.6 (SPF: the
// version, ip4/ip6), RFC 7489 §6.2 (report URIs), §6.3 (DMARC tags: p, pct, rua, ruf, adkim,
// aspf) and §7.1 (verifying external destinations), RFC 8460 §3 (TLS-RPT records).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dkim::dmarc {
class PublicSuffixList;
}

namespace dkim::dns {

// --- TXT character-strings and zone-file lines -----------------------------------------------

// The value split into character-strings of at most `max` bytes (RFC 1035 §3.3.14: a TXT
// record holds one or more <character-string>s, each at most 255 octets). An empty value is one
// empty string.
std::vector<std::string> split_character_strings(std::string_view value, std::size_t max = 255);

// One character-string as zone files and dnsmasq write it: in double quotes, with `"` and `\`
// escaped by a backslash (RFC 1035 §5.1: "\X where X is any character other than a digit
// (0-9), is used to quote that character so that its special meaning does not apply").
std::string quoted_character_string(std::string_view part);

// One zone-file line for any TXT value, split in 255-byte character-strings, each quoted:
//   s1._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..." "...rest" )
std::string zone_line(std::string_view name, std::string_view value);

// One dnsmasq line for any TXT value (without its line end), split and quoted as above
// (dnsmasq(8): "--txt-record=<name>[[,<text>],<text>]"):
//   txt-record=s1._domainkey.example.com,"v=DKIM1; k=rsa; p=MIIB...","...rest"
std::string dnsmasq_txt_line(std::string_view name, std::string_view value);

// --- DKIM ------------------------------------------------------------------------------------

// "v=DKIM1; k=rsa; p=MIIB...": `key_type` is the k= value ("rsa", "ed25519"), `p_base64` the
// public key as p= carries it (SubjectPublicKeyInfo for RSA, the bare 32 bytes for Ed25519,
// RFC 8463). The record's name is dkim::key_record_name (dkim/dkim/key_record.hpp).
std::string dkim_key_record_text(std::string_view key_type, std::string_view p_base64);

// --- SPF -------------------------------------------------------------------------------------

// "ip4:192.0.2.25", "ip6:2001:db8::25", "ip4:198.51.100.0/28": an address or network as text
// (an IPv6 address always holds a colon, an IPv4 one never does).
std::string spf_address_term(std::string_view address);

// "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all": the addresses (or networks) and nothing else.
std::string spf_record_text(const std::vector<std::string>& addresses);

// A published SPF record with `terms` added right after "v=spf1", where they are tried first
// (ip4/ip6 terms cost no DNS lookups, so this never raises the record's count).
std::string spf_record_with_terms(std::string_view published,
                                  const std::vector<std::string>& terms);

// --- DMARC -----------------------------------------------------------------------------------

struct DmarcRecordFields {
    std::string policy = "none";  // p=: "none", "quarantine", "reject"
    std::optional<unsigned> pct;  // pct=, written when set (0 to 100)
    std::string rua;              // rua=, written when set: "mailto:dmarc-reports@example.com"
    std::string ruf;              // ruf=, written when set: "mailto:dmarc-failures@example.com"
    std::string adkim;            // adkim=, written when set: "r" or "s"
    std::string aspf;             // aspf=, written when set: "r" or "s"
};

// "v=DMARC1; p=quarantine; pct=25; rua=mailto:...; ruf=mailto:...; adkim=r; aspf=r" (in that
// order).
std::string dmarc_record_text(const DmarcRecordFields& fields);

struct DmarcStage {
    std::string record;
    std::string when;
};
// The ramp a domain climbs: p=none with rua (monitor), then quarantine at pct=25 and pct=100,
// then reject; each stage with the same rua= and ruf=.
std::vector<DmarcStage> dmarc_ramp(const std::string& rua, const std::string& ruf = "");

// --- report addresses ------------------------------------------------------------------------
// rua= and ruf= of DMARC (RFC 7489 §6.2: "a comma-separated list of DMARC URIs", each a
// mailto: here, "!10m" a size limit) and rua= of TLS-RPT (RFC 8460 §3: mailto: or https:).

// The URIs of a rua=/ruf= value, split at its commas, without the spaces around them.
std::vector<std::string> report_uris(std::string_view value);

// The domain a report URI delivers to, lower case: "mailto:dmarc@Reports.Example.NET!10m" ->
// "reports.example.net", "https://reports.example.net/tlsrpt" -> "reports.example.net"; "" when
// the URI names none.
std::string report_uri_domain(std::string_view uri);

// Why `value` (one report URI or several, comma-separated) cannot go into a record, or "": each
// URI a mailto: with an address at a domain name (RFC 7489 §6.2), or an https:// URL when
// `https_allowed` (TLS-RPT, RFC 8460 §3), without ';', spaces, quotes or backslashes (they would
// end the tag or the character-string).
std::string report_uris_problem(std::string_view value, bool https_allowed = false);

// A mailbox that "mailto:" + address turns into one report URI: local@domain, with a domain
// name and none of the characters that separate URIs or tags (',', '!', ';', spaces, quotes).
bool is_report_address(std::string_view address);

// The URIs of `wanted` that `published` does not name (compared without case and without a
// size limit): what a published record lacks of the configured addresses.
std::vector<std::string> missing_report_uris(const std::vector<std::string>& published,
                                             const std::vector<std::string>& wanted);

// A published DMARC or TLS-RPT record with `uris` added to its tag `tag` ("rua", "ruf"), the
// tag added at the end when it has none; the other tags as published.
std::string record_with_report_uris(std::string_view record, std::string_view tag,
                                    const std::vector<std::string>& uris);

// --- TLS-RPT (RFC 8460) ------------------------------------------------------------------------

// "_smtp._tls.example.com" (RFC 8460 §3).
std::string tlsrpt_record_name(std::string_view domain);

// "v=TLSRPTv1; rua=mailto:tls-reports@example.com": `rua` one URI or several, comma-separated.
std::string tlsrpt_record_text(std::string_view rua);

// A TXT record is a TLS-RPT record when it starts with "v=TLSRPTv1" followed by ';', a space
// or its end (RFC 8460 §3: other records at the name are discarded).
bool is_tlsrpt_record(std::string_view txt);

// The URIs of a TLS-RPT record's rua= (RFC 8460 §3: required, "tlsrpt-version 1*(field-delim
// tlsrpt-field)"), or why the record is not valid.
std::optional<std::vector<std::string>> tlsrpt_record_rua(std::string_view txt,
                                                          std::string* problem = nullptr);

// --- verifying external destinations (RFC 7489 §7.1) ------------------------------------------
// Reports for a domain go to an address outside its organizational domain only when the
// report domain publishes "<domain>._report._dmarc.<report domain>" with "v=DMARC1".

inline constexpr std::string_view kReportAuthorizationText = "v=DMARC1";

// "example.com._report._dmarc.reports.example.net"
std::string report_authorization_name(std::string_view policy_domain,
                                      std::string_view report_domain);

// Whether reports for `policy_domain` sent to `report_domain` need that record: their
// organizational domains differ, by the Public Suffix List. Without a list (nullptr), any report
// domain that is neither the policy domain nor above or below it does (a record that turns out
// not to be needed does no harm).
bool is_external_report_domain(const dmarc::PublicSuffixList* psl, std::string_view policy_domain,
                               std::string_view report_domain);

struct ReportAuthorization {
    std::string report_domain;  // "reports.example.net"
    std::string name;           // "example.com._report._dmarc.reports.example.net"
};
// One for each external report domain of `uris`, in their order, each domain once.
std::vector<ReportAuthorization> report_authorizations(const dmarc::PublicSuffixList* psl,
                                                       std::string_view policy_domain,
                                                       const std::vector<std::string>& uris);

}  // namespace dkim::dns

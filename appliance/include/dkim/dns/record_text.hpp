#pragma once
// The text of the DNS records the appliance asks a domain to publish (DKIM key, SPF, DMARC) and
// the zone-file or dnsmasq line that carries one: text only, no token, no lookups. provisioning,
// webd and the CLI build every record here, so that they propose the same text and quote it the
// same way.
//
// STANDARDS: RFC 1035 §3.3.14 and §5.1 (TXT character-strings, zone-file quoting), RFC 6376
// §3.6.1 (DKIM key records), RFC 8463 (Ed25519 keys), RFC 7208 §4.5 and §5.6 (SPF: the
// version, ip4/ip6), RFC 7489 §6.3 (DMARC tags: p, pct, rua, adkim, aspf).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
    std::string adkim;            // adkim=, written when set: "r" or "s"
    std::string aspf;             // aspf=, written when set: "r" or "s"
};

// "v=DMARC1; p=quarantine; pct=25; rua=mailto:...; adkim=r; aspf=r" (in that order).
std::string dmarc_record_text(const DmarcRecordFields& fields);

struct DmarcStage {
    std::string record;
    std::string when;
};
// The ramp a domain climbs: p=none with rua (monitor), then quarantine at pct=25 and pct=100,
// then reject.
std::vector<DmarcStage> dmarc_ramp(const std::string& rua);

}  // namespace dkim::dns

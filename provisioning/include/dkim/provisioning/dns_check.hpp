#pragma once
// The DNS side of provisioning: the records a domain should publish (its DKIM keys, an SPF
// record authorizing the appliance's outbound addresses, a DMARC record and its ramp, where
// reports go: DMARC rua=/ruf=, TLS-RPT, and the authorization an external report domain
// publishes), and a live check of what is published, one finding per record with what to fix.
//
// STANDARDS: RFC 6376 §3.6 (DKIM key records), RFC 8463 (Ed25519 keys), RFC 7208 (SPF: one
// record per name §4.5, at most 10 DNS-querying terms and 2 void lookups §4.6.4), RFC 7489
// (DMARC: discovery, p/sp/pct/rua/ruf; §7.1 external report destinations), RFC 8460 §3
// (TLS-RPT records), RFC 1035 §3.3.14 (255-byte character-strings).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dkim/dns/resolver.hpp"
#include "dkim/expected.hpp"
#include "dkim/net/ip_address.hpp"

namespace dkim::dmarc {
class PublicSuffixList;
}

namespace dkim::provisioning {

// An address (or network) the appliance's outbound mail leaves from: "192.0.2.25",
// "2001:db8::25", "198.51.100.0/28".
struct OutboundAddress {
    net::IpAddress ip;
    unsigned prefix = 32;
    std::string text;  // as configured, normalised

    static Expected<OutboundAddress, std::string> parse(std::string_view text);
    std::string spf_term() const;  // "ip4:192.0.2.25", "ip6:2001:db8::/64"
};

// A key as the lifecycle sees it (from signerd's key list).
struct DomainKey {
    std::string selector;
    std::string algorithm;    // "rsa-2048", "ed25519"
    std::string state;        // "pending-publish", "active", "retiring", "retired", ...
    std::string dkim_record;  // "v=DKIM1; k=...; p=..." as the token holds it
};

// Whether a key's record belongs in DNS now: pending-publish (to be published), active and
// retiring (mail signed with it may still be verified).
bool should_be_published(const DomainKey& key);

struct DnsRecord {
    std::string kind;  // "dkim", "spf", "dmarc", "tlsrpt", "dmarc-report" (RFC 7489 §7.1)
    std::string name;  // owner name, no trailing dot
    std::string value;
    std::string zone_line;
    std::string note;  // what it is for, what to do
};

// --- SPF --------------------------------------------------------------------------------

// The DNS-querying terms an SPF record costs when every one of them is evaluated (the worst
// case a receiver meets): include, a, mx, ptr, exists and redirect, through includes and the
// redirect, as RFC 7208 §4.6.4 counts them; void lookups (NXDOMAIN or no records) too.
struct SpfCost {
    unsigned lookups = 0;
    unsigned void_lookups = 0;
    std::vector<std::string> problems;  // an include without a record, a loop, a DNS failure
};
SpfCost spf_cost(dns::Resolver& resolver, std::string_view domain);
// The cost of a record's text (its own terms and what they include).
SpfCost spf_cost_of_record(dns::Resolver& resolver, std::string_view record);

struct SpfAdvice {
    std::string record;                    // what to publish (the merged or a new record)
    std::optional<std::string> published;  // the SPF record found, if one
    std::vector<std::string> added;        // the terms added for our addresses
    unsigned lookups = 0;                  // the cost of `record`
    bool ok = true;                        // false: the published state needs a person
    std::string note;
};
// The SPF record that authorizes `addresses` for `domain`: a new "v=spf1 ip4:... -all" when
// none is published, else the published one with the missing addresses' terms added after
// "v=spf1" (ip4/ip6 terms cost no lookups, so merging never raises the count). An address the
// published record already passes (check_host) is not added again. With no resolver: a new
// record.
SpfAdvice advise_spf(dns::Resolver* resolver, std::string_view domain,
                     const std::vector<OutboundAddress>& addresses);

// --- the records to publish -------------------------------------------------------------
// (Their text, the DMARC ramp and the zone-file lines are dkim_core's: dkim/dns/record_text.hpp.)

// Where the world's receivers send reports about the domain: rua=/ruf= values, each one URI or
// several, comma-separated ("" for none of that kind).
struct ReportUris {
    std::string dmarc_rua;   // "mailto:dmarc-reports@example.com": aggregate (RFC 7489 §7.2)
    std::string dmarc_ruf;   // "mailto:dmarc-failures@example.com": failure (RFC 7489 §7.3)
    std::string tlsrpt_rua;  // "mailto:tls-reports@example.com": TLS-RPT (RFC 8460)
    // The organizational domains of report domains (RFC 7489 §7.1); without a list,
    // dns::is_external_report_domain's rule.
    std::shared_ptr<const dmarc::PublicSuffixList> psl;
};

struct RecordsInput {
    std::string domain;
    std::vector<DomainKey> keys;
    std::vector<OutboundAddress> addresses;
    ReportUris reports;
};
// DKIM for each key that should be published, SPF (merged with the published one when a
// resolver is given), DMARC monitor mode (with rua= and ruf=) with the ramp in its note, then
// the report records (report_records).
std::vector<DnsRecord> records_for(const RecordsInput& in, dns::Resolver* resolver);

// The TLS-RPT record when a TLS report address is configured ("_smtp._tls.<domain>", RFC 8460
// §3), and for each DMARC report domain outside the domain's organizational domain the record
// that authorizes it (RFC 7489 §7.1: "<domain>._report._dmarc.<report domain>", published in
// the report domain's zone).
std::vector<DnsRecord> report_records(const std::string& domain, const ReportUris& reports);

// --- the live check ---------------------------------------------------------------------

enum class Status : std::uint8_t { ok, warning, problem };
std::string_view to_string(Status status);

struct Finding {
    std::string record;  // "DKIM s1", "SPF", "DMARC", "TLS-RPT", "DMARC report"
    std::string name;    // the DNS name looked up
    Status status = Status::ok;
    std::string message;
    std::string fix;  // empty when nothing is to be done
};

struct CheckInput {
    std::string domain;
    std::vector<DomainKey> keys;
    std::vector<OutboundAddress> addresses;
    ReportUris reports;                       // the addresses the records should name
    std::string receiver = "dkim-appliance";  // %{r} for SPF explanations
};

// DKIM: each key that should be published is, once, parses, is not revoked or in testing,
// and its key is byte-identical to the token's; retired keys' records are gone or revoked.
// SPF: one record, valid, within the lookup limits, passing each outbound address. DMARC:
// one valid record (at the domain or, inherited, above it), with the policy stage reported,
// naming the configured rua= and ruf= addresses. Then check_tlsrpt and
// check_report_authorizations for the DMARC record's report addresses and the configured ones.
std::vector<Finding> check_domain(dns::Resolver& resolver, const CheckInput& in,
                                  std::int64_t now_unix);

// DMARC: one valid record (at the domain or, inherited, above it), its policy stage, and the
// configured rua= and ruf= addresses among its own. `policy_domain` and `uris`, when given, get
// the domain whose record applies and the report URIs it names (rua= and ruf=).
Finding check_dmarc(dns::Resolver& resolver, const CheckInput& in,
                    std::string* policy_domain = nullptr, std::vector<std::string>* uris = nullptr);

// TLS-RPT at "_smtp._tls.<domain>": one valid record (RFC 8460 §3: otherwise senders send no
// reports), naming the configured address. Nothing when none is configured or published.
std::optional<Finding> check_tlsrpt(dns::Resolver& resolver, const CheckInput& in);

// RFC 7489 §7.1: for each report domain of `uris` outside the organizational domain of
// `policy_domain` (the domain whose _dmarc record names them), its authorization record
// "<policy_domain>._report._dmarc.<report domain>" ("v=DMARC1..."). Missing is a problem for a
// domain of the configured addresses (in.reports), a warning for the others.
std::vector<Finding> check_report_authorizations(dns::Resolver& resolver, const CheckInput& in,
                                                 const std::string& policy_domain,
                                                 const std::vector<std::string>& uris);

// The finding for one DKIM key (for rotation: is the new key published yet?).
Finding check_dkim_key(dns::Resolver& resolver, const std::string& domain, const DomainKey& key);

bool has_problems(const std::vector<Finding>& findings);

}  // namespace dkim::provisioning

#pragma once
// The demo domain's DNS records: its keys, an SPF record for mail from this machine, DMARC in
// monitor mode with the report addresses (rua=, ruf=), TLS-RPT, and the authorization an
// external report domain publishes (RFC 7489 §7.1); as the zone-file lines `up` prints for
// publication and as dns/dnsmasq.conf, for a DNS server of the tour's own (dnsmasq on a loopback
// port). The record text and the quoting are dkim_core's (dkim/dns/record_text.hpp).

#include <filesystem>
#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "up_settings.hpp"

namespace dkim::dmarc {
class PublicSuffixList;
}

namespace dkim::cli::up {

struct TxtRecord {
    std::string name;  // "rsa2048._domainkey.example.test" (no trailing dot)
    std::string value;
};

// The key records, then "v=spf1 ip4:127.0.0.1 ip6:::1 -all", "v=DMARC1; p=none; rua=mailto:...;
// ruf=mailto:..." (the addresses that are set), "v=TLSRPTv1; rua=mailto:..." at _smtp._tls (when
// its address is set), and "v=DMARC1" at "<domain>._report._dmarc.<report domain>" for each
// report domain outside the domain's organizational domain (by `psl`; without it, by the tree).
std::vector<TxtRecord> demo_records(const std::string& domain,
                                    const std::vector<TxtRecord>& key_records,
                                    const ReportAddresses& reports,
                                    const dmarc::PublicSuffixList* psl = nullptr);

// "rsa2048._domainkey.example.test. IN TXT ( "v=DKIM1; k=rsa; p=..." "..." )", one a record.
std::vector<std::string> zone_lines(const std::vector<TxtRecord>& records);

// dnsmasq.conf for `domain`: answered from these lines only (local=/domain/), one txt-record
// line a record (demo_records). `conf` is where it is written (named in the comment that shows
// how to run dnsmasq with it).
std::string dnsmasq_conf(const std::string& domain, const std::vector<TxtRecord>& records,
                         const std::filesystem::path& conf);

Expected<void, std::string> write_dnsmasq_conf(const std::string& domain,
                                               const std::vector<TxtRecord>& records,
                                               const std::filesystem::path& conf);

}  // namespace dkim::cli::up

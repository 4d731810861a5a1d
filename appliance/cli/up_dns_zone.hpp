#pragma once
// The demo domain's DNS records: the zone-file lines `up` prints for publication, and
// dns/dnsmasq.conf, the same records with an SPF and a DMARC record for mail from this machine
// for a DNS server of the tour's own (dnsmasq on a loopback port). The record text and the
// quoting are dkim_core's (dkim/dns/record_text.hpp).

#include <filesystem>
#include <string>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::cli::up {

struct TxtRecord {
    std::string name;  // "rsa2048._domainkey.example.test" (no trailing dot)
    std::string value;
};

// "rsa2048._domainkey.example.test. IN TXT ( "v=DKIM1; k=rsa; p=..." "..." )", one a record.
std::vector<std::string> zone_lines(const std::vector<TxtRecord>& records);

// dnsmasq.conf for `domain`: answered from these lines only (local=/domain/), the key records,
// "v=spf1 ip4:127.0.0.1 ip6:::1 -all" and "v=DMARC1; p=none". `conf` is where it is written
// (named in the comment that shows how to run dnsmasq with it).
std::string dnsmasq_conf(const std::string& domain, const std::vector<TxtRecord>& key_records,
                         const std::filesystem::path& conf);

Expected<void, std::string> write_dnsmasq_conf(const std::string& domain,
                                               const std::vector<TxtRecord>& key_records,
                                               const std::filesystem::path& conf);

}  // namespace dkim::cli::up

#include "up_dns_zone.hpp"

#include "dkim/dns/record_text.hpp"
#include "up_state_folder.hpp"

namespace dkim::cli::up {

std::vector<TxtRecord> demo_records(const std::string& domain,
                                    const std::vector<TxtRecord>& key_records,
                                    const ReportAddresses& reports,
                                    const dmarc::PublicSuffixList* psl) {
    std::vector<TxtRecord> records = key_records;
    records.push_back({domain, dns::spf_record_text({"127.0.0.1", "::1"})});
    dns::DmarcRecordFields monitor;
    monitor.rua = mailto(reports.aggregate_address);
    monitor.ruf = mailto(reports.failure_address);
    records.push_back({"_dmarc." + domain, dns::dmarc_record_text(monitor)});
    if (!reports.tls_address.empty()) {
        records.push_back({dns::tlsrpt_record_name(domain),
                           dns::tlsrpt_record_text(mailto(reports.tls_address))});
    }
    for (const auto& a : dns::report_authorizations(psl, domain, {monitor.rua, monitor.ruf})) {
        records.push_back({a.name, std::string(dns::kReportAuthorizationText)});
    }
    return records;
}

std::vector<std::string> zone_lines(const std::vector<TxtRecord>& records) {
    std::vector<std::string> lines;
    lines.reserve(records.size());
    for (const TxtRecord& r : records) {
        lines.push_back(dns::zone_line(r.name, r.value));
    }
    return lines;
}

std::string dnsmasq_conf(const std::string& domain, const std::vector<TxtRecord>& records,
                         const std::filesystem::path& conf) {
    std::string text = "# The DNS records of " + domain +
                       ", for dnsmasq on a loopback port (written by up at every start):\n"
                       "#   dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=127.0.0.1 "
                       "--bind-interfaces --port=5353 --conf-file=" +
                       conf.string() + "\nlocal=/" + domain + "/\n";
    for (const TxtRecord& r : records) {
        text += dns::dnsmasq_txt_line(r.name, r.value) + "\n";
    }
    return text;
}

Expected<void, std::string> write_dnsmasq_conf(const std::string& domain,
                                               const std::vector<TxtRecord>& records,
                                               const std::filesystem::path& conf) {
    return write_file(conf, dnsmasq_conf(domain, records, conf), 0644);
}

}  // namespace dkim::cli::up

// dkim-appliance dns records | check: the records a signing domain needs (DKIM for its keys,
// SPF for the outbound addresses, DMARC monitor mode and its ramp with the report addresses,
// TLS-RPT, and the authorization an external report domain publishes), as zone-file lines, JSON
// or dnsmasq lines; and the same records looked up live, with what is wrong and how to fix it.
//
// Exit codes: 0 done; 1 failed (or, for `dns check`, something is wrong); 2 usage.

#include <algorithm>
#include <cereal/archives/json.hpp>
#include <chrono>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dkim/dmarc/policy.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "signerd_keys.hpp"

namespace dkim::cli {

namespace {

Expected<std::vector<provisioning::OutboundAddress>, std::string> parse_addresses(
    const std::vector<std::string>& texts) {
    std::vector<provisioning::OutboundAddress> out;
    for (const auto& t : texts) {
        auto a = provisioning::OutboundAddress::parse(t);
        if (!a) {
            return unexpected("--outbound: " + a.error());
        }
        out.push_back(std::move(*a));
    }
    return out;
}

// `name`: a JSON array with one object per item, its fields written by fields(archive, item).
template <class Items, class Fields>
void json_array(cereal::JSONOutputArchive& archive, const char* name, const Items& items,
                Fields fields) {
    archive.setNextName(name);
    archive.startNode();
    archive.makeArray();
    for (const auto& item : items) {
        archive.startNode();
        fields(archive, item);
        archive.finishNode();
    }
    archive.finishNode();
}

CLI::Validator report_uris_validator(bool https_allowed) {
    return CLI::Validator(
        [https_allowed](const std::string& value) {
            return dns::report_uris_problem(value, https_allowed);
        },
        https_allowed ? "URI" : "MAILTO");
}

struct DnsCommandArgs {
    Common common;
    DnsArgs dns;
    std::string domain;
    std::vector<std::string> outbound;
    std::string dmarc_rua;
    std::string dmarc_ruf;
    std::string tlsrpt_rua;
    bool offline = false;  // records: do not look the published SPF record up
    bool dnsmasq = false;  // records: as dnsmasq configuration lines
    bool json = false;
};

void add_dns_advice_options(CLI::App* command, DnsCommandArgs& args) {
    command->add_option("domain", args.domain, "the signing domain")->required();
    command->add_option("--outbound", args.outbound,
                        "an address or network the appliance's mail leaves from (repeat); SPF "
                        "must authorize them");
    // RFC 7489 §6.2 (mailto: here), RFC 8460 §3 (mailto: or https:); one URI or several,
    // comma-separated.
    command
        ->add_option("--dmarc-rua", args.dmarc_rua,
                     "where DMARC aggregate reports go (mailto:dmarc-reports@example.com)")
        ->check(report_uris_validator(false));
    command
        ->add_option("--dmarc-ruf", args.dmarc_ruf,
                     "where DMARC failure reports go (mailto:dmarc-failures@example.com)")
        ->check(report_uris_validator(false));
    command
        ->add_option("--tlsrpt-rua", args.tlsrpt_rua,
                     "where TLS reports go, for the TLS-RPT record "
                     "(mailto:tls-reports@example.com, or an https:// URL)")
        ->check(report_uris_validator(true));
    command->add_flag("--json", args.json, "print JSON");
    add_common(command, args.common);
    add_dns_options(command, args.dns);
}

// On a cluster node, the other nodes' keys for `domain` too (each node signs with the keys in
// its own token, and receivers must find every node's selector): from the cluster's registry,
// as each node published its token's keys there. A key the registry lists without a lifecycle
// record signs as an active key, as on its own node.
void add_other_nodes_keys(const Common& common, const std::string& domain,
                          std::vector<provisioning::DomainKey>& keys) {
    auto reply = cluster_status(common);
    if (!reply) {
        std::cerr << "dkim-appliance: the other cluster nodes' keys are not listed: "
                  << reply.error() << "\n";
        return;
    }
    const ipc::ClusterStatusReply* status = &*reply;
    if (!status->cluster) {
        return;
    }
    // A node whose registry row does not verify with the audit key signerd pins for it: its
    // records could be anyone's with write access to the database, and are not listed.
    for (const ipc::ClusterNodeView& n : status->nodes) {
        const bool has_domain =
            std::any_of(n.selectors.begin(), n.selectors.end(),
                        [&domain](const std::string& s) { return s.rfind(domain + "/", 0) == 0; });
        if (!n.self && !n.records_verified && has_domain) {
            std::cerr << "dkim-appliance: node " << n.name
                      << "'s keys are not listed: its registry row is not signed with the audit "
                         "key this node pins for it ([cluster] node_keys in signerd.toml, from "
                         "`dkim-appliance audit key` on that node), or it has not signed it yet\n";
        }
    }
    for (const ipc::ClusterKeyView& k : status->keys) {
        if (k.node == status->node || k.domain != domain || k.dns_record.empty()) {
            continue;
        }
        const bool taken = std::any_of(keys.begin(), keys.end(), [&k](const auto& mine) {
            return mine.selector == k.selector;
        });
        if (!taken) {
            keys.push_back({k.selector, k.algorithm, k.state == "unmanaged" ? "active" : k.state,
                            k.dns_record});
        }
    }
}

// What both commands start from: the domain (lower case), its keys as signerd reports them,
// the outbound addresses and where reports go; or why not.
struct DomainInputs {
    std::string domain;
    std::vector<provisioning::DomainKey> keys;
    std::vector<provisioning::OutboundAddress> addresses;
    provisioning::ReportUris reports;
};

Expected<DomainInputs, std::string> domain_inputs(const DnsCommandArgs& args) {
    DomainInputs out;
    out.domain = mail::ascii_lowercase(args.domain);
    auto keys = fetch_keys(args.common);
    if (!keys) {
        return unexpected(keys.error());
    }
    auto addresses = parse_addresses(args.outbound);
    if (!addresses) {
        return unexpected(addresses.error());
    }
    out.keys = domain_keys(*keys, out.domain);
    add_other_nodes_keys(args.common, out.domain, out.keys);
    out.addresses = std::move(*addresses);
    out.reports.dmarc_rua = args.dmarc_rua;
    out.reports.dmarc_ruf = args.dmarc_ruf;
    out.reports.tlsrpt_rua = args.tlsrpt_rua;
    // Whether a report domain is external (RFC 7489 §7.1); without the list, the tree decides.
    if (auto psl = dmarc::PublicSuffixList::load()) {
        out.reports.psl = std::move(*psl);
    }
    return out;
}

int run_dns_records(const DnsCommandArgs& args) {
    auto inputs = domain_inputs(args);
    if (!inputs) {
        return fail(inputs.error());
    }
    const std::string& domain = inputs->domain;
    std::unique_ptr<dns::UnboundResolver> resolver;
    if (!args.offline) {
        auto opened = open_resolver(args.dns);
        if (!opened) {
            return fail(opened.error());
        }
        resolver = std::move(*opened);
    }
    provisioning::RecordsInput in{domain, std::move(inputs->keys), std::move(inputs->addresses),
                                  std::move(inputs->reports)};
    const auto records = provisioning::records_for(in, resolver.get());
    if (args.dnsmasq) {
        // For a DNS server of one's own (the demo's): the domain is answered from these lines
        // only, each TXT value in quoted character-strings of at most 255 octets (a report
        // domain's authorization among them: dnsmasq answers it, other names there are not its).
        std::cout << "local=/" << domain << "/\n";
        for (const auto& r : records) {
            if (!r.value.empty()) {
                std::cout << dns::dnsmasq_txt_line(r.name, r.value) << "\n";
            }
        }
        return 0;
    }
    if (args.json) {
        {
            cereal::JSONOutputArchive archive(std::cout);
            archive(cereal::make_nvp("domain", domain));
            json_array(archive, "records", records, [](auto& a, const auto& r) {
                a(cereal::make_nvp("kind", r.kind), cereal::make_nvp("name", r.name),
                  cereal::make_nvp("value", r.value), cereal::make_nvp("zone_line", r.zone_line),
                  cereal::make_nvp("note", r.note));
            });
        }
        std::cout << "\n";
        return 0;
    }
    for (const auto& r : records) {
        std::cout << "; " << r.kind << ": " << r.note << "\n";
        std::cout << (r.zone_line.empty() ? "; (nothing to publish yet)" : r.zone_line) << "\n\n";
    }
    return 0;
}

int run_dns_check(const DnsCommandArgs& args) {
    auto inputs = domain_inputs(args);
    if (!inputs) {
        return fail(inputs.error());
    }
    const std::string& domain = inputs->domain;
    auto resolver = open_resolver(args.dns);
    if (!resolver) {
        return fail(resolver.error());
    }
    provisioning::CheckInput in;
    in.domain = domain;
    in.keys = std::move(inputs->keys);
    in.addresses = std::move(inputs->addresses);
    in.reports = std::move(inputs->reports);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const auto findings = provisioning::check_domain(**resolver, in, now);
    const bool bad = provisioning::has_problems(findings);
    if (args.json) {
        {
            cereal::JSONOutputArchive archive(std::cout);
            archive(cereal::make_nvp("domain", domain), cereal::make_nvp("ok", !bad));
            json_array(archive, "findings", findings, [](auto& a, const auto& f) {
                a(cereal::make_nvp("record", f.record), cereal::make_nvp("name", f.name),
                  cereal::make_nvp("status", std::string(provisioning::to_string(f.status))),
                  cereal::make_nvp("message", f.message), cereal::make_nvp("fix", f.fix));
            });
        }
        std::cout << "\n";
    } else {
        for (const auto& f : findings) {
            std::cout << std::left << std::setw(8) << provisioning::to_string(f.status)
                      << std::setw(14) << f.record << f.name << ": " << f.message << "\n";
            if (!f.fix.empty()) {
                std::cout << "        fix: " << f.fix << "\n";
            }
        }
    }
    return bad ? kFailed : 0;
}

}  // namespace

void add_dns_records_commands(CLI::App& dns, int& exit_code) {
    auto records_args = std::make_shared<DnsCommandArgs>();
    CLI::App* records = dns.add_subcommand(
        "records",
        "The records DOMAIN needs: DKIM for its active, pending and retiring keys, SPF for the "
        "outbound addresses (merged with the published record), DMARC monitor mode and ramp, "
        "TLS-RPT, and the record an external report domain publishes (RFC 7489 7.1)");
    add_dns_advice_options(records, *records_args);
    records->add_flag("--offline", records_args->offline,
                      "do not look up the published SPF record to merge with");
    records->add_flag("--dnsmasq", records_args->dnsmasq,
                      "print the records as dnsmasq configuration lines (local=, txt-record=), "
                      "for a DNS server of one's own such as the demo's");
    records->callback([&exit_code, records_args] { exit_code = run_dns_records(*records_args); });

    auto check_args = std::make_shared<DnsCommandArgs>();
    CLI::App* check = dns.add_subcommand(
        "check",
        "Look DOMAIN's records up live and report, per record, OK or what is wrong and how to "
        "fix it; exit 1 when something is wrong");
    add_dns_advice_options(check, *check_args);
    check->callback([&exit_code, check_args] { exit_code = run_dns_check(*check_args); });
}

}  // namespace dkim::cli

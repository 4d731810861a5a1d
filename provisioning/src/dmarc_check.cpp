// DMARC and where reports go: the DMARC record's live check (its stage, the configured report
// addresses among its own), TLS-RPT (RFC 8460), and the records that authorize report domains
// outside the domain's organizational domain (RFC 7489 §7.1); and the report records to publish.

#include <algorithm>
#include <iterator>
#include <optional>
#include <tuple>

#include "dkim/dmarc/record.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "text.hpp"

namespace dkim::provisioning {

using detail::describe_failure;

namespace {

// "mailto:a@example.com, mailto:b@example.net"
std::string listed_uris(const std::vector<std::string>& uris) {
    std::string out;
    for (const std::string& u : uris) {
        out += (out.empty() ? "" : ", ") + u;
    }
    return out;
}

// The configured rua= and ruf= URIs the published record does not name: a problem, with the
// published record with them added as the fix (the appliance's reports would go elsewhere).
void require_configured_uris(Finding& f, const std::string& published, const dmarc::Record& parsed,
                             const ReportUris& reports) {
    std::string record = published;
    std::string lacking;
    for (const auto& [tag, configured, named] : {std::tuple{"rua", &reports.dmarc_rua, &parsed.rua},
                                                 {"ruf", &reports.dmarc_ruf, &parsed.ruf}}) {
        const auto missing = dns::missing_report_uris(*named, dns::report_uris(*configured));
        if (!missing.empty()) {
            record = dns::record_with_report_uris(record, tag, missing);
            lacking += (lacking.empty() ? "" : "; ") + std::string(tag) + "= does not name " +
                       listed_uris(missing);
        }
    }
    if (!lacking.empty()) {
        f.status = Status::problem;
        f.message += "; " + lacking + " (the configured report address)";
        f.fix = "publish: " + dns::zone_line(f.name, record);
    }
}

}  // namespace

Finding check_dmarc(dns::Resolver& resolver, const CheckInput& in, std::string* policy_domain,
                    std::vector<std::string>* uris) {
    const std::string& domain = in.domain;
    Finding f;
    f.record = "DMARC";
    f.name = "_dmarc." + domain;
    // The domain's own record, else one above it (RFC 7489 §6.6.3 falls back to the
    // organizational domain; walking up finds it without a suffix list).
    std::string at = domain;
    std::vector<std::string> found;
    while (true) {
        const auto answer = resolver.lookup_txt("_dmarc." + at);
        if (answer.status == dns::LookupStatus::temporary_failure) {
            f.status = Status::problem;
            f.message = describe_failure(answer);
            return f;
        }
        for (const auto& r : answer.records) {
            if (dmarc::is_dmarc_record(r)) {
                found.push_back(r);
            }
        }
        const auto dot = at.find('.');
        if (!found.empty() || dot == std::string::npos ||
            at.find('.', dot + 1) == std::string::npos) {
            break;
        }
        at = at.substr(dot + 1);
    }
    const auto ramp = dns::dmarc_ramp(in.reports.dmarc_rua, in.reports.dmarc_ruf);
    if (found.empty()) {
        f.status = Status::problem;
        f.message = "no DMARC record";
        dns::DmarcRecordFields monitor;
        monitor.rua =
            in.reports.dmarc_rua.empty() ? "mailto:dmarc-reports@" + domain : in.reports.dmarc_rua;
        monitor.ruf = in.reports.dmarc_ruf;
        f.fix = "publish (monitor mode first): " +
                dns::zone_line(f.name, dns::dmarc_record_text(monitor));
        return f;
    }
    f.name = "_dmarc." + at;
    if (found.size() > 1) {
        f.status = Status::problem;
        f.message = std::to_string(found.size()) + " DMARC records: receivers ignore them all";
        f.fix = "keep exactly one";
        return f;
    }
    auto parsed = dmarc::parse_record(found.front());
    if (!parsed || !parsed->p_valid) {
        f.status = Status::problem;
        f.message = parsed ? "p= is missing or invalid" : "invalid: " + parsed.error();
        f.fix = "publish: " + dns::zone_line(f.name, ramp.front().record);
        return f;
    }
    if (policy_domain != nullptr) {
        *policy_domain = at;
    }
    if (uris != nullptr) {
        uris->insert(uris->end(), parsed->rua.begin(), parsed->rua.end());
        uris->insert(uris->end(), parsed->ruf.begin(), parsed->ruf.end());
    }
    const bool inherited = at != domain;
    const dmarc::Policy policy = inherited && parsed->sp ? *parsed->sp : parsed->p;
    std::string stage;
    std::string next;
    if (policy == dmarc::Policy::none) {
        stage = "monitor mode (p=none)";
        next = "next: p=quarantine; pct=25 when the reports show only your own mail";
    } else if (policy == dmarc::Policy::quarantine) {
        stage = "quarantine at pct=" + std::to_string(parsed->pct);
        next = parsed->pct < 100 ? "next: pct=100" : "next: p=reject";
    } else {
        stage = parsed->pct < 100 ? "reject at pct=" + std::to_string(parsed->pct)
                                  : "enforcing (p=reject)";
    }
    f.message = stage + (inherited ? " (inherited from " + at + ")" : "");
    if (!next.empty()) {
        f.message += "; " + next;
    }
    if (parsed->rua.empty()) {
        f.status = Status::warning;
        f.fix = "add rua=mailto:... to see the aggregate reports the ramp depends on";
    }
    if (parsed->testing) {
        f.status = Status::warning;
        f.fix = "t=y lowers the policy one step: remove it when ready";
    }
    require_configured_uris(f, found.front(), *parsed, in.reports);
    return f;
}

std::optional<Finding> check_tlsrpt(dns::Resolver& resolver, const CheckInput& in) {
    Finding f;
    f.record = "TLS-RPT";
    f.name = dns::tlsrpt_record_name(in.domain);
    const std::string& configured = in.reports.tlsrpt_rua;
    const std::string publish =
        configured.empty() ? "" : dns::zone_line(f.name, dns::tlsrpt_record_text(configured));
    const auto answer = resolver.lookup_txt(f.name);
    if (answer.status == dns::LookupStatus::temporary_failure) {
        f.status = Status::problem;
        f.message = describe_failure(answer);
        return f;
    }
    std::vector<std::string> found;
    std::copy_if(answer.records.begin(), answer.records.end(), std::back_inserter(found),
                 [](const std::string& r) { return dns::is_tlsrpt_record(r); });
    if (found.empty()) {
        if (configured.empty()) {
            return std::nullopt;
        }
        f.status = Status::problem;
        f.message = "no TLS-RPT record: senders send no TLS reports";
        f.fix = "publish: " + publish;
        return f;
    }
    // RFC 8460 §3: "If the number of resulting records is not one, or if the resulting record
    // is syntactically invalid, senders MUST assume the Policy Domain does not implement TLSRPT."
    if (found.size() > 1) {
        f.status = Status::problem;
        f.message = std::to_string(found.size()) + " TLS-RPT records: senders ignore them all";
        f.fix = publish.empty() ? "keep exactly one" : "keep exactly one: " + publish;
        return f;
    }
    std::string problem;
    const auto rua = dns::tlsrpt_record_rua(found.front(), &problem);
    if (!rua) {
        f.status = Status::problem;
        f.message = "invalid: " + problem;
        f.fix = publish.empty() ? "correct the record" : "publish: " + publish;
        return f;
    }
    const auto missing = dns::missing_report_uris(*rua, dns::report_uris(configured));
    if (!missing.empty()) {
        f.status = Status::problem;
        f.message =
            "rua= does not name " + listed_uris(missing) + " (the configured report address)";
        f.fix = "publish: " +
                dns::zone_line(f.name, dns::record_with_report_uris(found.front(), "rua", missing));
        return f;
    }
    f.message = "reports go to " + listed_uris(*rua);
    return f;
}

std::vector<Finding> check_report_authorizations(dns::Resolver& resolver, const CheckInput& in,
                                                 const std::string& policy_domain,
                                                 const std::vector<std::string>& uris) {
    std::vector<std::string> configured = dns::report_uris(in.reports.dmarc_rua);
    for (std::string& uri : dns::report_uris(in.reports.dmarc_ruf)) {
        configured.push_back(std::move(uri));
    }
    std::vector<Finding> out;
    for (const auto& a : dns::report_authorizations(in.reports.psl.get(), policy_domain, uris)) {
        Finding f;
        f.record = "DMARC report";
        f.name = a.name;
        const bool ours = std::any_of(configured.begin(), configured.end(), [&a](const auto& u) {
            return dns::report_uri_domain(u) == a.report_domain;
        });
        const auto answer = resolver.lookup_txt(a.name);
        const bool authorized =
            std::any_of(answer.records.begin(), answer.records.end(),
                        [](const std::string& r) { return dmarc::is_dmarc_record(r); });
        if (answer.status == dns::LookupStatus::temporary_failure) {
            f.status = Status::problem;
            f.message = describe_failure(answer);
        } else if (!authorized) {
            f.status = ours ? Status::problem : Status::warning;
            f.message = a.report_domain + " is outside " + policy_domain +
                        "'s organizational domain and does not accept its reports: receivers "
                        "send none there (RFC 7489 §7.1)";
            f.fix = "publish in " + a.report_domain +
                    "'s zone: " + dns::zone_line(a.name, dns::kReportAuthorizationText);
        } else {
            f.message = a.report_domain + " accepts DMARC reports for " + policy_domain;
        }
        out.push_back(std::move(f));
    }
    return out;
}

std::vector<DnsRecord> report_records(const std::string& domain, const ReportUris& reports) {
    std::vector<DnsRecord> out;
    if (!reports.tlsrpt_rua.empty()) {
        const std::string name = dns::tlsrpt_record_name(domain);
        const std::string value = dns::tlsrpt_record_text(reports.tlsrpt_rua);
        out.push_back({"tlsrpt", name, value, dns::zone_line(name, value),
                       "where senders report failed TLS connections to the domain's mail "
                       "servers (SMTP TLS Reporting, RFC 8460)"});
    }
    std::vector<std::string> uris = dns::report_uris(reports.dmarc_rua);
    for (std::string& uri : dns::report_uris(reports.dmarc_ruf)) {
        uris.push_back(std::move(uri));
    }
    for (const auto& a : dns::report_authorizations(reports.psl.get(), domain, uris)) {
        const std::string value(dns::kReportAuthorizationText);
        out.push_back({"dmarc-report", a.name, value, dns::zone_line(a.name, value),
                       "for " + a.report_domain + "'s zone, not " + domain +
                           "'s: it is outside the domain's organizational domain and accepts "
                           "DMARC reports for it only with this record (RFC 7489 §7.1)"});
    }
    return out;
}

}  // namespace dkim::provisioning

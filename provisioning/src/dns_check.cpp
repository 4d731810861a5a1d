#include "dkim/provisioning/dns_check.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include "dkim/dkim/key_record.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/spf/check.hpp"
#include "dkim/spf/record.hpp"
#include "text.hpp"

namespace dkim::provisioning {

using detail::describe_failure;
using detail::lower;
namespace {

constexpr unsigned kMaxLookups = 10;       // RFC 7208 §4.6.4
constexpr unsigned kMaxVoidLookups = 2;    // RFC 7208 §4.6.4
constexpr unsigned kMaxIncludeDepth = 10;  // loops end here at the latest

std::vector<std::string> spf_records(const dns::Answer& answer) {
    std::vector<std::string> out;
    for (const auto& r : answer.records) {
        if (spf::is_spf_record(r)) {
            out.push_back(r);
        }
    }
    return out;
}

class SpfCoster {
  public:
    explicit SpfCoster(dns::Resolver& resolver) : resolver_(resolver) {}

    void record(std::string_view text, std::string_view domain, unsigned depth) {
        auto parsed = spf::parse_record(text);
        if (!parsed) {
            cost.problems.push_back("the SPF record of " + std::string(domain) +
                                    " is invalid: " + parsed.error());
            return;
        }
        bool has_all = false;
        for (const spf::Directive& d : parsed->directives) {
            const std::string target = d.domain_spec.empty() ? std::string(domain) : d.domain_spec;
            const bool macro = target.find('%') != std::string::npos;
            switch (d.mechanism) {
                case spf::Mechanism::all: has_all = true; break;
                case spf::Mechanism::ip4:
                case spf::Mechanism::ip6: break;
                case spf::Mechanism::ptr:
                case spf::Mechanism::exists: ++cost.lookups; break;
                case spf::Mechanism::a:
                    ++cost.lookups;
                    if (!macro) {
                        count_void(target, {dns::RecordType::a, dns::RecordType::aaaa});
                    }
                    break;
                case spf::Mechanism::mx:
                    ++cost.lookups;
                    if (!macro) {
                        count_void(target, {dns::RecordType::mx});
                    }
                    break;
                case spf::Mechanism::include:
                    ++cost.lookups;
                    if (!macro) {
                        follow(target, depth, "include:" + target);
                    }
                    break;
            }
        }
        // A redirect is only used when no mechanism matched; after "all" it never is.
        if (parsed->redirect && !has_all) {
            ++cost.lookups;
            if (parsed->redirect->find('%') == std::string::npos) {
                follow(*parsed->redirect, depth, "redirect=" + *parsed->redirect);
            }
        }
    }

    SpfCost cost;

  private:
    void count_void(const std::string& name, std::initializer_list<dns::RecordType> types) {
        bool any = false;
        for (const auto type : types) {
            const auto answer = resolver_.lookup(name, type);
            if (answer.status == dns::LookupStatus::found) {
                any = true;
            } else if (answer.status == dns::LookupStatus::temporary_failure) {
                return;
            }
        }
        if (!any) {
            ++cost.void_lookups;
        }
    }

    void follow(const std::string& target, unsigned depth, const std::string& term) {
        const std::string key = lower(target);
        if (depth >= kMaxIncludeDepth || !visiting_.insert(key).second) {
            cost.problems.push_back(term + " loops back to a record already being evaluated");
            return;
        }
        const auto answer = resolver_.lookup_txt(target);
        if (answer.status == dns::LookupStatus::temporary_failure) {
            cost.problems.push_back(term + ": " + describe_failure(answer));
        } else {
            const auto found = spf_records(answer);
            if (found.empty()) {
                ++cost.void_lookups;
                cost.problems.push_back(term + " has no SPF record (a permerror at receivers)");
            } else if (found.size() > 1) {
                cost.problems.push_back(term + " has " + std::to_string(found.size()) +
                                        " SPF records (a permerror at receivers)");
            } else {
                record(found.front(), target, depth + 1);
            }
        }
        visiting_.erase(key);
    }

    dns::Resolver& resolver_;
    std::set<std::string> visiting_;
};

}  // namespace

// --- outbound addresses --------------------------------------------------------------------

Expected<OutboundAddress, std::string> OutboundAddress::parse(std::string_view text) {
    const auto slash = text.find('/');
    const auto address = net::IpAddress::parse(text.substr(0, slash));
    if (!address) {
        return unexpected("'" + std::string(text) + "' is not an IPv4 or IPv6 address");
    }
    OutboundAddress out;
    out.ip = *address;
    out.prefix = address->is_v4() ? 32 : 128;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        unsigned prefix = 0;
        const auto [end, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() ||
            prefix > out.prefix) {
            return unexpected("'" + std::string(text) + "' has an invalid prefix length");
        }
        out.prefix = prefix;
    }
    out.text = out.ip.to_string();
    if (out.prefix != (out.ip.is_v4() ? 32U : 128U)) {
        out.text += "/" + std::to_string(out.prefix);
    }
    return out;
}

std::string OutboundAddress::spf_term() const {
    return dns::spf_address_term(text);
}

bool should_be_published(const DomainKey& key) {
    return key.state == "pending-publish" || key.state == "active" || key.state == "retiring";
}

// --- SPF --------------------------------------------------------------------------------

SpfCost spf_cost(dns::Resolver& resolver, std::string_view domain) {
    SpfCoster coster(resolver);
    const auto answer = resolver.lookup_txt(domain);
    const auto found = spf_records(answer);
    if (answer.status == dns::LookupStatus::temporary_failure) {
        coster.cost.problems.push_back(describe_failure(answer));
    } else if (found.size() == 1) {
        coster.record(found.front(), domain, 0);
    }
    return coster.cost;
}

SpfCost spf_cost_of_record(dns::Resolver& resolver, std::string_view record) {
    SpfCoster coster(resolver);
    coster.record(record, "", 0);
    return coster.cost;
}

SpfAdvice advise_spf(dns::Resolver* resolver, std::string_view domain,
                     const std::vector<OutboundAddress>& addresses) {
    SpfAdvice advice;
    std::vector<std::string> texts;
    for (const auto& a : addresses) {
        texts.push_back(a.text);
        advice.added.push_back(a.spf_term());
    }
    advice.record = dns::spf_record_text(texts);
    advice.note = "authorizes the appliance's outbound addresses, and nothing else";
    if (resolver == nullptr) {
        return advice;
    }
    const auto answer = resolver->lookup_txt(domain);
    if (answer.status == dns::LookupStatus::temporary_failure) {
        advice.ok = false;
        advice.note = "the published SPF record could not be read (" + describe_failure(answer) +
                      "); merge this with it by hand";
        return advice;
    }
    const auto found = spf_records(answer);
    if (found.empty()) {
        advice.note += " (no SPF record is published)";
        return advice;
    }
    if (found.size() > 1) {
        advice.ok = false;
        advice.note = std::to_string(found.size()) +
                      " SPF records are published: receivers treat that as a permerror. Keep "
                      "one record that holds all their terms, with the appliance's added";
        return advice;
    }
    advice.published = found.front();
    if (auto parsed = spf::parse_record(found.front()); !parsed) {
        advice.ok = false;
        advice.note = "the published SPF record is invalid (" + parsed.error() +
                      "); fix it, and add the appliance's terms";
        return advice;
    }
    // Only the addresses the published record does not pass already.
    spf::Checker checker(*resolver, "dkim-appliance");
    std::vector<std::string> missing;
    for (const auto& a : addresses) {
        const auto outcome =
            checker.check_host(a.ip, domain, "postmaster@" + std::string(domain), domain, 0);
        if (outcome.result != spf::Result::pass) {
            missing.push_back(a.spf_term());
        }
    }
    advice.added = missing;
    // After "v=spf1": the terms are tried first, and cost no lookups.
    const std::string merged = dns::spf_record_with_terms(*advice.published, missing);
    advice.record = merged;
    const SpfCost cost = spf_cost_of_record(*resolver, merged);
    advice.lookups = cost.lookups;
    if (cost.lookups > kMaxLookups || cost.void_lookups > kMaxVoidLookups) {
        advice.ok = false;
        advice.note = "the published record already needs " + std::to_string(cost.lookups) +
                      " DNS lookups (limit 10) and " + std::to_string(cost.void_lookups) +
                      " void lookups (limit 2): replace includes by the addresses they name";
    } else if (missing.empty()) {
        advice.note = "the published record already authorizes every outbound address";
    } else {
        advice.note = "the published record with the appliance's addresses added (" +
                      std::to_string(cost.lookups) + " of 10 DNS lookups)";
    }
    return advice;
}

// --- the records to publish -------------------------------------------------------------

std::vector<DnsRecord> records_for(const RecordsInput& in, dns::Resolver* resolver) {
    std::vector<DnsRecord> out;
    for (const DomainKey& k : in.keys) {
        if (!should_be_published(k)) {
            continue;
        }
        const std::string name = k.selector + "._domainkey." + in.domain;
        std::string note = k.algorithm + " key, " + k.state;
        if (k.state == "pending-publish") {
            note += ": publish it; signing switches to it once it is seen";
        } else if (k.state == "retiring") {
            note += ": keep it published until the key is retired";
        }
        out.push_back({"dkim", name, k.dkim_record, dns::zone_line(name, k.dkim_record), note});
    }
    if (in.addresses.empty()) {
        out.push_back({"spf", in.domain, "", "",
                       "no outbound addresses are configured: list the addresses the appliance's "
                       "mail leaves from (outbound_addresses)"});
    } else {
        const SpfAdvice spf = advise_spf(resolver, in.domain, in.addresses);
        out.push_back({"spf", in.domain, spf.record, dns::zone_line(in.domain, spf.record),
                       (spf.ok ? "" : "ATTENTION: ") + spf.note});
    }
    const ReportUris& reports = in.reports;
    const auto ramp = dns::dmarc_ramp(reports.dmarc_rua, reports.dmarc_ruf);
    std::string note = "monitor mode first. Then, step by step:";
    for (std::size_t i = 1; i < ramp.size(); ++i) {
        note += " " + std::to_string(i) + ") \"" + ramp[i].record + "\" " + ramp[i].when + ".";
    }
    if (reports.dmarc_rua.empty()) {
        note += " Add rua=mailto:... to receive the reports you ramp up by.";
    }
    const std::string dmarc_name = "_dmarc." + in.domain;
    out.push_back({"dmarc", dmarc_name, ramp.front().record,
                   dns::zone_line(dmarc_name, ramp.front().record), note});
    for (DnsRecord& r : report_records(in.domain, reports)) {
        out.push_back(std::move(r));
    }
    return out;
}

// --- the live check ---------------------------------------------------------------------

std::string_view to_string(Status status) {
    switch (status) {
        case Status::ok: return "OK";
        case Status::warning: return "WARNING";
        case Status::problem: return "PROBLEM";
    }
    return "PROBLEM";
}

Finding check_dkim_key(dns::Resolver& resolver, const std::string& domain, const DomainKey& key) {
    Finding f;
    f.record = "DKIM " + key.selector;
    f.name = key.selector + "._domainkey." + domain;
    const std::string publish = dns::zone_line(f.name, key.dkim_record);
    const auto answer = resolver.lookup_txt(f.name);
    const bool retired = key.state == "retired";
    if (answer.status == dns::LookupStatus::temporary_failure) {
        f.status = Status::problem;
        f.message = describe_failure(answer);
        f.fix = "check the domain's name servers, then run the check again";
        return f;
    }
    if (answer.status != dns::LookupStatus::found || answer.records.empty()) {
        if (retired) {
            f.message = "retired, and its record is gone";
            return f;
        }
        f.status = Status::problem;
        f.message = key.state == "pending-publish" ? "not published yet" : "not published";
        if (key.state == "active") {
            f.message += ": mail signed with this active key fails DKIM";
        } else if (key.state == "retiring") {
            f.message += ": mail signed with this key in the last days fails DKIM";
        }
        f.fix = "publish: " + publish;
        return f;
    }
    if (answer.records.size() > 1) {
        f.status = Status::problem;
        f.message =
            std::to_string(answer.records.size()) + " TXT records: a verifier may pick any of them";
        f.fix = "keep exactly one: " + publish;
        return f;
    }
    auto published = parse_key_record(answer.records.front());
    if (!published) {
        f.status = retired ? Status::warning : Status::problem;
        f.message = "the published record is invalid: " + published.error();
        f.fix = retired ? "remove it" : "replace it with: " + publish;
        return f;
    }
    if (retired) {
        if (published->revoked) {
            f.message = "retired, and published as revoked (empty p=)";
            return f;
        }
        f.status = Status::warning;
        f.message = "retired, but its key is still published";
        f.fix = "remove the record, or publish \"v=DKIM1; p=\" (revoked)";
        return f;
    }
    if (published->revoked) {
        f.status = Status::problem;
        f.message = "published as revoked (empty p=)";
        f.fix = "publish: " + publish;
        return f;
    }
    auto ours = parse_key_record(key.dkim_record);
    if (!ours || ours->type != published->type || ours->public_key != published->public_key) {
        f.status = Status::problem;
        f.message = ours && ours->type != published->type
                        ? "the published record is of another key type"
                        : "the published key is not the token's key";
        f.fix = "replace it with: " + publish;
        return f;
    }
    if (published->testing) {
        f.status = Status::warning;
        f.message = "the token's key, in testing mode (t=y): receivers may ignore failures";
        f.fix = "remove t=y once mail verifies";
        return f;
    }
    if (!published->allows_sha256) {
        f.status = Status::problem;
        f.message = "h= excludes sha256, the only hash the appliance signs with";
        f.fix = "replace it with: " + publish;
        return f;
    }
    f.message = "published, the token's key (" + key.algorithm + ", " + key.state + ")";
    return f;
}

namespace {

Finding check_spf(dns::Resolver& resolver, const CheckInput& in, std::int64_t now_unix) {
    Finding f;
    f.record = "SPF";
    f.name = in.domain;
    const auto answer = resolver.lookup_txt(in.domain);
    if (answer.status == dns::LookupStatus::temporary_failure) {
        f.status = Status::problem;
        f.message = describe_failure(answer);
        return f;
    }
    const auto found = spf_records(answer);
    const SpfAdvice advice = advise_spf(nullptr, in.domain, in.addresses);
    if (found.empty()) {
        f.status = Status::problem;
        f.message = "no SPF record";
        f.fix = "publish: " + dns::zone_line(in.domain, advice.record);
        return f;
    }
    if (found.size() > 1) {
        f.status = Status::problem;
        f.message = std::to_string(found.size()) + " SPF records: a permerror at every receiver";
        f.fix = "merge them into one record";
        return f;
    }
    if (auto parsed = spf::parse_record(found.front()); !parsed) {
        f.status = Status::problem;
        f.message = "invalid: " + parsed.error();
        f.fix = "correct the record (a permerror at every receiver)";
        return f;
    }
    const SpfCost cost = spf_cost(resolver, in.domain);
    std::vector<std::string> problems;
    if (cost.lookups > kMaxLookups) {
        problems.push_back(std::to_string(cost.lookups) +
                           " DNS-querying terms (limit 10): receivers return permerror");
    }
    if (cost.void_lookups > kMaxVoidLookups) {
        problems.push_back(std::to_string(cost.void_lookups) + " void lookups (limit 2)");
    }
    for (const auto& p : cost.problems) {
        problems.push_back(p);
    }
    spf::Checker checker(resolver, in.receiver);
    std::vector<std::string> missing;
    for (const auto& a : in.addresses) {
        const auto outcome =
            checker.check_host(a.ip, in.domain, "postmaster@" + in.domain, in.domain, now_unix);
        if (outcome.result != spf::Result::pass) {
            missing.push_back(a.text + " (" + std::string(spf::to_string(outcome.result)) + ")");
        }
    }
    if (!missing.empty()) {
        std::string list;
        for (const auto& m : missing) {
            list += (list.empty() ? "" : ", ") + m;
        }
        problems.push_back("does not authorize " + list);
    }
    if (in.addresses.empty()) {
        f.status = Status::warning;
        f.message = "no outbound addresses are configured: which senders it must pass is unknown";
    }
    if (!problems.empty()) {
        f.status = Status::problem;
        f.message.clear();
        for (const auto& p : problems) {
            f.message += (f.message.empty() ? "" : "; ") + p;
        }
        const SpfAdvice merged = advise_spf(&resolver, in.domain, in.addresses);
        f.fix = merged.ok ? "publish: " + dns::zone_line(in.domain, merged.record) : merged.note;
        return f;
    }
    if (f.message.empty()) {
        f.message = "valid, " + std::to_string(cost.lookups) +
                    " of 10 DNS lookups, passes every outbound address";
    }
    if (found.front().find("+all") != std::string::npos) {
        f.status = Status::warning;
        f.message = "+all authorizes every host on the Internet";
        f.fix = "end the record with -all or ~all";
    }
    return f;
}

}  // namespace

std::vector<Finding> check_domain(dns::Resolver& resolver, const CheckInput& in,
                                  std::int64_t now_unix) {
    std::vector<Finding> out;
    bool any_key = false;
    for (const DomainKey& k : in.keys) {
        if (should_be_published(k) || k.state == "retired") {
            out.push_back(check_dkim_key(resolver, in.domain, k));
            any_key = any_key || k.state != "retired";
        }
    }
    if (!any_key) {
        out.push_back({"DKIM", in.domain, Status::problem,
                       "the token holds no key of this domain to publish",
                       "dkim-appliance key generate --domain " + in.domain + " --selector ..."});
    }
    out.push_back(check_spf(resolver, in, now_unix));
    // Where reports go: the DMARC record's addresses and the configured ones.
    std::string policy_domain = in.domain;
    std::vector<std::string> uris;
    out.push_back(check_dmarc(resolver, in, &policy_domain, &uris));
    if (auto tlsrpt = check_tlsrpt(resolver, in)) {
        out.push_back(std::move(*tlsrpt));
    }
    for (const auto& configured : {in.reports.dmarc_rua, in.reports.dmarc_ruf}) {
        for (std::string& uri : dns::report_uris(configured)) {
            uris.push_back(std::move(uri));
        }
    }
    for (Finding& f : check_report_authorizations(resolver, in, policy_domain, uris)) {
        out.push_back(std::move(f));
    }
    return out;
}

bool has_problems(const std::vector<Finding>& findings) {
    return std::any_of(findings.begin(), findings.end(),
                       [](const Finding& f) { return f.status == Status::problem; });
}

}  // namespace dkim::provisioning

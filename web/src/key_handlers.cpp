// The token's DKIM keys and the DNS records a domain should publish: DKIM, SPF, DMARC (with
// where its reports go), TLS-RPT (RFC 8460) and the authorization of an external report domain
// (RFC 7489 §7.1).

#include "dkim/dns/name.hpp"
#include "dkim/dns/record_text.hpp"
#include "dkim/mail/header.hpp"
#include "endpoints.hpp"
#include "views.hpp"

namespace dkim::web::detail {

namespace {

// The TLS-RPT record ([dns] tlsrpt_rua), and the record each DMARC report domain outside the
// domain's organizational domain publishes to accept its reports (RFC 7489 §7.1).
void add_report_records(std::vector<api::DnsRecord>& records, const std::string& domain,
                        const DnsAdvice& advice) {
    if (!advice.tlsrpt_rua.empty()) {
        const std::string name = dns::tlsrpt_record_name(domain);
        const std::string value = dns::tlsrpt_record_text(advice.tlsrpt_rua);
        records.push_back({"tlsrpt", name, "TXT", value, dns::zone_line(name, value),
                           "where senders report failed TLS connections to the domain's mail "
                           "servers (SMTP TLS Reporting, RFC 8460)"});
    }
    std::vector<std::string> uris = dns::report_uris(advice.dmarc_rua);
    for (std::string& uri : dns::report_uris(advice.dmarc_ruf)) {
        uris.push_back(std::move(uri));
    }
    for (const auto& a : dns::report_authorizations(advice.psl.get(), domain, uris)) {
        const std::string value(dns::kReportAuthorizationText);
        records.push_back({"dmarc-report", a.name, "TXT", value, dns::zone_line(a.name, value),
                           "for " + a.report_domain + "'s zone, not " + domain +
                               "'s: it accepts DMARC reports for " + domain +
                               " only with this record (RFC 7489 §7.1)"});
    }
}

}  // namespace

Result<Response> list_keys(Context& ctx, Caller& caller) {
    auto keys = ctx.call<ipc::KeysReply>(ipc::KeyList{caller.credentials});
    if (!keys) {
        return unexpected(keys.error());
    }
    std::vector<api::Key> out;
    for (const ipc::KeyView& k : keys->keys) {
        out.push_back(key_view(k));
    }
    return json_response(http::status::ok, api::object(cereal::make_nvp("keys", out)), ctx.req);
}

Result<Response> generate_key(Context& ctx, Caller& caller) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto domain = body->string("domain", true, 253);
    auto selector = body->string("selector", true, 63);
    auto algorithm = body->string("algorithm", true, 16);
    auto finished = body->finish();
    if (auto refused = first_refused(domain, selector, algorithm, finished)) {
        return unexpected(*refused);
    }
    auto made = ctx.call<ipc::KeysReply>(
        ipc::KeyGenerate{caller.credentials, **domain, **selector, **algorithm});
    if (!made) {
        return unexpected(made.error());
    }
    if (made->keys.size() != 1) {
        return unexpected(failure(http::status::bad_gateway, "protocol",
                                  "dkim-signerd answered a key generation without the key"));
    }
    return created(ctx.req, api::object(cereal::make_nvp("key", key_view(made->keys.front()))),
                   "/api/v1/keys");
}

Result<Response> domain_dns(Context& ctx, Caller& caller) {
    std::string domain = ctx.params.at(0);
    if (!is_valid_domain(domain)) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "domain is not a domain name", "domain"));
    }
    domain = mail::ascii_lowercase(domain);
    auto keys = ctx.call<ipc::KeysReply>(ipc::KeyList{caller.credentials});
    if (!keys) {
        return unexpected(keys.error());
    }
    std::vector<api::DnsRecord> records;
    bool any_key = false;
    for (const ipc::KeyView& k : keys->keys) {
        any_key = any_key || k.domain == domain;
        // Pending keys are to be published, active and retiring ones must stay; retired and
        // half-generated ones have nothing to publish.
        const bool publish =
            k.state == "pending-publish" || k.state == "active" || k.state == "retiring";
        // No record: the registry lists a key the token does not hold (nothing to publish).
        if (k.domain == domain && publish && !k.dns_record.empty()) {
            records.push_back({"dkim", k.dns_name, "TXT", k.dns_record,
                               dns::zone_line(k.dns_name, k.dns_record),
                               "the public half of the " + k.algorithm + " key " + k.selector +
                                   " (" + k.state + "), as the token holds it"});
        }
    }
    // A cluster: the other nodes' keys of the domain, from their own tokens (each node signs
    // with its own selectors, and all are published side by side).
    if (auto cluster =
            ctx.call<ipc::ClusterStatusReply>(ipc::ClusterStatusRequest{caller.credentials});
        cluster && cluster->cluster) {
        for (const ipc::ClusterKeyView& k : cluster->keys) {
            const bool publish = k.state == "pending-publish" || k.state == "active" ||
                                 k.state == "retiring" || k.state == "unmanaged";
            if (k.node == cluster->node || k.domain != domain || !publish || k.dns_record.empty()) {
                continue;
            }
            any_key = true;
            const std::string name = k.selector + "._domainkey." + k.domain;
            records.push_back(
                {"dkim", name, "TXT", k.dns_record, dns::zone_line(name, k.dns_record),
                 "the public half of node " + k.node + "'s " + k.algorithm + " key " + k.selector +
                     " (" + k.state + "), as that node's token holds it"});
        }
    }
    if (!any_key) {
        return unexpected(failure(http::status::not_found, "not_found",
                                  "the token holds no DKIM key for " + domain));
    }
    const DnsAdvice& advice = ctx.deps.options.dns;
    if (advice.outbound_addresses.empty()) {
        records.push_back({"spf", domain, "TXT", "", "",
                           "no outbound addresses are configured ([dns] outbound_addresses in "
                           "webd.toml): add the addresses the next hop sends from"});
    } else {
        const std::string spf = dns::spf_record_text(advice.outbound_addresses);
        records.push_back({"spf", domain, "TXT", spf, dns::zone_line(domain, spf),
                           "authorizes the appliance's outbound addresses; merge it with any "
                           "SPF record the domain already publishes (one record per name)"});
    }
    dns::DmarcRecordFields monitor;
    monitor.rua = advice.dmarc_rua;
    monitor.ruf = advice.dmarc_ruf;
    monitor.adkim = "r";
    monitor.aspf = "r";
    const std::string dmarc = dns::dmarc_record_text(monitor);
    const std::string dmarc_name = "_dmarc." + domain;
    records.push_back({"dmarc", dmarc_name, "TXT", dmarc, dns::zone_line(dmarc_name, dmarc),
                       "monitor mode first; when the reports show only your own mail passing, "
                       "ramp up: p=quarantine; pct=25, then pct=100, then p=reject"});
    add_report_records(records, domain, advice);
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("domain", domain), cereal::make_nvp("records", records)),
        ctx.req);
}

// The cluster's nodes and every node's keys (the Keys view's "Cluster" panel).
Result<Response> cluster_status(Context& ctx, Caller& caller) {
    auto status = ctx.call<ipc::ClusterStatusReply>(ipc::ClusterStatusRequest{caller.credentials});
    if (!status) {
        return unexpected(status.error());
    }
    const api::ClusterStatus view = cluster_status_view(*status);
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("cluster", view.cluster), cereal::make_nvp("node", view.node),
                    cereal::make_nvp("fenced", view.fenced),
                    cereal::make_nvp("lease_ms", view.lease_ms),
                    cereal::make_nvp("now_ms", view.now_ms), cereal::make_nvp("nodes", view.nodes),
                    cereal::make_nvp("keys", view.keys)),
        ctx.req);
}

}  // namespace dkim::web::detail

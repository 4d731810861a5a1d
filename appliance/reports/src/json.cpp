#include "dkim/reports/json.hpp"

#include "dkim/text/json.hpp"

namespace dkim::reports::json {

namespace {

using dkim::text::json_quote;

// Writes "name":value pairs with the commas between them.
class Object {
  public:
    explicit Object(std::string& out) : out_(out) { out_ += '{'; }
    ~Object() {
        if (close_) {
            out_ += '}';
        }
    }
    Object(const Object&) = delete;
    Object& operator=(const Object&) = delete;

    Object& key(std::string_view name) {
        if (!first_) {
            out_ += ',';
        }
        first_ = false;
        out_ += '"';
        out_ += name;
        out_ += "\":";
        return *this;
    }
    Object& str(std::string_view name, std::string_view value) {
        key(name);
        out_ += json_quote(value);
        return *this;
    }
    template <class Integer>
    Object& num(std::string_view name, Integer value) {
        key(name);
        out_ += std::to_string(value);
        return *this;
    }
    Object& strings(std::string_view name, const std::vector<std::string>& values) {
        key(name);
        out_ += '[';
        for (std::size_t i = 0; i < values.size(); ++i) {
            out_ += i == 0 ? "" : ",";
            out_ += json_quote(values[i]);
        }
        out_ += ']';
        return *this;
    }
    std::string& out() { return out_; }
    void keep_open() { close_ = false; }

  private:
    std::string& out_;
    bool first_ = true;
    bool close_ = true;
};

template <class Items, class Write>
void array(Object& o, std::string_view name, const Items& items, Write write) {
    o.key(name);
    std::string& out = o.out();
    out += '[';
    bool first = true;
    for (const auto& item : items) {
        out += first ? "" : ",";
        first = false;
        write(out, item);
    }
    out += ']';
}

}  // namespace

void aggregate_head(std::string& out, const AggregateHeader& h) {
    Object o(out);
    o.keep_open();  // the records follow; aggregate_tail closes the object
    o.str("kind", "aggregate")
        .str("org_name", h.org_name)
        .str("email", h.email)
        .str("report_id", h.report_id)
        .str("domain", h.policy.domain)
        .num("begin", h.begin)
        .num("end", h.end)
        .str("version", h.version)
        .str("generator", h.generator)
        .strings("errors", h.errors);
    {
        o.key("policy");
        Object p(out);
        p.str("domain", h.policy.domain)
            .str("adkim", h.policy.adkim)
            .str("aspf", h.policy.aspf)
            .str("p", h.policy.p)
            .str("sp", h.policy.sp)
            .str("np", h.policy.np);
        p.key("pct");
        out += h.policy.pct ? std::to_string(*h.policy.pct) : "null";
        p.str("fo", h.policy.fo)
            .str("testing", h.policy.testing)
            .str("discovery_method", h.policy.discovery_method);
    }
    o.key("records");
    out += '[';
}

void aggregate_record(std::string& out, const AggregateRecord& r) {
    Object o(out);
    o.str("source_ip", r.source_ip)
        .num("count", r.count)
        .str("header_from", r.header_from)
        .str("envelope_from", r.envelope_from)
        .str("envelope_to", r.envelope_to)
        .str("disposition", r.disposition)
        .str("dkim_aligned", r.dkim_aligned)
        .str("spf_aligned", r.spf_aligned);
    array(o, "reasons", r.reasons, [](std::string& s, const PolicyOverride& reason) {
        Object(s).str("type", reason.type).str("comment", reason.comment);
    });
    array(o, "dkim", r.dkim, [](std::string& s, const DkimResult& d) {
        Object(s)
            .str("domain", d.domain)
            .str("selector", d.selector)
            .str("result", d.result)
            .str("human_result", d.human_result);
    });
    array(o, "spf", r.spf, [](std::string& s, const SpfResult& d) {
        Object(s)
            .str("domain", d.domain)
            .str("scope", d.scope)
            .str("result", d.result)
            .str("human_result", d.human_result);
    });
}

void aggregate_tail(std::string& out) {
    out += "]}";
}

void failure(std::string& out, const FailureReport& r) {
    Object o(out);
    o.str("kind", "failure")
        .str("feedback_type", r.feedback_type)
        .str("reported_domain", r.reported_domain)
        .str("source_ip", r.source_ip);
    o.key("arrival_date");
    out += r.arrival_date ? std::to_string(*r.arrival_date) : "null";
    o.str("arrival_date_text", r.arrival_date_text)
        .str("auth_failure", r.auth_failure)
        .str("original_mail_from", r.original_mail_from)
        .str("original_rcpt_to", r.original_rcpt_to)
        .str("reported_uri", r.reported_uri)
        .str("authentication_results", r.authentication_results)
        .str("delivery_result", r.delivery_result)
        .str("identity_alignment", r.identity_alignment)
        .str("dkim_domain", r.dkim_domain)
        .str("dkim_selector", r.dkim_selector)
        .str("dkim_identity", r.dkim_identity)
        .str("spf_dns", r.spf_dns)
        .str("user_agent", r.user_agent)
        .str("version", r.version)
        .str("original_from", r.original_from)
        .str("original_subject", r.original_subject)
        .str("original_message_id", r.original_message_id)
        .str("original_date", r.original_date)
        .str("reporter", r.reporter)
        .str("report_message_id", r.report_message_id);
    o.key("plain_text");
    out += r.plain_text ? "true" : "false";
}

void tls(std::string& out, const TlsReport& r) {
    Object o(out);
    o.str("kind", "tls")
        .str("org_name", r.org_name)
        .str("report_id", r.report_id)
        .str("contact_info", r.contact_info)
        .num("begin", r.begin)
        .num("end", r.end);
    array(o, "policies", r.policies, [](std::string& s, const TlsPolicy& p) {
        Object po(s);
        po.str("policy_domain", p.policy_domain)
            .str("policy_type", p.policy_type)
            .strings("policy_strings", p.policy_strings)
            .strings("mx_hosts", p.mx_hosts)
            .num("successful", p.successful)
            .num("failed", p.failed);
        array(po, "failures", p.failures, [](std::string& t, const TlsFailureDetail& f) {
            Object(t)
                .str("result_type", f.result_type)
                .str("sending_mta_ip", f.sending_mta_ip)
                .str("receiving_mx_hostname", f.receiving_mx_hostname)
                .str("receiving_mx_helo", f.receiving_mx_helo)
                .str("receiving_ip", f.receiving_ip)
                .num("failed_session_count", f.failed_session_count)
                .str("additional_information", f.additional_information)
                .str("failure_reason_code", f.failure_reason_code);
        });
    });
}

}  // namespace dkim::reports::json

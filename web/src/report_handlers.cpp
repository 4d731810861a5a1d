// DMARC and TLS reports: the dashboard, the findings and the list of reports that dkim-reportd
// keeps, and uploads of report files and mails into it.
//
// Who may: reading is the audit log's rule, auditors and admins (reports show the domains'
// sending volumes, their sources and what was signed when); uploading is for admins (it adds
// to what the findings are judged on; auditors stay read-only). reportd knows webd only as its
// web peer, so webd applies the rule itself, to the roles signerd answers for the caller's
// token (WhoAmI, asked on every request: that checks the token too).
//
// reportd's answers are copied field by field into the shapes web/openapi.json describes, so
// the API changes only when this file does.

#include <algorithm>
#include <boost/json.hpp>
#include <initializer_list>

#include "dkim/dns/name.hpp"
#include "dkim/mail/header.hpp"
#include "endpoints.hpp"
#include "query.hpp"
#include "reports_api.hpp"
#include "reverse_dns.hpp"
#include "views.hpp"

namespace dkim::web::detail {

namespace {

namespace bj = boost::json;
namespace channel = reports::channel;

constexpr std::int64_t kReportDay = 86400;
constexpr std::int64_t kReportMaxRange = 400 * kReportDay;  // reportd's own cap on a query
constexpr std::int64_t kReportMaxTime = std::int64_t{1} << 40;

// The caller's roles, from signerd, and the rule: 403 (rule "role") when they do not allow it.
Result<ipc::IdentityReply> report_caller(Context& ctx, Caller& caller, bool upload) {
    auto who = ctx.call<ipc::IdentityReply>(ipc::WhoAmI{caller.credentials});
    if (!who) {
        return unexpected(who.error());
    }
    const bool allowed = upload ? may_upload_reports(who->roles) : may_read_reports(who->roles);
    if (!allowed) {
        ApiError e = failure(http::status::forbidden, "forbidden",
                             upload ? "uploading reports needs the admin role"
                                    : "reading reports needs the auditor or admin role");
        e.error.rule = "role";
        return unexpected(e);
    }
    return std::move(*who);
}

// reportd's socket, or 503 when webd has none configured.
Result<ReportsApi*> report_store(Context& ctx) {
    if (ctx.deps.reports == nullptr) {
        return unexpected(failure(http::status::service_unavailable, "reports_not_configured",
                                  "reports are not configured on this appliance: dkim-webd has "
                                  "no [reports] socket in webd.toml"));
    }
    return ctx.deps.reports;
}

// The query's domain (optional): a domain name, lower-cased.
Result<std::string> report_domain(const Context& ctx) {
    std::string domain = query_value(ctx.query, "domain").value_or("");
    if (domain.empty()) {
        return domain;
    }
    if (!is_valid_domain(domain)) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "domain must be a domain name, such as example.com", "domain"));
    }
    return mail::ascii_lowercase(domain);
}

// The query's from and until (unix seconds, each optional) into `request`.
Result<void> report_range(const Context& ctx, bj::object& request) {
    auto from = query_integer(ctx.query, "from", 0, kReportMaxTime);
    auto until = query_integer(ctx.query, "until", 1, kReportMaxTime);
    if (!from || !until) {
        return unexpected(!from ? from.error() : until.error());
    }
    if (*from && *until) {
        if (**from >= **until) {
            return unexpected(failure(http::status::bad_request, "invalid_field",
                                      "from must be before until", "from"));
        }
        if (**until - **from > kReportMaxRange) {
            return unexpected(failure(http::status::bad_request, "invalid_field",
                                      "from and until may be at most 400 days apart", "from"));
        }
    }
    if (*from) {
        request["from"] = **from;
    }
    if (*until) {
        request["until"] = **until;
    }
    return {};
}

// Asks reportd; its refusals and its absence become ApiErrors.
Result<bj::object> report_ask(ReportsApi& reports, const channel::Message& request) {
    auto answer = reports.call(request);
    if (!answer) {
        return unexpected(failure(http::status::service_unavailable, "reports_unavailable",
                                  "dkim-reportd cannot be reached; try again later"));
    }
    const bj::value* ok = answer->json.if_contains("ok");
    if (ok != nullptr && ok->is_bool() && ok->get_bool()) {
        return std::move(answer->json);
    }
    const std::string code = channel::string_member(answer->json, "code");
    std::string message = channel::string_member(answer->json, "error").substr(0, 500);
    if (message.empty()) {
        message = "dkim-reportd refused the request";
    }
    if (code == "invalid") {
        return unexpected(failure(http::status::bad_request, "invalid", message));
    }
    if (code == "unavailable") {
        return unexpected(
            failure(http::status::service_unavailable, "reports_unavailable", message));
    }
    if (code == "forbidden") {
        return unexpected(failure(http::status::bad_gateway, "reports_forbidden",
                                  "dkim-reportd does not accept dkim-webd as its web peer ([peers] "
                                  "web in reportd.toml): " +
                                      message));
    }
    return unexpected(
        failure(http::status::bad_gateway, "protocol", "dkim-reportd answered: " + message));
}

enum class Kind : std::uint8_t { integer, string, nullable_string, boolean, object };

struct FieldSpec {
    std::string_view name;
    Kind kind;
};

// The named fields of `in`, each of its kind (absent or of another type: 0, "", null, false,
// {}), and nothing else.
bj::object report_pick(const bj::object& in, std::initializer_list<FieldSpec> fields) {
    bj::object out;
    for (const FieldSpec& f : fields) {
        const bj::value* v = in.if_contains(f.name);
        switch (f.kind) {
            case Kind::integer: out[f.name] = channel::int_member(in, f.name, 0); break;
            case Kind::string: out[f.name] = channel::string_member(in, f.name); break;
            case Kind::nullable_string:
                if (v != nullptr && v->is_string()) {
                    out[f.name] = v->get_string();
                } else {
                    out[f.name] = nullptr;
                }
                break;
            case Kind::boolean: out[f.name] = v != nullptr && v->is_bool() && v->get_bool(); break;
            case Kind::object:
                out[f.name] = v != nullptr && v->is_object() ? v->get_object() : bj::object();
                break;
        }
    }
    return out;
}

// Each object of the array `name` of `in`, picked.
bj::array report_pick_all(const bj::object& in, std::string_view name,
                          std::initializer_list<FieldSpec> fields) {
    bj::array out;
    const bj::value* v = in.if_contains(name);
    if (v == nullptr || !v->is_array()) {
        return out;
    }
    for (const bj::value& item : v->get_array()) {
        if (item.is_object()) {
            out.push_back(report_pick(item.get_object(), fields));
        }
    }
    return out;
}

bj::array report_strings(const bj::object& in, std::string_view name) {
    bj::array out;
    const bj::value* v = in.if_contains(name);
    if (v != nullptr && v->is_array()) {
        for (const bj::value& item : v->get_array()) {
            if (item.is_string()) {
                out.push_back(item);
            }
        }
    }
    return out;
}

// Fills the null reverse_dns of the sources (objects with a source_ip) with their
// forward-confirmed names: the most messages first, within the request's budget
// (reverse_dns.hpp); the rest stay null. Without [reports] reverse_dns, nothing is looked up.
void report_name_sources(Context& ctx, std::vector<bj::object*> sources,
                         ReverseDns::Budget& budget) {
    if (ctx.deps.reverse_dns == nullptr) {
        return;
    }
    std::erase_if(sources, [](const bj::object* s) {
        const bj::value* name = s->if_contains("reverse_dns");
        const bj::value* ip = s->if_contains("source_ip");
        return name == nullptr || !name->is_null() || ip == nullptr || !ip->is_string();
    });
    std::stable_sort(sources.begin(), sources.end(), [](const bj::object* x, const bj::object* y) {
        return channel::int_member(*x, "messages", 0) > channel::int_member(*y, "messages", 0);
    });
    for (bj::object* s : sources) {
        if (auto name = ctx.deps.reverse_dns->name(s->at("source_ip").get_string(), budget)) {
            (*s)["reverse_dns"] = *name;
        }
    }
}

Response report_json(const bj::object& body, const Request& req) {
    return json_response(http::status::ok, bj::serialize(body), req);
}

// The request every read starts with: the caller allowed, the domain and range read, reportd
// configured.
struct ReportQuery {
    ReportsApi* reports = nullptr;
    channel::Message request;
};

Result<ReportQuery> report_query(Context& ctx, Caller& caller, std::string_view op) {
    if (auto who = report_caller(ctx, caller, false); !who) {
        return unexpected(who.error());
    }
    ReportQuery q;
    q.request.json["op"] = op;
    auto domain = report_domain(ctx);
    if (!domain) {
        return unexpected(domain.error());
    }
    if (!domain->empty()) {
        q.request.json["domain"] = *domain;
    }
    if (auto range = report_range(ctx, q.request.json); !range) {
        return unexpected(range.error());
    }
    auto store = report_store(ctx);
    if (!store) {
        return unexpected(store.error());
    }
    q.reports = *store;
    return q;
}

// The content types an upload may have: the file's own, or application/octet-stream. None of
// them is one an HTML form of another site can send (a form sends urlencoded, multipart or
// text/plain), and the console sends the CSRF token as for every POST.
bool report_upload_type(std::string_view type) {
    const std::string base = mail::ascii_lowercase(type.substr(0, type.find(';')));
    for (const char* t :
         {"application/octet-stream", "application/gzip", "application/x-gzip", "application/zip",
          "application/xml", "text/xml", "application/json", "application/tlsrpt+json",
          "application/tlsrpt+gzip", "message/rfc822", "application/mbox"}) {
        if (base == t) {
            return true;
        }
    }
    return false;
}

// The upload's optional name (?name=report.xml.gz), kept with the submission's origin: what a
// person would type, printable ASCII without spaces.
Result<std::string> report_upload_name(const Context& ctx) {
    std::string name = query_value(ctx.query, "name").value_or("");
    if (name.size() > 200 ||
        name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
                               "tuvwxyz0123456789._-+!@,=") != std::string::npos) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "name must be a file name of at most 200 characters (letters, "
                                  "digits and . _ - + ! @ , =)",
                                  "name"));
    }
    return name;
}

}  // namespace

Result<Response> reports_dashboard(Context& ctx, Caller& caller) {
    auto q = report_query(ctx, caller, "dashboard");
    if (!q) {
        return unexpected(q.error());
    }
    auto answer = report_ask(*q->reports, q->request);
    if (!answer) {
        return unexpected(answer.error());
    }
    const bj::object& a = *answer;
    bj::object out = report_pick(a, {{"domain", Kind::string},
                                     {"from", Kind::integer},
                                     {"until", Kind::integer},
                                     {"signing_available", Kind::boolean},
                                     {"signing_error", Kind::nullable_string}});
    out["domains"] = report_strings(a, "domains");
    out["daily"] = report_pick_all(a, "daily",
                                   {{"domain", Kind::string},
                                    {"day", Kind::string},
                                    {"messages", Kind::integer},
                                    {"dmarc_pass", Kind::integer},
                                    {"dkim_aligned", Kind::integer},
                                    {"spf_aligned", Kind::integer},
                                    {"quarantined", Kind::integer},
                                    {"rejected", Kind::integer}});
    out["signing"] = report_pick_all(a, "signing",
                                     {{"domain", Kind::string},
                                      {"selector", Kind::string},
                                      {"day", Kind::string},
                                      {"signed", Kind::integer},
                                      {"reported_pass", Kind::integer},
                                      {"reported_fail", Kind::integer}});
    out["grants"] = report_pick_all(a, "grants",
                                    {{"grant_id", Kind::integer},
                                     {"domain", Kind::string},
                                     {"selector", Kind::string},
                                     {"start", Kind::integer},
                                     {"end", Kind::integer}});
    out["sources"] = report_pick_all(a, "sources",
                                     {{"source_ip", Kind::string},
                                      {"reverse_dns", Kind::nullable_string},
                                      {"messages", Kind::integer},
                                      {"dmarc_pass", Kind::integer},
                                      {"dkim_aligned", Kind::integer},
                                      {"spf_aligned", Kind::integer},
                                      {"spf_pass", Kind::integer}});
    if (ctx.deps.reverse_dns != nullptr) {
        std::vector<bj::object*> sources;
        for (bj::value& s : out["sources"].as_array()) {
            sources.push_back(&s.as_object());
        }
        auto budget = ctx.deps.reverse_dns->budget();
        report_name_sources(ctx, std::move(sources), budget);
    }
    return report_json(out, ctx.req);
}

Result<Response> reports_findings(Context& ctx, Caller& caller) {
    auto q = report_query(ctx, caller, "findings");
    if (!q) {
        return unexpected(q.error());
    }
    auto answer = report_ask(*q->reports, q->request);
    if (!answer) {
        return unexpected(answer.error());
    }
    const bj::object& a = *answer;
    bj::object out = report_pick(
        a,
        {{"from", Kind::integer}, {"until", Kind::integer}, {"signing_available", Kind::boolean}});
    out["findings"] = report_pick_all(a, "findings",
                                      {{"kind", Kind::string},
                                       {"severity", Kind::string},
                                       {"domain", Kind::string},
                                       {"selector", Kind::string},
                                       {"from", Kind::integer},
                                       {"until", Kind::integer},
                                       {"summary", Kind::string},
                                       {"authenticated", Kind::boolean},
                                       {"evidence", Kind::object}});
    // The sources in evidence that reportd leaves unnamed (reverse_dns: null), one budget for
    // all (unknown_source's).
    if (ctx.deps.reverse_dns != nullptr) {
        std::vector<bj::object*> sources;
        for (bj::value& f : out["findings"].as_array()) {
            bj::value* list = f.as_object()["evidence"].as_object().if_contains("sources");
            if (list == nullptr || !list->is_array()) {
                continue;
            }
            for (bj::value& s : list->get_array()) {
                if (s.is_object()) {
                    sources.push_back(&s.get_object());
                }
            }
        }
        auto budget = ctx.deps.reverse_dns->budget();
        report_name_sources(ctx, std::move(sources), budget);
    }
    return report_json(out, ctx.req);
}

Result<Response> reports_list(Context& ctx, Caller& caller) {
    auto q = report_query(ctx, caller, "reports");
    if (!q) {
        return unexpected(q.error());
    }
    auto limit = query_integer(ctx.query, "limit", 1, 1000);
    if (!limit) {
        return unexpected(limit.error());
    }
    q->request.json["limit"] = limit->value_or(100);
    auto answer = report_ask(*q->reports, q->request);
    if (!answer) {
        return unexpected(answer.error());
    }
    bj::object out;
    out["reports"] = report_pick_all(*answer, "reports",
                                     {{"id", Kind::integer},
                                      {"kind", Kind::string},
                                      {"org_name", Kind::string},
                                      {"report_id", Kind::string},
                                      {"domain", Kind::string},
                                      {"begin", Kind::integer},
                                      {"end", Kind::integer},
                                      {"received", Kind::integer},
                                      {"records", Kind::integer},
                                      {"messages", Kind::integer},
                                      {"reporter", Kind::string},
                                      {"authenticated", Kind::boolean},
                                      {"conflict", Kind::boolean}});
    return report_json(out, ctx.req);
}

// The body is the file or mail itself, as bytes (what `reports parse` reads: XML, gzip, zip,
// TLS JSON, a mail or an mbox). reportd stores it before it reads it, and answers what it read.
Result<Response> reports_upload(Context& ctx, Caller& caller) {
    auto who = report_caller(ctx, caller, true);
    if (!who) {
        return unexpected(who.error());
    }
    auto name = report_upload_name(ctx);
    if (!name) {
        return unexpected(name.error());
    }
    if (ctx.req.body().empty()) {
        return unexpected(failure(http::status::bad_request, "invalid_body",
                                  "the body is empty: send the report file or mail as it is"));
    }
    auto store = report_store(ctx);
    if (!store) {
        return unexpected(store.error());
    }
    channel::Message request;
    request.json["op"] = "submit";
    request.json["origin"] = "web upload by " + who->name +
                             (ctx.client.address.empty() ? "" : " from " + ctx.client.address) +
                             (name->empty() ? "" : ": " + *name);
    request.body = ctx.req.body();
    auto answer = report_ask(**store, request);
    if (!answer) {
        return unexpected(answer.error());
    }
    bj::object out = report_pick(
        *answer,
        {{"submission", Kind::integer}, {"reports", Kind::integer}, {"duplicates", Kind::integer}});
    out["errors"] = report_strings(*answer, "errors");
    return report_json(out, ctx.req);
}

bool upload_content_type(std::string_view type) {
    return report_upload_type(type);
}

}  // namespace dkim::web::detail

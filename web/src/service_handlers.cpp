// The service's own resources: health, metrics, the OpenAPI document.

#include <algorithm>

#include "assets.hpp"
#include "auth.hpp"
#include "endpoints.hpp"
#include "views.hpp"

namespace dkim::web::detail {

Result<Response> healthz(Context& ctx) {
    auto status = ctx.call<ipc::StatusReply>(ipc::StatusRequest{});
    if (!status) {
        return json_response(http::status::service_unavailable,
                             api::object(cereal::make_nvp("status", std::string("unavailable")),
                                         cereal::make_nvp("signerd", std::string("unreachable"))),
                             ctx.req);
    }
    const bool audit_ok = status->audit_failure.empty();
    return json_response(
        audit_ok ? http::status::ok : http::status::service_unavailable,
        api::object(cereal::make_nvp("status", std::string(audit_ok ? "ok" : "degraded")),
                    cereal::make_nvp("signerd", std::string("ok")),
                    cereal::make_nvp("audit", std::string(audit_ok ? "ok" : "failing"))),
        ctx.req);
}

Result<Response> metrics(Context& ctx) {
    const MetricsAccess access = ctx.deps.options.metrics;
    if (access == MetricsAccess::off) {
        return unexpected(failure(http::status::not_found, "not_found", "metrics are off"));
    }
    if (access != MetricsAccess::public_) {
        auto caller = authenticate(ctx);
        if (!caller) {
            return unexpected(caller.error());
        }
        auto who = ctx.call<ipc::IdentityReply>(ipc::WhoAmI{caller->credentials});
        if (!who) {
            return unexpected(who.error());
        }
        const auto roles = split_roles(who->roles);
        const bool auditor = std::find(roles.begin(), roles.end(), "auditor") != roles.end() ||
                             std::find(roles.begin(), roles.end(), "admin") != roles.end();
        if (access == MetricsAccess::auditor && !auditor) {
            ApiError e = failure(http::status::forbidden, "forbidden",
                                 "the metrics are for the auditor and admin roles");
            e.error.rule = "role";
            return unexpected(e);
        }
    }
    std::string text = ctx.deps.metrics.render(ctx.deps.sessions.size(ctx.now));
    if (ctx.deps.reports != nullptr) {
        // dkim-reportd has no network of its own: its metrics (what is stored, the findings by
        // kind and severity) are served here.
        reports::channel::Message request;
        request.json["op"] = "metrics";
        auto answer = ctx.deps.reports->call(request);
        const bool up =
            answer && answer->json.contains("text") && answer->json.at("text").is_string();
        text +=
            "# HELP dkim_webd_reportd_up 1 when dkim-reportd answered for these metrics.\n"
            "# TYPE dkim_webd_reportd_up gauge\ndkim_webd_reportd_up " +
            std::string(up ? "1" : "0") + "\n";
        if (up) {
            text += std::string(answer->json.at("text").as_string());
        }
    }
    return make_response(http::status::ok, std::move(text),
                         "text/plain; version=0.0.4; charset=utf-8", ctx.req.version(),
                         ctx.req.keep_alive());
}

Result<Response> openapi(Context& ctx, Caller& caller) {
    // Like every API resource, for callers signerd knows (a bearer token is not checked here).
    if (auto who = ctx.call<ipc::IdentityReply>(ipc::WhoAmI{caller.credentials}); !who) {
        return unexpected(who.error());
    }
    const Asset* document = find_asset("/api/v1/openapi.json");
    if (document == nullptr) {
        return unexpected(failure(http::status::not_found, "not_found", "no OpenAPI document"));
    }
    return make_response(http::status::ok, std::string(document->body), document->content_type,
                         ctx.req.version(), ctx.req.keep_alive());
}

}  // namespace dkim::web::detail

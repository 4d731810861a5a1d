// The routing: the route table, path matching, the console's files, and handle() itself. What
// each route runs is in endpoints.hpp (by subject: session_, elevation_, pin_, key_, audit_,
// user_ and service_handlers.cpp); what they share is in response.hpp, context.hpp, auth.hpp,
// query.hpp and views.hpp.

#include "handlers.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "assets.hpp"
#include "auth.hpp"
#include "context.hpp"
#include "endpoints.hpp"
#include "response.hpp"

namespace dkim::web {

namespace detail {
namespace {

enum class Auth : std::uint8_t { none, caller };
// What a state-changing request's body is: JSON, or a file's bytes (report uploads).
enum class Body : std::uint8_t { json, bytes };

struct Route {
    http::verb method;
    std::string_view pattern;  // "/api/v1/elevations/{id}/approve"
    Auth auth;
    std::function<Result<Response>(Context&, Caller&)> run;
    Body body = Body::json;
};

const std::vector<Route>& routes() {
    using V = http::verb;
    auto open = [](Result<Response> (*f)(Context&)) {
        return [f](Context& c, Caller&) { return f(c); };
    };
    auto action = [](const std::string& name) {
        return [name](Context& c, Caller& who) { return decide(c, who, name); };
    };
    static const std::vector<Route> table = {
        {V::get, "/healthz", Auth::none, open(healthz)},
        {V::get, "/metrics", Auth::none, open(metrics)},
        {V::post, "/api/v1/session", Auth::none, open(login)},
        {V::delete_, "/api/v1/session", Auth::caller, logout},
        {V::post, "/api/v1/session/passkey/challenge", Auth::none, open(passkey_login_challenge)},
        {V::post, "/api/v1/session/passkey", Auth::none, open(passkey_login)},
        {V::post, "/api/v1/passkeys/challenge", Auth::caller, passkey_challenge},
        {V::get, "/api/v1/passkeys", Auth::caller, list_passkeys},
        {V::post, "/api/v1/passkeys", Auth::caller, register_passkey},
        {V::post, "/api/v1/passkeys/{credential_id}/rename", Auth::caller, rename_passkey},
        {V::post, "/api/v1/passkeys/{credential_id}/remove", Auth::caller, remove_passkey},
        {V::get, "/api/v1/me", Auth::caller, me},
        {V::post, "/api/v1/elevations", Auth::caller, request_elevation},
        {V::get, "/api/v1/elevations", Auth::caller, list_elevations},
        {V::get, "/api/v1/elevations/{id}", Auth::caller, get_elevation},
        {V::post, "/api/v1/elevations/{id}/approve", Auth::caller, action("approve")},
        {V::post, "/api/v1/elevations/{id}/deny", Auth::caller, action("deny")},
        {V::post, "/api/v1/elevations/{id}/revoke", Auth::caller, action("revoke")},
        {V::post, "/api/v1/elevations/{id}/cancel", Auth::caller, action("cancel")},
        {V::get, "/api/v1/grants", Auth::caller, list_grants},
        {V::get, "/api/v1/pin", Auth::caller, pin_status},
        {V::post, "/api/v1/pin/key", Auth::caller, pin_key},
        {V::post, "/api/v1/pin/shares", Auth::caller, submit_pin_share},
        {V::get, "/api/v1/keys", Auth::caller, list_keys},
        {V::get, "/api/v1/cluster", Auth::caller, cluster_status},
        {V::post, "/api/v1/keys", Auth::caller, generate_key},
        {V::get, "/api/v1/domains/{domain}/dns", Auth::caller, domain_dns},
        {V::get, "/api/v1/audit", Auth::caller, audit},
        {V::get, "/api/v1/audit/verify", Auth::caller, audit_verify},
        {V::get, "/api/v1/users", Auth::caller, list_users},
        {V::post, "/api/v1/apitokens", Auth::caller, create_api_token},
        {V::get, "/api/v1/reports/dashboard", Auth::caller, reports_dashboard},
        {V::get, "/api/v1/reports/findings", Auth::caller, reports_findings},
        {V::get, "/api/v1/reports/list", Auth::caller, reports_list},
        {V::post, "/api/v1/reports/upload", Auth::caller, reports_upload, Body::bytes},
        {V::get, "/api/v1/openapi.json", Auth::caller, openapi},
    };
    return table;
}

// Matches "/a/{x}/b" against "/a/7/b"; the {x} parts go to params.
bool match(std::string_view pattern, std::string_view path, std::vector<std::string>& params) {
    params.clear();
    while (!pattern.empty() || !path.empty()) {
        if (pattern.empty() || path.empty() || pattern.front() != '/' || path.front() != '/') {
            return false;
        }
        pattern.remove_prefix(1);
        path.remove_prefix(1);
        const std::string_view p = pattern.substr(0, pattern.find('/'));
        const std::string_view s = path.substr(0, path.find('/'));
        if (!p.empty() && p.front() == '{') {
            if (s.empty()) {
                return false;
            }
            params.emplace_back(s);
        } else if (p != s) {
            return false;
        }
        pattern.remove_prefix(p.size());
        path.remove_prefix(s.size());
    }
    return true;
}

Response serve_asset(const Request& req, const Asset& asset) {
    Response r{http::status::ok, req.version()};
    secure_headers(r);
    r.set(http::field::content_type, asset.content_type);
    r.set(http::field::cache_control, "no-cache");
    r.keep_alive(req.keep_alive());
    if (req.method() != http::verb::head) {
        r.body() = std::string(asset.body);
    }
    r.prepare_payload();
    if (req.method() == http::verb::head) {
        r.content_length(asset.body.size());
    }
    return r;
}

}  // namespace
}  // namespace detail

std::vector<std::string> route_table() {
    using namespace detail;
    std::vector<std::string> out;
    for (const Route& r : routes()) {
        out.push_back(std::string(http::to_string(r.method)) + " " + std::string(r.pattern));
    }
    return out;
}

Response handle(const Request& req, const ClientInfo& client, Deps& deps) {
    using namespace detail;
    const auto started = std::chrono::steady_clock::now();
    const std::string_view target = req.target();
    const std::size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    Context ctx{
        req,
        client,
        deps,
        deps.clock.now(),
        {},
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1)};

    auto finish = [&](Response r) {
        deps.metrics.response(r.result_int());
        deps.metrics.latency().observe(std::chrono::steady_clock::now() - started);
        return r;
    };

    // The console's files are public (the login page is one of them); the API's document is
    // served by its route, to authenticated callers like every API resource.
    if (const Asset* asset = find_asset(path == "/index.html" ? "/" : path);
        asset != nullptr && question == std::string_view::npos && !path.starts_with("/api/")) {
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            Response r = render(failure(http::status::method_not_allowed, "method_not_allowed",
                                        "only GET and HEAD"),
                                req);
            r.set(http::field::allow, "GET, HEAD");
            return finish(std::move(r));
        }
        return finish(serve_asset(req, *asset));
    }

    std::string allowed;
    for (const Route& route : routes()) {
        std::vector<std::string> params;
        if (!match(route.pattern, path, params)) {
            continue;
        }
        if (route.method != req.method()) {
            allowed += (allowed.empty() ? "" : ", ") + std::string(http::to_string(route.method));
            continue;
        }
        ctx.params = std::move(params);
        if (auto refused = check_request_shape(req, route.body == Body::bytes)) {
            return finish(render(*refused, req));
        }
        Caller caller;
        if (route.auth == Auth::caller) {
            auto who = authenticate(ctx);
            if (!who) {
                return finish(render(who.error(), req));
            }
            caller = std::move(*who);
        }
        auto result = route.run(ctx, caller);
        if (!result) {
            Response r = render(result.error(), req);
            // A session signerd no longer accepts is forgotten, and its cookie with it. (A 401
            // can also be about a password in the body, which leaves the session as it is.)
            if (result.error().status == http::status::unauthorized && caller.session &&
                !ctx.call<ipc::IdentityReply>(ipc::WhoAmI{caller.credentials})) {
                deps.sessions.remove(caller.token);
                r.set(http::field::set_cookie, session_cookie("", 0));
            }
            return finish(std::move(r));
        }
        return finish(std::move(*result));
    }
    if (!allowed.empty()) {
        Response r =
            render(failure(http::status::method_not_allowed, "method_not_allowed",
                           std::string(http::to_string(req.method())) + " is not allowed on " +
                               std::string(path).substr(0, 200) + " (allowed: " + allowed + ")"),
                   req);
        r.set(http::field::allow, allowed);
        return finish(std::move(r));
    }
    return finish(render(failure(http::status::not_found, "not_found", "no such resource"), req));
}

}  // namespace dkim::web

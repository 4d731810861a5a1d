#include "handlers.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <optional>

#include "api_json.hpp"
#include "assets.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/dns/record_text.hpp"
#include "json_body.hpp"

namespace dkim::web {

namespace {

void wipe(std::string& secret) {
    wipe_secret(secret);
}
void wipe(std::optional<std::string>& secret) {
    if (secret) {
        wipe_secret(*secret);
    }
}

// --- responses ------------------------------------------------------------------------------

// Every response: no caching of API answers, no sniffing, no framing, no referrers, and a
// Content-Security-Policy that allows only this origin's own script and style files (the
// console has no inline script or style, and loads nothing from anywhere else).
void secure_headers(Response& r) {
    r.set(http::field::strict_transport_security, "max-age=63072000; includeSubDomains");
    r.set("Content-Security-Policy",
          "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    r.set("X-Content-Type-Options", "nosniff");
    r.set("X-Frame-Options", "DENY");
    r.set("Referrer-Policy", "no-referrer");
    r.set("Cross-Origin-Opener-Policy", "same-origin");
    r.set("Cross-Origin-Resource-Policy", "same-origin");
    r.set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), clipboard-write=(self)");
    r.set(http::field::server, "dkim-webd");
}

Response make_response(http::status status, std::string body, std::string_view content_type,
                       unsigned version, bool keep_alive) {
    Response r{status, version};
    secure_headers(r);
    r.set(http::field::content_type, content_type);
    r.set(http::field::cache_control, "no-store");
    r.keep_alive(keep_alive);
    r.body() = std::move(body);
    r.prepare_payload();
    return r;
}

constexpr std::string_view kJson = "application/json; charset=utf-8";

Response json_response(http::status status, std::string body, const Request& req) {
    return make_response(status, std::move(body), kJson, req.version(), req.keep_alive());
}

struct ApiError {
    http::status status = http::status::bad_request;
    api::Error error;
};

ApiError failure(http::status status, std::string code, std::string message,
                 std::string field = {}) {
    return ApiError{status,
                    api::Error{std::move(code), std::move(message), std::move(field), {}, 0}};
}

Response render(const ApiError& e, const Request& req) {
    return json_response(e.status, api::object(cereal::make_nvp("error", e.error)), req);
}

template <class T>
using Result = Expected<T, ApiError>;

ApiError from_field(const FieldError& e) {
    if (e.field.empty()) {
        return failure(http::status::bad_request, "invalid_body", e.message);
    }
    return failure(http::status::bad_request, "invalid_field", e.field + " " + e.message, e.field);
}

// signerd's refusal codes (jit::Refusal, ipc::ErrorReply) as HTTP statuses.
ApiError from_signerd(const ipc::ErrorReply& e) {
    static const std::pair<std::string_view, http::status> kStatuses[] = {
        {"unauthenticated", http::status::unauthorized},
        {"forbidden", http::status::forbidden},
        {"not_found", http::status::not_found},
        {"conflict", http::status::conflict},
        {"invalid", http::status::bad_request},
        {"unavailable", http::status::service_unavailable},
        {"locked", http::status::locked},
    };
    http::status status = http::status::bad_gateway;
    for (const auto& [code, s] : kStatuses) {
        if (e.code == code) {
            status = s;
        }
    }
    ApiError out = failure(status, e.code, e.message);
    out.error.rule = e.rule;
    out.error.request_id = e.request_id;
    return out;
}

// --- the request context ----------------------------------------------------------------------

// Who asks. Its token is wiped when the request is done.
struct Caller {
    ipc::Credentials credentials;  // token (session or API)
    std::optional<BrowserSession> session;
    std::string token;  // the raw token (to forget a session)
    Caller() = default;
    Caller(const Caller&) = delete;
    Caller& operator=(const Caller&) = delete;
    Caller(Caller&&) = default;
    Caller& operator=(Caller&&) = default;
    ~Caller() {
        wipe(credentials.token);
        wipe(token);
    }
};

struct Context {
    const Request& req;
    const ClientInfo& client;
    Deps& deps;
    TimePoint now;
    std::vector<std::string> params;  // the {id}, {domain} parts of the path
    std::string_view query;

    // Calls signerd (which wipes the secrets in `request`); its refusals and its absence
    // become ApiErrors.
    template <class Reply>
    Result<Reply> call(ipc::Request&& request) {
        auto reply = deps.signer.call(request);
        if (!reply) {
            deps.metrics.signerd_unreachable();
            return unexpected(failure(http::status::service_unavailable, "signerd_unavailable",
                                      "dkim-signerd cannot be reached; nothing was changed"));
        }
        if (const auto* e = std::get_if<ipc::ErrorReply>(&*reply)) {
            return unexpected(from_signerd(*e));
        }
        if (auto* ok = std::get_if<Reply>(&*reply)) {
            return std::move(*ok);
        }
        return unexpected(failure(http::status::bad_gateway, "protocol",
                                  "dkim-signerd answered with an unexpected reply"));
    }
};

std::string_view header(const Request& req, http::field f) {
    const auto it = req.find(f);
    return it == req.end() ? std::string_view() : std::string_view(it->value());
}

// The value of cookie `name` in the Cookie header(s), or empty.
std::string cookie(const Request& req, std::string_view name) {
    for (auto it = req.find(http::field::cookie);
         it != req.end() && it->name() == http::field::cookie; ++it) {
        std::string_view rest = it->value();
        while (!rest.empty()) {
            const std::size_t semi = rest.find(';');
            std::string_view pair = rest.substr(0, semi);
            rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
            while (!pair.empty() && pair.front() == ' ') {
                pair.remove_prefix(1);
            }
            const std::size_t eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
                return std::string(pair.substr(eq + 1));
            }
        }
    }
    return {};
}

bool changes_state(http::verb method) {
    return method != http::verb::get && method != http::verb::head;
}

// Who is asking. Bearer tokens are for automation (no CSRF: a browser never attaches them by
// itself); a session cookie must come with its session's CSRF token on every state-changing
// request, and the request must come from this origin.
Result<Caller> authenticate(Context& ctx) {
    Caller caller;
    const std::string_view authorization = header(ctx.req, http::field::authorization);
    if (!authorization.empty()) {
        static constexpr std::string_view kBearer = "Bearer ";
        if (authorization.size() <= kBearer.size() ||
            authorization.substr(0, kBearer.size()) != kBearer) {
            return unexpected(failure(http::status::unauthorized, "unauthenticated",
                                      "the Authorization header must be 'Bearer <API token>'"));
        }
        caller.token = std::string(authorization.substr(kBearer.size()));
        // A console session token is not an API token: as a Bearer token it would escape the
        // session's idle timeout (and its CSRF check). webd refuses one it knows, and signerd
        // refuses any session token sent as "api", also one webd has forgotten (idle, logged
        // out, or a webd restart).
        if (ctx.deps.sessions.is_session(caller.token)) {
            wipe(caller.token);
            return unexpected(failure(http::status::unauthorized, "unauthenticated",
                                      "a console session token is not an API token; send an "
                                      "API token as the Bearer token"));
        }
        caller.credentials.token = caller.token;
        caller.credentials.token_kind = "api";
        return caller;
    }
    caller.token = cookie(ctx.req, kSessionCookie);
    if (caller.token.empty()) {
        return unexpected(failure(http::status::unauthorized, "unauthenticated",
                                  "log in first (or send an API token as a Bearer token)"));
    }
    caller.session = ctx.deps.sessions.find(caller.token, ctx.now);
    if (!caller.session) {
        return unexpected(failure(http::status::unauthorized, "unauthenticated",
                                  "the session has ended; log in again"));
    }
    if (changes_state(ctx.req.method())) {
        const auto it = ctx.req.find("X-CSRF-Token");
        const std::string_view csrf =
            it == ctx.req.end() ? std::string_view() : std::string_view(it->value());
        if (csrf.empty() || !base::constant_time_equal(csrf, caller.session->csrf)) {
            ctx.deps.metrics.csrf_refused();
            ApiError e = failure(http::status::forbidden, "csrf",
                                 "a state-changing request from the console needs the session's "
                                 "CSRF token in X-CSRF-Token");
            e.error.rule = "csrf";
            return unexpected(e);
        }
    }
    caller.credentials.token = caller.token;
    caller.credentials.token_kind = "session";
    return caller;
}

// A request that changes state must say it sends JSON (a cross-site form cannot), and a
// browser's Origin, when sent, must be this server.
std::optional<ApiError> check_request_shape(const Request& req) {
    if (!changes_state(req.method())) {
        return std::nullopt;
    }
    const std::string_view origin = header(req, http::field::origin);
    const std::string_view host = header(req, http::field::host);
    if (!origin.empty() && (host.empty() || origin != "https://" + std::string(host))) {
        ApiError e =
            failure(http::status::forbidden, "origin", "requests from another origin are refused");
        e.error.rule = "origin";
        return e;
    }
    if (!req.body().empty()) {
        const std::string_view type = header(req, http::field::content_type);
        const std::string_view base = type.substr(0, type.find(';'));
        if (base != "application/json") {
            return failure(http::status::unsupported_media_type, "unsupported_media_type",
                           "the body must be application/json");
        }
    }
    return std::nullopt;
}

// --- query strings --------------------------------------------------------------------------

std::optional<std::string> query_value(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const std::size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name) {
            return std::string(eq == std::string_view::npos ? std::string_view()
                                                            : pair.substr(eq + 1));
        }
    }
    return std::nullopt;
}

Result<std::optional<std::int64_t>> query_integer(std::string_view query, const char* name,
                                                  std::int64_t min, std::int64_t max) {
    const auto text = query_value(query, name);
    if (!text) {
        return std::optional<std::int64_t>();
    }
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || value < min || value > max) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  std::string(name) + " must be an integer from " +
                                      std::to_string(min) + " to " + std::to_string(max),
                                  name));
    }
    return std::optional<std::int64_t>(value);
}

Result<std::int64_t> path_id(const Context& ctx) {
    const std::string& text = ctx.params.at(0);
    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || id <= 0) {
        return unexpected(failure(http::status::not_found, "not_found",
                                  "no elevation request '" + text.substr(0, 40) + "'"));
    }
    return id;
}

// --- views ----------------------------------------------------------------------------------

std::vector<std::string> split_roles(const std::string& roles) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < roles.size()) {
        const std::size_t comma = roles.find(',', start);
        const std::size_t end = comma == std::string::npos ? roles.size() : comma;
        if (end > start) {
            out.push_back(roles.substr(start, end - start));
        }
        start = end + 1;
    }
    return out;
}

api::GrantSummary grant_view(const ipc::GrantView& g) {
    api::GrantSummary v;
    v.id = g.id;
    v.request_id = g.request_id;
    v.holder = g.holder;
    v.scope = g.scope;
    v.state = g.state;
    v.starts_ms = g.starts_ms;
    v.expires_ms = g.expires_ms;
    v.budget = g.budget;
    v.uses = g.uses;
    if (g.budget) {
        v.uses_left = *g.budget > g.uses ? *g.budget - g.uses : 0;
    }
    v.revoked_by = g.revoked_by;
    v.revoke_reason = g.revoke_reason;
    v.break_glass = g.break_glass;
    return v;
}

api::Elevation elevation_view(const ipc::RequestView& r,
                              const std::vector<ipc::GrantView>& grants) {
    api::Elevation v;
    v.id = r.id;
    v.requester = r.requester;
    v.operation = r.operation;
    v.domain = r.domain;
    v.selector = r.selector;
    v.client = r.client;
    v.scope = r.scope;
    v.duration_seconds = r.duration_ms / 1000;
    v.budget = r.budget;
    v.reason = r.reason;
    v.state = r.state;
    v.created_ms = r.created_ms;
    v.pending_until_ms = r.pending_until_ms;
    v.approvals = r.approvals;
    v.quorum = r.quorum;
    v.decided_by = r.decided_by;
    v.decision_reason = r.decision_reason;
    v.break_glass = r.break_glass;
    v.filed_by_signer = r.filed_by_signer;
    if (r.superseded_by != 0) {
        v.superseded_by = r.superseded_by;
    }
    for (const ipc::GrantView& g : grants) {
        if (g.request_id == r.id) {
            v.grant = grant_view(g);
        }
    }
    return v;
}

api::Key key_view(const ipc::KeyView& k) {
    return api::Key{k.domain,   k.selector,   k.algorithm, k.signing, k.bits,
                    k.dns_name, k.dns_record, k.state,     k.managed};
}

// --- the handlers -----------------------------------------------------------------------------

Response created(const Request& req, std::string body, const std::string& location = {}) {
    Response r = json_response(http::status::created, std::move(body), req);
    if (!location.empty()) {
        r.set(http::field::location, location);
    }
    return r;
}

api::Permissions permissions_view(const ipc::Permissions& p) {
    return api::Permissions{p.request,    p.break_glass, p.approve, p.revoke_own,
                            p.revoke_any, p.cancel_any,  p.audit,   p.users};
}

std::string session_cookie(const std::string& token, std::int64_t max_age) {
    // __Host-: Secure, Path=/ and no Domain, so that no other host can set or read it.
    return std::string(kSessionCookie) + "=" + token +
           "; Path=/; Secure; HttpOnly; SameSite=Strict" + "; Max-Age=" + std::to_string(max_age);
}

Result<Response> login(Context& ctx) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto user = body->string("user", true, 64);
    auto password = body->string("password", true, 1024);
    auto totp = body->string("totp", false, 16);
    auto finished = body->finish();
    if (!user || !password || !totp || !finished) {
        return unexpected(from_field(!user       ? user.error()
                                     : !password ? password.error()
                                     : !totp     ? totp.error()
                                                 : finished.error()));
    }
    if (const auto wait = ctx.deps.limiter.attempt(ctx.client.address, **user, ctx.now)) {
        ctx.deps.metrics.rate_limited();
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(*wait).count() + 1;
        ApiError e =
            failure(http::status::too_many_requests, "rate_limited",
                    "too many login attempts; try again in " + std::to_string(seconds) + " s");
        Response r = render(e, ctx.req);
        r.set(http::field::retry_after, std::to_string(seconds));
        return r;
    }
    ipc::SessionCreate create;
    create.auth.user = **user;
    create.auth.password = **password;
    create.auth.totp = totp->value_or("");
    wipe(*password);
    wipe(*totp);
    create.ttl_seconds = ctx.deps.options.session_ttl_seconds;
    auto made = ctx.call<ipc::OkReply>(std::move(create));
    if (!made) {
        ctx.deps.metrics.login(false);
        return unexpected(made.error());
    }
    ctx.deps.metrics.login(true);
    ctx.deps.limiter.succeeded(**user);
    std::string token = made->secret;
    wipe(made->secret);
    ipc::WhoAmI who;
    who.auth.token = token;
    who.auth.token_kind = "session";
    auto me = ctx.call<ipc::IdentityReply>(std::move(who));
    if (!me) {
        wipe(token);
        return unexpected(me.error());
    }
    BrowserSession session;
    session.user = me->name;
    session.roles = me->roles;
    session.totp = me->totp;
    session.expires = me->token_expires_ms > 0
                          ? from_unix_ms(me->token_expires_ms)
                          : ctx.now + std::chrono::seconds(ctx.deps.options.session_ttl_seconds);
    const std::string csrf = ctx.deps.sessions.add(token, session, ctx.now);
    api::Identity id{me->name,
                     split_roles(me->roles),
                     me->totp,
                     "session",
                     to_unix_ms(session.expires),
                     csrf,
                     permissions_view(me->permissions)};
    Response r = created(ctx.req, api::object(cereal::make_nvp("session", id)));
    const auto max_age =
        std::chrono::duration_cast<std::chrono::seconds>(session.expires - ctx.now).count();
    r.set(http::field::set_cookie, session_cookie(token, std::max<std::int64_t>(0, max_age)));
    wipe(token);
    return r;
}

Result<Response> logout(Context& ctx, Caller& caller) {
    if (!caller.session) {
        return unexpected(failure(http::status::bad_request, "invalid",
                                  "only a browser session can be ended here; API tokens are "
                                  "revoked with the CLI"));
    }
    ctx.deps.sessions.remove(caller.token);
    auto ended = ctx.call<ipc::OkReply>(ipc::SessionEnd{caller.credentials});
    Response r =
        json_response(http::status::ok, api::object(cereal::make_nvp("ended", true)), ctx.req);
    r.set(http::field::set_cookie, session_cookie("", 0));
    if (!ended && ended.error().status != http::status::unauthorized) {
        return unexpected(ended.error());
    }
    return r;
}

Result<Response> me(Context& ctx, Caller& caller) {
    auto who = ctx.call<ipc::IdentityReply>(ipc::WhoAmI{caller.credentials});
    if (!who) {
        return unexpected(who.error());
    }
    api::Identity id;
    id.user = who->name;
    id.roles = split_roles(who->roles);
    id.totp = who->totp;
    id.auth = caller.session ? "session" : "api";
    if (who->token_expires_ms > 0) {
        id.expires_ms = who->token_expires_ms;
    }
    if (caller.session) {
        id.csrf_token = caller.session->csrf;
    }
    // Asked of signerd on every call, not kept with the session: a change of roles or policy
    // shows at the console's next load.
    id.permissions = permissions_view(who->permissions);
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("me", id), cereal::make_nvp("now_ms", to_unix_ms(ctx.now))),
        ctx.req);
}

Result<Response> request_elevation(Context& ctx, Caller& caller) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    ipc::ElevationRequest r;
    r.auth = caller.credentials;
    auto operation = body->string("operation", true, 32);
    auto domain = body->string("domain", true, 253);
    auto selector = body->string("selector", false, 63);
    auto client = body->string("client", false, 64);
    auto duration = body->integer("duration_seconds", true, 60, 366LL * 86400);
    auto budget = body->integer("budget", false, 1, std::int64_t{1} << 40);
    auto reason = body->string("reason", true, 1000);
    auto break_glass = body->boolean("break_glass");
    auto totp = body->string("totp", false, 16);
    auto finished = body->finish();
    for (const FieldError* e :
         {operation ? nullptr : &operation.error(), domain ? nullptr : &domain.error(),
          selector ? nullptr : &selector.error(), client ? nullptr : &client.error(),
          duration ? nullptr : &duration.error(), budget ? nullptr : &budget.error(),
          reason ? nullptr : &reason.error(), break_glass ? nullptr : &break_glass.error(),
          totp ? nullptr : &totp.error(), finished ? nullptr : &finished.error()}) {
        if (e != nullptr) {
            return unexpected(from_field(*e));
        }
    }
    r.operation = **operation;
    r.domain = **domain;
    r.selector = selector->value_or("*");
    r.client = client->value_or("*");
    r.duration_seconds = **duration;
    if (*budget) {
        r.budget = static_cast<std::uint64_t>(**budget);
    }
    r.reason = **reason;
    r.break_glass = break_glass->value_or(false);
    r.auth.totp = totp->value_or("");
    wipe(*totp);
    auto made = ctx.call<ipc::OkReply>(std::move(r));
    if (!made) {
        return unexpected(made.error());
    }
    auto list = ctx.call<ipc::RequestsReply>(ipc::ElevationList{caller.credentials, false});
    auto grants = ctx.call<ipc::GrantsReply>(ipc::GrantList{caller.credentials, false});
    if (!list || !grants) {
        return unexpected(!list ? list.error() : grants.error());
    }
    for (const ipc::RequestView& v : list->requests) {
        if (v.id == made->id) {
            return created(
                ctx.req,
                api::object(cereal::make_nvp("elevation", elevation_view(v, grants->grants)),
                            cereal::make_nvp("message", made->message)),
                "/api/v1/elevations/" + std::to_string(v.id));
        }
    }
    return unexpected(
        failure(http::status::bad_gateway, "protocol",
                "signerd made request " + std::to_string(made->id) + " but does not list it"));
}

const std::vector<std::string_view>& elevation_states() {
    static const std::vector<std::string_view> states = {
        "pending", "approved", "denied", "cancelled", "expired", "superseded", "active", "all"};
    return states;
}

Result<Response> list_elevations(Context& ctx, Caller& caller) {
    const std::string state = query_value(ctx.query, "state").value_or("all");
    const auto& states = elevation_states();
    if (std::find(states.begin(), states.end(), state) == states.end()) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "state must be pending, approved, denied, cancelled, expired, "
                                  "superseded, active or all",
                                  "state"));
    }
    auto list =
        ctx.call<ipc::RequestsReply>(ipc::ElevationList{caller.credentials, state == "pending"});
    if (!list) {
        return unexpected(list.error());
    }
    auto grants = ctx.call<ipc::GrantsReply>(ipc::GrantList{caller.credentials, false});
    if (!grants) {
        return unexpected(grants.error());
    }
    std::vector<api::Elevation> out;
    for (const ipc::RequestView& r : list->requests) {
        api::Elevation v = elevation_view(r, grants->grants);
        const bool active = v.grant && v.grant->state == "active";
        if (state == "all" || (state == "active" ? active : v.state == state)) {
            out.push_back(std::move(v));
        }
    }
    std::reverse(out.begin(), out.end());  // newest first
    return json_response(http::status::ok,
                         api::object(cereal::make_nvp("elevations", out),
                                     cereal::make_nvp("now_ms", to_unix_ms(ctx.now))),
                         ctx.req);
}

Result<api::Elevation> find_elevation(Context& ctx, Caller& caller, std::int64_t id) {
    auto list = ctx.call<ipc::RequestsReply>(ipc::ElevationList{caller.credentials, false});
    if (!list) {
        return unexpected(list.error());
    }
    auto grants = ctx.call<ipc::GrantsReply>(ipc::GrantList{caller.credentials, false});
    if (!grants) {
        return unexpected(grants.error());
    }
    for (const ipc::RequestView& r : list->requests) {
        if (r.id == id) {
            return elevation_view(r, grants->grants);
        }
    }
    return unexpected(failure(http::status::not_found, "not_found",
                              "no elevation request " + std::to_string(id)));
}

Response elevation_response(Context& ctx, const api::Elevation& e, const std::string& message) {
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("elevation", e), cereal::make_nvp("message", message),
                    cereal::make_nvp("now_ms", to_unix_ms(ctx.now))),
        ctx.req);
}

Result<Response> get_elevation(Context& ctx, Caller& caller) {
    auto id = path_id(ctx);
    if (!id) {
        return unexpected(id.error());
    }
    auto found = find_elevation(ctx, caller, *id);
    if (!found) {
        return unexpected(found.error());
    }
    return elevation_response(ctx, *found, "");
}

// approve, deny, revoke, cancel: {totp, reason, pin} as each needs.
Result<Response> decide(Context& ctx, Caller& caller, const std::string& action) {
    auto id = path_id(ctx);
    if (!id) {
        return unexpected(id.error());
    }
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    const bool needs_totp = action != "cancel";
    const bool needs_reason = action == "deny" || action == "revoke";
    auto totp = body->string("totp", needs_totp, 16);
    auto reason = body->string("reason", needs_reason, 1000);
    auto pin = body->string("pin", false, 256);
    auto finished = body->finish();
    for (const FieldError* e :
         {totp ? nullptr : &totp.error(), reason ? nullptr : &reason.error(),
          pin ? nullptr : &pin.error(), finished ? nullptr : &finished.error()}) {
        if (e != nullptr) {
            return unexpected(from_field(*e));
        }
    }
    if (action == "cancel" && (*totp || *reason || *pin)) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "cancel takes no fields",
                                  *totp     ? "totp"
                                  : *reason ? "reason"
                                            : "pin"));
    }
    ipc::Credentials credentials = caller.credentials;
    credentials.totp = totp->value_or("");
    Result<ipc::OkReply> done = unexpected(ApiError{});
    if (action == "revoke") {
        if (*pin) {
            return unexpected(
                failure(http::status::bad_request, "invalid_field", "revoke takes no pin", "pin"));
        }
        auto found = find_elevation(ctx, caller, *id);
        if (!found) {
            return unexpected(found.error());
        }
        if (!found->grant) {
            return unexpected(failure(http::status::conflict, "conflict",
                                      "request " + std::to_string(*id) + " is " + found->state +
                                          "; it has no grant to revoke"));
        }
        // An ended grant cannot be revoked: say so before the TOTP code is spent on it.
        if (found->grant->state != "active") {
            return unexpected(failure(http::status::conflict, "conflict",
                                      "grant " + std::to_string(found->grant->id) + " is " +
                                          found->grant->state + " already"));
        }
        done = ctx.call<ipc::OkReply>(
            ipc::GrantRevoke{credentials, found->grant->id, reason->value_or("")});
    } else {
        if (*pin && action != "approve") {
            return unexpected(failure(http::status::bad_request, "invalid_field",
                                      action + " takes no pin", "pin"));
        }
        ipc::ElevationDecide d{credentials, action, *id, reason->value_or(""), pin->value_or("")};
        wipe(*pin);
        done = ctx.call<ipc::OkReply>(std::move(d));
    }
    wipe(credentials.token);
    wipe(credentials.totp);
    if (!done) {
        return unexpected(done.error());
    }
    auto found = find_elevation(ctx, caller, *id);
    if (!found) {
        return unexpected(found.error());
    }
    return elevation_response(ctx, *found, done->message);
}

Result<Response> list_grants(Context& ctx, Caller& caller) {
    const auto active = query_value(ctx.query, "active");
    if (active && *active != "true" && *active != "false") {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "active must be true or false", "active"));
    }
    auto grants =
        ctx.call<ipc::GrantsReply>(ipc::GrantList{caller.credentials, active && *active == "true"});
    if (!grants) {
        return unexpected(grants.error());
    }
    std::vector<api::GrantSummary> out;
    for (const ipc::GrantView& g : grants->grants) {
        out.push_back(grant_view(g));
    }
    std::reverse(out.begin(), out.end());
    return json_response(http::status::ok,
                         api::object(cereal::make_nvp("grants", out),
                                     cereal::make_nvp("now_ms", to_unix_ms(ctx.now))),
                         ctx.req);
}

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
    for (const FieldError* e :
         {domain ? nullptr : &domain.error(), selector ? nullptr : &selector.error(),
          algorithm ? nullptr : &algorithm.error(), finished ? nullptr : &finished.error()}) {
        if (e != nullptr) {
            return unexpected(from_field(*e));
        }
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

bool valid_domain(std::string_view d) {
    if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.' ||
        d.find("..") != std::string_view::npos) {
        return false;
    }
    return std::all_of(d.begin(), d.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.';
    });
}

Result<Response> domain_dns(Context& ctx, Caller& caller) {
    std::string domain = ctx.params.at(0);
    if (!valid_domain(domain)) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "domain is not a domain name", "domain"));
    }
    std::transform(domain.begin(), domain.end(), domain.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
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
        if (k.domain == domain && publish) {
            records.push_back({"dkim", k.dns_name, "TXT", k.dns_record,
                               dns::zone_line(k.dns_name, k.dns_record),
                               "the public half of the " + k.algorithm + " key " + k.selector +
                                   " (" + k.state + "), as the token holds it"});
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
    monitor.adkim = "r";
    monitor.aspf = "r";
    const std::string dmarc = dns::dmarc_record_text(monitor);
    const std::string dmarc_name = "_dmarc." + domain;
    records.push_back({"dmarc", dmarc_name, "TXT", dmarc, dns::zone_line(dmarc_name, dmarc),
                       "monitor mode first; when the reports show only your own mail passing, "
                       "ramp up: p=quarantine; pct=25, then pct=100, then p=reject"});
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("domain", domain), cereal::make_nvp("records", records)),
        ctx.req);
}

Result<Response> audit(Context& ctx, Caller& caller) {
    auto after = query_integer(ctx.query, "after", 0, std::int64_t{1} << 53);
    auto limit = query_integer(ctx.query, "limit", 1, 1000);
    if (!after || !limit) {
        return unexpected(!after ? after.error() : limit.error());
    }
    const std::int64_t from = after->value_or(0) + 1;
    auto records =
        ctx.call<ipc::AuditReply>(ipc::AuditShow{caller.credentials, from, limit->value_or(100)});
    if (!records) {
        return unexpected(records.error());
    }
    std::vector<api::AuditRecord> out;
    for (const ipc::AuditView& a : records->records) {
        out.push_back({a.seq, a.time_ms, a.actor, a.action, a.scope, a.outcome, a.reason,
                       a.request_id, a.grant_id, a.detail, a.hash});
    }
    const std::int64_t next = out.empty() ? from - 1 : out.back().seq;
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("records", out), cereal::make_nvp("next_after", next)),
        ctx.req);
}

Result<Response> audit_verify(Context& ctx, Caller& caller) {
    auto report = ctx.call<ipc::AuditVerifyReply>(ipc::AuditVerify{caller.credentials});
    if (!report) {
        return unexpected(report.error());
    }
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("ok", report->ok),
                    cereal::make_nvp("records", report->records),
                    cereal::make_nvp("first_broken", report->first_broken),
                    cereal::make_nvp("problem", report->problem),
                    cereal::make_nvp("checkpoints", report->checkpoints),
                    cereal::make_nvp("checkpoint_signatures", report->checkpoint_signatures),
                    cereal::make_nvp("head", report->head),
                    cereal::make_nvp("verified_ms", to_unix_ms(ctx.now))),
        ctx.req);
}

// Users are only listed here. They are added, disabled and enrolled in TOTP at the CLI: signerd
// refuses all of it from the web peer, which sees every console user's password and code.
Result<Response> list_users(Context& ctx, Caller& caller) {
    auto users = ctx.call<ipc::UsersReply>(ipc::UserList{caller.credentials});
    if (!users) {
        return unexpected(users.error());
    }
    std::vector<api::User> out;
    for (const ipc::UserView& u : users->users) {
        out.push_back({u.name, split_roles(u.roles), u.disabled, u.totp, u.created_ms});
    }
    std::vector<api::Token> tokens;
    for (const ipc::TokenView& t : users->tokens) {
        api::Token v{t.id, t.user, t.kind, t.label, t.created_ms, std::nullopt, t.revoked};
        if (t.expires_ms > 0) {
            v.expires_ms = t.expires_ms;
        }
        tokens.push_back(std::move(v));
    }
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("users", out), cereal::make_nvp("tokens", tokens)), ctx.req);
}

// A new API token needs the user's password (and TOTP code when enrolled) again: a stolen
// session cannot mint long-lived credentials.
Result<Response> create_api_token(Context& ctx, Caller& caller) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto label = body->string("label", true, 200);
    auto ttl = body->integer("ttl_seconds", false, 60, 366LL * 86400);
    auto password = body->string("password", true, 1024);
    auto totp = body->string("totp", false, 16);
    auto finished = body->finish();
    for (const FieldError* e :
         {label ? nullptr : &label.error(), ttl ? nullptr : &ttl.error(),
          password ? nullptr : &password.error(), totp ? nullptr : &totp.error(),
          finished ? nullptr : &finished.error()}) {
        if (e != nullptr) {
            return unexpected(from_field(*e));
        }
    }
    auto who = ctx.call<ipc::IdentityReply>(ipc::WhoAmI{caller.credentials});
    if (!who) {
        return unexpected(who.error());
    }
    ipc::ApiTokenCreate create;
    create.auth.user = who->name;
    create.auth.password = **password;
    create.auth.totp = totp->value_or("");
    wipe(*password);
    wipe(*totp);
    create.user = who->name;
    create.label = **label;
    create.ttl_seconds = ttl->value_or(0);
    auto made = ctx.call<ipc::OkReply>(std::move(create));
    if (!made) {
        return unexpected(made.error());
    }
    Response r = created(ctx.req, api::object(cereal::make_nvp("id", made->id),
                                              cereal::make_nvp("token", made->secret),
                                              cereal::make_nvp("message", made->message)));
    wipe(made->secret);
    return r;
}

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
    return make_response(http::status::ok, ctx.deps.metrics.render(ctx.deps.sessions.size(ctx.now)),
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

// --- routing ----------------------------------------------------------------------------------

enum class Auth : std::uint8_t { none, caller };

struct Route {
    http::verb method;
    std::string_view pattern;  // "/api/v1/elevations/{id}/approve"
    Auth auth;
    std::function<Result<Response>(Context&, Caller&)> run;
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
        {V::get, "/api/v1/me", Auth::caller, me},
        {V::post, "/api/v1/elevations", Auth::caller, request_elevation},
        {V::get, "/api/v1/elevations", Auth::caller, list_elevations},
        {V::get, "/api/v1/elevations/{id}", Auth::caller, get_elevation},
        {V::post, "/api/v1/elevations/{id}/approve", Auth::caller, action("approve")},
        {V::post, "/api/v1/elevations/{id}/deny", Auth::caller, action("deny")},
        {V::post, "/api/v1/elevations/{id}/revoke", Auth::caller, action("revoke")},
        {V::post, "/api/v1/elevations/{id}/cancel", Auth::caller, action("cancel")},
        {V::get, "/api/v1/grants", Auth::caller, list_grants},
        {V::get, "/api/v1/keys", Auth::caller, list_keys},
        {V::post, "/api/v1/keys", Auth::caller, generate_key},
        {V::get, "/api/v1/domains/{domain}/dns", Auth::caller, domain_dns},
        {V::get, "/api/v1/audit", Auth::caller, audit},
        {V::get, "/api/v1/audit/verify", Auth::caller, audit_verify},
        {V::get, "/api/v1/users", Auth::caller, list_users},
        {V::post, "/api/v1/apitokens", Auth::caller, create_api_token},
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

Response error_response(http::status status, const std::string& code, const std::string& message,
                        unsigned version, bool keep_alive) {
    return make_response(
        status, api::object(cereal::make_nvp("error", api::Error{code, message, {}, {}, 0})), kJson,
        version, keep_alive);
}

std::vector<std::string> route_table() {
    std::vector<std::string> out;
    for (const Route& r : routes()) {
        out.push_back(std::string(http::to_string(r.method)) + " " + std::string(r.pattern));
    }
    return out;
}

Response handle(const Request& req, const ClientInfo& client, Deps& deps) {
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
        if (auto refused = check_request_shape(req)) {
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

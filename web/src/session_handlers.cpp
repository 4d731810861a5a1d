// The console's session: login, logout, who am I.

#include <algorithm>
#include <chrono>

#include "auth.hpp"
#include "endpoints.hpp"
#include "views.hpp"

namespace dkim::web::detail {

namespace {

// Per operation, the factors policy accepts, as the API shows them.
std::vector<std::pair<std::string, std::vector<std::string>>> factors_view(
    const std::vector<ipc::OperationFactors>& factors) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    out.reserve(factors.size());
    for (const ipc::OperationFactors& f : factors) {
        out.emplace_back(f.operation, f.factors);
    }
    return out;
}

// The browser session of a new session token (a password's or a passkey's login): asks signerd
// who it is, keeps it in the session table, and answers it with its cookie. Wipes `token`.
Result<Response> start_session(Context& ctx, std::string& token) {
    ipc::WhoAmI who;
    who.auth.token = token;
    who.auth.token_kind = "session";
    auto me = ctx.call<ipc::IdentityReply>(std::move(who));
    if (!me) {
        base::wipe(token);
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
                     permissions_view(me->permissions, me->roles),
                     me->passkeys,
                     factors_view(me->factors)};
    Response r = created(ctx.req, api::object(cereal::make_nvp("session", id)));
    const auto max_age =
        std::chrono::duration_cast<std::chrono::seconds>(session.expires - ctx.now).count();
    r.set(http::field::set_cookie, session_cookie(token, std::max<std::int64_t>(0, max_age)));
    base::wipe(token);
    return r;
}

}  // namespace

Result<Response> login(Context& ctx) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto user = body->string("user", true, 64);
    auto password = body->string("password", true, 1024);
    auto totp = body->string("totp", false, 16);
    auto finished = body->finish();
    if (auto refused = first_refused(user, password, totp, finished)) {
        return unexpected(*refused);
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
    base::wipe(made->secret);
    return start_session(ctx, token);
}

Result<Response> passkey_login_challenge(Context& ctx) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    if (auto finished = body->finish(); !finished) {
        return unexpected(from_field(finished.error()));
    }
    auto options = ctx.call<ipc::PasskeyChallengeReply>(ipc::PasskeyLoginChallenge{});
    if (!options) {
        return unexpected(options.error());
    }
    return json_response(http::status::ok, root_object(challenge_view(*options)), ctx.req);
}

Result<Response> passkey_login(Context& ctx) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto assertion = read_assertion(*body, nullptr, true);
    auto finished = body->finish();
    if (auto refused = first_refused(assertion, finished)) {
        return unexpected(*refused);
    }
    // Per client address (the user is not known before signerd has checked the assertion).
    if (const auto wait = ctx.deps.limiter.attempt(ctx.client.address, "", ctx.now)) {
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
    create.auth.passkey = std::move(**assertion);
    create.ttl_seconds = ctx.deps.options.session_ttl_seconds;
    auto made = ctx.call<ipc::OkReply>(std::move(create));
    if (!made) {
        ctx.deps.metrics.login(false);
        return unexpected(made.error());
    }
    ctx.deps.metrics.login(true);
    std::string token = made->secret;
    base::wipe(made->secret);
    return start_session(ctx, token);
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
    id.permissions = permissions_view(who->permissions, who->roles);
    id.passkeys = who->passkeys;
    id.factors = factors_view(who->factors);
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("me", id), cereal::make_nvp("now_ms", to_unix_ms(ctx.now))),
        ctx.req);
}

}  // namespace dkim::web::detail

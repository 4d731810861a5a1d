// Users and API tokens.

#include "endpoints.hpp"
#include "views.hpp"

namespace dkim::web::detail {

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
    if (auto refused = first_refused(label, ttl, password, totp, finished)) {
        return unexpected(*refused);
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
    base::wipe(made->secret);
    return r;
}

}  // namespace dkim::web::detail

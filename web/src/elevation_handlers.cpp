// Elevation requests, the decisions on them, and the grants they become.

#include <algorithm>

#include "endpoints.hpp"
#include "query.hpp"
#include "views.hpp"

namespace dkim::web::detail {

namespace {

const std::vector<std::string_view>& elevation_states() {
    static const std::vector<std::string_view> states = {
        "pending", "approved", "denied", "cancelled", "expired", "superseded", "active", "all"};
    return states;
}

Response elevation_response(Context& ctx, const api::Elevation& e, const std::string& message) {
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("elevation", e), cereal::make_nvp("message", message),
                    cereal::make_nvp("now_ms", to_unix_ms(ctx.now))),
        ctx.req);
}

}  // namespace

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
    auto assertion = read_assertion(*body, "passkey", false);
    auto finished = body->finish();
    if (auto refused = first_refused(operation, domain, selector, client, duration, budget, reason,
                                     break_glass, totp, assertion, finished)) {
        return unexpected(*refused);
    }
    if (*assertion) {
        r.auth.passkey = std::move(**assertion);
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

// approve, deny, revoke, cancel: {totp or passkey, reason, pin_envelope} as each needs.
Result<Response> decide(Context& ctx, Caller& caller, const std::string& action) {
    auto id = path_id(ctx);
    if (!id) {
        return unexpected(id.error());
    }
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    // The token PIN never crosses webd in clear (PIN custody "approver": it comes sealed to
    // signerd, pin_envelope). A clear "pin" is refused by its presence alone: its value is
    // neither read nor copied, and the body that holds it is wiped (JsonBody, the server).
    if (body->has("pin")) {
        return unexpected(failure(
            http::status::bad_request, "invalid_field",
            "pin: the PIN must be sealed, never sent in clear: seal it to a key from POST "
            "/api/v1/pin/key (purpose approve, this request) and send pin_envelope {key_id, "
            "envelope}. Nothing was sent to signerd",
            "pin"));
    }
    const bool needs_reason = action == "deny" || action == "revoke";
    auto totp = body->string("totp", false, 16);
    auto assertion = read_assertion(*body, "passkey", false);
    auto reason = body->string("reason", needs_reason, 1000);
    auto pin = read_pin_envelope(*body, "pin_envelope", false);
    auto finished = body->finish();
    if (auto refused = first_refused(totp, assertion, reason, pin, finished)) {
        return unexpected(*refused);
    }
    if (action == "cancel" && (*totp || *assertion || *reason || *pin)) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "cancel takes no fields",
                                  *totp        ? "totp"
                                  : *assertion ? "passkey"
                                  : *reason    ? "reason"
                                               : "pin_envelope"));
    }
    if (*pin && action != "approve") {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  action + " takes no pin_envelope", "pin_envelope"));
    }
    // The second factor: a TOTP code or a passkey's assertion (over a challenge for exactly this
    // decision: POST /api/v1/passkeys/challenge), one of them.
    if (action != "cancel" && !*totp == !*assertion) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  action + " needs a second factor: totp or passkey, one of them",
                                  *totp ? "passkey" : "totp"));
    }
    ipc::Credentials credentials = caller.credentials;
    credentials.totp = totp->value_or("");
    wipe(*totp);
    if (*assertion) {
        credentials.passkey = std::move(**assertion);
    }
    Result<ipc::OkReply> done = unexpected(ApiError{});
    if (action == "revoke") {
        auto found = find_elevation(ctx, caller, *id);
        if (!found) {
            return unexpected(found.error());
        }
        if (!found->grant) {
            return unexpected(failure(http::status::conflict, "conflict",
                                      "request " + std::to_string(*id) + " is " + found->state +
                                          "; it has no grant to revoke"));
        }
        // An ended grant cannot be revoked: say so before the second factor is spent on it. (A
        // scheduled one, a renewal not started yet, can.)
        if (found->grant->state != "active" && found->grant->state != "scheduled") {
            return unexpected(failure(http::status::conflict, "conflict",
                                      "grant " + std::to_string(found->grant->id) + " is " +
                                          found->grant->state + " already"));
        }
        done = ctx.call<ipc::OkReply>(
            ipc::GrantRevoke{credentials, found->grant->id, reason->value_or("")});
    } else {
        ipc::ElevationDecide d{credentials, action, *id, reason->value_or(""),
                               pin->value_or(ipc::PinEnvelope{})};
        done = ctx.call<ipc::OkReply>(std::move(d));
    }
    credentials.wipe();
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

}  // namespace dkim::web::detail

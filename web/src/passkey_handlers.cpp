// The console's passkeys: WebAuthn challenges, registering, listing, renaming and removing. webd
// checks nothing of WebAuthn itself: it decodes the base64url the console sends and passes the
// bytes to signerd unchanged, which verifies them against challenges only it issued.

#include <limits>

#include "dkim/crypto/base64.hpp"
#include "endpoints.hpp"
#include "views.hpp"

namespace dkim::web::detail {
namespace {

Expected<std::string, ApiError> path_credential(Context& ctx) {
    auto decoded = ctx.params.empty() ? std::nullopt : crypto::base64url_decode(ctx.params.at(0));
    if (!decoded || decoded->empty() || decoded->size() > 1023) {
        return unexpected(failure(http::status::not_found, "not_found", "no such passkey"));
    }
    return *decoded;
}

Response passkeys_response(Context& ctx, http::status status, const ipc::PasskeysReply& reply,
                           bool one) {
    std::vector<api::Passkey> out;
    for (const ipc::PasskeyView& p : reply.passkeys) {
        out.push_back(passkey_view(p));
    }
    if (one && out.size() == 1) {
        return json_response(status, api::object(cereal::make_nvp("passkey", out.front())),
                             ctx.req);
    }
    return json_response(status, api::object(cereal::make_nvp("passkeys", out)), ctx.req);
}

}  // namespace

Result<Response> passkey_challenge(Context& ctx, Caller& caller) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto purpose = body->string("purpose", true, 32);
    auto id = body->integer("id", false, 1, std::numeric_limits<std::int64_t>::max());
    auto reason = body->string("reason", false, 1000);
    auto credential = body->bytes("credential_id", false, 1023);
    auto attestation = body->bytes("attestation_object", false, std::size_t{64} * 1024);
    auto operation = body->string("operation", false, 32);
    auto domain = body->string("domain", false, 253);
    auto selector = body->string("selector", false, 63);
    auto client = body->string("client", false, 64);
    auto duration = body->integer("duration_seconds", false, 1, 366LL * 86400);
    auto budget = body->integer("budget", false, 1, std::int64_t{1} << 40);
    auto finished = body->finish();
    if (auto refused = first_refused(purpose, id, reason, credential, attestation, operation,
                                     domain, selector, client, duration, budget, finished)) {
        return unexpected(*refused);
    }
    ipc::PasskeyChallenge r;
    r.auth = caller.credentials;
    r.purpose = **purpose;
    r.reason = reason->value_or("");
    r.credential_id = credential->value_or("");
    r.attestation_object = attestation->value_or("");
    r.operation = operation->value_or("");
    r.domain = domain->value_or("");
    r.selector = selector->value_or("*");
    r.client = client->value_or("*");
    r.duration_seconds = duration->value_or(0);
    if (*budget) {
        r.budget = static_cast<std::uint64_t>(**budget);
    }
    const bool needs_id = r.purpose == "approve" || r.purpose == "deny" || r.purpose == "revoke";
    if (needs_id && !*id) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  r.purpose + " needs the request's id", "id"));
    }
    r.id = id->value_or(0);
    if (r.purpose == "revoke") {
        // The console names the request, as POST /elevations/{id}/revoke does; signerd revokes
        // (and binds the challenge to) the grant that came of it.
        auto found = find_elevation(ctx, caller, r.id);
        if (!found) {
            return unexpected(found.error());
        }
        if (!found->grant) {
            return unexpected(failure(http::status::conflict, "conflict",
                                      "request " + std::to_string(r.id) + " has no grant"));
        }
        r.id = found->grant->id;
    }
    auto options = ctx.call<ipc::PasskeyChallengeReply>(std::move(r));
    if (!options) {
        return unexpected(options.error());
    }
    return json_response(http::status::ok, root_object(challenge_view(*options)), ctx.req);
}

Result<Response> list_passkeys(Context& ctx, Caller& caller) {
    auto listed = ctx.call<ipc::PasskeysReply>(ipc::PasskeyList{caller.credentials, ""});
    if (!listed) {
        return unexpected(listed.error());
    }
    return passkeys_response(ctx, http::status::ok, *listed, false);
}

Result<Response> register_passkey(Context& ctx, Caller& caller) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto name = body->string("name", true, 64);
    auto client_data = body->bytes("client_data_json", true, std::size_t{16} * 1024);
    auto attestation = body->bytes("attestation_object", true, std::size_t{64} * 1024);
    auto totp = body->string("totp", false, 16);
    auto assertion = read_assertion(*body, "passkey", false);
    auto finished = body->finish();
    if (auto refused = first_refused(name, client_data, attestation, totp, assertion, finished)) {
        return unexpected(*refused);
    }
    ipc::PasskeyRegister r;
    r.auth = caller.credentials;
    r.auth.totp = totp->value_or("");
    wipe(*totp);
    if (*assertion) {
        r.auth.passkey = std::move(**assertion);
    }
    r.name = **name;
    r.client_data_json = **client_data;
    r.attestation_object = **attestation;
    auto added = ctx.call<ipc::PasskeysReply>(std::move(r));
    if (!added) {
        return unexpected(added.error());
    }
    return passkeys_response(ctx, http::status::created, *added, true);
}

Result<Response> rename_passkey(Context& ctx, Caller& caller) {
    auto id = path_credential(ctx);
    if (!id) {
        return unexpected(id.error());
    }
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto name = body->string("name", true, 64);
    auto finished = body->finish();
    if (auto refused = first_refused(name, finished)) {
        return unexpected(*refused);
    }
    auto renamed =
        ctx.call<ipc::PasskeysReply>(ipc::PasskeyRename{caller.credentials, *id, **name});
    if (!renamed) {
        return unexpected(renamed.error());
    }
    return passkeys_response(ctx, http::status::ok, *renamed, true);
}

Result<Response> remove_passkey(Context& ctx, Caller& caller) {
    auto id = path_credential(ctx);
    if (!id) {
        return unexpected(id.error());
    }
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto totp = body->string("totp", false, 16);
    auto assertion = read_assertion(*body, "passkey", false);
    auto finished = body->finish();
    if (auto refused = first_refused(totp, assertion, finished)) {
        return unexpected(*refused);
    }
    ipc::PasskeyRemove r;
    r.auth = caller.credentials;
    r.auth.totp = totp->value_or("");
    wipe(*totp);
    if (*assertion) {
        r.auth.passkey = std::move(**assertion);
    }
    r.credential_id = *id;
    auto removed = ctx.call<ipc::OkReply>(std::move(r));
    if (!removed) {
        return unexpected(removed.error());
    }
    return json_response(http::status::ok,
                         api::object(cereal::make_nvp("removed", true),
                                     cereal::make_nvp("message", removed->message)),
                         ctx.req);
}

}  // namespace dkim::web::detail

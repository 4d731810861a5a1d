// PIN custody (SECURITY.md, "PIN custody"): the mode and what is missing before signing can
// start, keys to seal a PIN or a share to, and custodians' shares. webd holds no PIN and no share
// in clear: the console seals them to a key signerd offered (dkim/custody/envelope.hpp), whose
// statement signerd's identity key signed, and webd forwards the envelope it cannot open.

#include "endpoints.hpp"
#include "views.hpp"

namespace dkim::web::detail {

namespace {

Result<api::PinStatus> read_pin_status(Context& ctx, Caller& caller) {
    auto status = ctx.call<ipc::PinStatusReply>(ipc::PinStatusRequest{caller.credentials});
    if (!status) {
        return unexpected(status.error());
    }
    return pin_status_view(*status);
}

struct ShareAccepted {
    std::string message;
    std::optional<api::PinStatus> pin;
    std::int64_t now_ms = 0;
    template <class A>
    void save(A& ar) const {
        ar(cereal::make_nvp("message", message));
        api::optional_field(ar, "pin", pin);
        ar(cereal::make_nvp("now_ms", now_ms));
    }
};

}  // namespace

Result<Response> pin_status(Context& ctx, Caller& caller) {
    auto status = read_pin_status(ctx, caller);
    if (!status) {
        return unexpected(status.error());
    }
    return json_response(http::status::ok,
                         api::object(cereal::make_nvp("pin", *status),
                                     cereal::make_nvp("now_ms", to_unix_ms(ctx.now))),
                         ctx.req);
}

Result<Response> pin_key(Context& ctx, Caller& caller) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto purpose = body->string("purpose", true, 16);
    auto subject = body->string("subject", true, 64);
    auto finished = body->finish();
    if (auto refused = first_refused(purpose, subject, finished)) {
        return unexpected(*refused);
    }
    if (**purpose != "approve" && **purpose != "share") {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  "purpose must be approve (subject: the request id) or share "
                                  "(subject: the share set id)",
                                  "purpose"));
    }
    auto offer =
        ctx.call<ipc::PinKeyOfferReply>(ipc::PinKeyOffer{caller.credentials, **purpose, **subject});
    if (!offer) {
        return unexpected(offer.error());
    }
    return json_response(http::status::ok, root_object(pin_key_offer_view(*offer)), ctx.req);
}

Result<Response> submit_pin_share(Context& ctx, Caller& caller) {
    auto body = JsonBody::parse(ctx.req.body());
    if (!body) {
        return unexpected(from_field(body.error()));
    }
    auto share = read_pin_envelope(*body, "share", true);
    auto finished = body->finish();
    if (auto refused = first_refused(share, finished)) {
        return unexpected(*refused);
    }
    auto done = ctx.call<ipc::OkReply>(ipc::PinShareSubmit{caller.credentials, std::move(**share)});
    if (!done) {
        return unexpected(done.error());
    }
    // The share is in: with what custody says now (the quorum may have been reached). Should
    // signerd not answer that, the submission still stands and "pin" is null.
    ShareAccepted answer;
    answer.message = done->message;
    if (auto status = read_pin_status(ctx, caller)) {
        answer.pin = std::move(*status);
    }
    answer.now_ms = to_unix_ms(ctx.now);
    return json_response(http::status::ok, root_object(answer), ctx.req);
}

}  // namespace dkim::web::detail

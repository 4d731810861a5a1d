#include "response.hpp"

namespace dkim::web::detail {

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

Response json_response(http::status status, std::string body, const Request& req) {
    return make_response(status, std::move(body), kJson, req.version(), req.keep_alive());
}

Response created(const Request& req, std::string body, const std::string& location) {
    Response r = json_response(http::status::created, std::move(body), req);
    if (!location.empty()) {
        r.set(http::field::location, location);
    }
    return r;
}

ApiError failure(http::status status, std::string code, std::string message, std::string field) {
    return ApiError{status,
                    api::Error{std::move(code), std::move(message), std::move(field), {}, 0}};
}

Response render(const ApiError& e, const Request& req) {
    return json_response(e.status, api::object(cereal::make_nvp("error", e.error)), req);
}

ApiError from_field(const FieldError& e) {
    if (e.field.empty()) {
        return failure(http::status::bad_request, "invalid_body", e.message);
    }
    return failure(http::status::bad_request, "invalid_field", e.field + " " + e.message, e.field);
}

ApiError from_signerd(const ipc::ErrorReply& e) {
    http::status status = http::status::bad_gateway;  // protocol, unknown: signerd misbehaved
    switch (e.code) {
        case ipc::ErrorCode::unauthenticated: status = http::status::unauthorized; break;
        case ipc::ErrorCode::forbidden: status = http::status::forbidden; break;
        case ipc::ErrorCode::not_found: status = http::status::not_found; break;
        case ipc::ErrorCode::conflict: status = http::status::conflict; break;
        case ipc::ErrorCode::invalid: status = http::status::bad_request; break;
        case ipc::ErrorCode::unavailable: status = http::status::service_unavailable; break;
        case ipc::ErrorCode::locked: status = http::status::locked; break;
        case ipc::ErrorCode::protocol:
        case ipc::ErrorCode::unknown: break;
    }
    ApiError out = failure(status, std::string(ipc::to_string(e.code)), e.message);
    out.error.rule = e.rule;
    out.error.request_id = e.request_id;
    return out;
}

}  // namespace dkim::web::detail

namespace dkim::web {

Response error_response(http::status status, const std::string& code, const std::string& message,
                        unsigned version, bool keep_alive) {
    return detail::make_response(
        status, api::object(cereal::make_nvp("error", api::Error{code, message, {}, {}, 0})),
        detail::kJson, version, keep_alive);
}

}  // namespace dkim::web

#pragma once
// What every answer of the REST API is made of: the security headers, JSON bodies, and errors
// as values (ApiError: an HTTP status and {"error": {"code", "message", "field", "rule",
// "request_id"}}), from a bad body field or from one of signerd's refusals.

#include <optional>
#include <string>
#include <string_view>

#include "api_json.hpp"
#include "dkim/expected.hpp"
#include "dkim/ipc/protocol.hpp"
#include "handlers.hpp"
#include "json_body.hpp"

namespace dkim::web::detail {

// Every response: no caching of API answers, no sniffing, no framing, no referrers, and a
// Content-Security-Policy that allows only this origin's own script and style files (the
// console has no inline script or style, and loads nothing from anywhere else).
void secure_headers(Response& r);

Response make_response(http::status status, std::string body, std::string_view content_type,
                       unsigned version, bool keep_alive);

inline constexpr std::string_view kJson = "application/json; charset=utf-8";

Response json_response(http::status status, std::string body, const Request& req);

// 201 Created, with a Location header when `location` is given.
Response created(const Request& req, std::string body, const std::string& location = {});

struct ApiError {
    http::status status = http::status::bad_request;
    api::Error error;
};

ApiError failure(http::status status, std::string code, std::string message,
                 std::string field = {});

Response render(const ApiError& e, const Request& req);

template <class T>
using Result = Expected<T, ApiError>;

// A refused body field: invalid_body (the body itself) or invalid_field naming the field.
ApiError from_field(const FieldError& e);

// The first of a body's fields (JsonBody's answers, in the order given) that was refused, as
// from_field says it, or nothing when every one was read.
template <class... Fields>
std::optional<ApiError> first_refused(const Fields&... fields) {
    std::optional<ApiError> refused;
    auto check = [&refused](const auto& field) {
        if (!refused && !field) {
            refused = from_field(field.error());
        }
    };
    (check(fields), ...);
    return refused;
}

// signerd's refusal codes (jit::Refusal, ipc::ErrorReply) as HTTP statuses.
ApiError from_signerd(const ipc::ErrorReply& e);

}  // namespace dkim::web::detail

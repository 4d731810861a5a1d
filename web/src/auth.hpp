#pragma once
// Who asks, and whether the request may be asked at all: the Bearer token or the session cookie
// with its CSRF token, the origin and the content type of state-changing requests, and the
// session cookie itself.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "context.hpp"
#include "response.hpp"

namespace dkim::web::detail {

// A header's value, or empty.
std::string_view header(const Request& req, http::field f);

// The value of cookie `name` in the Cookie header(s), or empty.
std::string cookie(const Request& req, std::string_view name);

// Anything but GET and HEAD.
bool changes_state(http::verb method);

// Who is asking. Bearer tokens are for automation (no CSRF: a browser never attaches them by
// itself); a session cookie must come with its session's CSRF token on every state-changing
// request, and the request must come from this origin.
Result<Caller> authenticate(Context& ctx);

// A request that changes state must say it sends JSON (a cross-site form cannot), or for a route
// that takes a file's bytes, one of the file types upload_content_type() names (none of which a
// cross-site form can send either); and a browser's Origin, when sent, must be this server.
std::optional<ApiError> check_request_shape(const Request& req, bool bytes_body = false);

// The Set-Cookie value of the session cookie (an empty token and 0 end it).
std::string session_cookie(const std::string& token, std::int64_t max_age);

}  // namespace dkim::web::detail

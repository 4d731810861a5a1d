#include "auth.hpp"

#include "dkim/base/wipe.hpp"
#include "endpoints.hpp"

namespace dkim::web::detail {

std::string_view header(const Request& req, http::field f) {
    const auto it = req.find(f);
    return it == req.end() ? std::string_view() : std::string_view(it->value());
}

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
            base::wipe(caller.token);
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

std::optional<ApiError> check_request_shape(const Request& req, bool bytes_body) {
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
    if (bytes_body) {
        if (!upload_content_type(header(req, http::field::content_type))) {
            return failure(http::status::unsupported_media_type, "unsupported_media_type",
                           "send the file's bytes as the body, with Content-Type "
                           "application/octet-stream (or the file's own type, such as "
                           "application/gzip, application/zip, text/xml or message/rfc822)");
        }
        return std::nullopt;
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

std::string session_cookie(const std::string& token, std::int64_t max_age) {
    // __Host-: Secure, Path=/ and no Domain, so that no other host can set or read it.
    return std::string(kSessionCookie) + "=" + token +
           "; Path=/; Secure; HttpOnly; SameSite=Strict" + "; Max-Age=" + std::to_string(max_age);
}

}  // namespace dkim::web::detail

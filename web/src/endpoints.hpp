#pragma once
// The handlers the route table (handlers.cpp) runs, by subject and file. Each is pure: it reads
// the request in `ctx`, asks signerd through ctx.call, and answers a response or an ApiError.

#include <string>
#include <string_view>

#include "api_json.hpp"
#include "context.hpp"
#include "response.hpp"

namespace dkim::web::detail {

// session_handlers.cpp: the console's login, logout and who-am-I.
Result<Response> login(Context& ctx);
Result<Response> logout(Context& ctx, Caller& caller);
Result<Response> me(Context& ctx, Caller& caller);

// elevation_handlers.cpp: elevation requests, their decisions, and grants.
Result<Response> request_elevation(Context& ctx, Caller& caller);
Result<Response> list_elevations(Context& ctx, Caller& caller);
Result<Response> get_elevation(Context& ctx, Caller& caller);
// action: "approve", "deny", "revoke", "cancel"
Result<Response> decide(Context& ctx, Caller& caller, const std::string& action);
Result<Response> list_grants(Context& ctx, Caller& caller);
// The request `id` with its grant, as the caller may see it (404 when there is none).
Result<api::Elevation> find_elevation(Context& ctx, Caller& caller, std::int64_t id);

// passkey_handlers.cpp, and the passkey login in session_handlers.cpp: WebAuthn ceremonies
// whose bytes signerd checks.
Result<Response> passkey_login_challenge(Context& ctx);
Result<Response> passkey_login(Context& ctx);
Result<Response> passkey_challenge(Context& ctx, Caller& caller);
Result<Response> list_passkeys(Context& ctx, Caller& caller);
Result<Response> register_passkey(Context& ctx, Caller& caller);
Result<Response> rename_passkey(Context& ctx, Caller& caller);
Result<Response> remove_passkey(Context& ctx, Caller& caller);

// pin_handlers.cpp: PIN custody's status, envelope keys and custodians' shares (sealed end to
// end to signerd: webd forwards what it cannot open).
Result<Response> pin_status(Context& ctx, Caller& caller);
Result<Response> cluster_status(Context& ctx, Caller& caller);
Result<Response> pin_key(Context& ctx, Caller& caller);
Result<Response> submit_pin_share(Context& ctx, Caller& caller);

// key_handlers.cpp: the token's keys and the DNS records a domain should publish.
Result<Response> list_keys(Context& ctx, Caller& caller);
Result<Response> generate_key(Context& ctx, Caller& caller);
Result<Response> domain_dns(Context& ctx, Caller& caller);

// audit_handlers.cpp: the audit log and its verification.
Result<Response> audit(Context& ctx, Caller& caller);
Result<Response> audit_verify(Context& ctx, Caller& caller);

// user_handlers.cpp: users and API tokens.
Result<Response> list_users(Context& ctx, Caller& caller);
Result<Response> create_api_token(Context& ctx, Caller& caller);

// report_handlers.cpp: DMARC and TLS reports from dkim-reportd (auditor, admin; uploads: admin).
Result<Response> reports_dashboard(Context& ctx, Caller& caller);
Result<Response> reports_findings(Context& ctx, Caller& caller);
Result<Response> reports_list(Context& ctx, Caller& caller);
Result<Response> reports_upload(Context& ctx, Caller& caller);
// The Content-Types a report upload's body may have (the file's bytes, not JSON).
bool upload_content_type(std::string_view type);

// service_handlers.cpp: health, metrics and the OpenAPI document.
Result<Response> healthz(Context& ctx);
Result<Response> metrics(Context& ctx);
Result<Response> openapi(Context& ctx, Caller& caller);

}  // namespace dkim::web::detail

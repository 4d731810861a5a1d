#pragma once
// REST API v1 and the console's files as one pure function: handle(request) -> response,
// with no sockets (server.cpp moves bytes; tests call handle() directly with a fake signerd
// and a ManualClock).
//
// Authentication: a browser session cookie (__Host-dkim_session, the signerd session token,
// HttpOnly, Secure, SameSite=Strict) plus its CSRF token in X-CSRF-Token on every POST and
// DELETE; or "Authorization: Bearer <API token>" for automation (no cookie, no CSRF). webd
// checks neither credential itself beyond its session table: signerd verifies every token,
// password and TOTP code on every request.

#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <vector>

#include "dkim/clock.hpp"
#include "metrics.hpp"
#include "reports_api.hpp"
#include "sessions.hpp"
#include "signer_api.hpp"

namespace dkim::dmarc {
class PublicSuffixList;
}

namespace dkim::web {

class ReverseDns;

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

enum class MetricsAccess : std::uint8_t { off, public_, authenticated, auditor };

struct DnsAdvice {
    std::vector<std::string> outbound_addresses;  // "192.0.2.25", "2001:db8::25", "10.0.0.0/24"
    std::string dmarc_rua;                        // "mailto:dmarc-reports@example.com" or ""
    std::string dmarc_ruf;                        // "mailto:dmarc-failures@example.com" or ""
    std::string tlsrpt_rua;                       // "mailto:tls-reports@example.com" or ""
    // Which report domains are outside a domain's organizational domain (RFC 7489 §7.1);
    // without it, dns::is_external_report_domain's rule.
    std::shared_ptr<const dmarc::PublicSuffixList> psl;
};

struct HandlerOptions {
    std::int64_t session_ttl_seconds = 8 * 3600;
    MetricsAccess metrics = MetricsAccess::auditor;
    DnsAdvice dns;
    std::size_t body_limit = 64 * 1024;
};

struct Deps {
    SignerApi& signer;
    SessionTable& sessions;
    LoginLimiter& limiter;
    const Clock& clock;
    WebMetrics& metrics;
    const HandlerOptions& options;
    // dkim-reportd, or nullptr when webd.toml names no [reports] socket (the reports API then
    // answers 503 reports_not_configured).
    ReportsApi* reports = nullptr;
    // Names the sources of the reports API (forward-confirmed reverse DNS), or nullptr
    // ([reports] reverse_dns = false, or no reports): their reverse_dns stays null.
    ReverseDns* reverse_dns = nullptr;
};

struct ClientInfo {
    std::string address;  // the peer's IP address (for the login limiter)
};

Response handle(const Request& request, const ClientInfo& client, Deps& deps);

// A JSON error response with the headers every response carries.
Response error_response(http::status status, const std::string& code, const std::string& message,
                        unsigned version = 11, bool keep_alive = false);

// Every route, for the OpenAPI document check: "GET /api/v1/elevations/{id}".
std::vector<std::string> route_table();

inline constexpr const char* kSessionCookie = "__Host-dkim_session";

}  // namespace dkim::web

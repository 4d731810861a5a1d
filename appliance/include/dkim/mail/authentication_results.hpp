#pragma once
// Authentication-Results (RFC 8601): result values and the header field that carries them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dkim::mail {

// RFC 8601 §2.7.1 (DKIM) result vocabulary, shared by SPF and DMARC results.
enum class AuthResult : std::uint8_t { none, pass, fail, policy, neutral, temperror, permerror };

std::string_view to_string(AuthResult r);

struct AuthProperty {
    std::string name;  // ptype.property, e.g. "header.d"
    std::string value;
};

struct MethodResult {
    std::string method;  // "dkim", "spf", "dmarc"
    AuthResult result = AuthResult::none;
    std::string reason;  // free text, rendered as reason="..."
    std::vector<AuthProperty> properties;
};

// The whole field, "Authentication-Results: authserv-id;" and one method result per folded
// line, ending in CRLF. With no results: "authserv-id; none" (RFC 8601 §2.2 no-result).
std::string render_authentication_results(std::string_view authserv_id,
                                          const std::vector<MethodResult>& results);

// RFC 2045 token, or a quoted-string with '"' and '\' escaped.
std::string quote_if_needed(std::string_view value);

}  // namespace dkim::mail

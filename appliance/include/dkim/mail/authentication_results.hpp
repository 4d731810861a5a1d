#pragma once
// Authentication-Results (RFC 8601): result values and the header field that carries them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/mail/header.hpp"

namespace dkim::mail {

// RFC 8601 §2.7 result vocabulary for DKIM, SPF (which adds softfail) and DMARC.
enum class AuthResult : std::uint8_t {
    none,
    pass,
    fail,
    policy,
    neutral,
    temperror,
    permerror,
    softfail
};

std::string_view to_string(AuthResult r);

struct AuthProperty {
    std::string name;  // ptype.property, e.g. "header.d"
    std::string value;
};

struct MethodResult {
    std::string method;  // "dkim", "spf", "dmarc"
    AuthResult result = AuthResult::none;
    std::string reason;   // free text, rendered as reason="..."
    std::string comment;  // rendered as a comment after the result: "(p=reject dis=none)"
    std::vector<AuthProperty> properties;
};

// The whole field, "Authentication-Results: authserv-id;" and one method result per folded
// line, ending in CRLF. With no results: "authserv-id; none" (RFC 8601 §2.2 no-result).
std::string render_authentication_results(std::string_view authserv_id,
                                          const std::vector<MethodResult>& results);

// RFC 2045 token, or a quoted-string with '"' and '\' escaped.
std::string quote_if_needed(std::string_view value);

// The authserv-id an Authentication-Results value claims (RFC 8601 §2.2): the first token or
// quoted-string after any comments and folding, lowercased, without a trailing dot; nullopt
// when there is none.
std::optional<std::string> authserv_id_of(std::string_view value);

// RFC 8601 §5: the header section without the Authentication-Results fields that claim
// `authserv_id` (forged results must never reach the mailbox); `removed` counts them.
std::string strip_authentication_results(const HeaderBlock& header, std::string_view authserv_id,
                                         std::size_t& removed);

}  // namespace dkim::mail

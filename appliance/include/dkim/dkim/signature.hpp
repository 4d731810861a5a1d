#pragma once
// The DKIM-Signature header field (RFC 6376 §3.5): parsed and checked for a verifier,
// rendered (folded to readable lines) for a signer.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dkim/canonicalization.hpp"
#include "dkim/dns/name.hpp"  // is_valid_domain, is_valid_selector: d= and s= syntax
#include "dkim/expected.hpp"

namespace dkim {

enum class SigningAlgorithm : std::uint8_t {
    rsa_sha256,
    ed25519_sha256,  // RFC 8463
    rsa_sha1,        // parsed so it can be named; RFC 8301: never valid
};

// t= and x= values: seconds since the epoch.
inline std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string_view to_string(SigningAlgorithm a);
std::optional<SigningAlgorithm> parse_signing_algorithm(std::string_view a_tag);

inline constexpr std::string_view kSignatureFieldName = "DKIM-Signature";

struct Signature {
    SigningAlgorithm algorithm = SigningAlgorithm::rsa_sha256;
    std::string signature;       // b=, decoded
    std::string signature_text;  // b= as written, without FWS (for header.b=)
    std::string body_hash;       // bh=, decoded
    Canonicalization canonicalization;
    std::string domain;                        // d=, lowercased
    std::vector<std::string> signed_headers;   // h=, as written
    std::string identity;                      // i=; "@" + d= when absent
    std::optional<std::uint64_t> body_length;  // l=
    std::string selector;                      // s=, lowercased
    std::optional<std::int64_t> timestamp;     // t=
    std::optional<std::int64_t> expiration;    // x=
};

struct SignatureError {
    enum class Kind : std::uint8_t {
        syntax,        // malformed: RFC 8601 "neutral"
        unacceptable,  // well-formed but not verifiable by the rules: "permerror"
    };
    Kind kind = Kind::syntax;
    std::string message;
};

// Parses the value of a DKIM-Signature field (raw or unfolded) and applies the checks of
// RFC 6376 §6.1.1 that need no DNS: required tags, v=1, known a= and c=, q=dns/txt, From
// in h=, i= within d=, t= before x=.
Expected<Signature, SignatureError> parse_signature(std::string_view value);

// What a signer puts in a new signature; the b= value comes later.
struct SignatureTemplate {
    SigningAlgorithm algorithm = SigningAlgorithm::rsa_sha256;
    Canonicalization canonicalization{Canon::relaxed, Canon::relaxed};
    std::string domain;
    std::string selector;
    std::optional<std::string> identity;  // i=, when not just "@d"
    std::vector<std::string> signed_headers;
    std::string body_hash;  // raw digest
    std::optional<std::uint64_t> body_length;
    std::int64_t timestamp = 0;
    std::optional<std::int64_t> expiration;
};

// The whole field "DKIM-Signature: v=1; a=...; ...; b=" folded at 78 columns with CRLF + TAB,
// b= last and empty: the form that is canonicalized and signed (RFC 6376 §3.7).
std::string render_signature_field(const SignatureTemplate& t);
// Appends the base64 signature to the rendered field, folded, and the final CRLF.
std::string complete_signature_field(std::string rendered, std::string_view signature);

}  // namespace dkim

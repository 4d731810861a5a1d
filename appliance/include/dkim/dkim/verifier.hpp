#pragma once
// DKIM verification (RFC 6376 §6, RFC 8301, RFC 8463) of every DKIM-Signature on a message,
// with results in RFC 8601 vocabulary. The body is fed in chunks; keys come from a
// KeyFetcher (DNS through the Resolver interface, cached); `now` is a parameter.
//
// Result mapping:
//   pass       the signature verified
//   fail       body hash or signature did not verify, or the body is shorter than l=
//   neutral    the DKIM-Signature field is malformed (RFC 8601: "contained syntax errors")
//   policy     well-formed but refused by local rules: x= expired, t= in the future, l=
//              when refused, signatures beyond max_signatures
//   permerror  unrecoverable: no key, bad or revoked key, rsa-sha1 or an RSA key under 1024
//              bits (RFC 8301), v/a/c/q unsupported, From not signed, i= outside d=
//   temperror  DNS failed; a later attempt may succeed
//   none       the message has no DKIM-Signature

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dkim/body_hash.hpp"
#include "dkim/dkim/key_fetcher.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/mail/authentication_results.hpp"
#include "dkim/mail/header.hpp"

namespace dkim {

struct VerifyOptions {
    std::size_t max_signatures = 8;            // more are reported as policy, not evaluated
    bool allow_body_length = true;             // false: signatures with l= are policy
    std::chrono::seconds max_clock_skew{300};  // t= this far in the future is still accepted
    unsigned min_rsa_bits = 1024;              // RFC 8301 §3.2
    unsigned max_rsa_bits = 8192;              // bigger keys only cost CPU
};

struct SignatureVerdict {
    mail::AuthResult result = mail::AuthResult::none;
    std::string reason;
    std::string domain;            // d=
    std::string selector;          // s=
    std::string identity;          // i= (or "@d")
    std::string algorithm;         // a= as written
    std::string signature_prefix;  // the first characters of b=, for header.b
    bool key_testing = false;      // the key record has t=y
    unsigned key_bits = 0;
};

class MessageVerifier {
  public:
    explicit MessageVerifier(KeyFetcher& keys, VerifyOptions options = {});
    ~MessageVerifier();
    MessageVerifier(const MessageVerifier&) = delete;
    MessageVerifier& operator=(const MessageVerifier&) = delete;

    // The header section: finds and parses the DKIM-Signature fields (top first) and sets up
    // one body hash per distinct body canonicalization and l=.
    void start(mail::HeaderBlock header);
    void update_body(std::string_view chunk);
    // One verdict per DKIM-Signature field, top first; a single "none" verdict when there is
    // none.
    std::vector<SignatureVerdict> finish(std::chrono::system_clock::time_point now);

  private:
    struct Candidate;
    struct BodyHash;

    SignatureVerdict check(Candidate& c, std::chrono::system_clock::time_point now);

    KeyFetcher& keys_;
    VerifyOptions options_;
    mail::HeaderBlock header_;
    std::vector<Candidate> candidates_;
    std::vector<std::unique_ptr<BodyHash>> body_hashes_;
    std::string scratch_;
};

// The whole message in memory (CRLF wire form). An error only when the header section
// cannot be parsed.
Expected<std::vector<SignatureVerdict>, mail::HeaderError> verify_message(
    std::string_view message, KeyFetcher& keys, std::chrono::system_clock::time_point now,
    const VerifyOptions& options = {});

// Verdicts as "dkim=" method results for an Authentication-Results field.
std::vector<mail::MethodResult> to_method_results(const std::vector<SignatureVerdict>& verdicts);

}  // namespace dkim

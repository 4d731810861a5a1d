#pragma once
// What dkim-signerd agrees to sign. A relay client sends the canonicalized header block that
// ends in its DKIM-Signature field with an empty b= (RFC 6376 §3.7); the relay is outside
// signerd's trust, so the block is read here as hostile input, and a signature is made only
// for a block that fits the signing profile:
//
// - structure: CRLF line ends only (no bare CR or LF), header fields with valid names, the
//   DKIM-Signature field last without its CRLF, b= its last tag and empty;
// - the field: it parses (v=1, a=, c=, d=, s=, h=, bh= valid; i= within d=), no l= (a body
//   length would let anyone append to the body), a= the key's algorithm;
// - time: t= within `max_clock_skew` of signerd's clock, x= present and no later than
//   t= + `max_lifetime` (a signature outlives its grant by at most that: it cannot be
//   revoked once made);
// - fields: h= lists every `oversigned` field once more than the block contains it, so that
//   no such field can be added after signing (RFC 6376 §8.15); the block holds exactly one
//   From; no other DKIM-Signature field is signed or listed;
// - order: the block is exactly the fields that h= selects by RFC 6376 §5.4.2 (each name
//   takes the last instance not taken yet; a name with none left adds nothing), in h= order:
//   a verifier that rebuilds the block from a message gets these bytes or none at all.
//
// Under c=relaxed/... the block must already be in relaxed form (a verifier can only ever
// produce that form). The field splitter here agrees with mail::HeaderBlock and the verifier's
// canonicalize_signed_headers() on every block it accepts; tests/fuzz/fuzz_signing_profile.cpp
// checks exactly that.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dkim/signature.hpp"
#include "dkim/expected.hpp"

namespace dkim {

struct SigningProfile {
    // Fields that must be oversigned (compared ASCII case-insensitively).
    std::vector<std::string> oversigned = default_profile_oversigned();
    std::chrono::seconds max_clock_skew = std::chrono::minutes(5);
    // Seven days: RFC 5321 §4.5.4.1 retries for 4-5 days (Postfix's maximal_queue_lifetime
    // and Sendmail's queue timeout are 5d, Exim's 4d), and a forwarder or mailing list that
    // re-verifies on the way must still see a valid signature after the first hop's queue.
    std::chrono::seconds max_lifetime = std::chrono::hours(24 * 7);

    static std::vector<std::string> default_profile_oversigned() {
        return {"from", "to", "cc", "subject", "date", "message-id", "reply-to"};
    }
};

// The rule a refused block broke; its name goes in the refusal, the audit log and metrics.
enum class ProfileRule : std::uint8_t {
    structure,        // not a header block ending in a DKIM-Signature field
    b_tag,            // b= missing, not empty, not last, or twice
    syntax,           // the DKIM-Signature field does not parse as a valid signature
    canonical_form,   // c=relaxed, but a field is not in relaxed form
    body_length,      // l= present
    algorithm,        // a= is not the key's algorithm
    timestamp,        // t= missing or too far from signerd's clock
    expiration,       // x= missing or later than t= + max_lifetime
    oversigning,      // a profile field not listed once more than the block holds it
    from,             // not exactly one From field
    signature_field,  // another DKIM-Signature field signed or listed in h=
    field_order,      // the block is not what h= selects
    count_
};
std::string_view to_string(ProfileRule rule);

struct ProfileViolation {
    ProfileRule rule = ProfileRule::structure;
    std::string message;
    // "signing profile: <rule>: <message>"
    std::string to_string() const;
};

// One header field of the block, as the block holds it.
struct BlockField {
    std::string_view name;  // as written, without white space before the colon
    std::string_view raw;   // the whole field, its CRLF included
};

// A block split into its fields and parsed, before any profile rule but the structural ones.
struct SigningBlock {
    std::vector<BlockField> fields;    // the signed fields, in block order
    std::string_view signature_field;  // the DKIM-Signature field, without CRLF, b= empty
    Signature signature;               // parsed, b= decoded as a placeholder
};

// Structure, b= and syntax only: what signerd checks of a key import's test block.
Expected<SigningBlock, ProfileViolation> parse_signing_block(std::string_view data);

// Everything: the block fits `profile` at `now` (Unix seconds) for a key of `algorithm`.
Expected<SigningBlock, ProfileViolation> check_signing_block(std::string_view data,
                                                             const SigningProfile& profile,
                                                             SigningAlgorithm algorithm,
                                                             std::int64_t now);

}  // namespace dkim

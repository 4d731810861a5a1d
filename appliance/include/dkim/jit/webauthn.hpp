#pragma once
// WebAuthn (W3C Web Authentication Level 2) as signerd checks it: registrations (attestation
// "none") and assertions, from the raw bytes the browser produced, passed through dkim-webd
// unchanged. The parsers (CBOR attestation object, authenticator data, COSE public keys,
// clientDataJSON) read untrusted bytes and are fuzzed (tests/fuzz/fuzz_webauthn.cpp); the
// assertion signature is verified by libfido2 (fido_assert_verify over the raw authenticator data
// and the SHA-256 of clientDataJSON), and everything libfido2 leaves to its caller is checked
// here: clientDataJSON's type, challenge and origin, the rpId hash, the UP and UV flags, the
// signature counter, and which credential signed.
//
// Nothing here keeps state: the caller (signerd's Directory) holds the credentials and their
// counters, and the challenges (ChallengeBook below, in memory, each usable once).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::jit::webauthn {

// COSE algorithm identifiers (RFC 9053 / RFC 8152): ES256 = -7 (P-256, SHA-256), EdDSA = -8
// (Ed25519 only), RS256 = -257 (RSASSA-PKCS1-v1_5, SHA-256, 2048 bits or more).
enum class Algorithm : std::uint8_t { es256, ed25519, rs256 };
std::string_view to_string(Algorithm a) noexcept;    // "ES256", "Ed25519", "RS256"
std::int64_t cose_identifier(Algorithm a) noexcept;  // -7, -8, -257

// A credential public key as COSE_Key (RFC 9052 §7), parsed. The raw key material:
//   es256:   x and y, 32 bytes each (kty 2, crv 1)
//   ed25519: x, 32 bytes (kty 1 OKP, crv 6)
//   rs256:   n (the modulus, 256 bytes or more) and e (kty 3)
struct CoseKey {
    Algorithm algorithm = Algorithm::es256;
    std::string x;  // es256, ed25519: x; rs256: n
    std::string y;  // es256: y; rs256: e; ed25519: empty
};
// Reads one COSE_Key from the start of `cbor`; *consumed (when given) is how many bytes it took.
// Refuses a key of another type or algorithm, a point not on the curve, a short RSA modulus,
// duplicate map keys, indefinite lengths, and nesting deeper than a few levels.
Expected<CoseKey, std::string> parse_cose_key(std::string_view cbor,
                                              std::size_t* consumed = nullptr);

// Authenticator data (WebAuthn §6.1): rpIdHash, flags, signCount, then the attested credential
// data when flag AT is set, then CBOR extensions when flag ED is set; nothing may follow.
struct AttestedCredential {
    std::array<std::uint8_t, 16> aaguid{};
    std::string credential_id;  // 1 to 1023 bytes
    std::string public_key;     // the COSE_Key bytes as the authenticator wrote them
    CoseKey key;                // and parsed
};
struct AuthenticatorData {
    std::array<std::uint8_t, 32> rp_id_hash{};
    std::uint8_t flags = 0;
    std::uint32_t sign_count = 0;
    std::optional<AttestedCredential> attested;
    bool has_extensions = false;

    static constexpr std::uint8_t kUserPresent = 0x01;
    static constexpr std::uint8_t kUserVerified = 0x04;
    static constexpr std::uint8_t kBackupEligible = 0x08;
    static constexpr std::uint8_t kBackedUp = 0x10;
    static constexpr std::uint8_t kAttested = 0x40;
    static constexpr std::uint8_t kExtensions = 0x80;
    bool user_present() const { return (flags & kUserPresent) != 0; }
    bool user_verified() const { return (flags & kUserVerified) != 0; }
    bool backup_eligible() const { return (flags & kBackupEligible) != 0; }
    bool backed_up() const { return (flags & kBackedUp) != 0; }
};
Expected<AuthenticatorData, std::string> parse_authenticator_data(std::string_view bytes);

// The attestation object (WebAuthn §6.5): a CBOR map of "fmt", "attStmt" and "authData".
struct AttestationObject {
    std::string format;        // "none", "packed", ...
    std::string auth_data;     // the raw authenticator data bytes
    AuthenticatorData parsed;  // of auth_data; attested is always set
    std::string statement;     // attStmt as CBOR bytes ("\xa0", the empty map, for "none")
};
Expected<AttestationObject, std::string> parse_attestation_object(std::string_view cbor);

// CollectedClientData (WebAuthn §5.8.1), from clientDataJSON (UTF-8 JSON, an object).
struct ClientData {
    std::string type;       // "webauthn.create" or "webauthn.get"
    std::string challenge;  // decoded from its base64url (no padding) text
    std::string origin;
    bool cross_origin = false;
    std::optional<std::string> top_origin;
};
Expected<ClientData, std::string> parse_client_data(std::string_view json);

// Who the relying party is: its rpId (a domain, "localhost" included) and the origins its pages
// are served from ("https://appliance.example.com:8443"), compared exactly.
struct RelyingParty {
    std::string id;
    std::vector<std::string> origins;
};

// Why a registration or assertion was refused. `reason` is one word an API client and a test can
// switch on; `message` says it in words. Neither ever holds the bytes checked.
struct Failure {
    enum class Reason : std::uint8_t {
        malformed,      // a parser refused the bytes
        type,           // clientDataJSON.type is not the one expected
        challenge,      // clientDataJSON.challenge is not the one issued
        origin,         // clientDataJSON.origin is not configured, or crossOrigin is true
        rp_id,          // the rpIdHash is not SHA-256 of the rpId
        user_present,   // flag UP missing
        user_verified,  // flag UV missing where required
        algorithm,      // a key algorithm not accepted
        attestation,    // a format other than "none" (or a "none" with a statement)
        credential,     // the assertion's credential is not the one expected
        counter,        // the signature counter did not grow
        signature,      // the signature does not verify
    };
    Reason reason = Reason::malformed;
    std::string message;
};
std::string_view to_string(Failure::Reason r) noexcept;  // "malformed", "type", ...

// A verified registration: what the directory stores.
struct Registration {
    std::string credential_id;
    std::string public_key;  // COSE_Key bytes
    Algorithm algorithm = Algorithm::es256;
    std::uint32_t sign_count = 0;
    std::array<std::uint8_t, 16> aaguid{};
    bool user_verified = false;
    bool backup_eligible = false;
};
// WebAuthn §7.1 steps 5-26 for attestation "none": type "webauthn.create", the challenge equal
// to `challenge`, the origin one of rp.origins and not cross-origin, rpIdHash = SHA-256(rp.id),
// UP set, UV set when `require_user_verification`, attested credential data present, the key's
// algorithm in `algorithms`, the format "none" with an empty statement.
Expected<Registration, Failure> verify_registration(const RelyingParty& rp,
                                                    std::string_view client_data_json,
                                                    std::string_view attestation_object,
                                                    std::string_view challenge,
                                                    bool require_user_verification,
                                                    const std::vector<Algorithm>& algorithms);

// A stored credential, as an assertion is checked against it.
struct StoredCredential {
    std::string credential_id;
    std::string public_key;  // COSE_Key bytes, as Registration had them
    std::uint32_t sign_count = 0;
};
struct Assertion {
    std::string credential_id;  // the browser's rawId
    std::string client_data_json;
    std::string authenticator_data;
    std::string signature;
    std::string user_handle;  // may be empty
};
struct Verified {
    std::uint32_t sign_count = 0;  // the new counter to store
    bool user_verified = false;
    bool backed_up = false;
};
// WebAuthn §7.2 steps 5-21: the credential id equal to the stored one; type "webauthn.get"; the
// challenge equal to `challenge`; the origin one of rp.origins and not cross-origin; rpIdHash;
// UP set; UV set when required; the signature verified by libfido2 (fido_assert_verify, with
// es256_pk / eddsa_pk / rs256_pk from the stored key) over authenticatorData || SHA-256(
// clientDataJSON); the counter: when the new or the stored counter is non-zero the new one must
// be greater than the stored one (a counter that goes back or stands still is refused: a cloned
// authenticator), both zero is accepted (synced passkeys always send zero).
Expected<Verified, Failure> verify_assertion(const RelyingParty& rp,
                                             const StoredCredential& credential,
                                             const Assertion& assertion, std::string_view challenge,
                                             bool require_user_verification);

// base64url without padding (RFC 4648 §5), as WebAuthn's JSON uses it.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace dkim::jit::webauthn

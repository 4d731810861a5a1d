#pragma once
// Credential primitives, all verified inside signerd: Argon2id password hashes (libsodium),
// random 256-bit API tokens stored as SHA-256 hashes, TOTP (RFC 6238: HMAC-SHA-1, 30-second
// steps, 6 digits). Comparisons of secret-derived values are constant-time.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dkim::jit {

struct PasswordCost {
    unsigned long long ops = 2;        // crypto_pwhash_OPSLIMIT_INTERACTIVE
    std::size_t memory = 64ULL << 20;  // crypto_pwhash_MEMLIMIT_INTERACTIVE, 64 MiB
    static PasswordCost minimal();     // for tests only: the smallest Argon2id allows
};
// "interactive" (64 MiB), "moderate" (256 MiB) or "minimal-for-tests".
std::optional<PasswordCost> parse_password_cost(std::string_view name);

// libsodium's encoded "$argon2id$v=19$m=...,t=...,p=1$salt$hash", or none when out of memory.
std::optional<std::string> hash_password(std::string_view password, const PasswordCost& cost);
bool verify_password(const std::string& encoded, std::string_view password);

// "dkt_" + 43 base64url characters (256 random bits).
std::string random_token();
// SHA-256 of the token, raw bytes: what the store keeps.
std::string token_hash(std::string_view token);

// 20 random bytes (RFC 4226 §4 recommends 160 bits).
std::string random_totp_secret();
std::string base32_encode(std::string_view bytes);  // RFC 4648, no padding
// Upper or lower case, padding optional; none for a character outside the alphabet.
std::optional<std::string> base32_decode(std::string_view text);
// The code for a time step (RFC 6238: T = floor(unix seconds / 30)).
std::uint32_t totp_code(std::string_view secret, std::int64_t step);
std::int64_t totp_step(std::int64_t unix_seconds);
// The step in [step - window, step + window] whose code is `code`, or none. `code` must be
// six ASCII digits.
std::optional<std::int64_t> totp_match(std::string_view secret, std::string_view code,
                                       std::int64_t step, int window = 1);
// otpauth://totp/<issuer>:<user>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
std::string totp_uri(std::string_view issuer, std::string_view user, std::string_view secret);

}  // namespace dkim::jit

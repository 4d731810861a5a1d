#pragma once
// The token PIN split M of N among named custodians: Shamir's secret sharing over GF(256)
// (Debian's libgfshare, its random coefficients from OpenSSL's CSPRNG, never random(3)).
//
// What is split is not the bare PIN, which has little entropy, but a padded secret:
//   one byte of PIN length, the PIN, then random bytes up to a multiple of 16 with at least 32
//   of them.
// gfshare splits byte by byte, so without the padding a commitment to one share plus M-1 other
// shares would let anyone test PIN guesses offline; with 32 unknown random bytes in every share
// they cannot.
//
// A share's text is what a custodian writes down or pastes:
//   "dkimpin1-<set id>-<index>-<threshold>-<data>-<check>"
// set id: 8 lower-case hex digits naming one split; index: 1..255 (gfshare's x coordinate);
// threshold: M; data: the share's bytes in lower-case base32 (RFC 4648 alphabet, no padding),
// in groups of 4 separated by '-' for reading aloud; check: the first 4 bytes of SHA-256 of
// everything before it (the canonical text), 8 lower-case hex digits. gfshare has no checksum of
// its own: a mistyped share is caught here, by the custodian's own tools, before it reaches
// signerd. Parsing ignores case, whitespace and the grouping dashes in data.
//
// signerd keeps a commitment to each share (share_commitment) with the custodian's name, never
// the share: a share that parses but is not the one the custodian was given (a different split,
// an altered share) is caught, and named by custodian and index, before it is combined.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"

namespace dkim::custody {

struct Share {
    std::string set_id;  // 8 lower-case hex digits
    std::uint8_t index = 0;
    std::uint8_t threshold = 0;
    hsm::Secret data;  // the share's bytes
};

inline constexpr std::size_t max_pin_size = 255;
inline constexpr unsigned max_shares = 255;

// A new set id: 8 hex digits from the CSPRNG.
std::string new_share_set_id();

// Splits `pin` (1..max_pin_size bytes) into `count` shares, any `threshold` of which rebuild it;
// 2 <= threshold <= count <= max_shares. Indexes are 1..count.
Expected<std::vector<Share>, std::string> split_pin(const hsm::Secret& pin, unsigned threshold,
                                                    unsigned count, const std::string& set_id);

// The PIN from at least `threshold` shares of one set, with distinct indexes (more than
// threshold are fine; duplicates are an error). Errors name indexes, never bytes.
Expected<hsm::Secret, std::string> combine_pin(const std::vector<const Share*>& shares);

// The text form above; the result holds the share, so it is a Secret too.
hsm::Secret format_share(const Share& share);
// Strict (bounded length, alphabet, set id, index >= 1, 2 <= threshold, index within 255, check
// digits). A wrong check says "the share's check digits do not match: it was mistyped or
// altered" and nothing of its content.
Expected<Share, std::string> parse_share(std::string_view text);

// SHA-256("dkim-appliance share commitment v1\n" || set id || '\n' || index || threshold ||
// data), lower-case hex.
std::string share_commitment(const Share& share);

// A share file encrypted to its custodian's passphrase (for `pin split --out`):
// JSON {"format":"dkim-appliance share file v1","custodian":...,"set":...,"index":...,
// "kdf":"scrypt","n":...,"r":8,"p":1,"salt":b64,"iv":b64,"ciphertext":b64}, AES-256-GCM with
// the custodian, set and index as associated data. The passphrase's key is scrypt's
// (N = 2^17 by default; tests may pass less).
Expected<std::string, std::string> encrypt_share_file(const Share& share,
                                                      std::string_view custodian,
                                                      const hsm::Secret& passphrase,
                                                      std::uint64_t scrypt_n = 1U << 17U);
// A wrong passphrase and a damaged file are the same error: "the passphrase does not open it".
struct ShareFile {
    std::string custodian;
    Share share;
};
Expected<ShareFile, std::string> decrypt_share_file(std::string_view json,
                                                    const hsm::Secret& passphrase);

}  // namespace dkim::custody

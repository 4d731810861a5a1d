#pragma once
// End-to-end encryption of a token PIN or a PIN share from the person who holds it (a browser
// with WebCrypto, or the CLI) to dkim-signerd, through dkim-webd, which forwards bytes it cannot
// read.
//
// signerd makes a short-lived X25519 key pair for one purpose (an approval of one request, or a
// share for one unlock) and signs an offer of its public key with its identity key (Ed25519,
// kept in signerd's state folder, which webd cannot read), so that a sender who knows the
// identity key's fingerprint can tell signerd's key from one webd made up. The sender makes its
// own ephemeral X25519 key pair and seals:
//
//   shared = X25519(ephemeral private, recipient public)
//   key    = HKDF-SHA256(ikm = shared, salt = ephemeral public || recipient public,
//                        info = "dkim-appliance pin envelope v1", 32 bytes)
//   box    = AES-256-GCM(key, iv = 12 random bytes, aad = associated data, plaintext)
//
// which WebCrypto does with deriveBits (X25519), importKey (HKDF) and deriveKey (AES-GCM). The
// associated data names what the plaintext is for (envelope_associated_data): an envelope made
// for one request cannot be replayed for another, nor a share for an approval.
//
// The text form is "v1." then base64url (no padding) of the ephemeral public key (32 bytes), the
// iv (12) and the ciphertext with its 16-byte tag, separated by '.'.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"

namespace dkim::custody {

using PublicKey = std::array<unsigned char, 32>;

struct Envelope {
    PublicKey ephemeral{};
    std::array<unsigned char, 12> iv{};
    std::vector<unsigned char> ciphertext;  // with the 16-byte GCM tag at its end
};

// At most this many bytes of text (a PIN or a share of at most hsm::Secret::max_size bytes).
inline constexpr std::size_t max_envelope_text = 4096;

// Strict: "v1.", three base64url fields without padding, exact lengths, a ciphertext of at least
// the tag and at most hsm::Secret::max_size + 16 bytes. Errors never quote the input.
Expected<Envelope, std::string> parse_envelope(std::string_view text);
std::string format_envelope(const Envelope& envelope);

// "dkim-appliance pin envelope v1\npurpose=<purpose>\nsubject=<subject>\nkey=<key id>\n":
// purpose "approve" with the request id as subject, or "share" with the unlock's share set id.
std::string envelope_associated_data(std::string_view purpose, std::string_view subject,
                                     std::string_view key_id);

// A recipient's X25519 key pair; the private half is a Secret (wiped when destroyed).
struct RecipientKey {
    PublicKey public_key{};
    hsm::Secret private_key;  // 32 bytes
};
Expected<RecipientKey, std::string> generate_recipient_key();

// The sender's side (the CLI, tests): a fresh ephemeral key and iv per call.
Expected<Envelope, std::string> seal(std::span<const unsigned char> plaintext,
                                     const PublicKey& recipient, std::string_view associated_data);
// The same with the ephemeral private key and iv given: for fixed test vectors only.
Expected<Envelope, std::string> seal_with(std::span<const unsigned char> plaintext,
                                          const PublicKey& recipient,
                                          std::string_view associated_data,
                                          std::span<const unsigned char, 32> ephemeral_private,
                                          std::span<const unsigned char, 12> iv);

// The recipient's side. Any failure (a low-order point, a wrong key, a changed byte, other
// associated data) is the one error "the envelope does not open", which says nothing more.
Expected<hsm::Secret, std::string> open(const Envelope& envelope, const RecipientKey& recipient,
                                        std::string_view associated_data);

// signerd's identity key: Ed25519, in a PEM file of mode 0600 that only its owner reads.
class IdentityKey {
  public:
    // Reads `path`, or makes a new key and writes it there (0600, atomically) when it does not
    // exist. Refuses a file that others may read, naming the path.
    static Expected<IdentityKey, std::string> load_or_create(const std::string& path);
    static Expected<IdentityKey, std::string> generate();  // tests

    IdentityKey(IdentityKey&&) noexcept;
    IdentityKey& operator=(IdentityKey&&) noexcept;
    IdentityKey(const IdentityKey&) = delete;
    IdentityKey& operator=(const IdentityKey&) = delete;
    ~IdentityKey();

    const PublicKey& public_key() const { return public_key_; }
    // "SHA256:" then base64 (no padding) of SHA-256 of the raw public key, as ssh-keygen -l.
    std::string fingerprint() const;
    std::array<unsigned char, 64> sign(std::span<const unsigned char> message) const;

  private:
    IdentityKey() = default;
    void* key_ = nullptr;  // EVP_PKEY*
    PublicKey public_key_{};
};

std::string fingerprint(const PublicKey& identity);
bool verify_identity_signature(const PublicKey& identity, std::span<const unsigned char> message,
                               std::span<const unsigned char> signature);

// What signerd signs about a recipient key it offers:
// "dkim-appliance pin envelope key v1\npurpose=<p>\nsubject=<s>\nuser=<u>\nkey=<key id>\n
// public=<base64url public>\nexpires=<unix ms>\n".
std::string key_offer_statement(std::string_view purpose, std::string_view subject,
                                std::string_view user, std::string_view key_id,
                                const PublicKey& public_key, std::int64_t expires_unix_ms);

}  // namespace dkim::custody

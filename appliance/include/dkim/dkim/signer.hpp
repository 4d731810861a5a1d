#pragma once
// DKIM signing (RFC 6376 §5, RFC 8463): one or more signatures on one message (dual RSA +
// Ed25519 under two selectors), the body fed in chunks, the private-key operation behind the
// Signer interface (the token through signerd in production, never a key in this process).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dkim/body_hash.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/expected.hpp"
#include "dkim/mail/header.hpp"

namespace dkim {

class Signer {
  public:
    virtual ~Signer() = default;
    virtual SigningAlgorithm algorithm() const = 0;
    // Signs `data`, the canonicalized header fields followed by the DKIM-Signature field with
    // an empty b= (RFC 6376 §3.7). rsa-sha256: RSASSA-PKCS1-v1_5 with SHA-256 over `data`;
    // ed25519-sha256: PureEdDSA over SHA-256(`data`) (RFC 8463 §3). Returns the raw
    // signature, or a reason that is safe to show (never a secret).
    virtual Expected<std::string, std::string> sign(std::string_view data) = 0;
};

struct SigningKey {
    std::string domain;                   // d=
    std::string selector;                 // s=
    Signer* signer = nullptr;             // not owned
    std::optional<std::string> identity;  // i=, when it should say more than "@d"
};

// Header fields signed when present (RFC 6376 §5.4.1 recommendations): From, To, Cc,
// Subject, Date, Message-ID, Reply-To, In-Reply-To, References, MIME-Version, Content-Type,
// Content-Transfer-Encoding, and every List-* field.
const std::vector<std::string>& default_signed_headers();
// Oversigned: listed once more than they occur (also when absent), so that a copy added in
// transit breaks the signature (RFC 6376 §8.15).
const std::vector<std::string>& default_oversigned_headers();

struct SignOptions {
    Canonicalization canonicalization{Canon::relaxed, Canon::relaxed};
    std::vector<std::string> headers = default_signed_headers();  // "List-*" is a prefix match
    std::vector<std::string> oversigned = default_oversigned_headers();
    std::optional<std::chrono::seconds> expire_after;  // x= = t= + this
};

struct SignError {
    std::string message;
};

class MessageSigner {
  public:
    MessageSigner(std::vector<SigningKey> keys, SignOptions options = {});

    void update_body(std::string_view chunk) { body_.update(chunk); }

    // Builds and signs one DKIM-Signature field per key, in key order. Returns the fields
    // (each ending in CRLF) to put on top of the message. Refuses a message without exactly
    // one From field (RFC 5322 §3.6 requires one; two would let a display client show the
    // one that was not verified).
    Expected<std::string, SignError> finish(const mail::HeaderBlock& header,
                                            std::chrono::system_clock::time_point now);

  private:
    std::vector<SigningKey> keys_;
    SignOptions options_;
    BodyHasher body_;
};

// h= for `header`: every configured name that is present, as many times as it occurs, plus
// one more for the oversigned names.
std::vector<std::string> select_signed_headers(const mail::HeaderBlock& header,
                                               const SignOptions& options);

// The data a Signer signs for `tmpl` on `header`: canonicalized fields selected by h=
// (RFC 6376 §5.4.2), then the rendered DKIM-Signature field with b= empty and no CRLF.
std::string signing_input(const mail::HeaderBlock& header, const SignatureTemplate& tmpl,
                          std::string_view rendered_field);

// The whole message in memory; returns the message with the new fields on top.
Expected<std::string, SignError> sign_message(std::string_view message,
                                              std::vector<SigningKey> keys,
                                              std::chrono::system_clock::time_point now,
                                              const SignOptions& options = {});

}  // namespace dkim

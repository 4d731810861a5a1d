#pragma once
// Concurrent signing: one PKCS#11 session per in-flight operation, never shared between
// threads. A session that comes back CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED or
// CKR_DEVICE_REMOVED is dropped and reopened, the token logged in again and the key looked
// up again, and the operation retried once.

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "dkim/hsm/error.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/token.hpp"

namespace dkim::hsm {

class SigningPool {
  public:
    struct Options {
        std::size_t max_sessions = 32;  // callers beyond this wait for a free session
    };

    explicit SigningPool(std::shared_ptr<Token> token);
    SigningPool(std::shared_ptr<Token> token, Options options);
    SigningPool(const SigningPool&) = delete;
    SigningPool& operator=(const SigningPool&) = delete;
    ~SigningPool();

    // The DKIM signature over `data` (the canonicalized header block):
    //  - RSA: CKM_SHA256_RSA_PKCS over data (RFC 6376 §3.3.1, rsa-sha256), or CKM_RSA_PKCS over
    //    the DigestInfo of SHA-256(data) on a token without it (Token::rsa_signing_mechanism);
    //  - Ed25519: CKM_EDDSA over SHA-256(data) (RFC 8463 §3, paraphrased: the message hash
    //    is computed with SHA-256 and that 32-byte hash is signed with PureEdDSA Ed25519).
    // Fails with ErrorCode::locked while the token is not logged in.
    Result<std::vector<unsigned char>> sign(const KeyInfo& key,
                                            std::span<const unsigned char> data);

    std::size_t open_sessions() const;

    struct State;  // opaque: sessions, waiters and the key handle cache

  private:
    std::shared_ptr<Token> token_;
    Options options_;
    std::unique_ptr<State> state_;
};

}  // namespace dkim::hsm

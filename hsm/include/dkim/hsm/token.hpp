#pragma once
// A token in a slot, and the application's login state on it.
//
// PKCS#11 login is per application and token, not per session: C_Logout on any session
// logs out all of them, and closing the last session logs out too. So login is not a
// property of a session here but an explicit object, Login, whose lifetime is the time the
// token is unlocked (for dkim-signerd: the time at least one grant is active). A Login
// keeps one "anchor" session open so that closing pool sessions cannot log the token out.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "dkim/hsm/error.hpp"
#include "dkim/hsm/module.hpp"
#include "dkim/hsm/secret.hpp"

namespace dkim::hsm {

class Login;
class SigningPool;
class KeyStore;

class Token {
  public:
    static Result<std::shared_ptr<Token>> open(std::shared_ptr<Module> module,
                                               const TokenSelector& selector);

    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ~Token();

    const std::shared_ptr<Module>& module() const noexcept { return module_; }
    unsigned long slot_id() const noexcept { return slot_id_; }
    const std::string& label() const noexcept { return label_; }
    // "token 'dkim'": the prefix of this token's error messages.
    std::string name() const;
    // The mechanism rsa-sha256 is signed with on this token, asked once at open:
    // CKM_SHA256_RSA_PKCS where the token has it for signing, else CKM_RSA_PKCS over the DER
    // DigestInfo of a SHA-256 hash computed here (RFC 8017 §9.2, the same signature bytes);
    // openCryptoki 3.8.1's software token has only the latter.
    unsigned long rsa_signing_mechanism() const noexcept { return rsa_mechanism_; }

    // Our view of the login state (a Login object is alive and the token accepted the PIN).
    bool logged_in() const;
    // Incremented at every successful login: key handles found before are stale after it.
    std::uint64_t login_epoch() const;

    // C_CloseAllSessions: ends every session of this application on the token, which also
    // logs it out. Used by the enforcement point to drop everything at once; it fails
    // closed: signing stays locked until the Login is released and a new one acquired.
    Result<void> close_all_sessions();

  private:
    friend class Login;
    friend class SigningPool;
    friend class KeyStore;
    struct State;

    Token(std::shared_ptr<Module> module, unsigned long slot_id, std::string label,
          unsigned long rsa_mechanism);

    // Called after the pool saw a lost session at login epoch `seen_epoch`: makes sure the
    // token is logged in again (re-login with the kept PIN), once per loss, whichever
    // thread gets here first. Never retries a PIN that the token rejected.
    Result<void> recover_login(std::uint64_t seen_epoch);

    std::shared_ptr<Module> module_;
    unsigned long slot_id_ = 0;
    std::string label_;
    unsigned long rsa_mechanism_;
    std::unique_ptr<State> state_;
};

class Login {
  public:
    enum class Relogin {
        // Keep a copy of the PIN (wiped on release) so that a session lost behind our
        // back (device reset, C_CloseAllSessions) is recovered by logging in again.
        allowed,
        // Use the PIN once and wipe it; a lost login stays lost until a new acquire.
        forbidden,
    };

    // C_Login as the normal user (CKR_USER_ALREADY_LOGGED_IN counts as success). A wrong
    // PIN fails with ErrorCode::pin_incorrect and is never tried again by this layer.
    static Result<Login> acquire(std::shared_ptr<Token> token, Secret pin,
                                 Relogin relogin = Relogin::allowed);

    Login(Login&& other) noexcept;
    Login& operator=(Login&& other) noexcept;
    Login(const Login&) = delete;
    Login& operator=(const Login&) = delete;
    // Releases (C_Logout) if still held; never throws.
    ~Login();

    // C_Logout and close the anchor session; wipes the kept PIN. Idempotent.
    Result<void> release();
    bool held() const noexcept { return token_ != nullptr; }

  private:
    explicit Login(std::shared_ptr<Token> token) noexcept : token_(std::move(token)) {}
    std::shared_ptr<Token> token_;
};

}  // namespace dkim::hsm

#include "dkim/hsm/token.hpp"

#include <utility>

#include "token_state.hpp"

namespace dkim::hsm {
namespace {

// C_Login as the normal user. CKR_USER_ALREADY_LOGGED_IN counts as success: login is per
// application, and another part of this process may have logged in already.
Result<void> login_user(const detail::Session& session, const Secret& pin,
                        const std::string& token_name) {
    // A token one wrong PIN away from locking (openCryptoki: the third in a row) is not given a
    // PIN that may be that one: locked, only its security officer can open it again. A login
    // with the token's own tool resets the count.
    auto info = detail::token_info(*session.module(), session.slot());
    if (info && (info->flags & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_FINAL_TRY)) != 0) {
        const bool locked = (info->flags & CKF_USER_PIN_LOCKED) != 0;
        return dkim::unexpected(Error{
            ErrorCode::pin_locked,
            token_name +
                (locked ? ": the user PIN is locked after too many wrong PINs; the security "
                          "officer must unlock it"
                        : ": one more wrong PIN would lock the token (CKF_USER_PIN_FINAL_TRY), so "
                          "no PIN is tried; log in once with the right PIN with the token's own "
                          "tool (pkcs11-tool --login --test), or have the security officer set "
                          "a new one"),
            "C_GetTokenInfo", locked ? CKR_PIN_LOCKED : 0});
    }
    auto ok = session.login(CKU_USER, pin, token_name);
    if (!ok && ok.error().rv == CKR_USER_ALREADY_LOGGED_IN) {
        return {};
    }
    return ok;
}

}  // namespace

Token::Token(std::shared_ptr<Module> module, unsigned long slot_id, std::string label,
             unsigned long rsa_mechanism)
    : module_(std::move(module)),
      slot_id_(slot_id),
      label_(std::move(label)),
      rsa_mechanism_(rsa_mechanism),
      state_(std::make_unique<State>()) {}

Token::~Token() = default;

Result<std::shared_ptr<Token>> Token::open(std::shared_ptr<Module> module,
                                           const TokenSelector& selector) {
    auto slot = module->find_token(selector);
    if (!slot) {
        return dkim::unexpected(std::move(slot).error());
    }
    // A token that cannot say (an error) keeps CKM_SHA256_RSA_PKCS: C_SignInit then names
    // what is wrong when a signature is asked for.
    CK_MECHANISM_TYPE rsa = CKM_SHA256_RSA_PKCS;
    auto hashes_itself = detail::has_mechanism(*module, slot->slot_id, rsa, CKF_SIGN);
    if (hashes_itself && !*hashes_itself) {
        auto pads_only = detail::has_mechanism(*module, slot->slot_id, CKM_RSA_PKCS, CKF_SIGN);
        if (pads_only && *pads_only) {
            rsa = CKM_RSA_PKCS;
        }
    }
    return std::shared_ptr<Token>(new Token(std::move(module), slot->slot_id, slot->label, rsa));
}

std::string Token::name() const {
    return "token '" + label_ + "'";
}

bool Token::logged_in() const {
    return state_->epoch.load(std::memory_order_acquire) != 0;
}

std::uint64_t Token::login_epoch() const {
    return state_->epoch.load(std::memory_order_acquire);
}

Result<void> Token::close_all_sessions() {
    if (auto ok = module_->check_not_forked(); !ok) {
        return ok;
    }
    auto login = state_->login.lock();
    // Signing stops first; then every session goes, which logs the token out. This is a
    // deliberate logout, so it fails closed: the kept PIN is wiped and nothing logs in again
    // by itself (the Login object stays held but dead until it is released).
    state_->epoch.store(0, std::memory_order_release);
    login->relogin_pin.reset();
    auto closed = detail::close_all_sessions(*module_, slot_id_, name());
    if (login->anchor) {
        login->anchor->forget();  // closed by the call above
        login->anchor.reset();
    }
    return closed;
}

Result<void> Token::recover_login(std::uint64_t seen_epoch) {
    auto login = state_->login.lock();
    if (!login->held) {
        return dkim::unexpected(
            Error{ErrorCode::locked, name() + " is not logged in", "", CKR_USER_NOT_LOGGED_IN});
    }
    const std::uint64_t current = state_->epoch.load(std::memory_order_acquire);
    if (current != 0 && current != seen_epoch) {
        return {};  // another thread already logged in again after this loss
    }
    if (login->anchor) {
        auto logged_in = login->anchor->user_logged_in();
        if (logged_in && *logged_in) {
            // Only the caller's session was lost; the login itself survived. Handles found
            // under the current epoch stay valid.
            if (current == 0) {
                state_->epoch.store(++login->last_epoch, std::memory_order_release);
            }
            return {};
        }
        if (!logged_in && logged_in.error().code == ErrorCode::session_lost) {
            login->anchor->forget();
        }
        login->anchor.reset();
    }
    state_->epoch.store(0, std::memory_order_release);
    if (!login->relogin_pin) {
        return dkim::unexpected(Error{ErrorCode::locked,
                                      name() +
                                          " was logged out behind our back (its sessions were "
                                          "closed) and this login may not log in again by itself",
                                      "", CKR_USER_NOT_LOGGED_IN});
    }
    auto anchor = detail::Session::open(module_, slot_id_, false);
    if (!anchor) {
        return dkim::unexpected(std::move(anchor).error());
    }
    if (auto ok = login_user(*anchor, *login->relogin_pin, name()); !ok) {
        if (ok.error().code == ErrorCode::pin_incorrect ||
            ok.error().code == ErrorCode::pin_locked) {
            // The PIN worked before and no longer does: never try it again.
            login->relogin_pin.reset();
        }
        return ok;
    }
    login->anchor = std::move(*anchor);
    state_->epoch.store(++login->last_epoch, std::memory_order_release);
    return {};
}

// --- Login ----------------------------------------------------------------------------

Result<Login> Login::acquire(std::shared_ptr<Token> token, Secret pin, Relogin relogin) {
    auto& state = *token->state_;
    auto login = state.login.lock();
    if (login->held) {
        return dkim::unexpected(Error{ErrorCode::invalid_argument,
                                      token->name() + " is already logged in by a Login object "
                                                      "of this process; release it first",
                                      "", 0});
    }
    auto anchor = detail::Session::open(token->module_, token->slot_id_, false);
    if (!anchor) {
        return dkim::unexpected(std::move(anchor).error());
    }
    if (auto ok = login_user(*anchor, pin, token->name()); !ok) {
        return dkim::unexpected(std::move(ok).error());  // `pin` is wiped on return
    }
    login->anchor = std::move(*anchor);
    if (relogin == Relogin::allowed) {
        login->relogin_pin = std::move(pin);
    }
    login->held = true;
    state.epoch.store(++login->last_epoch, std::memory_order_release);
    return Login(std::move(token));
}

Login::Login(Login&& other) noexcept : token_(std::move(other.token_)) {}

Login& Login::operator=(Login&& other) noexcept {
    if (this != &other) {
        (void)release();
        token_ = std::move(other.token_);
    }
    return *this;
}

Login::~Login() {
    (void)release();
}

Result<void> Login::release() {
    if (!token_) {
        return {};
    }
    const auto token = std::exchange(token_, nullptr);
    auto& state = *token->state_;
    auto login = state.login.lock();
    state.epoch.store(0, std::memory_order_release);  // signing stops before we log out
    login->held = false;
    login->relogin_pin.reset();
    if (token->module_->forked()) {
        login->anchor.reset();
        return {};
    }
    if (login->anchor) {
        auto logged_out = login->anchor->logout();
        if (logged_out || logged_out.error().rv == CKR_USER_NOT_LOGGED_IN) {
            login->anchor.reset();
            return {};
        }
    }
    // The anchor is gone or the token misbehaved: fail closed by ending every session of
    // this application on the token, which logs it out as well.
    if (login->anchor) {
        login->anchor->forget();
        login->anchor.reset();
    }
    auto closed = detail::close_all_sessions(*token->module_, token->slot_id_,
                                             token->name() + ": logout failed");
    if (closed || detail::is_session_lost(closed.error().rv)) {
        return {};
    }
    return closed;
}

}  // namespace dkim::hsm

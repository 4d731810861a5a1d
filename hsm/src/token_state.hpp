#pragma once
// Internal: the login state of a Token, shared by Token, Login and SigningPool.

#include <atomic>
#include <cstdint>
#include <optional>

#include "dkim/hsm/secret.hpp"
#include "dkim/hsm/token.hpp"
#include "dkim/lock_guarded.hpp"
#include "pkcs11.hpp"

namespace dkim::hsm {

struct Token::State {
    // Non-zero exactly while we believe the token is logged in; a new value at every login,
    // so that key handles cached under an older value are known to be stale. Read without
    // the lock on the signing fast path; written only while `login` is locked.
    std::atomic<std::uint64_t> epoch{0};

    struct LoginState {
        std::uint64_t last_epoch = 0;  // the counter epoch values are drawn from
        bool held = false;             // a Login object is alive
        std::optional<detail::Session> anchor;
        std::optional<Secret> relogin_pin;  // only with Login::Relogin::allowed; wiped on release
    };
    LockGuarded<LoginState> login;
};

}  // namespace dkim::hsm

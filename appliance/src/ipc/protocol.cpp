#include "dkim/ipc/protocol.hpp"

#include "dkim/base/wipe.hpp"

namespace dkim::ipc {

void Credentials::wipe() noexcept {
    for (std::string* s : {&password, &token, &totp}) {
        base::wipe(*s);
    }
}

void wipe_secrets(Request& request) {
    std::visit(
        [](auto& r) {
            if constexpr (requires { r.auth; }) {
                r.auth.wipe();
            }
            if constexpr (requires { r.password; }) {
                base::wipe(r.password);  // UserAdd: the new user's
            }
            if constexpr (requires { r.pin; }) {
                base::wipe(r.pin);  // ElevationDecide
            }
            if constexpr (requires { r.code; }) {
                base::wipe(r.code);  // TotpConfirm
            }
            if constexpr (requires { r.private_key; }) {
                base::wipe(r.private_key);  // KeyImport
            }
        },
        request);
}

}  // namespace dkim::ipc

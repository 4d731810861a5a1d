#include "dkim/ipc/protocol.hpp"

#include <type_traits>
#include <utility>

#include "dkim/base/wipe.hpp"

namespace dkim::ipc {

namespace {
constexpr std::pair<ErrorCode, std::string_view> kErrorCodeNames[] = {
    {ErrorCode::invalid, "invalid"},         {ErrorCode::forbidden, "forbidden"},
    {ErrorCode::not_found, "not_found"},     {ErrorCode::conflict, "conflict"},
    {ErrorCode::unavailable, "unavailable"}, {ErrorCode::unauthenticated, "unauthenticated"},
    {ErrorCode::locked, "locked"},           {ErrorCode::protocol, "protocol"},
    {ErrorCode::unknown, "unknown"},
};
}  // namespace

std::string_view to_string(ErrorCode code) {
    for (const auto& [c, name] : kErrorCodeNames) {
        if (c == code) {
            return name;
        }
    }
    return "unknown";
}

ErrorCode error_code_from_name(std::string_view name) {
    for (const auto& [c, n] : kErrorCodeNames) {
        if (n == name) {
            return c;
        }
    }
    return ErrorCode::unknown;
}

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
            if constexpr (std::is_same_v<decltype(r), PinSplit&>) {
                base::wipe(r.pin);  // PinSplit (ElevationDecide's is an envelope)
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

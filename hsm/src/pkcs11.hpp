#pragma once
// Internal to dkim_hsm: the one place that includes pkcs11.h. Nothing here is installed
// or visible to other libraries.

#include <p11-kit/pkcs11.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/hsm/error.hpp"
#include "dkim/hsm/module.hpp"

namespace dkim::hsm::detail {

// The single gate for CK_RV values: CKR_OK gives success, anything else a typed Error
// naming the call. `context` is prepended to the message ("token 'dkim': ").
Result<void> check_rv(CK_RV rv, std::string_view function, std::string_view context = {});
Error make_error(CK_RV rv, std::string_view function, std::string_view context = {});

// True for the return values after which the session is gone and must be reopened.
bool is_session_lost(CK_RV rv) noexcept;

// Fixed-width, blank-padded PKCS#11 strings (CK_UTF8CHAR[32]) to std::string.
std::string from_padded(const unsigned char* data, std::size_t size);
template <std::size_t N>
std::string from_padded(const unsigned char (&field)[N]) {
    return from_padded(field, N);
}

struct ModuleAccess {
    static const CK_FUNCTION_LIST& functions(const Module& module) noexcept {
        return *static_cast<const CK_FUNCTION_LIST*>(module.functions_);
    }
};
inline const CK_FUNCTION_LIST& functions(const Module& module) noexcept {
    return ModuleAccess::functions(module);
}

// An open PKCS#11 session. Owns the handle: not copyable, closed on destruction, and the
// destructor never throws and never touches the token in a forked child. Login state is
// NOT owned here (see Login): closing a session never calls C_Logout.
class Session {
  public:
    static Result<Session> open(std::shared_ptr<Module> module, CK_SLOT_ID slot, bool read_write);

    Session(Session&& other) noexcept;
    Session& operator=(Session&& other) noexcept;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session();

    CK_SESSION_HANDLE handle() const noexcept { return handle_; }
    CK_SLOT_ID slot() const noexcept { return slot_; }
    const CK_FUNCTION_LIST& fn() const noexcept { return *fn_; }
    const std::shared_ptr<Module>& module() const noexcept { return module_; }

    // The token reported this handle gone: do not call C_CloseSession on it later.
    void forget() noexcept { handle_ = CK_INVALID_HANDLE; }
    void close() noexcept;

    Result<CK_STATE> state() const;
    // True when the token says this application is logged in as the user.
    Result<bool> user_logged_in() const;

    Result<std::vector<CK_OBJECT_HANDLE>> find_objects(std::span<CK_ATTRIBUTE> match,
                                                       std::size_t max_count = 64) const;
    // An attribute's value; CKR_ATTRIBUTE_SENSITIVE and friends come back as errors.
    Result<std::vector<unsigned char>> attribute(CK_OBJECT_HANDLE object,
                                                 CK_ATTRIBUTE_TYPE type) const;
    Result<CK_ULONG> attribute_ulong(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const;
    Result<bool> attribute_bool(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const;

  private:
    Session(std::shared_ptr<Module> module, CK_SLOT_ID slot, CK_SESSION_HANDLE handle) noexcept;

    std::shared_ptr<Module> module_;
    const CK_FUNCTION_LIST* fn_ = nullptr;
    CK_SLOT_ID slot_ = 0;
    CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
};

// Helpers for building templates without casts at every call site.
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, CK_BBOOL& value) {
    return {type, &value, sizeof value};
}
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, CK_ULONG& value) {
    return {type, &value, sizeof value};
}
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, std::span<const unsigned char> value) {
    return {type, const_cast<unsigned char*>(value.data()), value.size()};  // NOLINT: C API
}
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, std::string_view value) {
    return {type, const_cast<char*>(value.data()), value.size()};  // NOLINT: C API
}

}  // namespace dkim::hsm::detail

#pragma once
// Internal to dkim_hsm: the one place that includes pkcs11.h, and the only code that calls the
// C API (Botan's LowLevel): the module calls below and detail::Session. Everything else in hsm/
// calls these, every CK_RV passes through check_rv/make_error, and no result is dropped without
// a reason written beside it (tests/lint/pkcs11-calls keeps `fn.C_` out of every other file).
// Nothing here is installed or visible to other libraries.

#include <p11-kit/pkcs11.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/hsm/error.hpp"
#include "dkim/hsm/module.hpp"
#include "dkim/hsm/secret.hpp"

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

// --- calls on the module and its slots ---------------------------------------------------------
// `context` starts the message of an error ("module /usr/lib/x.so could not be loaded").

// dlsym("C_GetFunctionList") on a dlopen()ed module and the call: a v2.x function list.
// `path` names the module in errors.
Result<const CK_FUNCTION_LIST*> function_list(void* dl_handle, const std::string& path);
// C_Initialize with the OS's locking (the module is called from many threads). True when this
// call initialised the module; false when other code of the process already had
// (CKR_CRYPTOKI_ALREADY_INITIALIZED), which then owns C_Finalize.
Result<bool> initialize(const CK_FUNCTION_LIST& fn, std::string_view context);
// C_Finalize, from the last user's destructor: nothing is left to do when it fails.
void finalize(const CK_FUNCTION_LIST& fn) noexcept;

Result<CK_INFO> library_info(const Module& module);              // C_GetInfo
Result<std::vector<CK_SLOT_ID>> slot_ids(const Module& module);  // C_GetSlotList
Result<CK_SLOT_INFO> slot_info(const Module& module, CK_SLOT_ID slot);
Result<CK_TOKEN_INFO> token_info(const Module& module, CK_SLOT_ID slot);
// C_GetMechanismInfo: true when the slot's token has `mechanism` with all of `flags` (CKF_SIGN);
// false when it does not know the mechanism (CKR_MECHANISM_INVALID) or lacks a flag.
Result<bool> has_mechanism(const Module& module, CK_SLOT_ID slot, CK_MECHANISM_TYPE mechanism,
                           CK_FLAGS flags);
// C_InitToken with the label blank-padded to CK_UTF8CHAR[32] (the caller checks its length).
Result<void> init_token(const Module& module, CK_SLOT_ID slot, const Secret& so_pin,
                        std::string_view label, std::string_view context);
// C_CloseAllSessions: every session of this application on the slot's token, and its login.
Result<void> close_all_sessions(const Module& module, CK_SLOT_ID slot, std::string_view context);

// An open PKCS#11 session. Owns the handle: not copyable, closed on destruction, and the
// destructor never throws and never touches the token in a forked child. Login state is
// NOT owned here (see Login): closing a session never calls C_Logout.
class Session {
  public:
    static Result<Session> open(std::shared_ptr<Module> module, CK_SLOT_ID slot, bool read_write,
                                std::string_view context = "cannot open a session");

    Session(Session&& other) noexcept;
    Session& operator=(Session&& other) noexcept;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session();

    CK_SESSION_HANDLE handle() const noexcept { return handle_; }
    CK_SLOT_ID slot() const noexcept { return slot_; }
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

    // C_Login. CKR_USER_ALREADY_LOGGED_IN is an error like any other here (its rv says so):
    // whether it counts as success is the caller's to say.
    Result<void> login(CK_USER_TYPE user, const Secret& pin, std::string_view context) const;
    // C_Logout: logs out every session of this application on the token.
    Result<void> logout(std::string_view context = {}) const;
    // C_InitPIN, in a session of the security officer.
    Result<void> init_pin(const Secret& user_pin, std::string_view context) const;

    struct KeyPair {
        CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
        CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
    };
    Result<KeyPair> generate_key_pair(CK_MECHANISM mechanism,
                                      std::span<CK_ATTRIBUTE> public_template,
                                      std::span<CK_ATTRIBUTE> private_template,
                                      std::string_view context) const;
    Result<CK_OBJECT_HANDLE> create_object(std::span<CK_ATTRIBUTE> object_template,
                                           std::string_view context) const;
    Result<void> destroy_object(CK_OBJECT_HANDLE object, std::string_view context) const;

    // C_SignInit and C_Sign (single part), growing the buffer when the token asks for more.
    // Errors carry no context: the pool words them once it knows whether it retries.
    Result<void> sign_init(CK_MECHANISM mechanism, CK_OBJECT_HANDLE key) const;
    Result<std::vector<unsigned char>> sign(std::span<const unsigned char> input) const;

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

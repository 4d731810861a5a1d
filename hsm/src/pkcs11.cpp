#include "pkcs11.hpp"

// LeakSanitizer's interface, in sanitizer builds only (see Session::sign_init).
#if defined(__SANITIZE_ADDRESS__)
#define DKIM_LEAK_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DKIM_LEAK_SANITIZER 1
#endif
#endif
#if defined(DKIM_LEAK_SANITIZER)
#include <sanitizer/lsan_interface.h>
#endif

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace dkim::hsm::detail {
namespace {

struct Mapping {
    ErrorCode code;
    std::string_view what;  // what a human should understand from this CK_RV
};

Mapping map_rv(CK_RV rv) {
    switch (rv) {
        case CKR_PIN_INCORRECT:
        case CKR_PIN_INVALID:
            return {ErrorCode::pin_incorrect,
                    "the token rejected the PIN; it is not retried, because tokens lock "
                    "after a few wrong PINs"};
        case CKR_PIN_EXPIRED:
            return {ErrorCode::pin_incorrect, "the user PIN has expired and must be changed"};
        case CKR_PIN_LEN_RANGE:
            return {ErrorCode::invalid_argument, "the PIN length is outside the token's range"};
        case CKR_PIN_LOCKED:
            return {ErrorCode::pin_locked,
                    "the user PIN is locked after too many wrong PINs; the security officer "
                    "must unlock it"};
        case CKR_USER_NOT_LOGGED_IN: return {ErrorCode::locked, "the token is not logged in"};
        case CKR_SESSION_HANDLE_INVALID:
        case CKR_SESSION_CLOSED: return {ErrorCode::session_lost, "the session was closed"};
        case CKR_DEVICE_REMOVED:
        case CKR_TOKEN_NOT_PRESENT:
        case CKR_TOKEN_NOT_RECOGNIZED: return {ErrorCode::session_lost, "the token is not present"};
        case CKR_KEY_FUNCTION_NOT_PERMITTED:
        case CKR_ATTRIBUTE_SENSITIVE:
        case CKR_KEY_UNEXTRACTABLE:
        case CKR_ACTION_PROHIBITED:
        case CKR_TOKEN_WRITE_PROTECTED:
            return {ErrorCode::not_permitted, "the token does not permit this operation"};
        case CKR_MECHANISM_INVALID:
        case CKR_MECHANISM_PARAM_INVALID:
        case CKR_CURVE_NOT_SUPPORTED:
        case CKR_FUNCTION_NOT_SUPPORTED:
        case CKR_KEY_SIZE_RANGE: return {ErrorCode::unsupported, "the token does not support this"};
        case CKR_CRYPTOKI_NOT_INITIALIZED:
            return {ErrorCode::module_load, "the PKCS#11 module is not initialised"};
        case CKR_ARGUMENTS_BAD:
        case CKR_ATTRIBUTE_TYPE_INVALID:
        case CKR_ATTRIBUTE_VALUE_INVALID:
        case CKR_TEMPLATE_INCOMPLETE:
        case CKR_TEMPLATE_INCONSISTENT:
        case CKR_DOMAIN_PARAMS_INVALID:
        case CKR_DATA_LEN_RANGE:
        case CKR_SLOT_ID_INVALID:
        case CKR_OBJECT_HANDLE_INVALID:
        case CKR_KEY_HANDLE_INVALID:
        case CKR_KEY_TYPE_INCONSISTENT:
            return {ErrorCode::invalid_argument, "the token refused the request"};
        default: return {ErrorCode::device, "the token failed"};
    }
}

}  // namespace

Error make_error(CK_RV rv, std::string_view function, std::string_view context) {
    const Mapping mapping = map_rv(rv);
    std::string message;
    if (!context.empty()) {
        message.append(context).append(": ");
    }
    message.append(mapping.what);
    return Error{mapping.code, std::move(message), std::string(function), rv};
}

Result<void> check_rv(CK_RV rv, std::string_view function, std::string_view context) {
    if (rv == CKR_OK) {
        return {};
    }
    return dkim::unexpected(make_error(rv, function, context));
}

bool is_session_lost(CK_RV rv) noexcept {
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT;
}

std::string from_padded(const unsigned char* data, std::size_t size) {
    while (size > 0 && (data[size - 1] == ' ' || data[size - 1] == '\0')) {
        --size;
    }
    return std::string(reinterpret_cast<const char*>(data), size);  // NOLINT: C API bytes
}

// --- the module and its slots -----------------------------------------------------------------

Result<const CK_FUNCTION_LIST*> function_list(void* dl_handle, const std::string& path) {
    auto* get_function_list =
        reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl_handle, "C_GetFunctionList"));  // NOLINT
    if (get_function_list == nullptr) {
        return dkim::unexpected(
            Error{ErrorCode::module_load,
                  "module " + path + " is not a PKCS#11 module: it has no C_GetFunctionList",
                  "dlsym", 0});
    }
    CK_FUNCTION_LIST_PTR functions = nullptr;
    if (const CK_RV rv = get_function_list(&functions); rv != CKR_OK || functions == nullptr) {
        return dkim::unexpected(make_error(rv == CKR_OK ? CKR_GENERAL_ERROR : rv,
                                           "C_GetFunctionList",
                                           "module " + path + " could not be loaded"));
    }
    if (functions->version.major != 2) {
        return dkim::unexpected(Error{ErrorCode::module_load,
                                      "module " + path + " speaks PKCS#11 " +
                                          std::to_string(functions->version.major) + "." +
                                          std::to_string(functions->version.minor) +
                                          "; this build needs a v2.x function list",
                                      "C_GetFunctionList", 0});
    }
    return functions;
}

Result<bool> initialize(const CK_FUNCTION_LIST& fn, std::string_view context) {
    CK_C_INITIALIZE_ARGS init_args{};
    init_args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = fn.C_Initialize(&init_args);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        return false;
    }
    if (auto ok = check_rv(rv, "C_Initialize", context); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return true;
}

void finalize(const CK_FUNCTION_LIST& fn) noexcept {
    // Called as the last user goes: a module that fails to finalise has nobody left to tell.
    (void)fn.C_Finalize(nullptr);
}

Result<CK_INFO> library_info(const Module& module) {
    CK_INFO info{};
    if (auto ok = check_rv(functions(module).C_GetInfo(&info), "C_GetInfo"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return info;
}

Result<std::vector<CK_SLOT_ID>> slot_ids(const Module& module) {
    const auto& fn = functions(module);
    CK_ULONG count = 0;
    if (auto ok = check_rv(fn.C_GetSlotList(CK_FALSE, nullptr, &count), "C_GetSlotList"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    std::vector<CK_SLOT_ID> ids(count);
    if (auto ok = check_rv(fn.C_GetSlotList(CK_FALSE, ids.data(), &count), "C_GetSlotList"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    ids.resize(count);
    return ids;
}

Result<CK_SLOT_INFO> slot_info(const Module& module, CK_SLOT_ID slot) {
    CK_SLOT_INFO info{};
    if (auto ok = check_rv(functions(module).C_GetSlotInfo(slot, &info), "C_GetSlotInfo"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return info;
}

Result<CK_TOKEN_INFO> token_info(const Module& module, CK_SLOT_ID slot) {
    CK_TOKEN_INFO info{};
    if (auto ok = check_rv(functions(module).C_GetTokenInfo(slot, &info), "C_GetTokenInfo"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return info;
}

Result<bool> has_mechanism(const Module& module, CK_SLOT_ID slot, CK_MECHANISM_TYPE mechanism,
                           CK_FLAGS flags) {
    CK_MECHANISM_INFO info{};
    const CK_RV rv = functions(module).C_GetMechanismInfo(slot, mechanism, &info);
    if (rv == CKR_MECHANISM_INVALID) {
        return false;
    }
    if (auto ok = check_rv(rv, "C_GetMechanismInfo"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return (info.flags & flags) == flags;
}

Result<void> init_token(const Module& module, CK_SLOT_ID slot, const Secret& so_pin,
                        std::string_view label, std::string_view context) {
    // CK_UTF8CHAR label[32], blank padded.
    std::array<unsigned char, 32> padded{};
    padded.fill(' ');
    std::memcpy(padded.data(), label.data(), std::min(label.size(), padded.size()));
    auto* so = const_cast<unsigned char*>(so_pin.bytes().data());  // NOLINT: C API, not written
    return check_rv(functions(module).C_InitToken(slot, so, so_pin.size(), padded.data()),
                    "C_InitToken", context);
}

Result<void> close_all_sessions(const Module& module, CK_SLOT_ID slot, std::string_view context) {
    return check_rv(functions(module).C_CloseAllSessions(slot), "C_CloseAllSessions", context);
}

// --- Session -------------------------------------------------------------------------

Session::Session(std::shared_ptr<Module> module, CK_SLOT_ID slot, CK_SESSION_HANDLE handle) noexcept
    : module_(std::move(module)), fn_(&functions(*module_)), slot_(slot), handle_(handle) {}

Result<Session> Session::open(std::shared_ptr<Module> module, CK_SLOT_ID slot, bool read_write,
                              std::string_view context) {
    if (auto ok = module->check_not_forked(); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    CK_FLAGS flags = CKF_SERIAL_SESSION;
    if (read_write) {
        flags |= CKF_RW_SESSION;
    }
    CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
    const CK_RV rv = functions(*module).C_OpenSession(slot, flags, nullptr, nullptr, &handle);
    if (rv != CKR_OK) {
        return dkim::unexpected(make_error(rv, "C_OpenSession", context));
    }
    return Session(std::move(module), slot, handle);
}

Session::Session(Session&& other) noexcept
    : module_(std::move(other.module_)),
      fn_(other.fn_),
      slot_(other.slot_),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)) {}

Session& Session::operator=(Session&& other) noexcept {
    if (this != &other) {
        close();
        module_ = std::move(other.module_);
        fn_ = other.fn_;
        slot_ = other.slot_;
        handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
    }
    return *this;
}

Session::~Session() {
    close();
}

void Session::close() noexcept {
    if (handle_ != CK_INVALID_HANDLE && module_ && !module_->forked()) {
        // The result is of no use here: a handle the token already dropped is just as closed.
        (void)fn_->C_CloseSession(handle_);
    }
    handle_ = CK_INVALID_HANDLE;
}

Result<CK_STATE> Session::state() const {
    if (auto ok = module_->check_not_forked(); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    CK_SESSION_INFO info{};
    if (auto ok = check_rv(fn_->C_GetSessionInfo(handle_, &info), "C_GetSessionInfo"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return info.state;
}

Result<bool> Session::user_logged_in() const {
    auto state = this->state();
    if (!state) {
        return dkim::unexpected(std::move(state).error());
    }
    return *state == CKS_RO_USER_FUNCTIONS || *state == CKS_RW_USER_FUNCTIONS;
}

Result<std::vector<CK_OBJECT_HANDLE>> Session::find_objects(std::span<CK_ATTRIBUTE> match,
                                                            std::size_t max_count) const {
    if (auto ok = module_->check_not_forked(); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    if (auto ok = check_rv(fn_->C_FindObjectsInit(handle_, match.data(), match.size()),
                           "C_FindObjectsInit");
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    std::vector<CK_OBJECT_HANDLE> found(max_count);
    CK_ULONG count = 0;
    const CK_RV find_rv = fn_->C_FindObjects(handle_, found.data(), found.size(), &count);
    // C_FindObjectsFinal must run whatever C_FindObjects said, or the session stays busy.
    const CK_RV final_rv = fn_->C_FindObjectsFinal(handle_);
    if (auto ok = check_rv(find_rv, "C_FindObjects"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    if (auto ok = check_rv(final_rv, "C_FindObjectsFinal"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    found.resize(std::min<std::size_t>(count, found.size()));
    return found;
}

Result<std::vector<unsigned char>> Session::attribute(CK_OBJECT_HANDLE object,
                                                      CK_ATTRIBUTE_TYPE type) const {
    if (auto ok = module_->check_not_forked(); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    CK_ATTRIBUTE query{type, nullptr, 0};
    if (auto ok =
            check_rv(fn_->C_GetAttributeValue(handle_, object, &query, 1), "C_GetAttributeValue");
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    if (query.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
        return dkim::unexpected(Error{ErrorCode::not_permitted, "attribute is unavailable",
                                      "C_GetAttributeValue", CKR_ATTRIBUTE_SENSITIVE});
    }
    std::vector<unsigned char> value(query.ulValueLen);
    query.pValue = value.data();
    if (auto ok =
            check_rv(fn_->C_GetAttributeValue(handle_, object, &query, 1), "C_GetAttributeValue");
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    value.resize(query.ulValueLen);
    return value;
}

Result<CK_ULONG> Session::attribute_ulong(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const {
    CK_ULONG value = 0;
    CK_ATTRIBUTE query = attr(type, value);
    if (auto ok =
            check_rv(fn_->C_GetAttributeValue(handle_, object, &query, 1), "C_GetAttributeValue");
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return value;
}

Result<bool> Session::attribute_bool(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const {
    CK_BBOOL value = CK_FALSE;
    CK_ATTRIBUTE query = attr(type, value);
    if (auto ok =
            check_rv(fn_->C_GetAttributeValue(handle_, object, &query, 1), "C_GetAttributeValue");
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return value == CK_TRUE;
}

Result<void> Session::login(CK_USER_TYPE user, const Secret& pin, std::string_view context) const {
    // The C API takes a non-const pointer but does not write through it.
    auto* pin_bytes = const_cast<unsigned char*>(pin.bytes().data());  // NOLINT
    return check_rv(fn_->C_Login(handle_, user, pin_bytes, pin.size()), "C_Login", context);
}

Result<void> Session::logout(std::string_view context) const {
    return check_rv(fn_->C_Logout(handle_), "C_Logout", context);
}

Result<void> Session::init_pin(const Secret& user_pin, std::string_view context) const {
    auto* pin_bytes = const_cast<unsigned char*>(user_pin.bytes().data());  // NOLINT: not written
    return check_rv(fn_->C_InitPIN(handle_, pin_bytes, user_pin.size()), "C_InitPIN", context);
}

Result<Session::KeyPair> Session::generate_key_pair(CK_MECHANISM mechanism,
                                                    std::span<CK_ATTRIBUTE> public_template,
                                                    std::span<CK_ATTRIBUTE> private_template,
                                                    std::string_view context) const {
    KeyPair pair;
    if (auto ok = check_rv(
            fn_->C_GenerateKeyPair(handle_, &mechanism, public_template.data(),
                                   public_template.size(), private_template.data(),
                                   private_template.size(), &pair.public_key, &pair.private_key),
            "C_GenerateKeyPair", context);
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return pair;
}

Result<CK_OBJECT_HANDLE> Session::create_object(std::span<CK_ATTRIBUTE> object_template,
                                                std::string_view context) const {
    CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
    if (auto ok = check_rv(
            fn_->C_CreateObject(handle_, object_template.data(), object_template.size(), &object),
            "C_CreateObject", context);
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return object;
}

Result<void> Session::destroy_object(CK_OBJECT_HANDLE object, std::string_view context) const {
    return check_rv(fn_->C_DestroyObject(handle_, object), "C_DestroyObject", context);
}

Result<void> Session::sign_init(CK_MECHANISM mechanism, CK_OBJECT_HANDLE key) const {
#if defined(DKIM_LEAK_SANITIZER)
    // SoftHSM2 2.6.1 leaks an ASN1_STRING (24 + 13 bytes) in every C_SignInit with an Ed25519
    // key, in its own OpenSSL key decoding. What the token allocates inside C_SignInit is the
    // token's: LeakSanitizer does not count it. (Matching a suppression by the library's name
    // needed full unwinding on every malloc, which made the sanitizer stage several times
    // slower.)
    const __lsan::ScopedDisabler the_tokens_own_allocations;
#endif
    return check_rv(fn_->C_SignInit(handle_, &mechanism, key), "C_SignInit");
}

Result<std::vector<unsigned char>> Session::sign(std::span<const unsigned char> input) const {
    std::vector<unsigned char> signature(512);  // RSA-4096; C_Sign says if more is needed
    CK_ULONG size = signature.size();
    auto* in = const_cast<unsigned char*>(input.data());  // NOLINT: C API, not written
    CK_RV rv = fn_->C_Sign(handle_, in, input.size(), signature.data(), &size);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        signature.resize(size);
        rv = fn_->C_Sign(handle_, in, input.size(), signature.data(), &size);
    }
    if (auto ok = check_rv(rv, "C_Sign"); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    signature.resize(size);
    return signature;
}

}  // namespace dkim::hsm::detail

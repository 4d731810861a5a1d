#include "pkcs11.hpp"

#include <algorithm>
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

// --- Session -------------------------------------------------------------------------

Session::Session(std::shared_ptr<Module> module, CK_SLOT_ID slot, CK_SESSION_HANDLE handle) noexcept
    : module_(std::move(module)), fn_(&functions(*module_)), slot_(slot), handle_(handle) {}

Result<Session> Session::open(std::shared_ptr<Module> module, CK_SLOT_ID slot, bool read_write) {
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
        return dkim::unexpected(make_error(rv, "C_OpenSession", "cannot open a session"));
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

}  // namespace dkim::hsm::detail

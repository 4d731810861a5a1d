#include "raw_pkcs11.hpp"

#include <dlfcn.h>

#include <cstring>

namespace dkim::test {

RawPkcs11::RawPkcs11(const std::string& module_path) {
    handle_ = dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle_ == nullptr) {
        throw std::runtime_error("dlopen " + module_path);
    }
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle_, "C_GetFunctionList"));
    if (get == nullptr || get(&fn_) != CKR_OK) {
        throw std::runtime_error("C_GetFunctionList");
    }
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = fn_->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        throw std::runtime_error("C_Initialize");
    }
}

CK_SLOT_ID RawPkcs11::slot(const std::string& label) {
    CK_ULONG count = 0;
    fn_->C_GetSlotList(CK_TRUE, nullptr, &count);
    std::vector<CK_SLOT_ID> slots(count);
    fn_->C_GetSlotList(CK_TRUE, slots.data(), &count);
    for (CK_ULONG i = 0; i < count; ++i) {
        CK_TOKEN_INFO info{};
        if (fn_->C_GetTokenInfo(slots[i], &info) != CKR_OK) {
            continue;
        }
        std::string have(reinterpret_cast<const char*>(info.label), sizeof info.label);
        have.erase(have.find_last_not_of(' ') + 1);
        if (have == label) {
            return slots[i];
        }
    }
    throw std::runtime_error("no token " + label);
}

CK_SESSION_HANDLE RawPkcs11::open_session(CK_SLOT_ID slot, bool read_write) {
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    CK_FLAGS flags = CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0);
    if (fn_->C_OpenSession(slot, flags, nullptr, nullptr, &session) != CKR_OK) {
        throw std::runtime_error("C_OpenSession");
    }
    return session;
}

CK_OBJECT_HANDLE RawPkcs11::find(CK_SESSION_HANDLE session, CK_OBJECT_CLASS klass,
                                 std::span<const unsigned char> id) {
    CK_ATTRIBUTE match[] = {
        {CKA_CLASS, &klass, sizeof klass},
        {CKA_ID, const_cast<unsigned char*>(id.data()), id.size()},
    };
    CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
    CK_ULONG count = 0;
    fn_->C_FindObjectsInit(session, match, 2);
    fn_->C_FindObjects(session, &object, 1, &count);
    fn_->C_FindObjectsFinal(session);
    return count == 1 ? object : CK_INVALID_HANDLE;
}

CK_RV RawPkcs11::attribute_rv(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                              CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE query{type, nullptr, 0};
    return fn_->C_GetAttributeValue(session, object, &query, 1);
}

}  // namespace dkim::test

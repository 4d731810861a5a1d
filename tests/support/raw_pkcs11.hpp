#pragma once
// Direct PKCS#11 access for tests that must look at the token behind hsm/'s back: read
// attributes hsm/ would never ask for, call C_DecryptInit, close every session. In the same
// process the module is already initialised by hsm/, so this shares its login state, exactly
// as another component of the application would.

#include <p11-kit/pkcs11.h>

#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace dkim::test {

class RawPkcs11 {
  public:
    explicit RawPkcs11(const std::string& module_path);
    CK_FUNCTION_LIST& fn() { return *fn_; }
    CK_SLOT_ID slot(const std::string& label);
    CK_SESSION_HANDLE open_session(CK_SLOT_ID slot, bool read_write = false);
    // The first object of this class with this CKA_ID, or CK_INVALID_HANDLE.
    CK_OBJECT_HANDLE find(CK_SESSION_HANDLE session, CK_OBJECT_CLASS klass,
                          std::span<const unsigned char> id);
    // CK_RV of C_GetAttributeValue for one attribute (size query only).
    CK_RV attribute_rv(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type);

  private:
    void* handle_ = nullptr;
    CK_FUNCTION_LIST_PTR fn_ = nullptr;
};

}  // namespace dkim::test

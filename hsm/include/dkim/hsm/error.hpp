#pragma once
// Typed errors of the PKCS#11 layer. Every CK_RV passes through one function
// (check_rv, in src/pkcs11.hpp) that turns it into an Error carrying the symbolic
// name (CKR_PIN_INCORRECT) and the PKCS#11 call (C_Login).

#include <string>
#include <string_view>

#include "dkim/expected.hpp"

namespace dkim::hsm {

enum class ErrorCode {
    module_load,       // dlopen / C_GetFunctionList / C_Initialize failed
    token_not_found,   // no token matches the label or URI
    key_not_found,     // no key object for the domain/selector or CKA_ID
    key_exists,        // generating a key whose label is already taken
    pin_incorrect,     // CKR_PIN_INCORRECT: never retried
    pin_locked,        // CKR_PIN_LOCKED: the token refuses every PIN
    locked,            // not logged in (no active grant): signing is unavailable
    session_lost,      // session handle invalid/closed, device removed
    not_permitted,     // the token refuses the operation on this key (by design)
    unsupported,       // mechanism or algorithm not available
    invalid_argument,  // caller error, bad template, bad URI
    forked,            // a PKCS#11 object of the parent process used after fork()
    device,            // the token failed (CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, ...)
    io,                // reading a PIN file and similar
};

std::string_view to_string(ErrorCode code) noexcept;

struct Error {
    ErrorCode code;
    std::string message;   // what a human can act on; never contains a secret
    std::string function;  // the PKCS#11 call, e.g. "C_SignInit"; empty if none
    unsigned long rv = 0;  // the CK_RV, 0 (CKR_OK) if the error did not come from the token

    // "CKR_PIN_INCORRECT", or "" when rv is CKR_OK.
    std::string rv_name() const;
    // message, followed by " (CKR_X from C_Y)" when the token reported it.
    std::string to_string() const;
};

template <class T>
using Result = dkim::Expected<T, Error>;

// The symbolic name of a CK_RV value ("CKR_0x80000001" for vendor-defined values).
std::string ck_rv_name(unsigned long rv);

}  // namespace dkim::hsm

#pragma once
// A loaded PKCS#11 module (dlopen + C_GetFunctionList + C_Initialize).
//
// Lifetime: every Token, Session and Login holds a shared_ptr to its Module, and loading
// the same path twice in one process gives the same Module, so C_Finalize runs exactly
// once, when the last user goes.
//
// The fork rule (PKCS#11 v2.40 §6.7.1): a child process must not use its parent's sessions
// or login state; it must call C_Initialize again and open its own sessions. This layer
// enforces it: every call made through a Module created before fork() fails in the child
// with ErrorCode::forked, the child's destructors leave the token alone, and Module::load()
// in the child initialises the module afresh. (SoftHSM2 only resets its state in the child
// with `library.reset_on_fork = true`; our test configurations set it, as a real HSM would
// behave.)

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dkim/hsm/error.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/hsm/uri.hpp"

namespace dkim::hsm {

namespace detail {
struct ModuleAccess;  // hsm/src only: reaches the CK_FUNCTION_LIST
}  // namespace detail

struct SlotInfo {
    unsigned long slot_id = 0;
    std::string slot_description;
    std::string slot_manufacturer;
    bool token_present = false;
    // Token fields; meaningful when token_present.
    bool token_initialized = false;
    std::string label;
    std::string manufacturer;
    std::string model;
    std::string serial;
    bool login_required = false;
    bool user_pin_initialized = false;
    bool user_pin_locked = false;
    bool write_protected = false;
};

// Which token to use: by label, or by the token attributes of an RFC 7512 URI.
class TokenSelector {
  public:
    static TokenSelector by_label(std::string label);
    static TokenSelector by_uri(Pkcs11Uri uri);

    bool matches(const SlotInfo& slot) const;
    // "token 'dkim'" or "token matching pkcs11:token=dkim;serial=42"
    std::string describe() const;

  private:
    Pkcs11Uri uri_;
};

class Module {
  public:
    static Result<std::shared_ptr<Module>> load(const std::filesystem::path& path);

    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    ~Module();

    const std::filesystem::path& path() const noexcept { return path_; }
    std::string library_description() const;

    // All slots, with token information where a token is present.
    Result<std::vector<SlotInfo>> slots() const;
    // Exactly one initialised token must match; the error lists the slots present.
    Result<SlotInfo> find_token(const TokenSelector& selector) const;

    // True in a child process after fork(): nothing of this Module may be used there.
    bool forked() const noexcept;
    Result<void> check_not_forked() const;

    // Key management is serialized per module (SoftHSM2 fails under concurrent keygen): held
    // for the whole of a KeyStore operation.
    [[nodiscard]] std::unique_lock<std::mutex> serialize_key_management() {
        return std::unique_lock(key_management_mutex_);
    }

  private:
    friend struct detail::ModuleAccess;
    // `functions` is the module's CK_FUNCTION_LIST; opaque here so that no CK_* type
    // leaks out of hsm/.
    Module(std::filesystem::path path, void* handle, const void* functions,
           bool owns_initialization);

    std::filesystem::path path_;
    void* dl_handle_ = nullptr;
    const void* functions_ = nullptr;
    bool owns_initialization_ = false;
    unsigned fork_generation_ = 0;
    // Guards no data: it serialises an operation (see serialize_key_management), so it is not a
    // LockGuarded.
    std::mutex key_management_mutex_;
};

// C_InitToken on the first slot whose token is present but not initialised, then C_InitPIN
// for the user PIN. For SoftHSM2 and lab tokens; production HSMs are initialised with their
// vendor's tools. Refuses a label that an initialised token already has.
Result<SlotInfo> initialize_token(Module& module, const std::string& label, const Secret& so_pin,
                                  const Secret& user_pin);

}  // namespace dkim::hsm

#include "dkim/hsm/module.hpp"

#include <dlfcn.h>
#include <pthread.h>

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <sstream>

#include "dkim/lock_guarded.hpp"
#include "pkcs11.hpp"

namespace dkim::hsm {
namespace {

// Incremented in every child process by a pthread_atfork handler: a Module remembers the
// generation it was initialised in, and is dead in any other.
std::atomic<unsigned> g_fork_generation{0};

void note_fork_in_child() {
    g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

void install_fork_handler() {
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, note_fork_in_child); });
}

// One Module per module path and process, so that C_Initialize/C_Finalize pair up.
LockGuarded<std::map<std::string, std::weak_ptr<Module>>>& registry() {
    static LockGuarded<std::map<std::string, std::weak_ptr<Module>>> modules;
    return modules;
}

std::string dl_error() {
    // glibc keeps dlerror()'s state per thread; the check cannot know that.
    const char* text = dlerror();  // NOLINT(concurrency-mt-unsafe)
    return text != nullptr ? text : "unknown dynamic loader error";
}

std::string describe_slot(const SlotInfo& slot) {
    std::ostringstream out;
    out << "slot " << slot.slot_id;
    if (!slot.token_present) {
        out << " (no token)";
    } else if (!slot.token_initialized) {
        out << " (uninitialised token)";
    } else {
        out << " '" << slot.label << "'";
        if (!slot.serial.empty()) {
            out << " serial " << slot.serial;
        }
    }
    return out.str();
}

}  // namespace

// --- TokenSelector ------------------------------------------------------------------

TokenSelector TokenSelector::by_label(std::string label) {
    TokenSelector selector;
    selector.uri_.token = std::move(label);
    return selector;
}

TokenSelector TokenSelector::by_uri(Pkcs11Uri uri) {
    TokenSelector selector;
    selector.uri_ = std::move(uri);
    return selector;
}

bool TokenSelector::matches(const SlotInfo& slot) const {
    if (!slot.token_present || !slot.token_initialized) {
        return false;
    }
    const auto same = [](const std::optional<std::string>& want, const std::string& have) {
        return !want || *want == have;
    };
    return same(uri_.token, slot.label) && same(uri_.manufacturer, slot.manufacturer) &&
           same(uri_.serial, slot.serial) && same(uri_.model, slot.model) &&
           same(uri_.slot_description, slot.slot_description) &&
           same(uri_.slot_manufacturer, slot.slot_manufacturer) &&
           (!uri_.slot_id || *uri_.slot_id == slot.slot_id);
}

std::string TokenSelector::describe() const {
    Pkcs11Uri token_only = uri_;
    token_only.object.reset();
    token_only.type.reset();
    token_only.id.reset();
    Pkcs11Uri label_only;
    label_only.token = uri_.token;
    if (uri_.token && token_only == label_only) {
        return "token '" + *uri_.token + "'";
    }
    return "token matching " + token_only.to_string();
}

// --- Module ---------------------------------------------------------------------------

Module::Module(std::filesystem::path path, void* handle, const void* functions,
               bool owns_initialization)
    : path_(std::move(path)),
      dl_handle_(handle),
      functions_(functions),
      owns_initialization_(owns_initialization),
      fork_generation_(g_fork_generation.load(std::memory_order_relaxed)) {}

Result<std::shared_ptr<Module>> Module::load(const std::filesystem::path& path) {
    install_fork_handler();
    std::error_code ec;
    const auto canonical = std::filesystem::canonical(path, ec);
    if (ec) {
        return dkim::unexpected(
            Error{ErrorCode::module_load,
                  "module " + path.string() + " could not be loaded: " + ec.message(), "", 0});
    }
    auto modules = registry().lock();
    if (auto existing = (*modules)[canonical.string()].lock(); existing && !existing->forked()) {
        return existing;
    }

    // RTLD_NODELETE: some modules register atexit handlers (OpenSSL inside SoftHSM2) that
    // would crash at exit if their code were unmapped by dlclose.
    void* handle = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle == nullptr) {
        return dkim::unexpected(
            Error{ErrorCode::module_load,
                  "module " + path.string() + " could not be loaded: " + dl_error(), "dlopen", 0});
    }
    auto* get_function_list =
        reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));  // NOLINT
    if (get_function_list == nullptr) {
        dlclose(handle);
        return dkim::unexpected(Error{
            ErrorCode::module_load,
            "module " + path.string() + " is not a PKCS#11 module: it has no C_GetFunctionList",
            "dlsym", 0});
    }
    CK_FUNCTION_LIST_PTR functions = nullptr;
    if (const CK_RV rv = get_function_list(&functions); rv != CKR_OK || functions == nullptr) {
        dlclose(handle);
        return dkim::unexpected(
            detail::make_error(rv == CKR_OK ? CKR_GENERAL_ERROR : rv, "C_GetFunctionList",
                               "module " + path.string() + " could not be loaded"));
    }
    if (functions->version.major != 2) {
        dlclose(handle);
        return dkim::unexpected(Error{ErrorCode::module_load,
                                      "module " + path.string() + " speaks PKCS#11 " +
                                          std::to_string(functions->version.major) + "." +
                                          std::to_string(functions->version.minor) +
                                          "; this build needs a v2.x function list",
                                      "C_GetFunctionList", 0});
    }

    // The module may be called from many threads; it must use the OS's locking.
    CK_C_INITIALIZE_ARGS init_args{};
    init_args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = functions->C_Initialize(&init_args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        dlclose(handle);
        return dkim::unexpected(detail::make_error(
            rv, "C_Initialize", "module " + path.string() + " could not be initialised"));
    }
    // Already initialised by other code in this process: that code owns C_Finalize.
    const bool owns_initialization = rv == CKR_OK;
    // Messages name the module as the operator gave it; the registry uses the real file.
    std::shared_ptr<Module> module(
        new Module(path, handle, functions, owns_initialization));  // private constructor
    (*modules)[canonical.string()] = module;
    return module;
}

Module::~Module() {
    if (!forked() && owns_initialization_) {
        (void)detail::functions(*this).C_Finalize(nullptr);
    }
    dlclose(dl_handle_);
}

bool Module::forked() const noexcept {
    return fork_generation_ != g_fork_generation.load(std::memory_order_relaxed);
}

Result<void> Module::check_not_forked() const {
    if (forked()) {
        return dkim::unexpected(
            Error{ErrorCode::forked,
                  "module " + path_.string() +
                      " was initialised by the parent process; after fork() the child must load "
                      "it again (Module::load) and open its own sessions",
                  "", 0});
    }
    return {};
}

std::string Module::library_description() const {
    CK_INFO info{};
    if (forked() || detail::functions(*this).C_GetInfo(&info) != CKR_OK) {
        return path_.string();
    }
    return detail::from_padded(info.manufacturerID) + " " +
           detail::from_padded(info.libraryDescription);
}

Result<std::vector<SlotInfo>> Module::slots() const {
    if (auto ok = check_not_forked(); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    CK_ULONG count = 0;
    if (auto ok = detail::check_rv(
            detail::functions(*this).C_GetSlotList(CK_FALSE, nullptr, &count), "C_GetSlotList");
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    std::vector<CK_SLOT_ID> ids(count);
    if (auto ok = detail::check_rv(
            detail::functions(*this).C_GetSlotList(CK_FALSE, ids.data(), &count), "C_GetSlotList");
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    ids.resize(count);

    std::vector<SlotInfo> slots;
    for (const CK_SLOT_ID id : ids) {
        CK_SLOT_INFO slot_info{};
        if (detail::functions(*this).C_GetSlotInfo(id, &slot_info) != CKR_OK) {
            continue;  // a slot that vanished between the two calls
        }
        SlotInfo slot;
        slot.slot_id = id;
        slot.slot_description = detail::from_padded(slot_info.slotDescription);
        slot.slot_manufacturer = detail::from_padded(slot_info.manufacturerID);
        slot.token_present = (slot_info.flags & CKF_TOKEN_PRESENT) != 0;
        if (slot.token_present) {
            CK_TOKEN_INFO token_info{};
            if (detail::functions(*this).C_GetTokenInfo(id, &token_info) == CKR_OK) {
                slot.token_initialized = (token_info.flags & CKF_TOKEN_INITIALIZED) != 0;
                slot.label = detail::from_padded(token_info.label);
                slot.manufacturer = detail::from_padded(token_info.manufacturerID);
                slot.model = detail::from_padded(token_info.model);
                slot.serial = detail::from_padded(token_info.serialNumber);
                slot.login_required = (token_info.flags & CKF_LOGIN_REQUIRED) != 0;
                slot.user_pin_initialized = (token_info.flags & CKF_USER_PIN_INITIALIZED) != 0;
                slot.user_pin_locked = (token_info.flags & CKF_USER_PIN_LOCKED) != 0;
                slot.write_protected = (token_info.flags & CKF_WRITE_PROTECTED) != 0;
            }
        }
        slots.push_back(std::move(slot));
    }
    return slots;
}

Result<SlotInfo> Module::find_token(const TokenSelector& selector) const {
    auto slots = this->slots();
    if (!slots) {
        return dkim::unexpected(std::move(slots).error());
    }
    std::vector<const SlotInfo*> matching;
    for (const auto& slot : *slots) {
        if (selector.matches(slot)) {
            matching.push_back(&slot);
        }
    }
    if (matching.size() == 1) {
        return *matching.front();
    }
    std::string present;
    for (const auto& slot : *slots) {
        present += (present.empty() ? "" : ", ") + describe_slot(slot);
    }
    if (present.empty()) {
        present = "none";
    }
    if (matching.empty()) {
        return dkim::unexpected(Error{ErrorCode::token_not_found,
                                      selector.describe() + " not found in module " +
                                          path_.string() + "; slots present: " + present,
                                      "", 0});
    }
    return dkim::unexpected(
        Error{ErrorCode::token_not_found,
              selector.describe() + " is ambiguous: " + std::to_string(matching.size()) +
                  " tokens match (add serial= to the URI); slots present: " + present,
              "", 0});
}

}  // namespace dkim::hsm

namespace dkim::hsm {

Result<SlotInfo> initialize_token(Module& module, const std::string& label, const Secret& so_pin,
                                  const Secret& user_pin) {
    if (label.empty() || label.size() > 32) {
        return dkim::unexpected(
            Error{ErrorCode::invalid_argument, "token label must be 1 to 32 bytes", "", 0});
    }
    auto slots = module.slots();
    if (!slots) {
        return dkim::unexpected(std::move(slots).error());
    }
    const SlotInfo* free_slot = nullptr;
    for (const auto& slot : *slots) {
        if (slot.token_present && slot.token_initialized && slot.label == label) {
            return dkim::unexpected(Error{ErrorCode::invalid_argument,
                                          "token '" + label + "' already exists in slot " +
                                              std::to_string(slot.slot_id) +
                                              "; refusing to initialise another with that label",
                                          "", 0});
        }
        if (free_slot == nullptr && slot.token_present && !slot.token_initialized) {
            free_slot = &slot;
        }
    }
    if (free_slot == nullptr) {
        return dkim::unexpected(
            Error{ErrorCode::token_not_found,
                  "module " + module.path().string() + " has no slot with an uninitialised token",
                  "", 0});
    }
    const auto& fn = detail::functions(module);
    // CK_UTF8CHAR label[32], blank padded.
    std::array<unsigned char, 32> padded{};
    padded.fill(' ');
    std::memcpy(padded.data(), label.data(), label.size());
    auto* so = const_cast<unsigned char*>(so_pin.bytes().data());      // NOLINT: C API, not written
    auto* user = const_cast<unsigned char*>(user_pin.bytes().data());  // NOLINT
    const std::string context = "initialising token '" + label + "'";
    if (auto ok =
            detail::check_rv(fn.C_InitToken(free_slot->slot_id, so, so_pin.size(), padded.data()),
                             "C_InitToken", context);
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    // SoftHSM2 moves a newly initialised token to a new slot id: look it up again.
    auto token = module.find_token(TokenSelector::by_label(label));
    if (!token) {
        return dkim::unexpected(std::move(token).error());
    }
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    if (auto ok =
            detail::check_rv(fn.C_OpenSession(token->slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                              nullptr, nullptr, &session),
                             "C_OpenSession", context);
        !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    CK_RV rv = fn.C_Login(session, CKU_SO, so, so_pin.size());
    const char* call = "C_Login";
    if (rv == CKR_OK) {
        rv = fn.C_InitPIN(session, user, user_pin.size());
        call = "C_InitPIN";
        (void)fn.C_Logout(session);
    }
    (void)fn.C_CloseSession(session);
    if (auto ok = detail::check_rv(rv, call, context); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return module.find_token(TokenSelector::by_label(label));
}

}  // namespace dkim::hsm

#include "dkim/hsm/module.hpp"

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
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
    auto functions = detail::function_list(handle, path.string());
    if (!functions) {
        dlclose(handle);
        return dkim::unexpected(std::move(functions).error());
    }
    // False when other code in this process had initialised it: that code owns C_Finalize.
    auto owns_initialization =
        detail::initialize(**functions, "module " + path.string() + " could not be initialised");
    if (!owns_initialization) {
        dlclose(handle);
        return dkim::unexpected(std::move(owns_initialization).error());
    }
    // Messages name the module as the operator gave it; the registry uses the real file.
    std::shared_ptr<Module> module(
        new Module(path, handle, *functions, *owns_initialization));  // private constructor
    (*modules)[canonical.string()] = module;
    return module;
}

Module::~Module() {
    if (!forked() && owns_initialization_) {
        detail::finalize(detail::functions(*this));
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
    if (forked()) {
        return path_.string();
    }
    auto info = detail::library_info(*this);
    if (!info) {
        return path_.string();  // a description only: the path says as much
    }
    return detail::from_padded(info->manufacturerID) + " " +
           detail::from_padded(info->libraryDescription);
}

Result<std::vector<SlotInfo>> Module::slots() const {
    if (auto ok = check_not_forked(); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    auto ids = detail::slot_ids(*this);
    if (!ids) {
        return dkim::unexpected(std::move(ids).error());
    }

    std::vector<SlotInfo> slots;
    for (const CK_SLOT_ID id : *ids) {
        auto slot_info = detail::slot_info(*this, id);
        if (!slot_info) {
            continue;  // a slot that vanished between the two calls
        }
        SlotInfo slot;
        slot.slot_id = id;
        slot.slot_description = detail::from_padded(slot_info->slotDescription);
        slot.slot_manufacturer = detail::from_padded(slot_info->manufacturerID);
        slot.token_present = (slot_info->flags & CKF_TOKEN_PRESENT) != 0;
        if (slot.token_present) {
            // A token that cannot describe itself is listed as present but not initialised.
            if (auto token_info = detail::token_info(*this, id)) {
                slot.token_initialized = (token_info->flags & CKF_TOKEN_INITIALIZED) != 0;
                slot.label = detail::from_padded(token_info->label);
                slot.manufacturer = detail::from_padded(token_info->manufacturerID);
                slot.model = detail::from_padded(token_info->model);
                slot.serial = detail::from_padded(token_info->serialNumber);
                slot.login_required = (token_info->flags & CKF_LOGIN_REQUIRED) != 0;
                slot.user_pin_initialized = (token_info->flags & CKF_USER_PIN_INITIALIZED) != 0;
                slot.user_pin_locked = (token_info->flags & CKF_USER_PIN_LOCKED) != 0;
                slot.write_protected = (token_info->flags & CKF_WRITE_PROTECTED) != 0;
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
    const std::string context = "initialising token '" + label + "'";
    if (auto ok = detail::init_token(module, free_slot->slot_id, so_pin, label, context); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    // SoftHSM2 moves a newly initialised token to a new slot id: look it up again.
    auto token = module.find_token(TokenSelector::by_label(label));
    if (!token) {
        return dkim::unexpected(std::move(token).error());
    }
    // The caller holds `module` for the whole call: the session borrows it without owning it.
    const std::shared_ptr<Module> borrowed(std::shared_ptr<Module>(), &module);
    auto session = detail::Session::open(borrowed, token->slot_id, true, context);
    if (!session) {
        return dkim::unexpected(std::move(session).error());
    }
    if (auto ok = session->login(CKU_SO, so_pin, context); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    auto pin_set = session->init_pin(user_pin, context);
    // Closing the session ends the security officer's login whatever C_Logout answers: it is
    // this application's only session with the new token.
    (void)session->logout();
    session->close();
    if (!pin_set) {
        return dkim::unexpected(std::move(pin_set).error());
    }
    return module.find_token(TokenSelector::by_label(label));
}

}  // namespace dkim::hsm

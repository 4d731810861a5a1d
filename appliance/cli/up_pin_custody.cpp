#include "up_pin_custody.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <system_error>
#include <utility>

#include "dkim/base/wipe.hpp"
#include "systemd_creds.hpp"
#include "up_unique_fd.hpp"

namespace dkim::cli::up {

namespace fs = std::filesystem;

namespace {

// The credential's name: [pin] credential's default, the ID of LoadCredentialEncrypted=pin:...
constexpr const char* kPinCredential = "pin";

// The top of a folder made by the earlier demo script kept the PIN there.
fs::path legacy_pin_file(const StatePaths& p) {
    return p.root / "user.pin";
}

CredentialKeys folder_keys(const StatePaths& p) {
    CredentialKeys keys;
    keys.host_key = host_key_file(p);
    return keys;
}

bool present(const fs::path& path) {
    std::error_code ec;
    return fs::exists(path, ec);
}

// Sealing needs systemd-creds and a machine id (the host key is bound to it).
Expected<void, std::string> can_seal() {
    std::error_code ec;
    if (!fs::exists("/etc/machine-id", ec) || fs::file_size("/etc/machine-id", ec) < 32 || ec) {
        return unexpected(std::string(
            "--pin-custody sealed needs /etc/machine-id (systemd-creds binds the host key to "
            "it; systemd-machine-id-setup makes one), or choose another --pin-custody"));
    }
    return {};
}

// The PIN as a file of `owner`'s, unless it holds this PIN already.
Expected<void, std::string> keep_clear(const fs::path& path, const hsm::Secret& pin, uid_t uid,
                                       gid_t gid) {
    if (auto held = hsm::Secret::from_file(path); held && held->equals(pin)) {
        return {};
    }
    std::string text(reinterpret_cast<const char*>(pin.bytes().data()), pin.size());  // NOLINT
    text += "\n";
    auto written = write_file(path, text, 0600, uid, gid);
    base::wipe(text);
    return written;
}

Expected<void, std::string> keep_sealed(const StatePaths& p, const hsm::Secret& pin) {
    if (present(sealed_pin_file(p))) {
        if (auto held = open_credential(sealed_pin_file(p), kPinCredential, folder_keys(p));
            held && held->equals(pin)) {
            return {};
        }
    }
    if (auto ok = can_seal(); !ok) {
        return ok;
    }
    // The host key only: a TPM2 would tie the demo's folder to this machine's chip for nothing.
    return seal_credential(pin, kPinCredential, "host", sealed_pin_file(p), folder_keys(p));
}

// Overwrites a clear PIN file before it goes (on disk, the blocks may stay).
void remove_clear(const fs::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        return;
    }
    if (S_ISREG(st.st_mode)) {
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
        if (fd) {
            const std::array<char, 256> zeros{};
            for (auto left = static_cast<std::size_t>(st.st_size); left > 0;) {
                const ssize_t n = ::write(fd.get(), zeros.data(), std::min(left, zeros.size()));
                if (n <= 0) {
                    break;
                }
                left -= static_cast<std::size_t>(n);
            }
            (void)::fsync(fd.get());
        }
    }
    (void)::unlink(path.c_str());
}

// A folder for the opened credential: on a tmpfs (/run, else /dev/shm) in a root-owned folder
// of up's, else the state folder; named after the state folder, so that a run after one that
// was killed finds and removes what that one left.
fs::path runtime_folder(const StatePaths& p) {
    std::uint64_t hash = 1469598103934665603ULL;  // FNV-1a of the state folder's path
    for (const char c : p.root.string()) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    std::array<char, 17> name{};
    (void)std::snprintf(name.data(), name.size(), "%016llx",
                        static_cast<unsigned long long>(hash));  // NOLINT(google-runtime-int)
    const std::string leaf = std::string("signerd-credentials-") + name.data();
    for (const char* candidate : {"/run", "/dev/shm"}) {
        struct statfs fsinfo {};
        if (::statfs(candidate, &fsinfo) != 0 ||
            (fsinfo.f_type != TMPFS_MAGIC && fsinfo.f_type != RAMFS_MAGIC)) {
            continue;
        }
        const fs::path base = fs::path(candidate) / "dkim-appliance-up";
        (void)::mkdir(base.c_str(), 0711);
        struct stat st {};
        if (::lstat(base.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
            (st.st_mode & 022) == 0) {
            return base / leaf;
        }
    }
    return p.root / leaf;
}

}  // namespace

std::optional<PinCustody> parse_pin_custody(std::string_view name) {
    for (const PinCustody c :
         {PinCustody::file, PinCustody::sealed, PinCustody::approver, PinCustody::shares}) {
        if (to_string(c) == name) {
            return c;
        }
    }
    return std::nullopt;
}

std::string_view to_string(PinCustody custody) noexcept {
    switch (custody) {
        case PinCustody::file: return "file";
        case PinCustody::sealed: return "sealed";
        case PinCustody::approver: return "approver";
        case PinCustody::shares: return "shares";
    }
    return "?";
}

fs::path sealed_pin_file(const StatePaths& p) {
    return p.credentials / "signerd-pin.cred";
}

fs::path host_key_file(const StatePaths& p) {
    return p.secrets / "credential.secret";
}

std::optional<fs::path> clear_pin_file(PinCustody custody, const StatePaths& p) {
    switch (custody) {
        case PinCustody::file: return p.signerd / "user.pin";
        case PinCustody::approver:
        case PinCustody::shares: return p.secrets / "user.pin";
        case PinCustody::sealed: return std::nullopt;
    }
    return std::nullopt;
}

Expected<hsm::Secret, std::string> demo_user_pin(const StatePaths& p) {
    if (present(sealed_pin_file(p))) {
        if (auto ok = can_seal(); !ok) {
            return unexpected(ok.error());
        }
        auto opened = open_credential(sealed_pin_file(p), kPinCredential, folder_keys(p));
        if (!opened) {
            return unexpected(opened.error() +
                              " (a sealed credential opens only on the machine, and with the "
                              "host key, that sealed it)");
        }
        return std::move(*opened);
    }
    std::vector<fs::path> clear = {p.signerd / "user.pin", p.secrets / "user.pin"};
    if (present(p.tokens)) {
        clear.push_back(legacy_pin_file(p));
    }
    for (const fs::path& file : clear) {
        if (present(file)) {
            auto read = hsm::Secret::from_file(file);
            if (!read) {
                return unexpected(read.error().to_string());
            }
            return std::move(*read);
        }
    }
    std::string fresh = random_text(16);
    hsm::Secret pin = hsm::Secret::from_string(fresh);
    base::wipe(fresh);
    return pin;
}

Expected<void, std::string> keep_demo_pin(PinCustody custody, const hsm::Secret& pin,
                                          const StatePaths& p, const DaemonUsers& u) {
    Expected<void, std::string> kept;
    switch (custody) {
        case PinCustody::file:
            kept = keep_clear(p.signerd / "user.pin", pin, u.signer, u.signer_gid);
            break;
        case PinCustody::approver:
        case PinCustody::shares: kept = keep_clear(p.secrets / "user.pin", pin, 0, 0); break;
        case PinCustody::sealed: kept = keep_sealed(p, pin); break;
    }
    if (!kept) {
        return kept;
    }
    // Only now, with the PIN safe in its new place: out of the others.
    const auto own = clear_pin_file(custody, p);
    for (const fs::path& file :
         {p.signerd / "user.pin", p.secrets / "user.pin", legacy_pin_file(p)}) {
        if (file != own && (file != legacy_pin_file(p) || present(p.tokens))) {
            remove_clear(file);
        }
    }
    if (custody != PinCustody::sealed) {
        std::error_code ec;
        fs::remove(sealed_pin_file(p), ec);
    }
    return {};
}

SealedPinRuntime::SealedPinRuntime(StatePaths paths, DaemonUsers users)
    : paths_(std::move(paths)), users_(users) {}

SealedPinRuntime::~SealedPinRuntime() {
    remove();
}

void SealedPinRuntime::remove() noexcept {
    if (folder_.empty()) {
        return;
    }
    remove_clear(folder_ / kPinCredential);
    std::error_code ec;
    fs::remove_all(folder_, ec);
    folder_.clear();
}

Expected<std::vector<std::string>, std::string> SealedPinRuntime::prepare() {
    remove();
    const fs::path folder = runtime_folder(paths_);
    std::error_code ec;
    if (fs::exists(folder, ec)) {  // left by a run that was killed
        remove_clear(folder / kPinCredential);
        fs::remove_all(folder, ec);
    }
    if (::mkdir(folder.c_str(), 0700) != 0) {
        return unexpected("cannot make " + folder.string() + ": " + errno_text());
    }
    folder_ = folder;
    auto pin = open_credential(sealed_pin_file(paths_), kPinCredential, folder_keys(paths_));
    if (!pin) {
        return unexpected(pin.error());
    }
    const fs::path file = folder / kPinCredential;
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400));
    const auto bytes = pin->bytes();
    if (!fd ||
        ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
        ::fchown(fd.get(), users_.signer, users_.signer_gid) != 0 ||
        ::chown(folder.c_str(), users_.signer, users_.signer_gid) != 0) {
        const std::string why = errno_text();
        remove();
        return unexpected("cannot write " + file.string() + ": " + why);
    }
    return std::vector<std::string>{"CREDENTIALS_DIRECTORY=" + folder.string()};
}

}  // namespace dkim::cli::up

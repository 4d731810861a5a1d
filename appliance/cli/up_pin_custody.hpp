#pragma once
// The token PIN's custody in `dkim-appliance up` (--pin-custody, up.toml's pin_custody): where
// the demo's user PIN is kept between runs and how dkim-signerd gets it, as on the appliance
// (README, "Choosing the PIN's custody"):
//
//   file      signerd/user.pin (dkim-signer, 0600), read by signerd at each login. The default:
//             it runs wherever up runs.
//   sealed    credentials/signerd-pin.cred, sealed by systemd-creds with a host key of the
//             folder's own (secrets/credential.secret, through $SYSTEMD_CREDENTIAL_SECRET; the
//             machine's /var/lib/systemd/credential.secret is not touched) and no clear PIN on
//             disk. At each start of signerd, up plays systemd's part: it opens the credential
//             into a fresh folder (0700, dkim-signer; on a tmpfs when /run or /dev/shm is one),
//             passes it as $CREDENTIALS_DIRECTORY, and removes it at signerd's next start and
//             when up stops. The host key lies in the same folder as the credential, so this
//             shows the mechanism and protects nothing that the file custody does not.
//   approver  secrets/user.pin (root only): signerd has no PIN, the approval that activates a
//             grant brings it. The demo keeps it there for the tour's approvers to use.
//   shares    secrets/user.pin, split among the demo's users by run_pin_split_ceremony once
//             signerd and the users are up.
//
// A folder whose custody changes between runs moves the PIN from where it was to where the new
// custody keeps it, and removes it from the old place.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"
#include "up_state_folder.hpp"
#include "up_users.hpp"

namespace dkim::cli::up {

enum class PinCustody : std::uint8_t { file, sealed, approver, shares };

inline constexpr std::string_view kPinCustodies[] = {"file", "sealed", "approver", "shares"};

std::optional<PinCustody> parse_pin_custody(std::string_view name);
std::string_view to_string(PinCustody custody) noexcept;

// credentials/signerd-pin.cred and the host key it is sealed with (secrets/credential.secret).
std::filesystem::path sealed_pin_file(const StatePaths& paths);
std::filesystem::path host_key_file(const StatePaths& paths);
// signerd/user.pin (file) or secrets/user.pin (approver, shares); sealed: none.
std::optional<std::filesystem::path> clear_pin_file(PinCustody custody, const StatePaths& paths);

// The demo's user PIN, from wherever the folder keeps it (any custody's place, or the top of a
// folder made by the earlier demo script), or a new random one for a new folder.
Expected<hsm::Secret, std::string> demo_user_pin(const StatePaths& paths);

// Keeps `pin` where `custody` wants it (sealing it for sealed) and then removes it from the
// other places. Sealed: refused, with the reason, when this machine cannot seal (no
// systemd-creds, no /etc/machine-id).
Expected<void, std::string> keep_demo_pin(PinCustody custody, const hsm::Secret& pin,
                                          const StatePaths& paths, const DaemonUsers& users);

// Sealed: the folder that stands for /run/credentials/dkim-signerd.service. prepare(), before
// each start of signerd, removes the previous one and opens the credential into a new one
// (0700, dkim-signer; the PIN as `pin`, 0400); the destructor removes the last.
class SealedPinRuntime {
  public:
    SealedPinRuntime(StatePaths paths, DaemonUsers users);
    ~SealedPinRuntime();
    SealedPinRuntime(const SealedPinRuntime&) = delete;
    SealedPinRuntime& operator=(const SealedPinRuntime&) = delete;

    // signerd's extra environment: {"CREDENTIALS_DIRECTORY=<the new folder>"}.
    Expected<std::vector<std::string>, std::string> prepare();
    // The folder of the last prepare() ("" before).
    const std::filesystem::path& folder() const { return folder_; }

  private:
    void remove() noexcept;

    StatePaths paths_;
    DaemonUsers users_;
    std::filesystem::path folder_;
};

// The "shares" custody's ceremony in `up`: once dkim-signerd runs with [pin] source = "shares"
// and the demo's users exist, splits the demo PIN (secrets/user.pin) among `custodians` through
// signerd, as `dkim-appliance pin split` does, and says where each custodian's share is. An
// error stops `up` with its text.
Expected<void, std::string> run_pin_split_ceremony(const StatePaths& paths,
                                                   const std::vector<DemoUser>& custodians);

}  // namespace dkim::cli::up

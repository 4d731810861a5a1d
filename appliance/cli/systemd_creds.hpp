#pragma once
// The token PIN as a systemd credential (the "sealed" custody): sealed with `systemd-creds
// encrypt` into the file that dkim-signerd.service's LoadCredentialEncrypted= names, and opened
// with `systemd-creds decrypt` where up plays systemd's part. The secret travels on a pipe only:
// never in an argument, the environment, or a file in clear.
//
// The host key: systemd-creds reads /var/lib/systemd/credential.secret (made on first use), or
// the file $SYSTEMD_CREDENTIAL_SECRET names (an absolute path; honoured by systemd 252's
// systemd-creds, which needs no systemd as PID 1, only /etc/machine-id: the key file is bound
// to the machine id). `up` and the tests keep a host key of their own that way; the appliance
// uses the system's.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"

namespace dkim::cli {

// --with-key= values a credential may be sealed with. "auto": host+tpm2 on a machine with a
// TPM2, host otherwise (systemd decides when it seals).
inline constexpr std::string_view kSealKeys[] = {"auto", "host", "tpm2", "host+tpm2"};

struct CredentialKeys {
    // The host key's file ($SYSTEMD_CREDENTIAL_SECRET, absolute); empty: systemd's own.
    std::filesystem::path host_key;
    // The program, looked up in $PATH unless it has a '/'.
    std::string program = "systemd-creds";
};

// Seals `secret` as the credential `name` (the ID in LoadCredentialEncrypted=NAME:PATH) with
// the keys `with_key` names: written to a temporary file beside `output` (mode 0600, owned by
// uid:gid), synced, then renamed over `output`. Errors carry systemd-creds' own message.
Expected<void, std::string> seal_credential(const hsm::Secret& secret, const std::string& name,
                                            const std::string& with_key,
                                            const std::filesystem::path& output,
                                            const CredentialKeys& keys, uid_t uid = 0,
                                            gid_t gid = 0);

// Opens the credential `name` as systemd does at a service's start (the name must match the
// one it was sealed with).
Expected<hsm::Secret, std::string> open_credential(const std::filesystem::path& credential,
                                                   const std::string& name,
                                                   const CredentialKeys& keys);

// What the credential's header says it is sealed with: "the host key", "the TPM2", "the host
// key and the TPM2", "no key (tpm2-absent)", or "" when the file is not a credential this
// knows.
std::string sealed_with(const std::filesystem::path& credential);

}  // namespace dkim::cli

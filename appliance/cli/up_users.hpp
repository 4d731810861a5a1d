#pragma once
// The demo's users: an admin (admin, requester, auditor) and two approvers (a key's retirement
// and admin grants need two approvals by default, so that the demo can finish a rotation),
// created once through signerd (as root, its admin peer), each with an initial password and a
// confirmed TOTP seed, kept in secrets/ (root only). A state folder made before the second
// approver existed gets it on its next run.

#include <optional>
#include <string>
#include <vector>

#include "dkim/clock.hpp"
#include "dkim/expected.hpp"
#include "up_state_folder.hpp"

namespace dkim::cli::up {

struct DemoUser {
    std::string name, roles, password, totp_secret, otpauth;
    // Wipes the secrets (once printed).
    void wipe();
};

// The secret= parameter of an otpauth:// URI.
std::optional<std::string> otpauth_secret(const std::string& uri);

// Creates the users signerd does not have yet, enrols and confirms the TOTP of those without
// one (the confirming code is computed at `clock`'s wall time), and reads back each user's
// initial password and seed.
Expected<std::vector<DemoUser>, std::string> ensure_demo_users(const StatePaths& paths,
                                                               const Clock& clock);

}  // namespace dkim::cli::up

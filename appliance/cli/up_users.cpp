#include "up_users.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <utility>
#include <variant>

#include "dkim/base/wipe.hpp"
#include "dkim/jit/credentials.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli::up {

namespace {

// The TOTP code for `secret` (base32) at `now`: what an authenticator app would show.
std::string totp_code_now(const std::string& secret, TimePoint now) {
    auto raw = jit::base32_decode(secret);
    const auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    std::array<char, 8> code{};
    (void)std::snprintf(code.data(), code.size(), "%06u",
                        raw ? jit::totp_code(*raw, jit::totp_step(seconds)) : 0U);
    if (raw) {
        base::wipe(*raw);
    }
    return code.data();
}

}  // namespace

void DemoUser::wipe() {
    base::wipe(password);
    base::wipe(totp_secret);
    base::wipe(otpauth);
}

std::optional<std::string> otpauth_secret(const std::string& uri) {
    const auto at = uri.find("secret=");
    if (at == std::string::npos) {
        return std::nullopt;
    }
    return uri.substr(at + 7, uri.find('&', at) - (at + 7));
}

Expected<std::vector<DemoUser>, std::string> ensure_demo_users(const StatePaths& p,
                                                               const Clock& clock) {
    Common c;
    c.socket = p.socket.string();
    auto listed = ask_signerd(c, ipc::UserList{});
    if (!listed) {
        return unexpected("listing users: " + listed.error());
    }
    const auto* users = std::get_if<ipc::UsersReply>(&*listed);
    std::vector<DemoUser> out;
    for (const auto& [name, roles] :
         {std::pair<std::string, std::string>{"admin", "admin,requester,auditor"},
          {"approver", "approver"},
          {"approver2", "approver"}}) {
        DemoUser f{name, roles, "", "", ""};
        const auto password_file = p.secrets / (name + ".password");
        const auto totp_file = p.secrets / (name + ".totp");
        bool exists = false, totp = false;
        for (const auto& u : users ? users->users : std::vector<ipc::UserView>{}) {
            if (u.name == name) {
                exists = true;
                totp = u.totp;
            }
        }
        if (!exists) {
            f.password = random_text(15);
            if (auto w = write_file(password_file, f.password + "\n", 0600); !w) {
                return unexpected(w.error());
            }
            auto added = ask_signerd(c, ipc::UserAdd{{}, name, roles, f.password});
            if (!added) {
                return unexpected("adding " + name + ": " + added.error());
            }
        }
        if (!totp) {
            auto enrolled = ask_signerd(c, ipc::TotpEnrol{{}, name});
            const auto* ok = enrolled ? std::get_if<ipc::OkReply>(&*enrolled) : nullptr;
            const auto secret = ok ? otpauth_secret(ok->secret) : std::nullopt;
            if (!secret) {
                return unexpected("enrolling " + name + "'s TOTP: " +
                                  (enrolled ? "no secret in the reply" : enrolled.error()));
            }
            if (auto w = write_file(totp_file, *secret + "\n" + ok->secret + "\n", 0600); !w) {
                return unexpected(w.error());
            }
            auto confirmed =
                ask_signerd(c, ipc::TotpConfirm{{}, name, totp_code_now(*secret, clock.now())});
            if (!confirmed) {
                return unexpected("confirming " + name + "'s TOTP: " + confirmed.error());
            }
        }
        std::istringstream password(read_text(password_file));
        std::getline(password, f.password);
        std::istringstream seed(read_text(totp_file));
        std::getline(seed, f.totp_secret);
        std::getline(seed, f.otpauth);
        out.push_back(std::move(f));
    }
    return out;
}

}  // namespace dkim::cli::up

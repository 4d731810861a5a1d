#include "up_demo_token.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <utility>

#include "dkim/base/wipe.hpp"
#include "dkim/provisioning/dns_record.hpp"
#include "dkim/provisioning/keys.hpp"

namespace dkim::cli::up {

namespace fs = std::filesystem;

namespace {

struct DemoKeySpec {
    const char* selector;
    const char* algorithm;
};
constexpr std::array<DemoKeySpec, 2> kDemoKeys{{{"rsa2048", "rsa-2048"}, {"ed25519", "ed25519"}}};

std::string softhsm_conf(const StatePaths& p) {
    return "# SoftHSM2 for `dkim-appliance up`: written at every start.\n"
           "directories.tokendir = " +
           p.tokens.string() +
           "\nobjectstore.backend = file\nlog.level = ERROR\n"
           "slots.removable = false\nlibrary.reset_on_fork = true\n";
}

// The SO PIN: made once; a state folder of the earlier demo script kept it at its top. (The
// user PIN is the custody's: up_pin_custody.hpp.)
Expected<void, std::string> prepare_so_pin(const StatePaths& p, const fs::path& so_pin) {
    const fs::path old = p.root / "so.pin";
    std::error_code ec;
    if (!fs::exists(so_pin) && fs::exists(old) && fs::exists(p.tokens)) {
        fs::copy_file(old, so_pin, ec);
        if (ec || ::chmod(so_pin.c_str(), 0600) != 0) {
            return unexpected("cannot move " + old.string() + " to " + so_pin.string());
        }
        std::cerr << "up: moved " << old.string() << " to " << so_pin.string() << "\n";
    }
    if (!fs::exists(so_pin)) {
        std::string pin = random_text(16);
        auto written = write_file(so_pin, pin + "\n", 0600);
        base::wipe(pin);
        if (!written) {
            return written;
        }
    }
    return {};
}

}  // namespace

Expected<std::vector<TxtRecord>, std::string> prepare_demo_token(
    const Settings& s, const StatePaths& p, const DaemonUsers& u, const hsm::Secret& user_pin,
    const std::string& label, const std::string& prefix, std::string* audit_key) {
    if (auto written = write_file(p.softhsm_conf, softhsm_conf(p), 0644); !written) {
        return unexpected(written.error());
    }
    // Read by the module when it loads (below, and in signerd's environment).
    ::setenv("SOFTHSM2_CONF", p.softhsm_conf.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    const fs::path so_pin = p.secrets / "so.pin";
    if (auto made = prepare_so_pin(p, so_pin); !made) {
        return unexpected(made.error());
    }
    provisioning::TokenLocation where{s.module, label};
    auto report = [](const hsm::Error& e) { return unexpected(e.to_string()); };
    if (!where.open()) {
        auto so = hsm::Secret::from_file(so_pin);
        if (!so) {
            return report(so.error());
        }
        auto slot = provisioning::init_token(s.module, label, *so, user_pin);
        if (!slot) {
            return report(slot.error());
        }
        std::cerr << "up: initialised SoftHSM2 token '" << label << "' in " << p.tokens << "\n";
    }
    std::vector<TxtRecord> records;
    for (const DemoKeySpec& k : kDemoKeys) {
        auto name = hsm::KeyName::make(s.domain, prefix + k.selector);
        if (!name) {
            return report(name.error());
        }
        auto key = provisioning::public_key(where, *name);
        if (!key) {
            key = provisioning::generate_key(where, user_pin.duplicate(), *name,
                                             *hsm::parse_key_algorithm(k.algorithm));
            if (!key) {
                return report(key.error());
            }
            std::cerr << "up: generated " << key->key.algorithm_name() << " key " << name->label()
                      << " inside the token\n";
        }
        records.push_back({name->label(), provisioning::dkim_record_value(key->public_key)});
    }
    if (audit_key != nullptr) {
        const hsm::KeyName name{"signerd.invalid", "audit"};  // signerd's audit_key_name()
        auto key = provisioning::public_key(where, name);
        if (!key) {
            key = provisioning::generate_key(where, user_pin.duplicate(), name,
                                             hsm::KeyAlgorithm::ed25519);
            if (!key) {
                return report(key.error());
            }
        }
        const auto& raw = key->public_key.raw;
        *audit_key = std::string(raw.begin(), raw.end());
    }
    // The token's files belong to signerd's user from now on.
    if (auto handed = hand_over(p.tokens, u.signer, u.signer_gid); !handed) {
        return unexpected(handed.error());
    }
    return records;
}

}  // namespace dkim::cli::up

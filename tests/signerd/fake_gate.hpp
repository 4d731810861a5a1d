#pragma once
// A token gate in memory for the Service's tests: a PIN of "1234", keys as descriptions with
// a flag for their private half, and crash injection: `crash` names a token operation
// ("generate", "import", "destroy") and when (before or after its effect); the operation then
// throws Crash, which leaves the Service as a killed process would (the token changed or
// not, nothing more committed). The test then restarts the harness and reruns the step.

#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "token_gate.hpp"

namespace dkim::test {

struct Crash : std::runtime_error {
    Crash() : std::runtime_error("crash injected") {}
};

class FakeGate final : public signerd::TokenGate {
  public:
    enum class When { before, after };
    struct CrashPoint {
        std::string operation;
        When when = When::after;
    };

    Expected<void, signerd::GateError> login(hsm::Secret pin, bool relogin) override {
        ++login_calls;
        last_relogin = relogin;
        if (!pin.equals(hsm::Secret::from_string(user_pin))) {
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::wrong_pin, "CKR_PIN_INCORRECT"});
        }
        in = true;
        ++logins;
        return {};
    }
    void logout() override {
        in = false;
        ++logouts;
    }
    bool logged_in() const override { return in; }
    // The PIN the token accepts (a test changes it as the security officer would).
    std::string user_pin = "1234";
    Expected<std::string, signerd::GateError> sign(const std::string& domain,
                                                   const std::string& selector, SigningAlgorithm,
                                                   std::string_view data) override {
        if (before_sign) {
            before_sign();
        }
        if (!in) {
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::locked, "not logged in"});
        }
        if (find(domain, selector) != nullptr && !has_private(domain, selector)) {
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::no_key, "no private key " + selector});
        }
        ++signatures;
        return "sig(" + domain + "/" + selector + "," + std::to_string(data.size()) + ")";
    }
    Expected<PublicKey, signerd::GateError> public_key(const std::string& domain,
                                                       const std::string& selector) override {
        if (domain != "example.com" || selector != "sel") {
            if (const auto* k = find(domain, selector)) {
                return PublicKey{k->algorithm == "ed25519" ? "ed25519" : "rsa", k->dkim_record};
            }
            if (signing_keys.count(domain + "/" + selector) != 0) {
                return PublicKey{"rsa", std::string(270, 'k')};
            }
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::no_key, "no key " + selector});
        }
        return PublicKey{"ed25519", std::string(32, 'k')};
    }
    Expected<CheckpointSignature, signerd::GateError> sign_checkpoint(std::string_view) override {
        if (!in) {
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::locked, "not logged in"});
        }
        if (checkpoint_fails) {
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::token, "CKR_DEVICE_ERROR"});
        }
        ++checkpoints;
        return CheckpointSignature{"audit", "ed25519-sha256", "sig"};
    }
    Expected<std::vector<KeyDescription>, signerd::GateError> list_keys() override {
        if (unreadable) {
            return unexpected(signerd::GateError{signerd::GateError::Kind::token, "unreadable"});
        }
        return keys;
    }
    Expected<KeyDescription, signerd::GateError> generate_key(
        const std::string& domain, const std::string& selector,
        const std::string& algorithm) override {
        return make("generate", domain, selector, algorithm);
    }
    Expected<KeyDescription, signerd::GateError> import_key(const std::string& domain,
                                                            const std::string& selector,
                                                            std::string_view key) override {
        last_import = std::string(key);
        return make("import", domain, selector, imported_algorithm);
    }
    Expected<std::size_t, signerd::GateError> destroy_private_key(
        const std::string& domain, const std::string& selector) override {
        if (!in) {
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::locked, "not logged in"});
        }
        maybe_crash("destroy", When::before);
        const std::size_t n = privates.erase(domain + "/" + selector);
        destroyed += static_cast<int>(n);
        maybe_crash("destroy", When::after);
        return n;
    }

    const KeyDescription* find(const std::string& domain, const std::string& selector) const {
        for (const auto& k : keys) {
            if (k.domain == domain && k.selector == selector) {
                return &k;
            }
        }
        return nullptr;
    }
    bool has_private(const std::string& domain, const std::string& selector) const {
        return privates.count(domain + "/" + selector) != 0;
    }
    // A key that exists in the token, made outside the lifecycle (unmanaged).
    void add_key(const std::string& domain, const std::string& selector,
                 const std::string& algorithm = "rsa-2048") {
        keys.push_back(describe(domain, selector, algorithm));
        privates.insert(domain + "/" + selector);
    }

    std::vector<KeyDescription> keys;
    std::function<void()> before_sign;  // runs as each signature starts (fault injection)
    std::set<std::string> privates;     // "domain/selector" with a private half
    // RSA keys the token holds outside `keys` (not listed, unmanaged): what the service tests
    // sign with. signerd refuses to sign for a key the token does not hold.
    std::set<std::string> signing_keys = {"example.com/s1", "example.com/s2", "example.org/s1"};
    std::optional<CrashPoint> crash;
    bool unreadable = false;
    bool in = false;
    int logins = 0;
    int login_calls = 0;
    int logouts = 0;
    int signatures = 0;
    int checkpoints = 0;
    bool checkpoint_fails = false;
    int generated = 0;
    int destroyed = 0;
    bool last_relogin = true;
    std::string last_import;
    std::string imported_algorithm = "rsa-2048";

  private:
    static KeyDescription describe(const std::string& domain, const std::string& selector,
                                   const std::string& algorithm) {
        const bool ed = algorithm == "ed25519";
        return {domain,
                selector,
                algorithm,
                ed ? "ed25519-sha256" : "rsa-sha256",
                ed ? 256U : 2048U,
                std::string("v=DKIM1; k=") + (ed ? "ed25519" : "rsa") + "; p=" + selector};
    }
    void maybe_crash(const std::string& operation, When when) {
        if (crash && crash->operation == operation && crash->when == when) {
            crash.reset();
            throw Crash();
        }
    }
    Expected<KeyDescription, signerd::GateError> make(const std::string& operation,
                                                      const std::string& domain,
                                                      const std::string& selector,
                                                      const std::string& algorithm) {
        if (!in) {
            return unexpected(
                signerd::GateError{signerd::GateError::Kind::locked, "not logged in"});
        }
        maybe_crash(operation, When::before);
        if (find(domain, selector) != nullptr) {
            return unexpected(signerd::GateError{signerd::GateError::Kind::exists, "exists"});
        }
        add_key(domain, selector, algorithm);
        ++generated;
        maybe_crash(operation, When::after);
        return keys.back();
    }
};

}  // namespace dkim::test

#pragma once
// The token as signerd sees it: logged in or not, and signing with a DKIM key or the audit
// key while logged in. TokenGate is the seam for unit tests (a fake); HsmTokenGate is the
// real one over hsm/. Login and logout are driven by the Service (the login lifecycle),
// never by the gate itself.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dkim/dkim/signature.hpp"
#include "dkim/expected.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/hsm/signing_pool.hpp"
#include "dkim/hsm/token.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::signerd {

struct GateError {
    enum class Kind : std::uint8_t {
        locked,
        no_key,
        wrong_pin,
        token,
        invalid,
        exists
    } kind = Kind::token;
    std::string message;
};

class TokenGate {
  public:
    virtual ~TokenGate() = default;
    // C_Login with `pin`. relogin: keep a copy to recover lost sessions (not in approver mode).
    virtual Expected<void, GateError> login(hsm::Secret pin, bool relogin) = 0;
    // C_Logout and close every session of this application on the token.
    virtual void logout() = 0;
    virtual bool logged_in() const = 0;
    virtual Expected<std::string, GateError> sign(const std::string& domain,
                                                  const std::string& selector,
                                                  SigningAlgorithm algorithm,
                                                  std::string_view data) = 0;
    // The public half of domain/selector: readable without a login.
    struct PublicKey {
        std::string key_type;  // "rsa", "ed25519"
        std::string key;       // rsa: SubjectPublicKeyInfo DER; ed25519: the 32 raw bytes
    };
    virtual Expected<PublicKey, GateError> public_key(const std::string& domain,
                                                      const std::string& selector) = 0;
    // The kind of domain/selector's key ("rsa", "ed25519"), for a key signerd has no lifecycle
    // record of: asked before every such signature. This one reads the public half; a gate
    // that can answer cheaply overrides it.
    virtual Expected<std::string, GateError> key_kind(const std::string& domain,
                                                      const std::string& selector) {
        auto key = public_key(domain, selector);
        if (!key) {
            return unexpected(key.error());
        }
        return std::move(key->key_type);
    }
    // The DKIM keys in the token, from their public halves (no login needed), sorted by domain
    // and selector; the audit key is not among them.
    struct KeyDescription {
        std::string domain;
        std::string selector;
        std::string algorithm;  // "rsa-2048", "ed25519"
        std::string signing;    // "rsa-sha256", "ed25519-sha256"
        unsigned bits = 0;
        std::string dkim_record;  // "v=DKIM1; k=...; p=..."
    };
    virtual Expected<std::vector<KeyDescription>, GateError> list_keys() = 0;
    // Generates a key pair in the token (needs a login). Refuses a name that exists.
    virtual Expected<KeyDescription, GateError> generate_key(const std::string& domain,
                                                             const std::string& selector,
                                                             const std::string& algorithm) = 0;
    // Imports a private key made outside the token (hsm::KeyStore::import; needs a login).
    // Importing the same key again under the same name returns it (a rerun after a crash).
    virtual Expected<KeyDescription, GateError> import_key(const std::string& domain,
                                                           const std::string& selector,
                                                           std::string_view private_key) = 0;
    // Destroys the private half of domain/selector (needs a login); the number destroyed, 0
    // when none was left.
    virtual Expected<std::size_t, GateError> destroy_private_key(const std::string& domain,
                                                                 const std::string& selector) = 0;
    // Signs an audit checkpoint with the audit key (generated in the token on first use).
    // Returns (key label, algorithm, signature).
    struct CheckpointSignature {
        std::string key_label;
        std::string algorithm;
        std::string signature;
    };
    virtual Expected<CheckpointSignature, GateError> sign_checkpoint(std::string_view message) = 0;
};

// The audit key: Ed25519 (RSA-2048 on a token without EdDSA), label
// "audit._domainkey.signerd.invalid" (.invalid never resolves: no DNS name can collide with it).
hsm::KeyName audit_key_name();

class HsmTokenGate final : public TokenGate {
  public:
    explicit HsmTokenGate(std::shared_ptr<hsm::Token> token);
    ~HsmTokenGate() override;

    Expected<void, GateError> login(hsm::Secret pin, bool relogin) override;
    void logout() override;
    bool logged_in() const override;
    Expected<std::string, GateError> sign(const std::string& domain, const std::string& selector,
                                          SigningAlgorithm algorithm,
                                          std::string_view data) override;
    Expected<PublicKey, GateError> public_key(const std::string& domain,
                                              const std::string& selector) override;
    // While logged in, from the key cache that sign() uses (one token search per key and
    // login): reading the public half lists every object of the token under the module's
    // key-management lock, which would serialize concurrent signatures.
    Expected<std::string, GateError> key_kind(const std::string& domain,
                                              const std::string& selector) override;
    Expected<CheckpointSignature, GateError> sign_checkpoint(std::string_view message) override;
    Expected<std::vector<KeyDescription>, GateError> list_keys() override;
    Expected<KeyDescription, GateError> generate_key(const std::string& domain,
                                                     const std::string& selector,
                                                     const std::string& algorithm) override;
    Expected<KeyDescription, GateError> import_key(const std::string& domain,
                                                   const std::string& selector,
                                                   std::string_view private_key) override;
    Expected<std::size_t, GateError> destroy_private_key(const std::string& domain,
                                                         const std::string& selector) override;

    const std::shared_ptr<hsm::Token>& token() const { return token_; }

  private:
    // A locked error unless a grant keeps the token logged in (key changes need one).
    Expected<void, GateError> require_login() const;
    Expected<hsm::KeyInfo, GateError> key(const hsm::KeyName& name);

    struct State {
        std::optional<hsm::Login> login;
        std::uint64_t keys_epoch = 0;
        std::map<std::string, hsm::KeyInfo> keys;  // by label, valid for keys_epoch
    };

    std::shared_ptr<hsm::Token> token_;
    std::unique_ptr<hsm::SigningPool> pool_;
    LockGuarded<State> state_;
};

}  // namespace dkim::signerd

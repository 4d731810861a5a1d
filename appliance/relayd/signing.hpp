#pragma once
// Signing for the relay: DKIM-Signature fields made by dkim::MessageSigner, the private-key
// operation done by dkim-signerd (the token), and every signature the token returns verified
// with the key's public half before the message may leave. The public halves come from
// signerd (read from the token without a login) and are cached; a signature that does not
// verify makes the key be read again once, then the message is refused (4xx), never sent.
//
// A managed domain (no selectors in the config) signs with the keys signerd reports active
// for it, asked again after `key_refresh` (config) or at once after signerd refused a key: a
// rotation reaches the relay without a restart. Retiring keys still sign at signerd for the
// grace period, so a message that started under the old selector still goes out.
//
// Blocking: sign() and public-key fetches talk to signerd over its Unix socket. The relay
// runs them on its worker pool, one signerd connection per worker thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/ipc/client.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::relayd {

struct SignFailure {
    enum class Kind : std::uint8_t {
        locked,       // no covering grant: signerd filed (or reuses) request `request_id`
        unavailable,  // signerd, its audit log or the token cannot be used now
        self_check,   // the token's signature does not verify with the public key
        refused,      // signerd refused for another reason (configuration mismatch)
    } kind = Kind::unavailable;
    std::string message;
    std::string selector;
    std::int64_t request_id = 0;
};

// One message's signatures: created when its header section is complete (so that the body
// is hashed as it arrives), finished on a worker thread.
class BodySignature {
  public:
    virtual ~BodySignature() = default;
    virtual void update_body(std::string_view chunk) = 0;
    // Blocking. The DKIM-Signature fields to put on top of the message.
    virtual Expected<std::string, SignFailure> finish(const mail::HeaderBlock& header,
                                                      TimePoint now) = 0;
    virtual const std::vector<std::string>& selectors() const = 0;
};

// Where signatures come from: SigningService (signerd) in the daemon, a fake in tests.
class SigningBackend {
  public:
    virtual ~SigningBackend() = default;
    // Non-blocking: the signatures for `domain` when every selector's public key is cached,
    // else nullptr (call prepare() on a worker, then try again). `smtp_client` (the
    // [[client]] name) is stated to signerd with each signature, for its audit log.
    virtual std::unique_ptr<BodySignature> start(const SigningDomain& domain,
                                                 const std::string& smtp_client) = 0;
    // Blocking: fetches the missing public keys of `domain`.
    virtual Expected<void, SignFailure> prepare(const SigningDomain& domain) = 0;
};

class SigningService;

class MessageSigning final : public BodySignature {
  public:
    MessageSigning();
    ~MessageSigning() override;
    MessageSigning(const MessageSigning&) = delete;
    MessageSigning& operator=(const MessageSigning&) = delete;

    void update_body(std::string_view chunk) override { signer_->update_body(chunk); }
    Expected<std::string, SignFailure> finish(const mail::HeaderBlock& header,
                                              TimePoint now) override;
    const std::vector<std::string>& selectors() const override { return selectors_; }

  private:
    friend class SigningService;
    class CheckedSigner;

    std::vector<std::unique_ptr<CheckedSigner>> signers_;
    std::unique_ptr<MessageSigner> signer_;
    std::vector<std::string> selectors_;
};

class SigningService final : public SigningBackend {
  public:
    // `clock`'s monotonic time ages the cached selectors of managed domains.
    SigningService(const Config& config, const Clock& clock,
                   ipc::ClientOptions client_options = {});
    ~SigningService() override;

    std::unique_ptr<BodySignature> start(const SigningDomain& domain,
                                         const std::string& smtp_client) override;
    Expected<void, SignFailure> prepare(const SigningDomain& domain) override;
    // Blocking: fetches every configured key it can; the errors, one per key that failed.
    std::vector<std::string> prefetch();
    // Drops what is cached of a managed domain's selectors: the next message asks again.
    void forget_selectors(const std::string& domain);

  private:
    friend class MessageSigning;
    struct Key {
        SigningAlgorithm algorithm = SigningAlgorithm::rsa_sha256;
        crypto::PublicKey public_key;
    };
    std::optional<Key> cached(const std::string& domain, const std::string& selector);
    // Managed domains: the cached active selectors while fresh.
    std::optional<std::vector<std::string>> fresh_selectors(const std::string& domain);
    Expected<std::vector<std::string>, SignFailure> fetch_selectors(const std::string& domain);
    Expected<Key, SignFailure> fetch(const std::string& domain, const std::string& selector);
    // This thread's connection to signerd.
    ipc::SignerClient& client();

    const Config& config_;
    ipc::ClientOptions client_options_;
    const Clock& clock_;
    struct Selectors {
        std::vector<std::string> names;
        MonotonicTime fetched;
    };
    struct Cache {
        std::map<std::string, Key> keys;           // "selector._domainkey.domain"
        std::map<std::string, Selectors> managed;  // by domain
    };
    LockGuarded<Cache> cache_;
};

}  // namespace dkim::relayd

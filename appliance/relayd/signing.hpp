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
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/ipc/client.hpp"

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

class SigningService;

// One message's signatures: created when its header section is complete (so that the body
// is hashed as it arrives), finished on a worker thread.
class MessageSigning {
  public:
    MessageSigning();
    ~MessageSigning();
    MessageSigning(const MessageSigning&) = delete;
    MessageSigning& operator=(const MessageSigning&) = delete;

    void update_body(std::string_view chunk) { signer_->update_body(chunk); }
    // Blocking. The DKIM-Signature fields to put on top of the message.
    Expected<std::string, SignFailure> finish(const mail::HeaderBlock& header,
                                              std::chrono::system_clock::time_point now);
    const std::vector<std::string>& selectors() const { return selectors_; }

  private:
    friend class SigningService;
    class CheckedSigner;

    std::vector<std::unique_ptr<CheckedSigner>> signers_;
    std::unique_ptr<MessageSigner> signer_;
    std::vector<std::string> selectors_;
};

class SigningService {
  public:
    using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;
    SigningService(
        const Config& config, ipc::ClientOptions client_options = {},
        SteadyNow now = [] { return std::chrono::steady_clock::now(); });
    ~SigningService();

    // Non-blocking: a MessageSigning for `domain` when every selector's public key is
    // cached, else nullopt (call prepare() on a worker, then try again).
    // `smtp_client` (the [[client]] name) is stated to signerd with each signature, for its
    // audit log.
    std::unique_ptr<MessageSigning> start(const SigningDomain& domain,
                                          const std::string& smtp_client = {});
    // Blocking: fetches the missing public keys of `domain`.
    Expected<void, SignFailure> prepare(const SigningDomain& domain);
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
    std::mutex mutex_;
    std::map<std::string, Key> keys_;  // "selector._domainkey.domain"
    struct Selectors {
        std::vector<std::string> names;
        std::chrono::steady_clock::time_point fetched;
    };
    SteadyNow now_;
    std::map<std::string, Selectors> managed_;  // by domain
};

}  // namespace dkim::relayd

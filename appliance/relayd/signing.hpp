#pragma once
// Signing for the relay: DKIM-Signature fields made by dkim::MessageSigner, the private-key
// operation done by dkim-signerd (the token), and every signature the token returns verified
// with the key's public half before the message may leave. The public halves come from
// signerd (read from the token without a login) and are cached; a signature that does not
// verify makes the key be read again once, then the message is refused (4xx), never sent.
//
// Blocking: sign() and public-key fetches talk to signerd over its Unix socket. The relay
// runs them on its worker pool, one signerd connection per worker thread.

#include <chrono>
#include <cstdint>
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
    SigningService(const Config& config, ipc::ClientOptions client_options = {});
    ~SigningService();

    // Non-blocking: a MessageSigning for `domain` when every selector's public key is
    // cached, else nullopt (call prepare() on a worker, then try again).
    std::unique_ptr<MessageSigning> start(const SigningDomain& domain);
    // Blocking: fetches the missing public keys of `domain`.
    Expected<void, SignFailure> prepare(const SigningDomain& domain);
    // Blocking: fetches every configured key it can; the errors, one per key that failed.
    std::vector<std::string> prefetch();

  private:
    friend class MessageSigning;
    struct Key {
        SigningAlgorithm algorithm = SigningAlgorithm::rsa_sha256;
        crypto::PublicKey public_key;
    };
    std::optional<Key> cached(const std::string& domain, const std::string& selector);
    Expected<Key, SignFailure> fetch(const std::string& domain, const std::string& selector);
    // This thread's connection to signerd.
    ipc::SignerClient& client();

    const Config& config_;
    ipc::ClientOptions client_options_;
    std::mutex mutex_;
    std::map<std::string, Key> keys_;  // "selector._domainkey.domain"
};

}  // namespace dkim::relayd

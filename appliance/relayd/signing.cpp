#include "signing.hpp"

#include "dkim/crypto/sha256.hpp"
#include "dkim/ipc/remote_signer.hpp"

namespace dkim::relayd {

namespace {

std::string key_label(const std::string& domain, const std::string& selector) {
    return selector + "._domainkey." + domain;
}

}  // namespace

// A Signer that asks signerd and checks the answer with the public key.
class MessageSigning::CheckedSigner final : public Signer {
  public:
    CheckedSigner(SigningService& service, std::string domain, std::string selector,
                  SigningService::Key key, std::string smtp_client)
        : service_(service),
          domain_(std::move(domain)),
          selector_(std::move(selector)),
          key_(std::move(key)),
          smtp_client_(std::move(smtp_client)) {}

    SigningAlgorithm algorithm() const override { return key_.algorithm; }

    Expected<std::string, std::string> sign(std::string_view data) override {
        ipc::RemoteSigner remote(service_.client(), domain_, selector_, key_.algorithm,
                                 smtp_client_);
        auto signature = remote.sign(data);
        if (!signature) {
            failure_.selector = selector_;
            failure_.message = signature.error();
            failure_.request_id = remote.last_request_id();
            const auto code = remote.last_code();
            failure_.kind = code == ipc::ErrorCode::locked        ? SignFailure::Kind::locked
                            : code == ipc::ErrorCode::unavailable ? SignFailure::Kind::unavailable
                                                                  : SignFailure::Kind::refused;
            if (failure_.kind == SignFailure::Kind::refused) {
                // A key retired or replaced since the selectors were cached.
                service_.forget_selectors(domain_);
            }
            return unexpected(signature.error());
        }
        const auto digest = crypto::Sha256::hash(data);
        if (key_.public_key.verify(key_.algorithm, digest, *signature)) {
            return signature;
        }
        // The key may have been replaced in the token (rotation): read it again, once.
        auto fresh = service_.fetch(domain_, selector_);
        if (fresh && fresh->algorithm == key_.algorithm &&
            fresh->public_key.verify(key_.algorithm, digest, *signature)) {
            key_ = std::move(*fresh);
            return signature;
        }
        failure_ = SignFailure{SignFailure::Kind::self_check,
                               "the token's signature for " + key_label(domain_, selector_) +
                                   " does not verify with its public key; not sent",
                               selector_, 0};
        return unexpected(failure_.message);
    }

    const SignFailure& failure() const { return failure_; }

  private:
    SigningService& service_;
    std::string domain_;
    std::string selector_;
    SigningService::Key key_;
    std::string smtp_client_;
    SignFailure failure_;
};

MessageSigning::MessageSigning() = default;
MessageSigning::~MessageSigning() = default;

Expected<std::string, SignFailure> MessageSigning::finish(const mail::HeaderBlock& header,
                                                          TimePoint now) {
    auto fields = signer_->finish(header, now);
    if (fields) {
        return std::move(*fields);
    }
    for (const auto& s : signers_) {
        if (!s->failure().message.empty()) {
            return unexpected(s->failure());
        }
    }
    // Refused before any key was used (the message itself: e.g. not exactly one From).
    return unexpected(SignFailure{SignFailure::Kind::refused, fields.error().message, "", 0});
}

SigningService::SigningService(const Config& config, const Clock& clock,
                               ipc::ClientOptions client_options)
    : config_(config), client_options_(client_options), clock_(clock) {}

SigningService::~SigningService() = default;

ipc::SignerClient& SigningService::client() {
    // One connection per worker thread (and per service, for tests that run several).
    thread_local std::map<const SigningService*, std::unique_ptr<ipc::SignerClient>> clients;
    auto& c = clients[this];
    if (!c) {
        c = std::make_unique<ipc::SignerClient>(config_.signerd_socket, client_options_);
    }
    return *c;
}

std::optional<SigningService::Key> SigningService::cached(const std::string& domain,
                                                          const std::string& selector) {
    const auto cache = cache_.read_only_lock();
    const auto it = cache->keys.find(key_label(domain, selector));
    if (it == cache->keys.end()) {
        return std::nullopt;
    }
    return it->second;
}

Expected<SigningService::Key, SignFailure> SigningService::fetch(const std::string& domain,
                                                                 const std::string& selector) {
    auto reply = client().call(ipc::PublicKeyRequest{domain, selector});
    if (!reply) {
        return unexpected(SignFailure{SignFailure::Kind::unavailable, reply.error(), selector, 0});
    }
    if (const auto* error = std::get_if<ipc::ErrorReply>(&*reply)) {
        const auto kind = error->code == ipc::ErrorCode::unavailable
                              ? SignFailure::Kind::unavailable
                              : SignFailure::Kind::refused;
        return unexpected(SignFailure{
            kind, "the public key of " + key_label(domain, selector) + ": " + error->describe(),
            selector, 0});
    }
    const auto* found = std::get_if<ipc::PublicKeyReply>(&*reply);
    if (found == nullptr) {
        return unexpected(SignFailure{SignFailure::Kind::unavailable,
                                      "unexpected reply from dkim-signerd", selector, 0});
    }
    const bool ed25519 = found->key_type == "ed25519";
    auto key = crypto::PublicKey::parse(ed25519 ? KeyType::ed25519 : KeyType::rsa, found->key);
    if (!key || (!ed25519 && found->key_type != "rsa")) {
        return unexpected(
            SignFailure{SignFailure::Kind::refused,
                        "the public key of " + key_label(domain, selector) +
                            " cannot be used: " + (key ? found->key_type : key.error()),
                        selector, 0});
    }
    Key k{ed25519 ? SigningAlgorithm::ed25519_sha256 : SigningAlgorithm::rsa_sha256,
          std::move(*key)};
    cache_.lock()->keys[key_label(domain, selector)] = k;
    return k;
}

std::optional<std::vector<std::string>> SigningService::fresh_selectors(const std::string& domain) {
    const auto cache = cache_.read_only_lock();
    const auto it = cache->managed.find(domain);
    if (it == cache->managed.end() ||
        clock_.monotonic() - it->second.fetched >= config_.key_refresh) {
        return std::nullopt;
    }
    return it->second.names;
}

void SigningService::forget_selectors(const std::string& domain) {
    cache_.lock()->managed.erase(domain);
}

Expected<std::vector<std::string>, SignFailure> SigningService::fetch_selectors(
    const std::string& domain) {
    auto reply = client().call(ipc::SigningKeysRequest{domain});
    if (!reply) {
        return unexpected(SignFailure{SignFailure::Kind::unavailable, reply.error(), "", 0});
    }
    if (const auto* error = std::get_if<ipc::ErrorReply>(&*reply)) {
        const auto kind = error->code == ipc::ErrorCode::unavailable
                              ? SignFailure::Kind::unavailable
                              : SignFailure::Kind::refused;
        return unexpected(
            SignFailure{kind, "the signing keys of " + domain + ": " + error->describe(), "", 0});
    }
    const auto* found = std::get_if<ipc::SigningKeysReply>(&*reply);
    if (found == nullptr) {
        return unexpected(SignFailure{SignFailure::Kind::unavailable,
                                      "unexpected reply from dkim-signerd", "", 0});
    }
    if (found->keys.empty()) {
        return unexpected(SignFailure{
            SignFailure::Kind::refused,
            "no active key for " + domain + " (dkim-appliance key list; key activate)", "", 0});
    }
    std::vector<std::string> names;
    for (const auto& k : found->keys) {
        names.push_back(k.selector);
    }
    cache_.lock()->managed[domain] = Selectors{names, clock_.monotonic()};
    return names;
}

std::unique_ptr<BodySignature> SigningService::start(const SigningDomain& domain,
                                                     const std::string& smtp_client) {
    auto signing = std::make_unique<MessageSigning>();
    std::vector<SigningKey> keys;
    const auto names = domain.managed() ? fresh_selectors(domain.name) : domain.selectors;
    if (!names) {
        return nullptr;
    }
    for (const auto& selector : *names) {
        auto key = cached(domain.name, selector);
        if (!key) {
            return nullptr;
        }
        signing->signers_.push_back(std::make_unique<MessageSigning::CheckedSigner>(
            *this, domain.name, selector, *key, smtp_client));
        keys.push_back(SigningKey{domain.name, selector, signing->signers_.back().get(), {}});
        signing->selectors_.push_back(selector);
    }
    SignOptions options;
    options.canonicalization = config_.canonicalization;
    options.expire_after = config_.expire_after;
    signing->signer_ = std::make_unique<MessageSigner>(std::move(keys), options);
    return signing;
}

Expected<void, SignFailure> SigningService::prepare(const SigningDomain& domain) {
    auto names = domain.managed() ? fresh_selectors(domain.name) : domain.selectors;
    if (!names) {
        auto fetched = fetch_selectors(domain.name);
        if (!fetched) {
            return unexpected(fetched.error());
        }
        names = std::move(*fetched);
    }
    for (const auto& selector : *names) {
        if (!cached(domain.name, selector)) {
            auto key = fetch(domain.name, selector);
            if (!key) {
                return unexpected(key.error());
            }
        }
    }
    return {};
}

std::vector<std::string> SigningService::prefetch() {
    std::vector<std::string> errors;
    for (const auto& domain : config_.domains) {
        if (auto prepared = prepare(domain); !prepared) {
            errors.push_back(prepared.error().message);
        }
    }
    return errors;
}

}  // namespace dkim::relayd

#include "token_gate.hpp"

#include "dkim/provisioning/dns_record.hpp"

namespace dkim::signerd {

hsm::KeyName audit_key_name() {
    return hsm::KeyName{"signerd.invalid", "audit"};
}

namespace {

GateError from_hsm(const hsm::Error& error) {
    switch (error.code) {
        case hsm::ErrorCode::locked: return {GateError::Kind::locked, error.to_string()};
        case hsm::ErrorCode::key_not_found: return {GateError::Kind::no_key, error.to_string()};
        case hsm::ErrorCode::key_exists: return {GateError::Kind::exists, error.to_string()};
        case hsm::ErrorCode::invalid_argument: return {GateError::Kind::invalid, error.to_string()};
        case hsm::ErrorCode::pin_incorrect:
        case hsm::ErrorCode::pin_locked: return {GateError::Kind::wrong_pin, error.to_string()};
        default: return {GateError::Kind::token, error.to_string()};
    }
}

}  // namespace

HsmTokenGate::HsmTokenGate(std::shared_ptr<hsm::Token> token)
    : token_(std::move(token)), pool_(std::make_unique<hsm::SigningPool>(token_)) {}

HsmTokenGate::~HsmTokenGate() {
    logout();
}

Expected<void, GateError> HsmTokenGate::login(hsm::Secret pin, bool relogin) {
    auto state = state_.lock();
    if (state->login && state->login->held()) {
        return {};
    }
    auto acquired = hsm::Login::acquire(
        token_, std::move(pin),
        relogin ? hsm::Login::Relogin::allowed : hsm::Login::Relogin::forbidden);
    if (!acquired) {
        return unexpected(from_hsm(acquired.error()));
    }
    state->login.emplace(std::move(*acquired));
    return {};
}

void HsmTokenGate::logout() {
    auto state = state_.lock();
    if (state->login) {
        (void)state->login->release();
        state->login.reset();
    }
    // Every session of this application, pool sessions included: after this, a C_Sign on any
    // handle we ever had fails.
    (void)token_->close_all_sessions();
    state->keys.clear();
}

Expected<void, GateError> HsmTokenGate::require_login() const {
    if (!state_.read_only_lock()->login) {
        return unexpected(GateError{GateError::Kind::locked, "the token is not logged in"});
    }
    return {};
}

bool HsmTokenGate::logged_in() const {
    const auto state = state_.read_only_lock();
    return state->login.has_value() && token_->logged_in();
}

Expected<hsm::KeyInfo, GateError> HsmTokenGate::key(const hsm::KeyName& name) {
    {
        auto state = state_.lock();
        if (!state->login) {
            return unexpected(GateError{GateError::Kind::locked, "the token is not logged in"});
        }
        if (state->keys_epoch != token_->login_epoch()) {
            state->keys.clear();
            state->keys_epoch = token_->login_epoch();
        }
        const auto it = state->keys.find(name.label());
        if (it != state->keys.end()) {
            return it->second;
        }
    }
    hsm::KeyStore store(token_);
    auto found = store.find(name);
    if (!found) {
        return unexpected(from_hsm(found.error()));
    }
    state_.lock()->keys[name.label()] = *found;
    return std::move(*found);
}

Expected<std::string, GateError> HsmTokenGate::sign(const std::string& domain,
                                                    const std::string& selector,
                                                    SigningAlgorithm algorithm,
                                                    std::string_view data) {
    auto name = hsm::KeyName::make(domain, selector);
    if (!name) {
        return unexpected(GateError{GateError::Kind::no_key, name.error().to_string()});
    }
    auto info = key(*name);
    if (!info) {
        return unexpected(info.error());
    }
    const bool matches =
        (algorithm == SigningAlgorithm::rsa_sha256 && info->type == hsm::KeyType::rsa) ||
        (algorithm == SigningAlgorithm::ed25519_sha256 && info->type == hsm::KeyType::ed25519);
    if (!matches) {
        return unexpected(GateError{GateError::Kind::no_key,
                                    "the key " + name->label() + " is " +
                                        std::string(hsm::dkim_signature_algorithm(info->type)) +
                                        ", not " + std::string(to_string(algorithm))});
    }
    auto signature =
        pool_->sign(*info, {reinterpret_cast<const unsigned char*>(data.data()), data.size()});
    if (!signature) {
        return unexpected(from_hsm(signature.error()));
    }
    return std::string(signature->begin(), signature->end());
}

Expected<TokenGate::PublicKey, GateError> HsmTokenGate::public_key(const std::string& domain,
                                                                   const std::string& selector) {
    auto name = hsm::KeyName::make(domain, selector);
    if (!name) {
        return unexpected(GateError{GateError::Kind::no_key, name.error().to_string()});
    }
    hsm::KeyStore store(token_);
    auto info = store.find(*name);
    if (!info) {
        return unexpected(from_hsm(info.error()));
    }
    auto key = store.public_key(*info);
    if (!key) {
        return unexpected(from_hsm(key.error()));
    }
    if (key->type == hsm::KeyType::ed25519) {
        return PublicKey{"ed25519", std::string(key->raw.begin(), key->raw.end())};
    }
    return PublicKey{"rsa", std::string(key->spki_der.begin(), key->spki_der.end())};
}

Expected<std::string, GateError> HsmTokenGate::key_kind(const std::string& domain,
                                                        const std::string& selector) {
    auto name = hsm::KeyName::make(domain, selector);
    if (!name) {
        return unexpected(GateError{GateError::Kind::no_key, name.error().to_string()});
    }
    auto info = key(*name);
    if (!info && info.error().kind == GateError::Kind::locked) {
        // Not logged in: the public halves are readable, the cache is not kept.
        return TokenGate::key_kind(domain, selector);
    }
    if (!info) {
        return unexpected(info.error());
    }
    if (!info->has_public) {
        // As public_key() answers: a key without its public half is not one to sign with.
        return unexpected(
            GateError{GateError::Kind::no_key,
                      "key " + name->label() + " in " + token_->name() + " has no public half"});
    }
    return std::string(info->type == hsm::KeyType::ed25519 ? "ed25519" : "rsa");
}

Expected<TokenGate::CheckpointSignature, GateError> HsmTokenGate::sign_checkpoint(
    std::string_view message) {
    const hsm::KeyName name = audit_key_name();
    auto info = key(name);
    if (!info && info.error().kind == GateError::Kind::no_key) {
        hsm::KeyStore store(token_);
        auto generated = store.generate(name, hsm::KeyAlgorithm::ed25519);
        if (!generated && generated.error().code == hsm::ErrorCode::unsupported) {
            // A token without EdDSA (openCryptoki 3.8.1): an RSA audit key, whose public half
            // `audit key` prints as its SubjectPublicKeyInfo.
            generated = store.generate(name, hsm::KeyAlgorithm::rsa2048);
        }
        if (!generated) {
            return unexpected(from_hsm(generated.error()));
        }
        info = key(name);
    }
    if (!info) {
        return unexpected(info.error());
    }
    auto signature = pool_->sign(
        *info, {reinterpret_cast<const unsigned char*>(message.data()), message.size()});
    if (!signature) {
        return unexpected(from_hsm(signature.error()));
    }
    return CheckpointSignature{name.label(), std::string(hsm::dkim_signature_algorithm(info->type)),
                               std::string(signature->begin(), signature->end())};
}

namespace {

Expected<TokenGate::KeyDescription, GateError> describe(hsm::KeyStore& store,
                                                        const hsm::KeyInfo& info) {
    auto key = store.public_key(info);
    if (!key) {
        return unexpected(from_hsm(key.error()));
    }
    return TokenGate::KeyDescription{info.name.domain,
                                     info.name.selector,
                                     info.algorithm_name(),
                                     std::string(hsm::dkim_signature_algorithm(info.type)),
                                     info.bits,
                                     provisioning::dkim_record_value(*key)};
}

}  // namespace

namespace {

// The name of a DKIM key that an operator may create: valid, and not the audit key's.
Expected<hsm::KeyName, GateError> operator_key_name(const std::string& domain,
                                                    const std::string& selector) {
    auto name = hsm::KeyName::make(domain, selector);
    if (!name) {
        return unexpected(GateError{GateError::Kind::invalid, name.error().to_string()});
    }
    if (*name == audit_key_name()) {
        return unexpected(GateError{GateError::Kind::invalid, "that name is the audit key's"});
    }
    return std::move(*name);
}

}  // namespace

Expected<std::vector<TokenGate::KeyDescription>, GateError> HsmTokenGate::list_keys() {
    hsm::KeyStore store(token_);
    auto keys = store.list();
    if (!keys) {
        return unexpected(from_hsm(keys.error()));
    }
    std::vector<KeyDescription> out;
    for (const hsm::KeyInfo& info : *keys) {
        if (info.name == audit_key_name() || !info.has_public) {
            continue;
        }
        auto described = describe(store, info);
        if (!described) {
            return unexpected(described.error());
        }
        out.push_back(std::move(*described));
    }
    return out;
}

Expected<TokenGate::KeyDescription, GateError> HsmTokenGate::generate_key(
    const std::string& domain, const std::string& selector, const std::string& algorithm) {
    auto name = operator_key_name(domain, selector);
    if (!name) {
        return unexpected(name.error());
    }
    const auto parsed = hsm::parse_key_algorithm(algorithm);
    if (!parsed) {
        return unexpected(GateError{
            GateError::Kind::invalid,
            "unknown algorithm '" + algorithm + "' (rsa-2048, rsa-3072, rsa-4096 or ed25519)"});
    }
    if (auto ready = require_login(); !ready) {
        return unexpected(ready.error());
    }
    hsm::KeyStore store(token_);
    auto generated = store.generate(*name, *parsed);
    if (!generated) {
        return unexpected(from_hsm(generated.error()));
    }
    return describe(store, *generated);
}

Expected<TokenGate::KeyDescription, GateError> HsmTokenGate::import_key(
    const std::string& domain, const std::string& selector, std::string_view private_key) {
    auto name = operator_key_name(domain, selector);
    if (!name) {
        return unexpected(name.error());
    }
    if (auto ready = require_login(); !ready) {
        return unexpected(ready.error());
    }
    hsm::KeyStore store(token_);
    const std::span<const unsigned char> bytes(
        reinterpret_cast<const unsigned char*>(private_key.data()), private_key.size());  // NOLINT
    auto imported = store.import(*name, bytes);
    if (!imported && imported.error().code == hsm::ErrorCode::key_exists) {
        // A rerun after a crash: the same key (same public half), both halves present.
        auto existing = store.find(*name);
        if (existing && existing->private_half && existing->has_public) {
            auto ours = hsm::public_key_of(bytes);
            auto theirs = store.public_key(*existing);
            if (ours && theirs && ours->spki_der == theirs->spki_der) {
                return describe(store, *existing);
            }
        }
    }
    if (!imported) {
        return unexpected(from_hsm(imported.error()));
    }
    return describe(store, *imported);
}

Expected<std::size_t, GateError> HsmTokenGate::destroy_private_key(const std::string& domain,
                                                                   const std::string& selector) {
    auto name = operator_key_name(domain, selector);
    if (!name) {
        return unexpected(name.error());
    }
    if (auto ready = require_login(); !ready) {
        return unexpected(ready.error());
    }
    state_.lock()->keys.erase(name->label());
    hsm::KeyStore store(token_);
    auto destroyed = store.destroy_private(*name);
    if (!destroyed) {
        return unexpected(from_hsm(destroyed.error()));
    }
    return *destroyed;
}

}  // namespace dkim::signerd

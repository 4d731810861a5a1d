#include "dkim/provisioning/keys.hpp"

namespace dkim::provisioning {

hsm::Result<std::shared_ptr<hsm::Token>> TokenLocation::open() const {
    std::filesystem::path module_path = module;
    hsm::TokenSelector selector = hsm::TokenSelector::by_label(token);
    if (token.rfind("pkcs11:", 0) == 0) {
        auto uri = hsm::Pkcs11Uri::parse(token);
        if (!uri) {
            return dkim::unexpected(hsm::Error{hsm::ErrorCode::invalid_argument,
                                               "token URI " + token + ": " + uri.error(), "", 0});
        }
        if (module_path.empty() && uri->module_path) {
            module_path = *uri->module_path;
        }
        selector = hsm::TokenSelector::by_uri(*uri);
    }
    if (module_path.empty()) {
        return dkim::unexpected(hsm::Error{hsm::ErrorCode::invalid_argument,
                                           "no PKCS#11 module given (--module)", "", 0});
    }
    auto loaded = hsm::Module::load(module_path);
    if (!loaded) {
        return dkim::unexpected(std::move(loaded).error());
    }
    return hsm::Token::open(std::move(*loaded), selector);
}

hsm::Result<hsm::SlotInfo> init_token(const std::filesystem::path& module, const std::string& label,
                                      const hsm::Secret& so_pin, const hsm::Secret& user_pin) {
    if (so_pin.equals(user_pin)) {
        return dkim::unexpected(hsm::Error{hsm::ErrorCode::invalid_argument,
                                           "the SO PIN and the user PIN must differ", "", 0});
    }
    auto loaded = hsm::Module::load(module);
    if (!loaded) {
        return dkim::unexpected(std::move(loaded).error());
    }
    return hsm::initialize_token(**loaded, label, so_pin, user_pin);
}

hsm::Result<GeneratedKey> generate_key(const TokenLocation& where, hsm::Secret pin,
                                       const hsm::KeyName& name, hsm::KeyAlgorithm algorithm) {
    auto token = where.open();
    if (!token) {
        return dkim::unexpected(std::move(token).error());
    }
    // An operator's one-off login: the PIN is used once and wiped.
    auto login = hsm::Login::acquire(*token, std::move(pin), hsm::Login::Relogin::forbidden);
    if (!login) {
        return dkim::unexpected(std::move(login).error());
    }
    hsm::KeyStore store(*token);
    auto key = store.generate(name, algorithm);
    if (!key) {
        return dkim::unexpected(std::move(key).error());
    }
    auto public_key = store.public_key(*key);
    if (!public_key) {
        return dkim::unexpected(std::move(public_key).error());
    }
    if (auto released = login->release(); !released) {
        return dkim::unexpected(std::move(released).error());
    }
    return GeneratedKey{std::move(*key), std::move(*public_key), (*token)->label()};
}

hsm::Result<KeyListing> list_keys(const TokenLocation& where, std::optional<hsm::Secret> pin) {
    auto token = where.open();
    if (!token) {
        return dkim::unexpected(std::move(token).error());
    }
    std::optional<hsm::Login> login;
    if (pin) {
        auto acquired =
            hsm::Login::acquire(*token, std::move(*pin), hsm::Login::Relogin::forbidden);
        if (!acquired) {
            return dkim::unexpected(std::move(acquired).error());
        }
        login.emplace(std::move(*acquired));
    }
    hsm::KeyStore store(*token);
    auto keys = store.list();
    if (!keys) {
        return dkim::unexpected(std::move(keys).error());
    }
    return KeyListing{(*token)->label(), login.has_value(), std::move(*keys)};
}

std::string protection_summary(const hsm::KeyInfo& key, bool logged_in) {
    if (!logged_in) {
        return "not checked (no PIN given)";
    }
    if (!key.private_half) {
        return "MISSING: no private key with this CKA_ID";
    }
    const hsm::PrivateKeyProtection& p = *key.private_half;
    // A token without CKA_ALLOWED_MECHANISMS cannot hold a key to one mechanism: said, as it
    // is the most that token can do.
    const std::string any_mechanism =
        p.token_lacks_allowed_mechanisms
            ? " (this token has no CKA_ALLOWED_MECHANISMS: whoever holds the PIN may use the key "
              "with any of its RSA mechanisms, raw RSA included)"
            : "";
    if (p.as_generated()) {
        return "protected" + any_mechanism;
    }
    if (p.as_imported()) {
        return "protected (imported: it existed outside the token before)" + any_mechanism;
    }
    std::string weak;
    const auto add = [&weak](bool bad, const char* what) {
        if (bad) {
            weak += (weak.empty() ? "" : ", ") + std::string(what);
        }
    };
    add(!p.token, "session object");
    add(!p.is_private, "not private");
    add(!p.sensitive, "not sensitive");
    add(p.extractable, "extractable");
    add(!p.always_sensitive, "was not always sensitive");
    add(!p.never_extractable, "was extractable once");
    add(!p.local, "not generated on the token");
    add(!p.sign, "cannot sign");
    add(p.decrypt, "can decrypt");
    add(p.unwrap, "can unwrap");
    add(p.derive, "can derive");
    add(p.sign_recover, "can sign-recover");
    add(!p.one_mechanism(), "not limited to one mechanism");
    return "WEAK: " + weak;
}

hsm::Result<GeneratedKey> public_key(const TokenLocation& where, const hsm::KeyName& name) {
    auto token = where.open();
    if (!token) {
        return dkim::unexpected(std::move(token).error());
    }
    hsm::KeyStore store(*token);
    auto key = store.find(name);
    if (!key) {
        return dkim::unexpected(std::move(key).error());
    }
    auto public_key = store.public_key(*key);
    if (!public_key) {
        return dkim::unexpected(std::move(public_key).error());
    }
    return GeneratedKey{std::move(*key), std::move(*public_key), (*token)->label()};
}

}  // namespace dkim::provisioning

// The names and values of DKIM keys (keys.hpp): algorithms, KeyName (the label
// "<selector>._domainkey.<domain>", checked by the core's one domain-name validator,
// dkim/dns/name.hpp), what protects a private key, and the DKIM p= value. No token here.
#include <openssl/evp.h>

#include "dkim/dns/name.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::hsm {

std::string_view to_string(KeyAlgorithm algorithm) noexcept {
    switch (algorithm) {
        case KeyAlgorithm::rsa2048: return "rsa-2048";
        case KeyAlgorithm::rsa3072: return "rsa-3072";
        case KeyAlgorithm::rsa4096: return "rsa-4096";
        case KeyAlgorithm::ed25519: return "ed25519";
    }
    return "unknown";
}

std::optional<KeyAlgorithm> parse_key_algorithm(std::string_view text) noexcept {
    for (const auto algorithm : {KeyAlgorithm::rsa2048, KeyAlgorithm::rsa3072,
                                 KeyAlgorithm::rsa4096, KeyAlgorithm::ed25519}) {
        if (to_string(algorithm) == text) {
            return algorithm;
        }
    }
    return std::nullopt;
}

std::string_view to_string(KeyType type) noexcept {
    return type == KeyType::rsa ? "rsa" : "ed25519";
}

std::string_view dkim_signature_algorithm(KeyType type) noexcept {
    return type == KeyType::rsa ? "rsa-sha256" : "ed25519-sha256";
}

Result<KeyName> KeyName::make(std::string_view domain, std::string_view selector) {
    if (std::string problem = dns::key_name_problem(domain, selector); !problem.empty()) {
        return dkim::unexpected(Error{ErrorCode::invalid_argument, std::move(problem), "", 0});
    }
    std::string d = mail::ascii_lowercase(domain);
    if (d.back() == '.') {
        d.pop_back();
    }
    return KeyName{std::move(d), mail::ascii_lowercase(selector)};
}

std::optional<KeyName> KeyName::from_label(std::string_view label) {
    constexpr std::string_view infix = "._domainkey.";
    const auto at = label.find(infix);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    auto name = make(label.substr(at + infix.size()), label.substr(0, at));
    if (!name || name->label() != label) {
        return std::nullopt;
    }
    return *name;
}

std::string KeyName::label() const {
    return selector + "._domainkey." + domain;
}

bool PrivateKeyProtection::as_imported() const {
    return token && is_private && sensitive && !extractable && sign && !decrypt && !unwrap &&
           !derive && !sign_recover && one_mechanism();
}

bool PrivateKeyProtection::as_generated() const {
    return token && is_private && sensitive && !extractable && always_sensitive &&
           never_extractable && local && sign && !decrypt && !unwrap && !derive && !sign_recover &&
           one_mechanism();
}

std::string KeyInfo::algorithm_name() const {
    return type == KeyType::ed25519 ? "ed25519" : "rsa-" + std::to_string(bits);
}

std::string KeyInfo::uri(std::string_view token_label) const {
    Pkcs11Uri uri;
    uri.token = std::string(token_label);
    uri.object = name.label();
    uri.type = "private";
    uri.id = id;
    return uri.to_string();
}

std::string PublicKey::dkim_p_value() const {
    const auto& bytes = type == KeyType::ed25519 ? raw : spki_der;
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),  // NOLINT
                                        bytes.data(), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(written));
    return out;
}

}  // namespace dkim::hsm

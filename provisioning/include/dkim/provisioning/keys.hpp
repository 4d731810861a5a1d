#pragma once
// Operator workflows on a token: initialise it, generate DKIM keys, list them, and render
// the DNS records to publish. Used by `dkim-appliance token|key|dns ...`.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/module.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/hsm/token.hpp"

namespace dkim::provisioning {

// Where the token is: the module and a label or an RFC 7512 URI ("pkcs11:token=dkim").
struct TokenLocation {
    std::filesystem::path module;
    std::string token;  // label, or a URI starting with "pkcs11:"

    // Parses the URI if there is one; a URI's module-path wins over an empty `module`.
    hsm::Result<std::shared_ptr<hsm::Token>> open() const;
};

hsm::Result<hsm::SlotInfo> init_token(const std::filesystem::path& module, const std::string& label,
                                      const hsm::Secret& so_pin, const hsm::Secret& user_pin);

struct GeneratedKey {
    hsm::KeyInfo key;
    hsm::PublicKey public_key;
    std::string token_label;
};

hsm::Result<GeneratedKey> generate_key(const TokenLocation& where, hsm::Secret pin,
                                       const hsm::KeyName& name, hsm::KeyAlgorithm algorithm);

struct KeyListing {
    std::string token_label;
    bool logged_in = false;  // private halves were visible
    std::vector<hsm::KeyInfo> keys;
};

// Without a PIN only the public halves are listed.
hsm::Result<KeyListing> list_keys(const TokenLocation& where, std::optional<hsm::Secret> pin);

// "protected", or what is wrong with the private half ("WEAK: extractable, can decrypt"),
// or why it could not be checked.
std::string protection_summary(const hsm::KeyInfo& key, bool logged_in);

// The key's public half, read without a login.
hsm::Result<GeneratedKey> public_key(const TokenLocation& where, const hsm::KeyName& name);

}  // namespace dkim::provisioning

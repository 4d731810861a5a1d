#pragma once
// DKIM keys inside the token: generation, lookup and public key export.
//
// Private keys are generated in the token with CKA_SENSITIVE=true, CKA_EXTRACTABLE=false and
// CKA_ALLOWED_MECHANISMS limited to the one signing mechanism (on tokens that implement it);
// they never leave it. The
// public and private halves share a random CKA_ID, and both carry the label
// "<selector>._domainkey.<domain>", the DNS name of the key record.

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/hsm/error.hpp"
#include "dkim/hsm/token.hpp"

namespace dkim::hsm {

enum class KeyAlgorithm { rsa2048, rsa3072, rsa4096, ed25519 };
enum class KeyType { rsa, ed25519 };

std::string_view to_string(KeyAlgorithm algorithm) noexcept;  // "rsa-2048", "ed25519"
std::optional<KeyAlgorithm> parse_key_algorithm(std::string_view text) noexcept;
std::string_view to_string(KeyType type) noexcept;  // DKIM k= value: "rsa", "ed25519"
// The DKIM a= value signed with this key type: "rsa-sha256", "ed25519-sha256".
std::string_view dkim_signature_algorithm(KeyType type) noexcept;

struct KeyName {
    std::string domain;    // lower case, no trailing dot
    std::string selector;  // lower case

    // Checks both as DNS labels (RFC 6376 §3.1: selectors are dot-separated sub-domains).
    static Result<KeyName> make(std::string_view domain, std::string_view selector);
    static std::optional<KeyName> from_label(std::string_view label);
    // "s1._domainkey.example.com"
    std::string label() const;

    bool operator==(const KeyName&) const = default;
};

// What protects a private key, read back from the token.
struct PrivateKeyProtection {
    bool token = false;
    bool is_private = false;
    bool sensitive = false;
    bool extractable = true;
    bool always_sensitive = false;
    bool never_extractable = false;
    // Generated on the token (CKA_LOCAL). What tells a generated key from an imported one:
    // openCryptoki 3.8.1 sets CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE on imported keys
    // made sensitive and unextractable (SoftHSM2 does not).
    bool local = false;
    bool sign = false;
    bool decrypt = true;
    bool unwrap = true;
    bool derive = true;
    bool sign_recover = true;
    std::vector<unsigned long> allowed_mechanisms;  // CKM_ values
    // The token does not implement CKA_ALLOWED_MECHANISMS (CKR_ATTRIBUTE_TYPE_INVALID:
    // openCryptoki 3.8.1). Its keys cannot be limited to one mechanism: they stay sign-only
    // (CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE, CKA_SIGN_RECOVER false) but may sign with any of
    // the token's RSA signature mechanisms. Counted as the best such a token can do.
    bool token_lacks_allowed_mechanisms = false;

    // Limited to one mechanism, or on a token that cannot limit any key.
    bool one_mechanism() const {
        return allowed_mechanisms.size() == 1 || token_lacks_allowed_mechanisms;
    }

    // True when every attribute is what we generate (see keys.hpp's header comment).
    bool as_generated() const;
    // What an imported key can have at best: as generated, except that it was once outside
    // the token (CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE are false).
    bool as_imported() const;
};

struct KeyInfo {
    KeyName name;
    KeyType type = KeyType::rsa;
    unsigned bits = 0;              // RSA modulus bits; 256 for Ed25519
    std::vector<unsigned char> id;  // CKA_ID shared by both halves
    bool has_public = false;
    // Present when the private half is visible (it is CKA_PRIVATE: only while logged in).
    std::optional<PrivateKeyProtection> private_half;

    std::string algorithm_name() const;  // "rsa-2048", "ed25519"
    // RFC 7512 URI of the private half on `token_label`.
    std::string uri(std::string_view token_label) const;
};

struct PublicKey {
    KeyType type = KeyType::rsa;
    std::vector<unsigned char> spki_der;  // SubjectPublicKeyInfo, DER
    std::vector<unsigned char> raw;       // Ed25519: the 32-byte key; RSA: empty
    unsigned bits = 0;                    // RSA modulus bits; 256 for Ed25519

    // The base64 value of the DKIM key record's p= tag. RSA: the SubjectPublicKeyInfo, as
    // OpenDKIM, dkimpy and Mail::DKIM publish and accept. Ed25519 (RFC 8463 §4, paraphrased):
    // the bare 32-octet public key, not wrapped in a SubjectPublicKeyInfo.
    std::string dkim_p_value() const;
};

// The public half of a private key given as PEM or DER (as KeyStore::import reads it), for
// comparing a key file with a published record or a token's key. No token involved.
Result<PublicKey> public_key_of(std::span<const unsigned char> private_key);

// Key management on one token. Every operation here takes the module's key-management
// lock: SoftHSM2 fails under concurrent key generation.
class KeyStore {
  public:
    explicit KeyStore(std::shared_ptr<Token> token) : token_(std::move(token)) {}

    // Needs a Login (the private half is a private token object). Refuses an existing name.
    Result<KeyInfo> generate(const KeyName& name, KeyAlgorithm algorithm);
    // Creates both halves from a private key made outside the token (C_CreateObject): PEM or
    // DER, PKCS#1 or PKCS#8, RSA of 1024 bits or more, or Ed25519. The private half gets the
    // protection of generated keys (sensitive, not extractable, one signing mechanism); the
    // token records that it was not always sensitive. Needs a Login; refuses an existing
    // name and encrypted key files. The caller wipes `private_key`; every copy made here is
    // wiped, and no error message contains key material.
    Result<KeyInfo> import(const KeyName& name, std::span<const unsigned char> private_key);
    // Destroys the private half(s) labelled with `name` (C_DestroyObject); the public half
    // stays, so that old signatures can still be checked. Needs a Login. Returns how many
    // objects were destroyed (0 when there was none left: rerunning is safe).
    Result<std::size_t> destroy_private(const KeyName& name);
    // Public halves are always visible; private halves only while logged in. Sorted by
    // domain, then selector.
    Result<std::vector<KeyInfo>> list();
    Result<KeyInfo> find(const KeyName& name);
    // By the object= (label) and id= attributes of an RFC 7512 URI; at least one is needed,
    // and exactly one key must match. type=, when present, must be "private" or "public".
    Result<KeyInfo> find(const Pkcs11Uri& uri);
    Result<PublicKey> public_key(const KeyInfo& key);

  private:
    template <class Predicate>
    Result<KeyInfo> find_one(Predicate matches, const std::string& what,
                             const std::string& not_found);

    std::shared_ptr<Token> token_;
};

}  // namespace dkim::hsm

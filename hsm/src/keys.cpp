#include "dkim/hsm/keys.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <tuple>

#include "dkim/base/hex.hpp"
#include "dkim/dns/name.hpp"
#include "pkcs11.hpp"
#include "token_state.hpp"

namespace dkim::hsm {
namespace {

using detail::attr;
using detail::Session;

// RFC 8410 §3: id-Ed25519 OBJECT IDENTIFIER ::= { 1 3 101 112 }, DER-encoded.
constexpr std::array<unsigned char, 5> kEd25519Oid{0x06, 0x03, 0x2B, 0x65, 0x70};
// PKCS#11 v3.0 §2.3.10 also allows the curve name as a PrintableString.
constexpr std::array<unsigned char, 14> kEd25519Name{0x13, 0x0C, 'e', 'd', 'w', 'a', 'r',
                                                     'd',  's',  '2', '5', '5', '1', '9'};
constexpr std::array<unsigned char, 3> kRsaExponent{0x01, 0x00, 0x01};  // 65537
constexpr std::size_t kIdSize = 16;

template <class T>
Result<T> fail(ErrorCode code, std::string message) {
    return dkim::unexpected(Error{code, std::move(message), "", 0});
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

Result<std::vector<CK_OBJECT_HANDLE>> find_by_id(const Session& session, CK_OBJECT_CLASS klass,
                                                 std::span<const unsigned char> id) {
    std::array match{attr(CKA_CLASS, klass), attr(CKA_ID, id)};
    return session.find_objects(match);
}

Result<PrivateKeyProtection> read_protection(const Session& session, CK_OBJECT_HANDLE key) {
    PrivateKeyProtection p;
    const std::array<std::pair<CK_ATTRIBUTE_TYPE, bool PrivateKeyProtection::*>, 11> flags{{
        {CKA_TOKEN, &PrivateKeyProtection::token},
        {CKA_PRIVATE, &PrivateKeyProtection::is_private},
        {CKA_SENSITIVE, &PrivateKeyProtection::sensitive},
        {CKA_EXTRACTABLE, &PrivateKeyProtection::extractable},
        {CKA_ALWAYS_SENSITIVE, &PrivateKeyProtection::always_sensitive},
        {CKA_NEVER_EXTRACTABLE, &PrivateKeyProtection::never_extractable},
        {CKA_SIGN, &PrivateKeyProtection::sign},
        {CKA_DECRYPT, &PrivateKeyProtection::decrypt},
        {CKA_UNWRAP, &PrivateKeyProtection::unwrap},
        {CKA_DERIVE, &PrivateKeyProtection::derive},
        {CKA_SIGN_RECOVER, &PrivateKeyProtection::sign_recover},
    }};
    for (const auto& [type, member] : flags) {
        auto value = session.attribute_bool(key, type);
        if (!value) {
            return dkim::unexpected(std::move(value).error());
        }
        p.*member = *value;
    }
    auto mechanisms = session.attribute(key, CKA_ALLOWED_MECHANISMS);
    if (mechanisms) {
        const std::size_t count = mechanisms->size() / sizeof(CK_MECHANISM_TYPE);
        p.allowed_mechanisms.resize(count);
        std::memcpy(p.allowed_mechanisms.data(), mechanisms->data(),
                    count * sizeof(CK_MECHANISM_TYPE));
    }
    return p;
}

CK_MECHANISM_TYPE signing_mechanism(KeyType type) {
    return type == KeyType::rsa ? CKM_SHA256_RSA_PKCS : CKM_EDDSA;
}

// Reads both halves of the key with this CKA_ID into a KeyInfo.
Result<KeyInfo> read_key(const Session& session, const KeyName& name,
                         std::span<const unsigned char> id, bool logged_in) {
    KeyInfo info;
    info.name = name;
    info.id.assign(id.begin(), id.end());
    auto publics = find_by_id(session, CKO_PUBLIC_KEY, id);
    if (!publics) {
        return dkim::unexpected(std::move(publics).error());
    }
    std::vector<CK_OBJECT_HANDLE> privates;
    if (logged_in) {
        auto found = find_by_id(session, CKO_PRIVATE_KEY, id);
        if (!found) {
            return dkim::unexpected(std::move(found).error());
        }
        privates = std::move(*found);
    }
    const CK_OBJECT_HANDLE any = !publics->empty()   ? publics->front()
                                 : !privates.empty() ? privates.front()
                                                     : CK_INVALID_HANDLE;
    if (any == CK_INVALID_HANDLE) {
        return fail<KeyInfo>(ErrorCode::key_not_found, "no key with this CKA_ID");
    }
    auto key_type = session.attribute_ulong(any, CKA_KEY_TYPE);
    if (!key_type) {
        return dkim::unexpected(std::move(key_type).error());
    }
    if (*key_type == CKK_RSA) {
        info.type = KeyType::rsa;
        if (!publics->empty()) {
            auto bits = session.attribute_ulong(publics->front(), CKA_MODULUS_BITS);
            if (bits) {
                info.bits = static_cast<unsigned>(*bits);
            } else if (auto modulus = session.attribute(publics->front(), CKA_MODULUS); modulus) {
                info.bits = static_cast<unsigned>(modulus->size() * 8);
            }
        }
    } else if (*key_type == CKK_EC_EDWARDS) {
        info.type = KeyType::ed25519;
        info.bits = 256;
    } else {
        return fail<KeyInfo>(ErrorCode::unsupported,
                             "key " + name.label() + " has a key type DKIM cannot use");
    }
    info.has_public = !publics->empty();
    if (!privates.empty()) {
        auto protection = read_protection(session, privates.front());
        if (!protection) {
            return dkim::unexpected(std::move(protection).error());
        }
        info.private_half = std::move(*protection);
    }
    return info;
}

Result<std::shared_ptr<EVP_PKEY>> to_evp(KeyType type, std::span<const unsigned char> a,
                                         std::span<const unsigned char> b) {
    EVP_PKEY* key = nullptr;
    if (type == KeyType::ed25519) {
        key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, a.data(), a.size());
    } else {
        std::unique_ptr<BIGNUM, decltype(&BN_free)> n(
            BN_bin2bn(a.data(), static_cast<int>(a.size()), nullptr), BN_free);
        std::unique_ptr<BIGNUM, decltype(&BN_free)> e(
            BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr), BN_free);
        std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(),
                                                                              OSSL_PARAM_BLD_free);
        if (!n || !e || !build ||
            !OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
            !OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, e.get())) {
            return fail<std::shared_ptr<EVP_PKEY>>(ErrorCode::device, "OpenSSL: out of memory");
        }
        std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(
            OSSL_PARAM_BLD_to_param(build.get()), OSSL_PARAM_free);
        std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
            EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), EVP_PKEY_CTX_free);
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
            EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
            key = nullptr;
        }
    }
    if (key == nullptr) {
        return fail<std::shared_ptr<EVP_PKEY>>(ErrorCode::device,
                                               "the token returned a malformed public key");
    }
    return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

// The attributes every DKIM key pair gets, generated or imported (this file's header comment):
// both halves on the token under the record's DNS name, the private half sensitive, never
// extractable, and signing with its one mechanism only. It holds the values its attributes
// point to: not copyable.
class KeyPairTemplate {
  public:
    KeyPairTemplate(KeyType type, const std::string& label, std::span<const unsigned char> id)
        : key_type_(type == KeyType::ed25519 ? CKK_EC_EDWARDS : CKK_RSA),
          allowed_(signing_mechanism(type)) {
        const std::span<const unsigned char> allowed_bytes(
            reinterpret_cast<const unsigned char*>(&allowed_), sizeof allowed_);  // NOLINT
        public_half = {
            attr(CKA_CLASS, public_class_),
            attr(CKA_KEY_TYPE, key_type_),
            attr(CKA_TOKEN, yes_),
            attr(CKA_PRIVATE, no_),
            attr(CKA_VERIFY, yes_),
            attr(CKA_ENCRYPT, no_),
            attr(CKA_WRAP, no_),
            attr(CKA_VERIFY_RECOVER, no_),
            attr(CKA_LABEL, label),
            attr(CKA_ID, id),
        };
        private_half = {
            attr(CKA_CLASS, private_class_),
            attr(CKA_KEY_TYPE, key_type_),
            attr(CKA_TOKEN, yes_),
            attr(CKA_PRIVATE, yes_),
            attr(CKA_SENSITIVE, yes_),
            attr(CKA_EXTRACTABLE, no_),
            attr(CKA_SIGN, yes_),
            attr(CKA_DECRYPT, no_),
            attr(CKA_UNWRAP, no_),
            attr(CKA_DERIVE, no_),
            attr(CKA_SIGN_RECOVER, no_),
            attr(CKA_ALLOWED_MECHANISMS, allowed_bytes),
            attr(CKA_LABEL, label),
            attr(CKA_ID, id),
        };
    }
    KeyPairTemplate(const KeyPairTemplate&) = delete;
    KeyPairTemplate& operator=(const KeyPairTemplate&) = delete;

    CK_MECHANISM_TYPE allowed() const { return allowed_; }

    std::vector<CK_ATTRIBUTE> public_half;
    std::vector<CK_ATTRIBUTE> private_half;

  private:
    CK_OBJECT_CLASS public_class_ = CKO_PUBLIC_KEY;
    CK_OBJECT_CLASS private_class_ = CKO_PRIVATE_KEY;
    CK_KEY_TYPE key_type_;
    CK_BBOOL yes_ = CK_TRUE;
    CK_BBOOL no_ = CK_FALSE;
    CK_MECHANISM_TYPE allowed_;
};

}  // namespace

// --- names ------------------------------------------------------------------------------

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
        return fail<KeyName>(ErrorCode::invalid_argument, std::move(problem));
    }
    std::string d = lower(domain);
    if (d.back() == '.') {
        d.pop_back();
    }
    return KeyName{std::move(d), lower(selector)};
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
           !derive && !sign_recover && allowed_mechanisms.size() == 1;
}

bool PrivateKeyProtection::as_generated() const {
    return token && is_private && sensitive && !extractable && always_sensitive &&
           never_extractable && sign && !decrypt && !unwrap && !derive && !sign_recover &&
           allowed_mechanisms.size() == 1;
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

// --- KeyStore -----------------------------------------------------------------------------

namespace {

// A read-write session for a new key pair named `name`: the token must be logged in, and no
// object may carry the label yet (a key is never replaced in place).
Result<Session> session_for_new_key(const Token& token, const KeyName& name, std::string_view doing,
                                    std::string_view exists_hint) {
    if (!token.logged_in()) {
        return fail<Session>(ErrorCode::locked, token.name() + " is not logged in: " +
                                                    std::string(doing) + " a key needs a login");
    }
    auto session = Session::open(token.module(), token.slot_id(), true);
    if (!session) {
        return session;
    }
    const std::string label = name.label();  // outlives the attribute that points into it
    std::array match{attr(CKA_LABEL, label)};
    auto existing = session->find_objects(match, 1);
    if (!existing) {
        return dkim::unexpected(std::move(existing).error());
    }
    if (!existing->empty()) {
        return fail<Session>(ErrorCode::key_exists, token.name() + " already holds a key " + label +
                                                        std::string(exists_hint));
    }
    return session;
}

// An object that a generation or an import made, and what it is ("private half").
struct MadeObject {
    CK_OBJECT_HANDLE handle;
    std::string_view what;
};

// What a failed generation or import made must not stay on the token: a half-made key, or one
// not protected as promised. Destroys `made` and returns `why`, with `removed` appended when
// every object went. An object the token would not destroy is never left silently: the error
// then names it (label and CKA_ID) and the C_DestroyObject failure, and says how to remove it.
Error remove_made_objects(const Session& session, const Token& token,
                          std::initializer_list<MadeObject> made, const std::string& label,
                          std::span<const unsigned char> id, Error why, std::string_view removed) {
    std::string left;
    std::string failure;
    for (const MadeObject& object : made) {
        if (auto gone = session.destroy_object(object.handle, {}); !gone) {
            left += (left.empty() ? "its " : " and its ") + std::string(object.what);
            if (failure.empty()) {
                failure = gone.error().rv_name() + " from C_DestroyObject";
            }
        }
    }
    if (left.empty()) {
        why.message += removed;
        return why;
    }
    const std::string hex_id = base::hex_encode(id);
    why.message += "; removing what was made failed as well (" + failure + "): " + token.name() +
                   " still holds " + left + " (label " + label + ", CKA_ID " + hex_id +
                   "); delete it with the token's own tools (pkcs11-tool --login --delete-object "
                   "--id " +
                   hex_id + ") before the name is used again";
    return why;
}

// Reads back the pair just made under `name` and keeps it only when its private half is
// protected as `promised` (PrivateKeyProtection::as_generated or as_imported) with `allowed` its
// one mechanism. Some tokens ignore attributes they do not implement: a key that is not
// protected as promised must not exist, so both halves are removed.
Result<KeyInfo> keep_if_protected(const Session& session, const Token& token, const KeyName& name,
                                  Session::KeyPair made, std::span<const unsigned char> id,
                                  CK_MECHANISM_TYPE allowed,
                                  bool (PrivateKeyProtection::*promised)() const) {
    auto info = read_key(session, name, id, true);
    if (info && info->private_half && (*info->private_half.*promised)() &&
        info->private_half->allowed_mechanisms.front() == allowed) {
        return info;
    }
    const bool read = info.has_value();
    Error why = read ? Error{ErrorCode::not_permitted,
                             token.name() +
                                 " did not apply the required protection attributes (sensitive, "
                                 "not extractable, sign-only)",
                             "", 0}
                     : std::move(info).error();
    return dkim::unexpected(remove_made_objects(
        session, token, {{made.private_key, "private half"}, {made.public_key, "public half"}},
        name.label(), id, std::move(why), read ? "; the key was deleted" : ""));
}

}  // namespace

Result<KeyInfo> KeyStore::generate(const KeyName& name, KeyAlgorithm algorithm) {
    std::lock_guard serialize(token_->module()->key_management_mutex());
    auto session = session_for_new_key(*token_, name, "generating",
                                       "; rotate to a new selector instead of replacing it");
    if (!session) {
        return dkim::unexpected(std::move(session).error());
    }
    const std::string label = name.label();
    std::array<unsigned char, kIdSize> id{};
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
        return fail<KeyInfo>(ErrorCode::device, "OpenSSL's random generator failed");
    }

    const bool ed25519 = algorithm == KeyAlgorithm::ed25519;
    const KeyType type = ed25519 ? KeyType::ed25519 : KeyType::rsa;
    CK_ULONG modulus_bits = algorithm == KeyAlgorithm::rsa4096   ? 4096
                            : algorithm == KeyAlgorithm::rsa3072 ? 3072
                                                                 : 2048;
    const std::span<const unsigned char> id_bytes(id);
    KeyPairTemplate pair(type, label, id_bytes);
    std::vector<CK_ATTRIBUTE>& public_template = pair.public_half;
    std::vector<CK_ATTRIBUTE>& private_template = pair.private_half;
    if (ed25519) {
        public_template.push_back(attr(CKA_EC_PARAMS, std::span<const unsigned char>(kEd25519Oid)));
    } else {
        public_template.push_back(attr(CKA_MODULUS_BITS, modulus_bits));
        public_template.push_back(
            attr(CKA_PUBLIC_EXPONENT, std::span<const unsigned char>(kRsaExponent)));
    }

    const CK_MECHANISM mechanism{ed25519 ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN,
                                 nullptr, 0};
    const std::string context =
        token_->name() + ": generating " + std::string(to_string(algorithm)) + " key " + label;
    auto made = session->generate_key_pair(mechanism, public_template, private_template, context);
    if (!made && ed25519 &&
        (made.error().rv == CKR_DOMAIN_PARAMS_INVALID ||
         made.error().rv == CKR_CURVE_NOT_SUPPORTED ||
         made.error().rv == CKR_ATTRIBUTE_VALUE_INVALID)) {
        // Tokens differ in which of the two encodings of the curve they accept.
        public_template.back() = attr(CKA_EC_PARAMS, std::span<const unsigned char>(kEd25519Name));
        made = session->generate_key_pair(mechanism, public_template, private_template, context);
    }
    if (!made) {
        return dkim::unexpected(std::move(made).error());
    }
    return keep_if_protected(*session, *token_, name, *made, id_bytes, pair.allowed(),
                             &PrivateKeyProtection::as_generated);
}

Result<std::vector<KeyInfo>> KeyStore::list() {
    std::lock_guard serialize(token_->module()->key_management_mutex());
    auto session = Session::open(token_->module(), token_->slot_id(), false);
    if (!session) {
        return dkim::unexpected(std::move(session).error());
    }
    auto logged_in = session->user_logged_in();
    if (!logged_in) {
        return dkim::unexpected(std::move(logged_in).error());
    }
    // Collect labels and ids of both classes; private keys are only visible when logged in.
    std::map<std::vector<unsigned char>, KeyName> ids;
    for (CK_OBJECT_CLASS klass : {CKO_PUBLIC_KEY, CKO_PRIVATE_KEY}) {
        std::array match{attr(CKA_CLASS, klass)};
        auto objects = session->find_objects(match, 4096);
        if (!objects) {
            return dkim::unexpected(std::move(objects).error());
        }
        for (const CK_OBJECT_HANDLE object : *objects) {
            auto label = session->attribute(object, CKA_LABEL);
            auto id = session->attribute(object, CKA_ID);
            if (!label || !id || id->empty()) {
                continue;
            }
            auto name = KeyName::from_label(std::string_view(
                reinterpret_cast<const char*>(label->data()), label->size()));  // NOLINT
            if (name) {
                ids.emplace(std::move(*id), std::move(*name));
            }
        }
    }
    std::vector<KeyInfo> keys;
    for (const auto& [id, name] : ids) {
        auto info = read_key(*session, name, id, *logged_in);
        if (!info) {
            return dkim::unexpected(std::move(info).error());
        }
        keys.push_back(std::move(*info));
    }
    std::sort(keys.begin(), keys.end(), [](const KeyInfo& a, const KeyInfo& b) {
        return std::tie(a.name.domain, a.name.selector, a.id) <
               std::tie(b.name.domain, b.name.selector, b.id);
    });
    return keys;
}

// The one key of `keys` that `matches`; `what` names the search in errors.
template <class Predicate>
Result<KeyInfo> KeyStore::find_one(Predicate matches, const std::string& what,
                                   const std::string& not_found) {
    auto keys = list();
    if (!keys) {
        return dkim::unexpected(std::move(keys).error());
    }
    std::vector<KeyInfo> matching;
    for (auto& key : *keys) {
        if (matches(key)) {
            matching.push_back(std::move(key));
        }
    }
    if (matching.size() == 1) {
        return std::move(matching.front());
    }
    if (matching.empty()) {
        return fail<KeyInfo>(ErrorCode::key_not_found, not_found);
    }
    std::string ids;
    for (const auto& key : matching) {
        ids += (ids.empty() ? "" : ", ") + base::hex_encode(key.id);
    }
    return fail<KeyInfo>(ErrorCode::invalid_argument,
                         token_->name() + " holds " + std::to_string(matching.size()) + " keys " +
                             what + " (CKA_ID " + ids +
                             "); remove the extra ones, or name one by its id=");
}

Result<KeyInfo> KeyStore::find(const KeyName& name) {
    return find_one([&](const KeyInfo& key) { return key.name == name; },
                    "labelled " + name.label(),
                    "no key for selector '" + name.selector + "' of domain '" + name.domain +
                        "' (" + name.label() + ") in " + token_->name() +
                        (token_->logged_in() ? "" : "; private keys are visible only after login"));
}

Result<KeyInfo> KeyStore::find(const Pkcs11Uri& uri) {
    const std::string text = uri.to_string();
    if (!uri.object && !uri.id) {
        return fail<KeyInfo>(ErrorCode::invalid_argument,
                             "URI " + text + " names no key: it needs object= or id=");
    }
    if (uri.type && *uri.type != "private" && *uri.type != "public") {
        return fail<KeyInfo>(ErrorCode::invalid_argument,
                             "URI " + text + " names a " + *uri.type + ", not a key");
    }
    return find_one(
        [&](const KeyInfo& key) {
            return (!uri.object || *uri.object == key.name.label()) &&
                   (!uri.id || *uri.id == key.id);
        },
        "matching " + text, "no key matches " + text + " in " + token_->name());
}

Result<PublicKey> KeyStore::public_key(const KeyInfo& key) {
    auto session = Session::open(token_->module(), token_->slot_id(), false);
    if (!session) {
        return dkim::unexpected(std::move(session).error());
    }
    auto found = find_by_id(*session, CKO_PUBLIC_KEY, key.id);
    if (!found) {
        return dkim::unexpected(std::move(found).error());
    }
    if (found->empty()) {
        return fail<PublicKey>(
            ErrorCode::key_not_found,
            "key " + key.name.label() + " in " + token_->name() + " has no public half");
    }
    const CK_OBJECT_HANDLE object = found->front();
    PublicKey result;
    result.type = key.type;
    const auto read_evp = [&]() -> Result<std::shared_ptr<EVP_PKEY>> {
        if (key.type == KeyType::rsa) {
            auto modulus = session->attribute(object, CKA_MODULUS);
            if (!modulus) {
                return dkim::unexpected(std::move(modulus).error());
            }
            auto exponent = session->attribute(object, CKA_PUBLIC_EXPONENT);
            if (!exponent) {
                return dkim::unexpected(std::move(exponent).error());
            }
            return to_evp(KeyType::rsa, *modulus, *exponent);
        }
        auto point = session->attribute(object, CKA_EC_POINT);
        if (!point) {
            return dkim::unexpected(std::move(point).error());
        }
        // Tokens return CKA_EC_POINT either DER-wrapped (OCTET STRING, 04 20 || key, as
        // SoftHSM2 and PKCS#11 v2.40 do) or as the raw 32 bytes (PKCS#11 v3.0's reading).
        if (point->size() == 32) {
            result.raw = *point;
        } else if (point->size() == 34 && (*point)[0] == 0x04 && (*point)[1] == 0x20) {
            result.raw.assign(point->begin() + 2, point->end());
        } else {
            return fail<std::shared_ptr<EVP_PKEY>>(
                ErrorCode::device, token_->name() + " returned a CKA_EC_POINT of " +
                                       std::to_string(point->size()) + " bytes for Ed25519 key " +
                                       key.name.label());
        }
        return to_evp(KeyType::ed25519, result.raw, {});
    };
    auto evp = read_evp();
    if (!evp) {
        return dkim::unexpected(std::move(evp).error());
    }
    unsigned char* der = nullptr;
    const int size = i2d_PUBKEY(evp->get(), &der);
    if (size <= 0) {
        return fail<PublicKey>(ErrorCode::device, "OpenSSL could not encode the public key");
    }
    result.spki_der.assign(der, der + size);
    OPENSSL_free(der);
    result.bits = static_cast<unsigned>(EVP_PKEY_get_bits(evp->get()));
    return result;
}

// --- import and destroy ----------------------------------------------------------------------

namespace {

// Key material copied out of OpenSSL: wiped when it goes.
class WipedBytes {
  public:
    WipedBytes() = default;
    explicit WipedBytes(std::size_t size) : bytes_(size) {}
    WipedBytes(const WipedBytes&) = delete;
    WipedBytes& operator=(const WipedBytes&) = delete;
    WipedBytes(WipedBytes&&) = default;
    WipedBytes& operator=(WipedBytes&&) = default;
    ~WipedBytes() {
        if (!bytes_.empty()) {
            OPENSSL_cleanse(bytes_.data(), bytes_.size());
        }
    }
    std::vector<unsigned char>& get() { return bytes_; }
    std::span<const unsigned char> span() const { return bytes_; }

  private:
    std::vector<unsigned char> bytes_;
};

using EvpKey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
    return 0;  // an encrypted key file is refused, not prompted for
}

// PEM (any of the private-key labels OpenSSL reads) or DER (PKCS#8 or PKCS#1).
Result<EvpKey> parse_private_key(std::span<const unsigned char> bytes) {
    EVP_PKEY* key = nullptr;
    constexpr std::string_view pem_start = "-----BEGIN";
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()),  // NOLINT
                                bytes.size());
    const bool encrypted = text.find("ENCRYPTED") != std::string_view::npos;
    if (text.find(pem_start) != std::string_view::npos) {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(
            BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())), BIO_free);
        if (bio) {
            key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
        }
    } else {
        const unsigned char* p = bytes.data();
        key = d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(bytes.size()));
    }
    if (key == nullptr) {
        return fail<EvpKey>(ErrorCode::invalid_argument,
                            encrypted ? "the private key is encrypted; decrypt it first "
                                        "(openssl pkey -in FILE -out FILE.plain)"
                                      : "not a private key in PEM or DER form");
    }
    return EvpKey(key, EVP_PKEY_free);
}

Result<WipedBytes> bn_param(const EVP_PKEY* key, const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || bn == nullptr) {
        return fail<WipedBytes>(ErrorCode::invalid_argument,
                                std::string("the RSA key lacks its ") + name +
                                    " parameter (a key without CRT parameters cannot be imported)");
    }
    WipedBytes out(static_cast<std::size_t>(BN_num_bytes(bn)));
    BN_bn2bin(bn, out.get().data());
    BN_clear_free(bn);
    return out;
}

// DER OCTET STRING of a 32-byte Ed25519 point, as PKCS#11 v2.40 tokens want CKA_EC_POINT.
std::array<unsigned char, 34> ed25519_point(std::span<const unsigned char, 32> raw) {
    std::array<unsigned char, 34> out{0x04, 0x20};
    std::copy(raw.begin(), raw.end(), out.begin() + 2);
    return out;
}

}  // namespace

Result<PublicKey> public_key_of(std::span<const unsigned char> private_key) {
    auto parsed = parse_private_key(private_key);
    if (!parsed) {
        return dkim::unexpected(std::move(parsed).error());
    }
    const int id_type = EVP_PKEY_get_base_id(parsed->get());
    if (id_type != EVP_PKEY_RSA && id_type != EVP_PKEY_ED25519) {
        return fail<PublicKey>(
            ErrorCode::unsupported,
            "the private key is neither RSA nor Ed25519 (DKIM signs with those)");
    }
    PublicKey out;
    out.type = id_type == EVP_PKEY_ED25519 ? KeyType::ed25519 : KeyType::rsa;
    unsigned char* der = nullptr;
    const int size = i2d_PUBKEY(parsed->get(), &der);
    if (size <= 0) {
        return fail<PublicKey>(ErrorCode::device, "OpenSSL could not encode the public key");
    }
    out.spki_der.assign(der, der + size);
    OPENSSL_free(der);
    out.bits = static_cast<unsigned>(EVP_PKEY_get_bits(parsed->get()));
    if (out.type == KeyType::ed25519) {
        out.raw.resize(32);
        std::size_t raw_size = out.raw.size();
        if (EVP_PKEY_get_raw_public_key(parsed->get(), out.raw.data(), &raw_size) != 1 ||
            raw_size != 32) {
            return fail<PublicKey>(ErrorCode::invalid_argument, "the Ed25519 key cannot be read");
        }
    }
    return out;
}

Result<KeyInfo> KeyStore::import(const KeyName& name, std::span<const unsigned char> private_key) {
    auto parsed = parse_private_key(private_key);
    if (!parsed) {
        return dkim::unexpected(std::move(parsed).error());
    }
    EVP_PKEY* evp = parsed->get();
    const int id_type = EVP_PKEY_get_base_id(evp);
    if (id_type != EVP_PKEY_RSA && id_type != EVP_PKEY_ED25519) {
        return fail<KeyInfo>(ErrorCode::unsupported,
                             "the private key is neither RSA nor Ed25519 (DKIM signs with those)");
    }
    const bool ed25519 = id_type == EVP_PKEY_ED25519;
    if (!ed25519 && EVP_PKEY_get_bits(evp) < 1024) {
        return fail<KeyInfo>(ErrorCode::invalid_argument,
                             "the RSA key has " + std::to_string(EVP_PKEY_get_bits(evp)) +
                                 " bits; RFC 8301 requires at least 1024");
    }

    std::lock_guard serialize(token_->module()->key_management_mutex());
    auto session = session_for_new_key(*token_, name, "importing", "");
    if (!session) {
        return dkim::unexpected(std::move(session).error());
    }
    const std::string label = name.label();
    std::array<unsigned char, kIdSize> id{};
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
        return fail<KeyInfo>(ErrorCode::device, "OpenSSL's random generator failed");
    }
    const KeyType type = ed25519 ? KeyType::ed25519 : KeyType::rsa;
    const std::span<const unsigned char> id_bytes(id);
    KeyPairTemplate pair(type, label, id_bytes);
    std::vector<CK_ATTRIBUTE>& public_template = pair.public_half;
    std::vector<CK_ATTRIBUTE>& private_template = pair.private_half;
    const CK_MECHANISM_TYPE allowed = pair.allowed();
    // The key's numbers live here until the objects are made, then are wiped.
    std::vector<WipedBytes> values;
    std::array<unsigned char, 34> point{};
    if (ed25519) {
        WipedBytes secret(32);
        std::array<unsigned char, 32> raw_public{};
        std::size_t secret_size = 32;
        std::size_t public_size = raw_public.size();
        if (EVP_PKEY_get_raw_private_key(evp, secret.get().data(), &secret_size) != 1 ||
            secret_size != 32 ||
            EVP_PKEY_get_raw_public_key(evp, raw_public.data(), &public_size) != 1 ||
            public_size != 32) {
            return fail<KeyInfo>(ErrorCode::invalid_argument, "the Ed25519 key cannot be read");
        }
        point = ed25519_point(raw_public);
        values.push_back(std::move(secret));
        public_template.push_back(attr(CKA_EC_PARAMS, std::span<const unsigned char>(kEd25519Oid)));
        public_template.push_back(attr(CKA_EC_POINT, std::span<const unsigned char>(point)));
        private_template.push_back(
            attr(CKA_EC_PARAMS, std::span<const unsigned char>(kEd25519Oid)));
        private_template.push_back(attr(CKA_VALUE, values.back().span()));
    } else {
        const std::array<std::pair<CK_ATTRIBUTE_TYPE, const char*>, 8> parts{{
            {CKA_MODULUS, OSSL_PKEY_PARAM_RSA_N},
            {CKA_PUBLIC_EXPONENT, OSSL_PKEY_PARAM_RSA_E},
            {CKA_PRIVATE_EXPONENT, OSSL_PKEY_PARAM_RSA_D},
            {CKA_PRIME_1, OSSL_PKEY_PARAM_RSA_FACTOR1},
            {CKA_PRIME_2, OSSL_PKEY_PARAM_RSA_FACTOR2},
            {CKA_EXPONENT_1, OSSL_PKEY_PARAM_RSA_EXPONENT1},
            {CKA_EXPONENT_2, OSSL_PKEY_PARAM_RSA_EXPONENT2},
            {CKA_COEFFICIENT, OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
        }};
        values.reserve(parts.size());
        for (const auto& [type_id, param] : parts) {
            auto value = bn_param(evp, param);
            if (!value) {
                return dkim::unexpected(std::move(value).error());
            }
            values.push_back(std::move(*value));
            private_template.push_back(attr(type_id, values.back().span()));
        }
        public_template.push_back(attr(CKA_MODULUS, values[0].span()));
        public_template.push_back(attr(CKA_PUBLIC_EXPONENT, values[1].span()));
    }
    parsed->reset();

    const std::string context = token_->name() + ": importing key " + label;
    auto private_object = session->create_object(private_template, context);
    if (!private_object) {
        return dkim::unexpected(std::move(private_object).error());
    }
    auto public_object = session->create_object(public_template, context);
    if (!public_object) {
        // The private half alone is no key: it goes, or the error says that it is still there.
        return dkim::unexpected(
            remove_made_objects(*session, *token_, {{*private_object, "private half"}}, label,
                                id_bytes, std::move(public_object).error(), ""));
    }
    values.clear();
    return keep_if_protected(*session, *token_, name, {*public_object, *private_object}, id_bytes,
                             allowed, &PrivateKeyProtection::as_imported);
}

Result<std::size_t> KeyStore::destroy_private(const KeyName& name) {
    std::lock_guard serialize(token_->module()->key_management_mutex());
    if (!token_->logged_in()) {
        return fail<std::size_t>(ErrorCode::locked, token_->name() +
                                                        " is not logged in: destroying a key "
                                                        "needs a login");
    }
    auto session = Session::open(token_->module(), token_->slot_id(), true);
    if (!session) {
        return dkim::unexpected(std::move(session).error());
    }
    const std::string label = name.label();
    CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
    std::array match{attr(CKA_CLASS, klass), attr(CKA_LABEL, label)};
    auto found = session->find_objects(match);
    if (!found) {
        return dkim::unexpected(std::move(found).error());
    }
    for (const CK_OBJECT_HANDLE object : *found) {
        if (auto ok = session->destroy_object(object, token_->name() + ": destroying key " + label);
            !ok) {
            return dkim::unexpected(std::move(ok).error());
        }
    }
    return found->size();
}

}  // namespace dkim::hsm

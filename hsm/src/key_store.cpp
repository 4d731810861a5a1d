// The key store (keys.hpp's KeyStore): finding, listing and generating DKIM keys on a token,
// reading their protection and public halves back, and destroying private halves; and what
// generation and import share (key_objects.hpp). Import from key files: key_import.cpp.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "dkim/base/hex.hpp"
#include "dkim/hsm/keys.hpp"
#include "key_objects.hpp"
#include "pkcs11.hpp"

namespace dkim::hsm {
namespace {

using detail::attr;
using detail::fail;
using detail::kEd25519Oid;
using detail::KeyPairTemplate;
using detail::Session;

// PKCS#11 v3.0 §2.3.10 also allows the curve name as a PrintableString.
constexpr std::array<unsigned char, 14> kEd25519Name{0x13, 0x0C, 'e', 'd', 'w', 'a', 'r',
                                                     'd',  's',  '2', '5', '5', '1', '9'};
constexpr std::array<unsigned char, 3> kRsaExponent{0x01, 0x00, 0x01};  // 65537

Result<std::vector<CK_OBJECT_HANDLE>> find_by_id(const Session& session, CK_OBJECT_CLASS klass,
                                                 std::span<const unsigned char> id) {
    std::array match{attr(CKA_CLASS, klass), attr(CKA_ID, id)};
    return session.find_objects(match);
}

Result<PrivateKeyProtection> read_protection(const Session& session, CK_OBJECT_HANDLE key) {
    PrivateKeyProtection p;
    const std::array<std::pair<CK_ATTRIBUTE_TYPE, bool PrivateKeyProtection::*>, 12> flags{{
        {CKA_TOKEN, &PrivateKeyProtection::token},
        {CKA_PRIVATE, &PrivateKeyProtection::is_private},
        {CKA_SENSITIVE, &PrivateKeyProtection::sensitive},
        {CKA_EXTRACTABLE, &PrivateKeyProtection::extractable},
        {CKA_ALWAYS_SENSITIVE, &PrivateKeyProtection::always_sensitive},
        {CKA_NEVER_EXTRACTABLE, &PrivateKeyProtection::never_extractable},
        {CKA_LOCAL, &PrivateKeyProtection::local},
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
    if (!mechanisms && mechanisms.error().rv == CKR_ATTRIBUTE_TYPE_INVALID) {
        p.token_lacks_allowed_mechanisms = true;
    } else if (mechanisms) {
        const std::size_t count = mechanisms->size() / sizeof(CK_MECHANISM_TYPE);
        p.allowed_mechanisms.resize(count);
        std::memcpy(p.allowed_mechanisms.data(), mechanisms->data(),
                    count * sizeof(CK_MECHANISM_TYPE));
    }
    return p;
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

}  // namespace

// --- what generation and import share (key_objects.hpp) ----------------------------------------

namespace detail {

Result<NewKey> start_new_key(const Token& token, const KeyName& name, std::string_view doing,
                             std::string_view exists_hint) {
    if (!token.logged_in()) {
        return fail<NewKey>(ErrorCode::locked, token.name() + " is not logged in: " +
                                                   std::string(doing) + " a key needs a login");
    }
    auto session = Session::open(token.module(), token.slot_id(), true);
    if (!session) {
        return dkim::unexpected(std::move(session).error());
    }
    const std::string label = name.label();  // outlives the attribute that points into it
    std::array match{attr(CKA_LABEL, label)};
    auto existing = session->find_objects(match, 1);
    if (!existing) {
        return dkim::unexpected(std::move(existing).error());
    }
    if (!existing->empty()) {
        return fail<NewKey>(ErrorCode::key_exists, token.name() + " already holds a key " + label +
                                                       std::string(exists_hint));
    }
    NewKey made{std::move(*session), {}};
    if (RAND_bytes(made.id.data(), static_cast<int>(made.id.size())) != 1) {
        return fail<NewKey>(ErrorCode::device, "OpenSSL's random generator failed");
    }
    return made;
}

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

Result<void> encode_public_key(const EVP_PKEY* key, PublicKey& out) {
    unsigned char* der = nullptr;
    const int size = i2d_PUBKEY(key, &der);
    if (size <= 0) {
        return dkim::unexpected(
            Error{ErrorCode::device, "OpenSSL could not encode the public key", "", 0});
    }
    out.spki_der.assign(der, der + size);
    OPENSSL_free(der);
    out.bits = static_cast<unsigned>(EVP_PKEY_get_bits(key));
    return {};
}

Result<KeyInfo> keep_if_protected(const Session& session, const Token& token, const KeyName& name,
                                  Session::KeyPair made, std::span<const unsigned char> id,
                                  CK_MECHANISM_TYPE allowed, bool restricted,
                                  bool (PrivateKeyProtection::*promised)() const) {
    auto info = read_key(session, name, id, true);
    if (info && info->private_half && (*info->private_half.*promised)() &&
        (info->private_half->token_lacks_allowed_mechanisms
             ? !restricted
             : info->private_half->allowed_mechanisms.front() == allowed)) {
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

}  // namespace detail

// --- KeyStore -----------------------------------------------------------------------------

Result<KeyInfo> KeyStore::generate(const KeyName& name, KeyAlgorithm algorithm) {
    const auto serialized = token_->module()->serialize_key_management();
    auto start = detail::start_new_key(*token_, name, "generating",
                                       "; rotate to a new selector instead of replacing it");
    if (!start) {
        return dkim::unexpected(std::move(start).error());
    }
    const Session& session = start->session;
    const std::string label = name.label();

    const bool ed25519 = algorithm == KeyAlgorithm::ed25519;
    const KeyType type = ed25519 ? KeyType::ed25519 : KeyType::rsa;
    CK_ULONG modulus_bits = algorithm == KeyAlgorithm::rsa4096   ? 4096
                            : algorithm == KeyAlgorithm::rsa3072 ? 3072
                                                                 : 2048;
    const std::span<const unsigned char> id_bytes(start->id);
    KeyPairTemplate pair(type, *token_, label, id_bytes);
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
    auto made = session.generate_key_pair(mechanism, public_template, private_template, context);
    if (!made && made.error().rv == CKR_ATTRIBUTE_TYPE_INVALID && pair.drop_allowed_mechanisms()) {
        made = session.generate_key_pair(mechanism, public_template, private_template, context);
    }
    if (!made && ed25519 &&
        (made.error().rv == CKR_DOMAIN_PARAMS_INVALID ||
         made.error().rv == CKR_CURVE_NOT_SUPPORTED ||
         made.error().rv == CKR_ATTRIBUTE_VALUE_INVALID)) {
        // Tokens differ in which of the two encodings of the curve they accept.
        public_template.back() = attr(CKA_EC_PARAMS, std::span<const unsigned char>(kEd25519Name));
        made = session.generate_key_pair(mechanism, public_template, private_template, context);
    }
    if (!made) {
        return dkim::unexpected(std::move(made).error());
    }
    return detail::keep_if_protected(session, *token_, name, *made, id_bytes, pair.allowed(),
                                     pair.restricts_mechanisms(),
                                     &PrivateKeyProtection::as_generated);
}

Result<std::vector<KeyInfo>> KeyStore::list() {
    const auto serialized = token_->module()->serialize_key_management();
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
    if (auto ok = detail::encode_public_key(evp->get(), result); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    return result;
}

Result<std::size_t> KeyStore::destroy_private(const KeyName& name) {
    const auto serialized = token_->module()->serialize_key_management();
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

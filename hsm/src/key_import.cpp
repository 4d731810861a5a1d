// KeyStore::import and public_key_of: DKIM private keys made outside the token (PEM or DER,
// PKCS#1 or PKCS#8, as opendkim-genkey and OpenSSL write them) read with OpenSSL and created on
// the token as a key pair protected like a generated one. Every copy of key material made here
// is wiped when it goes; no error message contains any.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>

#include "dkim/base/wipe.hpp"
#include "dkim/hsm/keys.hpp"
#include "key_objects.hpp"
#include "pkcs11.hpp"

namespace dkim::hsm {
namespace {

using detail::attr;
using detail::fail;

// Key material copied out of OpenSSL: wiped when it goes.
class WipedBytes {
  public:
    WipedBytes() = default;
    explicit WipedBytes(std::size_t size) : bytes_(size) {}
    WipedBytes(const WipedBytes&) = delete;
    WipedBytes& operator=(const WipedBytes&) = delete;
    WipedBytes(WipedBytes&&) = default;
    WipedBytes& operator=(WipedBytes&& other) noexcept {
        if (this != &other) {
            base::wipe(bytes_);  // the bytes it held go too, not only the moved-in ones later
            bytes_ = std::move(other.bytes_);
        }
        return *this;
    }
    ~WipedBytes() { base::wipe(bytes_); }
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
    if (auto ok = detail::encode_public_key(parsed->get(), out); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
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

    const auto serialized = token_->module()->serialize_key_management();
    auto start = detail::start_new_key(*token_, name, "importing", "");
    if (!start) {
        return dkim::unexpected(std::move(start).error());
    }
    const detail::Session& session = start->session;
    const std::string label = name.label();
    const KeyType type = ed25519 ? KeyType::ed25519 : KeyType::rsa;
    const std::span<const unsigned char> id_bytes(start->id);
    detail::KeyPairTemplate pair(type, *token_, label, id_bytes);
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
        public_template.push_back(
            attr(CKA_EC_PARAMS, std::span<const unsigned char>(detail::kEd25519Oid)));
        public_template.push_back(attr(CKA_EC_POINT, std::span<const unsigned char>(point)));
        private_template.push_back(
            attr(CKA_EC_PARAMS, std::span<const unsigned char>(detail::kEd25519Oid)));
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
    auto private_object = session.create_object(private_template, context);
    if (!private_object && private_object.error().rv == CKR_ATTRIBUTE_TYPE_INVALID &&
        pair.drop_allowed_mechanisms()) {
        private_object = session.create_object(private_template, context);
    }
    if (!private_object) {
        return dkim::unexpected(std::move(private_object).error());
    }
    auto public_object = session.create_object(public_template, context);
    if (!public_object) {
        // The private half alone is no key: it goes, or the error says that it is still there.
        return dkim::unexpected(
            detail::remove_made_objects(session, *token_, {{*private_object, "private half"}},
                                        label, id_bytes, std::move(public_object).error(), ""));
    }
    values.clear();
    return detail::keep_if_protected(session, *token_, name, {*public_object, *private_object},
                                     id_bytes, allowed, pair.restricts_mechanisms(),
                                     &PrivateKeyProtection::as_imported);
}

}  // namespace dkim::hsm

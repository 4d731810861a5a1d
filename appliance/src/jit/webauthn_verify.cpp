// WebAuthn §7.1 (registration) and §7.2 (assertion) for the relying party signerd is. The
// checks libfido2 does not do (clientDataJSON, the credential, the counter) come first where
// the specification puts them, so that a refusal names its reason; the signature itself is
// libfido2's fido_assert_verify.
#include <fido.h>
#include <fido/eddsa.h>
#include <fido/es256.h>
#include <fido/rs256.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "dkim/crypto/sha256.hpp"
#include "dkim/jit/webauthn.hpp"
#include "webauthn_detail.hpp"

namespace dkim::jit::webauthn {
namespace {

constexpr std::string_view kTypeCreate = "webauthn.create";
constexpr std::string_view kTypeGet = "webauthn.get";

Unexpected<Failure> refuse(Failure::Reason reason, std::string message) {
    return unexpected(Failure{reason, std::move(message)});
}

void ensure_fido_initialised() {
    static const bool initialised = [] {
        fido_init(0);
        return true;
    }();
    (void)initialised;
}

struct FidoAssertFree {
    void operator()(fido_assert_t* a) const { fido_assert_free(&a); }
};
struct Es256KeyFree {
    void operator()(es256_pk_t* k) const { es256_pk_free(&k); }
};
struct EddsaKeyFree {
    void operator()(eddsa_pk_t* k) const { eddsa_pk_free(&k); }
};
struct Rs256KeyFree {
    void operator()(rs256_pk_t* k) const { rs256_pk_free(&k); }
};
struct WebauthnPkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct WebauthnPkeyCtxFree {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct WebauthnMdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct ParamBuildFree {
    void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamsFree {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct BignumFree {
    void operator()(BIGNUM* n) const { BN_free(n); }
};

const unsigned char* unsigned_bytes(std::string_view bytes) {
    return reinterpret_cast<const unsigned char*>(bytes.data());
}

bool equal_in_constant_time(std::string_view a, std::string_view b) {
    // The length is no secret (challenges have one fixed size); the bytes are compared
    // without an early exit.
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// §7.1 steps 7-10, §7.2 steps 11-14: type, challenge, origin, not cross-origin.
Expected<void, Failure> check_client_data(const RelyingParty& rp, const ClientData& client,
                                          std::string_view expected_type,
                                          std::string_view challenge) {
    if (client.type != expected_type) {
        return refuse(Failure::Reason::type,
                      "clientDataJSON.type is not " + std::string(expected_type));
    }
    if (!equal_in_constant_time(client.challenge, challenge)) {
        return refuse(Failure::Reason::challenge,
                      "clientDataJSON.challenge is not the challenge issued for this operation");
    }
    if (std::find(rp.origins.begin(), rp.origins.end(), client.origin) == rp.origins.end()) {
        return refuse(Failure::Reason::origin,
                      "clientDataJSON.origin is not one of the configured origins");
    }
    // A page of ours embedded in another site's frame is not where an approver decides.
    if (client.cross_origin || client.top_origin) {
        return refuse(Failure::Reason::origin, "the ceremony ran in a cross-origin frame");
    }
    return {};
}

// §7.1 steps 13-15, §7.2 steps 15-17.
Expected<void, Failure> check_authenticator_data(const RelyingParty& rp,
                                                 const AuthenticatorData& data,
                                                 bool require_user_verification) {
    const auto expected = crypto::Sha256::hash(rp.id);
    if (CRYPTO_memcmp(expected.data(), data.rp_id_hash.data(), expected.size()) != 0) {
        return refuse(Failure::Reason::rp_id,
                      "the authenticator data's rpIdHash is not SHA-256 of the rpId");
    }
    if (!data.user_present()) {
        return refuse(Failure::Reason::user_present,
                      "the authenticator did not test user presence (flag UP)");
    }
    if (require_user_verification && !data.user_verified()) {
        return refuse(Failure::Reason::user_verified,
                      "the authenticator did not verify the user (flag UV)");
    }
    return {};
}

// RS256 with a modulus longer than libfido2's rs256_pk_t holds (2048 bits): RSASSA-PKCS1-v1_5
// with SHA-256 by OpenSSL over the same bytes libfido2 would hash.
bool verify_long_rsa(const CoseKey& key, std::string_view auth_data,
                     const crypto::Sha256Digest& client_data_hash, std::string_view signature) {
    const std::unique_ptr<BIGNUM, BignumFree> n(
        BN_bin2bn(unsigned_bytes(key.x), static_cast<int>(key.x.size()), nullptr));
    const std::unique_ptr<BIGNUM, BignumFree> e(
        BN_bin2bn(unsigned_bytes(key.y), static_cast<int>(key.y.size()), nullptr));
    const std::unique_ptr<OSSL_PARAM_BLD, ParamBuildFree> build(OSSL_PARAM_BLD_new());
    if (!n || !e || !build ||
        OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
        return false;
    }
    const std::unique_ptr<OSSL_PARAM, ParamsFree> params(OSSL_PARAM_BLD_to_param(build.get()));
    const std::unique_ptr<EVP_PKEY_CTX, WebauthnPkeyCtxFree> from_data(
        EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    EVP_PKEY* raw_key = nullptr;
    if (!params || !from_data || EVP_PKEY_fromdata_init(from_data.get()) != 1 ||
        EVP_PKEY_fromdata(from_data.get(), &raw_key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        return false;
    }
    const std::unique_ptr<EVP_PKEY, WebauthnPkeyFree> pkey(raw_key);
    const std::unique_ptr<EVP_MD_CTX, WebauthnMdCtxFree> md(EVP_MD_CTX_new());
    return md && EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) == 1 &&
           EVP_DigestVerifyUpdate(md.get(), auth_data.data(), auth_data.size()) == 1 &&
           EVP_DigestVerifyUpdate(md.get(), client_data_hash.data(), client_data_hash.size()) ==
               1 &&
           EVP_DigestVerifyFinal(md.get(), unsigned_bytes(signature), signature.size()) == 1;
}

// §7.2 steps 19-20 by libfido2: the signature over authenticatorData || SHA-256(clientDataJSON).
// libfido2 checks the rpIdHash and the flags again, which were checked before with their own
// reasons.
Expected<void, Failure> check_signature(const RelyingParty& rp, const CoseKey& key,
                                        std::string_view auth_data,
                                        const crypto::Sha256Digest& client_data_hash,
                                        std::string_view signature,
                                        bool require_user_verification) {
    if (key.algorithm == Algorithm::rs256 && key.x.size() > 256) {
        if (!verify_long_rsa(key, auth_data, client_data_hash, signature)) {
            return refuse(Failure::Reason::signature, "the signature does not verify");
        }
        return {};
    }
    ensure_fido_initialised();
    const std::unique_ptr<fido_assert_t, FidoAssertFree> assertion(fido_assert_new());
    if (!assertion) {
        return refuse(Failure::Reason::signature, "libfido2 could not allocate an assertion");
    }
    const std::string rp_id = rp.id;
    if (fido_assert_set_rp(assertion.get(), rp_id.c_str()) != FIDO_OK ||
        fido_assert_set_clientdata_hash(assertion.get(), client_data_hash.data(),
                                        client_data_hash.size()) != FIDO_OK ||
        fido_assert_set_count(assertion.get(), 1) != FIDO_OK) {
        return refuse(Failure::Reason::signature, "libfido2 refused the relying party");
    }
    if (fido_assert_set_authdata_raw(assertion.get(), 0, unsigned_bytes(auth_data),
                                     auth_data.size()) != FIDO_OK) {
        return refuse(Failure::Reason::malformed, "libfido2 refused the authenticator data");
    }
    const int set_signature =
        fido_assert_set_sig(assertion.get(), 0, unsigned_bytes(signature), signature.size());
    if (set_signature != FIDO_OK) {
        return refuse(Failure::Reason::signature, std::string("the signature does not verify (") +
                                                      fido_strerr(set_signature) + ")");
    }
    if (fido_assert_set_up(assertion.get(), FIDO_OPT_TRUE) != FIDO_OK ||
        fido_assert_set_uv(assertion.get(),
                           require_user_verification ? FIDO_OPT_TRUE : FIDO_OPT_OMIT) != FIDO_OK) {
        return refuse(Failure::Reason::signature, "libfido2 refused the flags to check");
    }
    int verified = FIDO_ERR_INVALID_ARGUMENT;
    switch (key.algorithm) {
        case Algorithm::es256: {
            const std::unique_ptr<es256_pk_t, Es256KeyFree> pk(es256_pk_new());
            // es256_pk_from_ptr takes x || y (64 bytes) and checks the point again.
            const std::string point = key.x + key.y;
            if (pk && es256_pk_from_ptr(pk.get(), point.data(), point.size()) == FIDO_OK) {
                verified = fido_assert_verify(assertion.get(), 0, COSE_ES256, pk.get());
            }
            break;
        }
        case Algorithm::ed25519: {
            const std::unique_ptr<eddsa_pk_t, EddsaKeyFree> pk(eddsa_pk_new());
            if (pk && eddsa_pk_from_ptr(pk.get(), key.x.data(), key.x.size()) == FIDO_OK) {
                verified = fido_assert_verify(assertion.get(), 0, COSE_EDDSA, pk.get());
            }
            break;
        }
        case Algorithm::rs256: {
            // rs256_pk_from_ptr takes n (256 bytes) || e (3 bytes, big-endian).
            std::string modulus_and_exponent = key.x;
            modulus_and_exponent.append(3 - key.y.size(), '\0');
            modulus_and_exponent += key.y;
            const std::unique_ptr<rs256_pk_t, Rs256KeyFree> pk(rs256_pk_new());
            if (pk && rs256_pk_from_ptr(pk.get(), modulus_and_exponent.data(),
                                        modulus_and_exponent.size()) == FIDO_OK) {
                verified = fido_assert_verify(assertion.get(), 0, COSE_RS256, pk.get());
            }
            break;
        }
    }
    if (verified != FIDO_OK) {
        return refuse(Failure::Reason::signature,
                      std::string("the signature does not verify (") + fido_strerr(verified) + ")");
    }
    return {};
}

}  // namespace

Expected<Registration, Failure> verify_registration(const RelyingParty& rp,
                                                    std::string_view client_data_json,
                                                    std::string_view attestation_object,
                                                    std::string_view challenge,
                                                    bool require_user_verification,
                                                    const std::vector<Algorithm>& algorithms) {
    auto client = parse_client_data(client_data_json);
    if (!client) {
        return refuse(Failure::Reason::malformed, std::move(client).error());
    }
    auto object = detail::parse_attestation_object(attestation_object);
    if (!object) {
        return unexpected(std::move(object).error());
    }
    if (auto checked = check_client_data(rp, *client, kTypeCreate, challenge); !checked) {
        return unexpected(std::move(checked).error());
    }
    const AuthenticatorData& data = object->parsed;
    if (auto checked = check_authenticator_data(rp, data, require_user_verification); !checked) {
        return unexpected(std::move(checked).error());
    }
    const AttestedCredential& credential = *data.attested;
    // §7.1 step 17: "Verify that the 'alg' parameter in the credential public key in authData
    // matches the alg attribute of one of the items in options.pubKeyCredParams."
    if (std::find(algorithms.begin(), algorithms.end(), credential.key.algorithm) ==
        algorithms.end()) {
        return refuse(Failure::Reason::algorithm,
                      "the credential's algorithm " +
                          std::string(to_string(credential.key.algorithm)) + " is not accepted");
    }
    // §8.7: the "none" format's attStmt is the empty map. Any other format would need its
    // statement verified, which we do not (and a statement we cannot check proves nothing).
    if (object->format != "none" || object->statement != "\xa0") {
        return refuse(Failure::Reason::attestation,
                      "the attestation format is not \"none\" with an empty statement");
    }
    Registration registration;
    registration.credential_id = credential.credential_id;
    registration.public_key = credential.public_key;
    registration.algorithm = credential.key.algorithm;
    registration.sign_count = data.sign_count;
    registration.aaguid = credential.aaguid;
    registration.user_verified = data.user_verified();
    registration.backup_eligible = data.backup_eligible();
    return registration;
}

Expected<Verified, Failure> verify_assertion(const RelyingParty& rp,
                                             const StoredCredential& credential,
                                             const Assertion& assertion, std::string_view challenge,
                                             bool require_user_verification) {
    // §7.2 step 5 (allowCredentials has the one credential the decision is for) and step 6.
    if (assertion.credential_id != credential.credential_id) {
        return refuse(Failure::Reason::credential,
                      "the assertion is from another credential than the one expected");
    }
    std::size_t key_size = 0;
    auto key = detail::parse_cose_key(credential.public_key, &key_size);
    if (!key) {
        return refuse(Failure::Reason::malformed,
                      "the stored public key: " + std::move(key).error().message);
    }
    if (key_size != credential.public_key.size()) {
        return refuse(Failure::Reason::malformed, "the stored public key: bytes follow it");
    }
    auto client = parse_client_data(assertion.client_data_json);
    if (!client) {
        return refuse(Failure::Reason::malformed, std::move(client).error());
    }
    auto data = detail::parse_authenticator_data(assertion.authenticator_data);
    if (!data) {
        return unexpected(Failure{Failure::Reason::malformed, std::move(data).error().message});
    }
    if (data->attested) {
        return refuse(Failure::Reason::malformed,
                      "an assertion's authenticator data carries attested credential data");
    }
    if (auto checked = check_client_data(rp, *client, kTypeGet, challenge); !checked) {
        return unexpected(std::move(checked).error());
    }
    if (auto checked = check_authenticator_data(rp, *data, require_user_verification); !checked) {
        return unexpected(std::move(checked).error());
    }
    const auto client_data_hash = crypto::Sha256::hash(assertion.client_data_json);
    if (auto checked = check_signature(rp, *key, assertion.authenticator_data, client_data_hash,
                                       assertion.signature, require_user_verification);
        !checked) {
        return unexpected(std::move(checked).error());
    }
    // §7.2 step 21: "If either value is nonzero, and authData.signCount is less than or equal
    // to the stored signCount: this is a signal that the authenticator may be cloned". Both
    // zero is the authenticator that keeps no counter (synced passkeys).
    if ((data->sign_count != 0 || credential.sign_count != 0) &&
        data->sign_count <= credential.sign_count) {
        return refuse(Failure::Reason::counter, "the signature counter did not grow (" +
                                                    std::to_string(data->sign_count) + " after " +
                                                    std::to_string(credential.sign_count) +
                                                    "): a cloned authenticator?");
    }
    Verified verified;
    verified.sign_count = data->sign_count;
    verified.user_verified = data->user_verified();
    verified.backed_up = data->backed_up();
    return verified;
}

}  // namespace dkim::jit::webauthn

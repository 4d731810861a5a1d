// WebAuthn verification (appliance/src/jit/webauthn*.cpp) against vectors recorded once from
// Debian's Chromium and its CDP virtual authenticator (tests/data/webauthn, record.mjs), with
// OpenSSL as a second, independent verifier of every recorded signature. Each negative test
// changes one thing and names the one reason it must be refused for. Where Chromium cannot
// produce a case (a counter of zero, a 3072-bit RSA key, odd CBOR), the test signs its own
// authenticator data with an OpenSSL key.

#include "dkim/jit/webauthn.hpp"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <vector>

#include "dkim/crypto/sha256.hpp"
#include "software_signer.hpp"

namespace dkim::test {
namespace {

namespace webauthn = jit::webauthn;
// A using-directive, not a declaration of operator""s: in a unity batch this namespace is shared,
// and a declaration would hide the chrono literals (30s) of the files after it.
using namespace std::string_literals;
using Reason = webauthn::Failure::Reason;

constexpr const char* kOrigin = "http://localhost:8447";

std::string unbase64url(const std::string& text) {
    auto bytes = webauthn::base64url_decode(text);
    EXPECT_TRUE(bytes) << "a recorded field is not base64url";
    return bytes.value_or(std::string());
}

struct RecordedAssertion {
    std::string challenge;
    webauthn::Assertion assertion;
};

struct RecordedRegistration {
    std::string challenge;
    std::string credential_id;
    std::string client_data_json;
    std::string attestation_object;
};

struct RecordedVector {
    std::string name;
    webauthn::Algorithm algorithm = webauthn::Algorithm::es256;
    RecordedRegistration registration;
    std::vector<RecordedAssertion> assertions;
    RecordedRegistration registration_without_uv;
    RecordedAssertion assertion_without_uv;
};

std::string member(const rapidjson::Value& object, const char* name) {
    EXPECT_TRUE(object.HasMember(name) && object[name].IsString()) << name;
    if (!object.HasMember(name) || !object[name].IsString()) {
        return {};
    }
    return {object[name].GetString(), object[name].GetStringLength()};
}

RecordedRegistration registration_from(const rapidjson::Value& object) {
    RecordedRegistration r;
    r.challenge = unbase64url(member(object, "challenge"));
    r.credential_id = unbase64url(member(object, "credentialId"));
    r.client_data_json = unbase64url(member(object, "clientDataJSON"));
    r.attestation_object = unbase64url(member(object, "attestationObject"));
    return r;
}

RecordedAssertion assertion_from(const rapidjson::Value& object) {
    RecordedAssertion r;
    r.challenge = unbase64url(member(object, "challenge"));
    r.assertion.credential_id = unbase64url(member(object, "credentialId"));
    r.assertion.client_data_json = unbase64url(member(object, "clientDataJSON"));
    r.assertion.authenticator_data = unbase64url(member(object, "authenticatorData"));
    r.assertion.signature = unbase64url(member(object, "signature"));
    r.assertion.user_handle = unbase64url(member(object, "userHandle"));
    return r;
}

RecordedVector load_vector(const std::string& file, webauthn::Algorithm algorithm) {
    const std::string text = read_test_file("webauthn/" + file);
    rapidjson::Document document;
    document.Parse(text.data(), text.size());
    EXPECT_FALSE(document.HasParseError()) << file;
    RecordedVector vector;
    vector.name = file;
    vector.algorithm = algorithm;
    EXPECT_EQ(member(document, "rpId"), "localhost");
    EXPECT_EQ(member(document, "origin"), kOrigin);
    vector.registration = registration_from(document);
    for (const auto& a : document["assertions"].GetArray()) {
        vector.assertions.push_back(assertion_from(a));
    }
    const auto& without_uv = document["withoutUserVerification"];
    vector.registration_without_uv = registration_from(without_uv);
    vector.assertion_without_uv = assertion_from(without_uv["assertion"]);
    return vector;
}

const std::vector<RecordedVector>& recorded() {
    static const std::vector<RecordedVector> vectors = {
        load_vector("es256.json", webauthn::Algorithm::es256),
        load_vector("ed25519.json", webauthn::Algorithm::ed25519),
        load_vector("rs256.json", webauthn::Algorithm::rs256),
    };
    return vectors;
}

const RecordedVector& es256() {
    return recorded()[0];
}

webauthn::RelyingParty relying_party() {
    return webauthn::RelyingParty{"localhost", {"https://appliance.example.com:8443", kOrigin}};
}

const std::vector<webauthn::Algorithm> kAllAlgorithms = {
    webauthn::Algorithm::es256, webauthn::Algorithm::ed25519, webauthn::Algorithm::rs256};

webauthn::Registration registered(const RecordedRegistration& r, bool require_uv = true) {
    auto result =
        webauthn::verify_registration(relying_party(), r.client_data_json, r.attestation_object,
                                      r.challenge, require_uv, kAllAlgorithms);
    EXPECT_TRUE(result) << (result ? "" : result.error().message);
    return result ? *result : webauthn::Registration{};
}

webauthn::StoredCredential stored(const webauthn::Registration& r, std::uint32_t sign_count) {
    return webauthn::StoredCredential{r.credential_id, r.public_key, sign_count};
}

std::uint32_t counter_of(std::string_view auth_data) {
    std::uint32_t count = 0;
    for (std::size_t i = 33; i < 37; ++i) {
        count = (count << 8) | static_cast<std::uint8_t>(auth_data[i]);
    }
    return count;
}

// The reason an operation was refused, or "accepted".
template <class T>
std::string outcome(const Expected<T, webauthn::Failure>& result) {
    if (result) {
        return "accepted";
    }
    return std::string(webauthn::to_string(result.error().reason));
}

std::string expected_reason(Reason r) {
    return std::string(webauthn::to_string(r));
}

// --- OpenSSL: the second verifier, and the test's own authenticator ---------------------------

struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

Pkey pkey_from_cose(const webauthn::CoseKey& key) {
    if (key.algorithm == webauthn::Algorithm::ed25519) {
        return Pkey(EVP_PKEY_new_raw_public_key(
            EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key.x.data()),
            key.x.size()));
    }
    OSSL_PARAM_BLD* build = OSSL_PARAM_BLD_new();
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    std::string point;
    const char* type = "EC";
    if (key.algorithm == webauthn::Algorithm::es256) {
        point = "\x04" + key.x + key.y;
        OSSL_PARAM_BLD_push_utf8_string(build, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
        OSSL_PARAM_BLD_push_octet_string(build, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size());
    } else {
        type = "RSA";
        n = BN_bin2bn(reinterpret_cast<const unsigned char*>(key.x.data()),
                      static_cast<int>(key.x.size()), nullptr);
        e = BN_bin2bn(reinterpret_cast<const unsigned char*>(key.y.data()),
                      static_cast<int>(key.y.size()), nullptr);
        OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_N, n);
        OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_E, e);
    }
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(build);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    EVP_PKEY* pkey = nullptr;
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = nullptr;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(build);
    BN_free(n);
    BN_free(e);
    return Pkey(pkey);
}

// WebAuthn §6.3.3: the signature is over authenticatorData || SHA-256(clientDataJSON); ES256
// and RS256 hash that with SHA-256, Ed25519 signs it as it is.
bool openssl_accepts(const webauthn::CoseKey& key, std::string_view auth_data,
                     std::string_view client_data_json, std::string_view signature) {
    const Pkey pkey = pkey_from_cose(key);
    if (!pkey) {
        ADD_FAILURE() << "OpenSSL did not take the key";
        return false;
    }
    const auto hash = crypto::Sha256::hash(client_data_json);
    std::string signed_bytes(auth_data);
    signed_bytes.append(reinterpret_cast<const char*>(hash.data()), hash.size());
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    const EVP_MD* digest = key.algorithm == webauthn::Algorithm::ed25519 ? nullptr : EVP_sha256();
    const bool ok = EVP_DigestVerifyInit(md, nullptr, digest, nullptr, pkey.get()) == 1 &&
                    EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(signature.data()),
                                     signature.size(),
                                     reinterpret_cast<const unsigned char*>(signed_bytes.data()),
                                     signed_bytes.size()) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

webauthn::CoseKey cose_key_of(const std::string& public_key) {
    auto key = webauthn::parse_cose_key(public_key);
    EXPECT_TRUE(key) << (key ? "" : key.error());
    return key ? *key : webauthn::CoseKey{};
}

// A CBOR encoder for the test's own objects (shortest form, definite lengths).
std::string cbor_head(unsigned major, std::uint64_t argument) {
    std::string out;
    const auto initial = [&](unsigned additional) {
        out += static_cast<char>((major << 5) | additional);
    };
    if (argument < 24) {
        initial(static_cast<unsigned>(argument));
        return out;
    }
    int size = 8;
    unsigned additional = 27;
    if (argument <= 0xff) {
        size = 1;
        additional = 24;
    } else if (argument <= 0xffff) {
        size = 2;
        additional = 25;
    } else if (argument <= 0xffffffffULL) {
        size = 4;
        additional = 26;
    }
    initial(additional);
    for (int i = size - 1; i >= 0; --i) {
        out += static_cast<char>((argument >> (8 * i)) & 0xff);
    }
    return out;
}
std::string cbor_int(std::int64_t value) {
    return value >= 0 ? cbor_head(0, static_cast<std::uint64_t>(value))
                      : cbor_head(1, static_cast<std::uint64_t>(-1 - value));
}
std::string cbor_bytes(std::string_view bytes) {
    return cbor_head(2, bytes.size()) + std::string(bytes);
}
std::string cbor_text(std::string_view text) {
    return cbor_head(3, text.size()) + std::string(text);
}

std::string cose_ec2(std::string_view x, std::string_view y, std::int64_t kty = 2,
                     std::int64_t alg = -7, std::int64_t crv = 1) {
    return cbor_head(5, 5) + cbor_int(1) + cbor_int(kty) + cbor_int(3) + cbor_int(alg) +
           cbor_int(-1) + cbor_int(crv) + cbor_int(-2) + cbor_bytes(x) + cbor_int(-3) +
           cbor_bytes(y);
}
std::string cose_rsa(std::string_view n, std::string_view e) {
    return cbor_head(5, 4) + cbor_int(1) + cbor_int(3) + cbor_int(3) + cbor_int(-257) +
           cbor_int(-1) + cbor_bytes(n) + cbor_int(-2) + cbor_bytes(e);
}

std::string attestation_object(std::string_view format, std::string_view statement,
                               std::string_view auth_data) {
    return cbor_head(5, 3) + cbor_text("fmt") + cbor_text(format) + cbor_text("attStmt") +
           std::string(statement) + cbor_text("authData") + cbor_bytes(auth_data);
}

std::string rp_id_hash(std::string_view rp_id) {
    const auto hash = crypto::Sha256::hash(rp_id);
    return {reinterpret_cast<const char*>(hash.data()), hash.size()};
}

std::string authenticator_data(std::uint8_t flags, std::uint32_t counter,
                               std::string_view attested = {}) {
    std::string out = rp_id_hash("localhost");
    out += static_cast<char>(flags);
    for (int i = 3; i >= 0; --i) {
        out += static_cast<char>((counter >> (8 * i)) & 0xff);
    }
    out += attested;
    return out;
}

std::string client_data(std::string_view type, std::string_view challenge) {
    return R"({"type":")" + std::string(type) + R"(","challenge":")" +
           webauthn::base64url_encode(challenge) + R"(","origin":")" + kOrigin +
           R"(","crossOrigin":false})";
}

// The test's own authenticator: an OpenSSL key, its COSE form, and signatures.
class SoftwareAuthenticator {
  public:
    explicit SoftwareAuthenticator(webauthn::Algorithm algorithm, unsigned rsa_bits = 2048) {
        if (algorithm == webauthn::Algorithm::es256) {
            key_.reset(EVP_EC_gen("P-256"));
            std::string point(65, '\0');
            std::size_t size = 0;
            EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                            reinterpret_cast<unsigned char*>(point.data()),
                                            point.size(), &size);
            cose_ = cose_ec2(point.substr(1, 32), point.substr(33, 32));
        } else {
            key_.reset(EVP_RSA_gen(rsa_bits));
            BIGNUM* n = nullptr;
            BIGNUM* e = nullptr;
            EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_RSA_N, &n);
            EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_RSA_E, &e);
            std::string n_bytes(static_cast<std::size_t>(BN_num_bytes(n)), '\0');
            std::string e_bytes(static_cast<std::size_t>(BN_num_bytes(e)), '\0');
            BN_bn2bin(n, reinterpret_cast<unsigned char*>(n_bytes.data()));
            BN_bn2bin(e, reinterpret_cast<unsigned char*>(e_bytes.data()));
            BN_free(n);
            BN_free(e);
            cose_ = cose_rsa(n_bytes, e_bytes);
        }
    }
    const std::string& cose() const { return cose_; }

    std::string sign(std::string_view auth_data, std::string_view client_data_json) const {
        const auto hash = crypto::Sha256::hash(client_data_json);
        std::string data(auth_data);
        data.append(reinterpret_cast<const char*>(hash.data()), hash.size());
        EVP_MD_CTX* md = EVP_MD_CTX_new();
        std::size_t size = 0;
        EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key_.get());
        EVP_DigestSign(md, nullptr, &size, reinterpret_cast<const unsigned char*>(data.data()),
                       data.size());
        std::string signature(size, '\0');
        EVP_DigestSign(md, reinterpret_cast<unsigned char*>(signature.data()), &size,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size());
        EVP_MD_CTX_free(md);
        signature.resize(size);
        return signature;
    }

    // An assertion for `challenge` with this counter and flags (UP and UV by default).
    webauthn::Assertion assertion(std::string_view challenge, std::uint32_t counter,
                                  std::uint8_t flags = 0x05) const {
        webauthn::Assertion a;
        a.credential_id = "software credential";
        a.client_data_json = client_data("webauthn.get", challenge);
        a.authenticator_data = authenticator_data(flags, counter);
        a.signature = sign(a.authenticator_data, a.client_data_json);
        return a;
    }
    webauthn::StoredCredential credential(std::uint32_t counter) const {
        return webauthn::StoredCredential{"software credential", cose_, counter};
    }

  private:
    Pkey key_;
    std::string cose_;
};

// --- Recorded from Chromium: everything verifies ----------------------------------------------

TEST(WebauthnTest, RecordedRegistrationsVerify) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        EXPECT_EQ(r.algorithm, v.algorithm);
        EXPECT_EQ(r.credential_id, v.registration.credential_id) << "the browser's rawId";
        const auto object = webauthn::parse_attestation_object(v.registration.attestation_object);
        ASSERT_TRUE(object);
        EXPECT_EQ(r.sign_count, counter_of(object->auth_data));
        EXPECT_TRUE(r.user_verified);
        // Chromium keeps the AAGUID with attestation "none" (WebAuthn L3 allows it); its
        // virtual authenticator's is 01 02 .. 08 twice.
        EXPECT_EQ(r.aaguid,
                  (std::array<std::uint8_t, 16>{1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8}));
        EXPECT_EQ(object->format, "none");
        const auto key = cose_key_of(r.public_key);
        EXPECT_EQ(key.algorithm, v.algorithm);
        EXPECT_EQ(key.x.size(), v.algorithm == webauthn::Algorithm::rs256 ? 256U : 32U);
    }
}

TEST(WebauthnTest, RecordedAssertionsVerifyAndTheCounterGrows) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        std::uint32_t counter = r.sign_count;
        for (const auto& a : v.assertions) {
            // The independent verifier first: these bytes are Chromium's, not ours.
            EXPECT_TRUE(openssl_accepts(cose_key_of(r.public_key), a.assertion.authenticator_data,
                                        a.assertion.client_data_json, a.assertion.signature));
            const auto verified = webauthn::verify_assertion(relying_party(), stored(r, counter),
                                                             a.assertion, a.challenge, true);
            ASSERT_TRUE(verified) << verified.error().message;
            EXPECT_EQ(verified->sign_count, counter_of(a.assertion.authenticator_data));
            EXPECT_GT(verified->sign_count, counter);
            EXPECT_TRUE(verified->user_verified);
            EXPECT_FALSE(verified->backed_up);
            EXPECT_EQ(a.assertion.user_handle, "approver-alice");
            counter = verified->sign_count;  // what the directory stores for the next one
        }
    }
}

TEST(WebauthnTest, ReplayedAssertionIsRefusedByTheCounter) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    const auto& a = v.assertions[0];
    const auto first = webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                  a.assertion, a.challenge, true);
    ASSERT_TRUE(first);
    const auto again = webauthn::verify_assertion(relying_party(), stored(r, first->sign_count),
                                                  a.assertion, a.challenge, true);
    EXPECT_EQ(outcome(again), expected_reason(Reason::counter));
}

// --- clientDataJSON: type, challenge, origin --------------------------------------------------

TEST(WebauthnTest, WrongOriginIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    const webauthn::RelyingParty elsewhere{"localhost", {"http://localhost:8448"}};
    const auto& a = v.assertions[0];
    EXPECT_EQ(outcome(webauthn::verify_assertion(elsewhere, stored(r, r.sign_count), a.assertion,
                                                 a.challenge, true)),
              expected_reason(Reason::origin));
    EXPECT_EQ(outcome(webauthn::verify_registration(
                  elsewhere, v.registration.client_data_json, v.registration.attestation_object,
                  v.registration.challenge, true, kAllAlgorithms)),
              expected_reason(Reason::origin));
}

TEST(WebauthnTest, CrossOriginTrueIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    auto a = v.assertions[0];
    const std::string from = R"("crossOrigin":false)";
    const auto at = a.assertion.client_data_json.find(from);
    ASSERT_NE(at, std::string::npos);
    a.assertion.client_data_json.replace(at, from.size(), R"("crossOrigin":true)");
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                 a.assertion, a.challenge, true)),
              expected_reason(Reason::origin));
    // topOrigin is only ever sent from a frame: refused alike.
    a.assertion.client_data_json = v.assertions[0].assertion.client_data_json;
    a.assertion.client_data_json.insert(a.assertion.client_data_json.size() - 1,
                                        R"(,"topOrigin":"https://evil.example")");
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                 a.assertion, a.challenge, true)),
              expected_reason(Reason::origin));
}

TEST(WebauthnTest, WrongRpIdIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    const webauthn::RelyingParty other{"appliance.example.com", {kOrigin}};
    const auto& a = v.assertions[0];
    EXPECT_EQ(outcome(webauthn::verify_assertion(other, stored(r, r.sign_count), a.assertion,
                                                 a.challenge, true)),
              expected_reason(Reason::rp_id));
    EXPECT_EQ(outcome(webauthn::verify_registration(
                  other, v.registration.client_data_json, v.registration.attestation_object,
                  v.registration.challenge, true, kAllAlgorithms)),
              expected_reason(Reason::rp_id));
}

TEST(WebauthnTest, WrongChallengeIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    const auto& a = v.assertions[0];
    std::string wrong = a.challenge;
    wrong.back() = static_cast<char>(wrong.back() ^ 1);
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                 a.assertion, wrong, true)),
              expected_reason(Reason::challenge));
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                 a.assertion, a.challenge.substr(1), true)),
              expected_reason(Reason::challenge))
        << "a shorter challenge";
    EXPECT_EQ(outcome(webauthn::verify_registration(
                  relying_party(), v.registration.client_data_json,
                  v.registration.attestation_object, "another registration", true, kAllAlgorithms)),
              expected_reason(Reason::challenge));
}

TEST(WebauthnTest, AssertionForAnotherDecisionIsRefused) {
    // The approver's authenticator signed decision 1; the request at hand issued decision 2's
    // challenge. A compromised webd forwarding the first assertion for the second decision
    // gets exactly this refusal.
    const auto& v = es256();
    const auto r = registered(v.registration);
    const auto& signed_for_first = v.assertions[0];
    const std::string issued_for_second = v.assertions[1].challenge;
    ASSERT_NE(signed_for_first.challenge, issued_for_second);
    EXPECT_EQ(
        outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                           signed_for_first.assertion, issued_for_second, true)),
        expected_reason(Reason::challenge));
}

TEST(WebauthnTest, RegistrationClientDataUsedAsAnAssertionIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    auto a = v.assertions[0];
    a.assertion.client_data_json = v.registration.client_data_json;  // type webauthn.create
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                 a.assertion, v.registration.challenge, true)),
              expected_reason(Reason::type));
}

TEST(WebauthnTest, AssertionClientDataUsedAsARegistrationIsRefused) {
    const auto& v = es256();
    const auto& a = v.assertions[0];  // type webauthn.get
    EXPECT_EQ(outcome(webauthn::verify_registration(relying_party(), a.assertion.client_data_json,
                                                    v.registration.attestation_object, a.challenge,
                                                    true, kAllAlgorithms)),
              expected_reason(Reason::type));
}

// --- Flags ------------------------------------------------------------------------------------

TEST(WebauthnTest, MissingUserPresenceIsRefusedBeforeTheSignature) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        auto a = v.assertions[0];
        a.assertion.authenticator_data[32] = static_cast<char>(
            a.assertion.authenticator_data[32] & ~webauthn::AuthenticatorData::kUserPresent);
        EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                     a.assertion, a.challenge, true)),
                  expected_reason(Reason::user_present));
        // The flags are signed: with UP cleared the signature fails too (checked by OpenSSL,
        // since our verifier stops at the flag).
        EXPECT_FALSE(openssl_accepts(cose_key_of(r.public_key), a.assertion.authenticator_data,
                                     a.assertion.client_data_json, a.assertion.signature));
    }
}

TEST(WebauthnTest, MissingUserVerificationIsRefusedWhenRequired) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        // Chromium's second authenticator cannot verify users: the UV flag is clear.
        const auto& a = v.assertion_without_uv;
        ASSERT_EQ(a.assertion.authenticator_data[32] & webauthn::AuthenticatorData::kUserVerified,
                  0);
        const auto r = registered(v.registration_without_uv, false);
        EXPECT_FALSE(r.user_verified);
        EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                     a.assertion, a.challenge, true)),
                  expected_reason(Reason::user_verified));
        EXPECT_EQ(outcome(webauthn::verify_registration(
                      relying_party(), v.registration_without_uv.client_data_json,
                      v.registration_without_uv.attestation_object,
                      v.registration_without_uv.challenge, true, kAllAlgorithms)),
                  expected_reason(Reason::user_verified));
    }
}

TEST(WebauthnTest, MissingUserVerificationIsAcceptedWhenNotRequired) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto& a = v.assertion_without_uv;
        const auto r = registered(v.registration_without_uv, false);
        const auto verified = webauthn::verify_assertion(relying_party(), stored(r, r.sign_count),
                                                         a.assertion, a.challenge, false);
        ASSERT_TRUE(verified) << verified.error().message;
        EXPECT_FALSE(verified->user_verified);
        EXPECT_TRUE(openssl_accepts(cose_key_of(r.public_key), a.assertion.authenticator_data,
                                    a.assertion.client_data_json, a.assertion.signature));
    }
}

// --- The signature counter --------------------------------------------------------------------

TEST(WebauthnTest, CounterGoingBackIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    const auto& a = v.assertions[0];
    const std::uint32_t recorded_counter = counter_of(a.assertion.authenticator_data);
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, recorded_counter + 5),
                                                 a.assertion, a.challenge, true)),
              expected_reason(Reason::counter));
}

TEST(WebauthnTest, CounterStandingStillIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    const auto& a = v.assertions[0];
    EXPECT_EQ(outcome(webauthn::verify_assertion(
                  relying_party(), stored(r, counter_of(a.assertion.authenticator_data)),
                  a.assertion, a.challenge, true)),
              expected_reason(Reason::counter));
}

TEST(WebauthnTest, BothCountersZeroIsAccepted) {
    // Chromium's counter is never zero; synced passkeys always send zero. Our own P-256 key.
    const SoftwareAuthenticator authenticator(webauthn::Algorithm::es256);
    const auto a = authenticator.assertion("decision 7", 0);
    ASSERT_TRUE(openssl_accepts(cose_key_of(authenticator.cose()), a.authenticator_data,
                                a.client_data_json, a.signature));
    const auto verified = webauthn::verify_assertion(relying_party(), authenticator.credential(0),
                                                     a, "decision 7", true);
    ASSERT_TRUE(verified) << verified.error().message;
    EXPECT_EQ(verified->sign_count, 0U);
    // Zero after a non-zero counter is a counter going back.
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), authenticator.credential(4), a,
                                                 "decision 7", true)),
              expected_reason(Reason::counter));
    // A counter that starts after a zero is fine.
    const auto b = authenticator.assertion("decision 8", 1);
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), authenticator.credential(0), b,
                                                 "decision 8", true)),
              "accepted");
}

// --- Which credential signed ------------------------------------------------------------------

TEST(WebauthnTest, AnotherUsersCredentialIdIsRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    const auto other = registered(v.registration_without_uv, false);
    ASSERT_NE(r.credential_id, other.credential_id);
    // Alice's assertion checked against Bob's stored credential.
    const auto& a = v.assertions[0];
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(other, 0), a.assertion,
                                                 a.challenge, true)),
              expected_reason(Reason::credential));
}

TEST(WebauthnTest, AnotherUsersPublicKeyFailsTheSignature) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        const auto other = registered(v.registration_without_uv, false);
        const auto& a = v.assertions[0];
        // The credential id matches (as a forged store entry would), the key is another one.
        const webauthn::StoredCredential mixed{r.credential_id, other.public_key, 0};
        EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), mixed, a.assertion,
                                                     a.challenge, true)),
                  expected_reason(Reason::signature));
    }
}

// --- Altered and truncated bytes --------------------------------------------------------------

TEST(WebauthnTest, EveryTruncationOfTheAuthenticatorDataIsRefused) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        const auto& a = v.assertions[0];
        const std::string& full = a.assertion.authenticator_data;
        for (std::size_t size = 0; size < full.size(); ++size) {
            auto cut = a.assertion;
            cut.authenticator_data = full.substr(0, size);
            EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, 0), cut,
                                                         a.challenge, true)),
                      expected_reason(Reason::malformed))
                << size << " bytes";
        }
        // The registration's authenticator data (with the attested credential and its key),
        // cut anywhere, and the attestation object around it.
        const auto object = webauthn::parse_attestation_object(v.registration.attestation_object);
        ASSERT_TRUE(object);
        for (std::size_t size = 0; size < object->auth_data.size(); ++size) {
            EXPECT_FALSE(webauthn::parse_authenticator_data(object->auth_data.substr(0, size)))
                << size << " bytes";
        }
        const std::string& cbor = v.registration.attestation_object;
        for (std::size_t size = 0; size < cbor.size(); ++size) {
            EXPECT_EQ(outcome(webauthn::verify_registration(
                          relying_party(), v.registration.client_data_json, cbor.substr(0, size),
                          v.registration.challenge, true, kAllAlgorithms)),
                      expected_reason(Reason::malformed))
                << size << " bytes";
        }
    }
}

TEST(WebauthnTest, AlteredAuthenticatorDataFailsTheSignature) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        auto a = v.assertions[0];
        // The counter's high byte: the counter still grows, only the signature can tell.
        a.assertion.authenticator_data[33] = static_cast<char>(0x7f);
        EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, 0), a.assertion,
                                                     a.challenge, true)),
                  expected_reason(Reason::signature));
    }
}

TEST(WebauthnTest, AlteredOrTruncatedSignatureIsRefused) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        const auto& a = v.assertions[0];
        auto altered = a.assertion;
        char& flipped = altered.signature[altered.signature.size() / 2];
        flipped = static_cast<char>(flipped ^ 0x01);
        EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, 0), altered,
                                                     a.challenge, true)),
                  expected_reason(Reason::signature));
        for (const std::size_t size :
             {std::size_t{0}, std::size_t{1}, a.assertion.signature.size() / 2,
              a.assertion.signature.size() - 1}) {
            auto truncated = a.assertion;
            truncated.signature.resize(size);
            EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, 0), truncated,
                                                         a.challenge, true)),
                      expected_reason(Reason::signature))
                << size << " bytes";
        }
    }
}

TEST(WebauthnTest, AlteredClientDataFailsTheSignature) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        const auto r = registered(v.registration);
        auto a = v.assertions[0];
        // A space after the opening brace: the same JSON to every reader, other bytes to hash.
        a.assertion.client_data_json.insert(1, " ");
        EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, 0), a.assertion,
                                                     a.challenge, true)),
                  expected_reason(Reason::signature));
        // One byte changed in place, in the origin's port digit while accepting both ports.
        auto b = v.assertions[0];
        const auto port = b.assertion.client_data_json.find("8447");
        ASSERT_NE(port, std::string::npos);
        b.assertion.client_data_json[port + 3] = '8';
        const webauthn::RelyingParty both{"localhost", {kOrigin, "http://localhost:8448"}};
        EXPECT_EQ(
            outcome(webauthn::verify_assertion(both, stored(r, 0), b.assertion, b.challenge, true)),
            expected_reason(Reason::signature));
    }
}

TEST(WebauthnTest, TrailingBytesAreRefused) {
    const auto& v = es256();
    const auto r = registered(v.registration);
    auto a = v.assertions[0];
    a.assertion.authenticator_data += '\0';
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), stored(r, 0), a.assertion,
                                                 a.challenge, true)),
              expected_reason(Reason::malformed))
        << "after an assertion's authenticator data";
    const auto object = webauthn::parse_attestation_object(v.registration.attestation_object);
    ASSERT_TRUE(object);
    EXPECT_EQ(outcome(webauthn::verify_registration(
                  relying_party(), v.registration.client_data_json,
                  attestation_object("none", "\xa0", object->auth_data + '\0'),
                  v.registration.challenge, true, kAllAlgorithms)),
              expected_reason(Reason::malformed))
        << "after the attested credential's key";
    EXPECT_EQ(
        outcome(webauthn::verify_registration(relying_party(), v.registration.client_data_json,
                                              v.registration.attestation_object + '\0',
                                              v.registration.challenge, true, kAllAlgorithms)),
        expected_reason(Reason::malformed))
        << "after the attestation object's map";
    // Our re-encoding of the recorded object is byte for byte Chromium's (canonical CBOR).
    EXPECT_EQ(attestation_object("none", "\xa0", object->auth_data),
              v.registration.attestation_object);
    webauthn::StoredCredential long_key = stored(r, 0);
    long_key.public_key += '\0';
    EXPECT_EQ(
        outcome(webauthn::verify_assertion(relying_party(), long_key, v.assertions[0].assertion,
                                           v.assertions[0].challenge, true)),
        expected_reason(Reason::malformed))
        << "after a stored key";
}

// --- Attestation and keys ---------------------------------------------------------------------

TEST(WebauthnTest, AttestationOtherThanNoneIsRefused) {
    const auto& v = es256();
    const auto object = webauthn::parse_attestation_object(v.registration.attestation_object);
    ASSERT_TRUE(object);
    const std::string packed_statement = cbor_head(5, 2) + cbor_text("alg") + cbor_int(-7) +
                                         cbor_text("sig") + cbor_bytes(std::string(70, 'S'));
    const auto verify = [&](const std::string& cbor) {
        return outcome(
            webauthn::verify_registration(relying_party(), v.registration.client_data_json, cbor,
                                          v.registration.challenge, true, kAllAlgorithms));
    };
    EXPECT_EQ(verify(attestation_object("packed", packed_statement, object->auth_data)),
              expected_reason(Reason::attestation));
    EXPECT_EQ(verify(attestation_object("none", packed_statement, object->auth_data)),
              expected_reason(Reason::attestation))
        << "none with a statement";
    EXPECT_EQ(verify(attestation_object("fido-u2f", "\xa0", object->auth_data)),
              expected_reason(Reason::attestation));
    EXPECT_EQ(verify(attestation_object("none", "\xa0", object->auth_data)), "accepted");
}

TEST(WebauthnTest, AlgorithmNotAcceptedIsRefused) {
    for (const auto& v : recorded()) {
        SCOPED_TRACE(v.name);
        std::vector<webauthn::Algorithm> others;
        for (const auto a : kAllAlgorithms) {
            if (a != v.algorithm) {
                others.push_back(a);
            }
        }
        EXPECT_EQ(outcome(webauthn::verify_registration(
                      relying_party(), v.registration.client_data_json,
                      v.registration.attestation_object, v.registration.challenge, true, others)),
                  expected_reason(Reason::algorithm));
    }
}

TEST(WebauthnTest, CoseKeysOfTheWrongShapeAreRefused) {
    const auto recorded_key = cose_key_of(registered(es256().registration).public_key);
    const std::string& x = recorded_key.x;
    const std::string& y = recorded_key.y;
    ASSERT_TRUE(webauthn::parse_cose_key(cose_ec2(x, y)));
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x, y, 2, -7, 2))) << "crv P-384 with ES256";
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x, y, 2, -7, 6))) << "crv Ed25519 with ES256";
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x, y, 1, -7, 1))) << "kty OKP with ES256";
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x, y, 3, -7, 1))) << "kty RSA with ES256";
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x, y, 2, -35, 1))) << "ES384";
    std::string off_curve = y;
    off_curve.back() = static_cast<char>(off_curve.back() ^ 1);
    const auto not_on_curve = webauthn::parse_cose_key(cose_ec2(x, off_curve));
    ASSERT_FALSE(not_on_curve);
    EXPECT_NE(not_on_curve.error().find("not on P-256"), std::string::npos);
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x, std::string(32, '\xff'))))
        << "y outside the field";
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x.substr(1), y))) << "31-byte x";
    EXPECT_FALSE(webauthn::parse_cose_key(cose_ec2(x + "\x01", y))) << "33-byte x";

    const auto ed = cose_key_of(registered(recorded()[1].registration).public_key);
    const auto okp = [&](std::string_view key_x, std::int64_t crv) {
        return cbor_head(5, 4) + cbor_int(1) + cbor_int(1) + cbor_int(3) + cbor_int(-8) +
               cbor_int(-1) + cbor_int(crv) + cbor_int(-2) + cbor_bytes(key_x);
    };
    ASSERT_TRUE(webauthn::parse_cose_key(okp(ed.x, 6)));
    EXPECT_FALSE(webauthn::parse_cose_key(okp(ed.x, 7))) << "Ed448";
    EXPECT_FALSE(webauthn::parse_cose_key(okp(ed.x.substr(1), 6))) << "31-byte Ed25519 x";
}

TEST(WebauthnTest, RsaKeysShorterThan2048BitsAreRefused) {
    const SoftwareAuthenticator short_rsa(webauthn::Algorithm::rs256, 1024);
    const auto refused = webauthn::parse_cose_key(short_rsa.cose());
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("2048"), std::string::npos);
    // In a registration, that is a key not accepted.
    const std::string id = "short rsa";
    const std::string attested =
        std::string(16, '\0') + '\0' + static_cast<char>(id.size()) + id + short_rsa.cose();
    const std::string challenge = "register a short key";
    EXPECT_EQ(outcome(webauthn::verify_registration(
                  relying_party(), client_data("webauthn.create", challenge),
                  attestation_object("none", "\xa0", authenticator_data(0x45, 0, attested)),
                  challenge, true, kAllAlgorithms)),
              expected_reason(Reason::algorithm));
    const auto recorded_rsa = cose_key_of(registered(recorded()[2].registration).public_key);
    EXPECT_FALSE(webauthn::parse_cose_key(cose_rsa(recorded_rsa.x, std::string("\x01\x00", 2))))
        << "an even exponent";
    EXPECT_FALSE(webauthn::parse_cose_key(cose_rsa(recorded_rsa.x, std::string("\x01", 1))));
    EXPECT_FALSE(webauthn::parse_cose_key(cose_rsa('\0' + recorded_rsa.x, recorded_rsa.y)))
        << "a leading zero byte";
}

TEST(WebauthnTest, LongerRsaKeysVerifyThroughOpenSsl) {
    // libfido2's rs256_pk_t holds 2048 bits; a 3072-bit key is verified by OpenSSL instead.
    const SoftwareAuthenticator rsa(webauthn::Algorithm::rs256, 3072);
    const auto key = webauthn::parse_cose_key(rsa.cose());
    ASSERT_TRUE(key);
    EXPECT_EQ(key->x.size(), 384U);
    auto a = rsa.assertion("rsa decision", 9);
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), rsa.credential(8), a,
                                                 "rsa decision", true)),
              "accepted");
    a.signature[10] = static_cast<char>(a.signature[10] ^ 0x01);
    EXPECT_EQ(outcome(webauthn::verify_assertion(relying_party(), rsa.credential(8), a,
                                                 "rsa decision", true)),
              expected_reason(Reason::signature));
}

// --- Malformed CBOR and JSON ------------------------------------------------------------------

TEST(WebauthnTest, MalformedCborIsRefused) {
    const auto object = webauthn::parse_attestation_object(es256().registration.attestation_object);
    ASSERT_TRUE(object);
    const std::string& auth_data = object->auth_data;
    const auto refused = [](const std::string& cbor) {
        return !webauthn::parse_attestation_object(cbor);
    };
    // The map with an indefinite length (0xbf ... 0xff).
    EXPECT_TRUE(refused("\xbf" + cbor_text("fmt") + cbor_text("none") + cbor_text("attStmt") +
                        "\xa0" + cbor_text("authData") + cbor_bytes(auth_data) + "\xff"));
    // An indefinite-length byte string for authData.
    EXPECT_TRUE(refused(cbor_head(5, 3) + cbor_text("fmt") + cbor_text("none") +
                        cbor_text("attStmt") + "\xa0" + cbor_text("authData") + "\x5f" +
                        cbor_bytes(auth_data) + "\xff"));
    // A key twice, and keys out of canonical order.
    const auto duplicated = webauthn::parse_attestation_object(
        cbor_head(5, 4) + cbor_text("fmt") + cbor_text("none") + cbor_text("fmt") +
        cbor_text("none") + cbor_text("attStmt") + "\xa0" + cbor_text("authData") +
        cbor_bytes(auth_data));
    ASSERT_FALSE(duplicated);
    EXPECT_NE(duplicated.error().find("twice"), std::string::npos) << duplicated.error();
    EXPECT_TRUE(refused(cbor_head(5, 3) + cbor_text("attStmt") + "\xa0" + cbor_text("fmt") +
                        cbor_text("none") + cbor_text("authData") + cbor_bytes(auth_data)));
    // A length in a longer form than needed ("fmt" as 0x78 0x03).
    EXPECT_TRUE(refused(cbor_head(5, 3) +
                        "\x78\x03"
                        "fmt" +
                        cbor_text("none") + cbor_text("attStmt") + "\xa0" + cbor_text("authData") +
                        cbor_bytes(auth_data)));
    // Nesting deeper than the reader allows, inside attStmt.
    std::string deep = "\x80";
    for (int i = 0; i < 12; ++i) {
        deep = "\x81" + deep;
    }
    EXPECT_TRUE(
        refused(attestation_object("none", cbor_head(5, 1) + cbor_text("x5c") + deep, auth_data)));
    // A tag, a float, an unknown member, a count larger than the bytes.
    EXPECT_TRUE(refused(attestation_object("none",
                                           "\xa1\x63"
                                           "alg"
                                           "\xc1\x00"s,
                                           auth_data)));
    EXPECT_TRUE(refused(attestation_object("none",
                                           "\xa1\x63"
                                           "alg"
                                           "\xf9\x00\x00"s,
                                           auth_data)));
    EXPECT_TRUE(refused(cbor_head(5, 4) + cbor_text("fmt") + cbor_text("none") +
                        cbor_text("attStmt") + "\xa0" + cbor_text("authData") +
                        cbor_bytes(auth_data) + cbor_text("whatever") + cbor_int(1)));
    EXPECT_TRUE(refused("\xbb\xff\xff\xff\xff\xff\xff\xff\xff"));
    EXPECT_TRUE(refused("\x9b\x00\x00\x00\x01\x00\x00\x00\x00"s));
    // A COSE key with a label twice.
    const auto key = cose_key_of(registered(es256().registration).public_key);
    EXPECT_FALSE(webauthn::parse_cose_key(cbor_head(5, 6) + cbor_int(1) + cbor_int(2) +
                                          cbor_int(1) + cbor_int(2) + cbor_int(3) + cbor_int(-7) +
                                          cbor_int(-1) + cbor_int(1) + cbor_int(-2) +
                                          cbor_bytes(key.x) + cbor_int(-3) + cbor_bytes(key.y)));
    // Text strings must be UTF-8.
    EXPECT_TRUE(refused(attestation_object("n\xc3\x28ne", "\xa0", auth_data)));
}

TEST(WebauthnTest, ClientDataJsonIsReadStrictly) {
    const std::string good = client_data("webauthn.get", "abc");
    ASSERT_TRUE(webauthn::parse_client_data(good));
    EXPECT_EQ(webauthn::parse_client_data(good)->challenge, "abc");
    // Unknown members are ignored (§5.8.1.2), but none may appear twice.
    EXPECT_TRUE(webauthn::parse_client_data(
        R"({"type":"webauthn.get","challenge":"YWJj","origin":"o","tokenBinding":{"status":"present"},"x":[1,2]})"));
    EXPECT_FALSE(webauthn::parse_client_data(
        R"({"type":"webauthn.get","challenge":"YWJj","origin":"o","origin":"p"})"));
    EXPECT_FALSE(webauthn::parse_client_data(R"({"type":"webauthn.get","origin":"o"})"));
    EXPECT_FALSE(
        webauthn::parse_client_data(R"({"type":"webauthn.get","challenge":"YWJj","origin":7})"));
    EXPECT_FALSE(webauthn::parse_client_data(
        R"({"type":"webauthn.get","challenge":"YWJj","origin":"o","crossOrigin":"false"})"));
    EXPECT_FALSE(
        webauthn::parse_client_data(R"({"type":"webauthn.get","challenge":"YWJj=","origin":"o"})"))
        << "padded base64url";
    EXPECT_FALSE(
        webauthn::parse_client_data(R"({"type":"webauthn.get","challenge":"YW+j","origin":"o"})"));
    EXPECT_FALSE(webauthn::parse_client_data("[]"));
    EXPECT_FALSE(webauthn::parse_client_data(good + " {}")) << "two documents";
    EXPECT_FALSE(webauthn::parse_client_data(
        "{\"type\":\"webauthn.get\",\"challenge\":\"YWJj\",\"origin\":\"\xff\"}"));
    EXPECT_FALSE(webauthn::parse_client_data(
        R"({"type":"webauthn.get","challenge":"YWJj","origin":"\udc00"})"))
        << "a lone low surrogate";
    std::string big = R"({"type":"webauthn.get","challenge":"YWJj","origin":"o","pad":")";
    big += std::string(70 * 1024, 'a') + "\"}";
    EXPECT_FALSE(webauthn::parse_client_data(big));
    std::string deep(100000, '[');
    EXPECT_FALSE(webauthn::parse_client_data(deep));
}

TEST(WebauthnTest, Base64UrlIsStrict) {
    for (const std::string bytes : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe"}) {
        EXPECT_EQ(webauthn::base64url_decode(webauthn::base64url_encode(bytes)), bytes);
    }
    EXPECT_EQ(webauthn::base64url_encode("\xfb\xff"), "-_8");
    EXPECT_FALSE(webauthn::base64url_decode("Zg=="));
    EXPECT_FALSE(webauthn::base64url_decode("Zh")) << "non-zero trailing bits";
    EXPECT_FALSE(webauthn::base64url_decode("Z"));
    EXPECT_FALSE(webauthn::base64url_decode("+/8"));
    EXPECT_FALSE(webauthn::base64url_decode("Zm 9v"));
}

TEST(WebauthnTest, NamesOfAlgorithmsAndReasons) {
    EXPECT_EQ(webauthn::to_string(webauthn::Algorithm::ed25519), "Ed25519");
    EXPECT_EQ(webauthn::cose_identifier(webauthn::Algorithm::rs256), -257);
    EXPECT_EQ(webauthn::to_string(Reason::user_present), "user_present");
}

}  // namespace
}  // namespace dkim::test

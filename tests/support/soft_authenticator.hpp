#pragma once
// A software WebAuthn authenticator for signerd's service tests: a P-256 key made by OpenSSL,
// the attestation object ("none"), authenticator data and clientDataJSON written here from the
// W3C WebAuthn Level 2 text, independently of the appliance's parsers, and ES256 signatures
// (DER) over authenticatorData || SHA-256(clientDataJSON). The recorded vectors of Chromium's
// virtual authenticator (tests/data/webauthn) are the other, real source; this one can be made
// to do what a real one never would (a counter going back, a flag missing, another origin).

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "dkim/crypto/base64.hpp"
#include "dkim/ipc/protocol.hpp"

namespace dkim::test {

class SoftAuthenticator {
  public:
    explicit SoftAuthenticator(std::string rp = "localhost",
                               std::string page = "https://localhost:8443")
        : rp_id(std::move(rp)), origin(std::move(page)) {
        key_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
        if (!key_) {
            throw std::runtime_error("P-256 key generation failed");
        }
        credential_id.resize(16);
        RAND_bytes(reinterpret_cast<unsigned char*>(credential_id.data()), 16);
    }

    // What a test may change before a ceremony.
    std::string rp_id;
    std::string origin;
    std::string credential_id;
    std::uint32_t counter = 0;
    bool user_verified = true;
    bool user_present = true;
    bool counter_grows = true;  // false: the counter stays (a synced passkey sends zero)

    struct Created {
        std::string client_data_json;
        std::string attestation_object;
    };
    Created create(const std::string& challenge, const std::string& type = "webauthn.create") {
        Created out;
        out.client_data_json = client_data(type, challenge);
        std::string auth = authenticator_data(true);
        std::string att;
        map_head(att, 3);
        text(att, "fmt");
        text(att, "none");
        text(att, "attStmt");
        map_head(att, 0);
        text(att, "authData");
        bytes(att, auth);
        out.attestation_object = att;
        return out;
    }

    ipc::PasskeyAssertion get(const std::string& challenge, const std::string& user_handle = "",
                              const std::string& type = "webauthn.get") {
        ipc::PasskeyAssertion a;
        a.credential_id = credential_id;
        a.client_data_json = client_data(type, challenge);
        a.authenticator_data = authenticator_data(false);
        a.signature = sign(a.authenticator_data + sha256(a.client_data_json));
        a.user_handle = user_handle;
        return a;
    }

    // The challenge inside a clientDataJSON made here.
    static std::string challenge_of(const std::string& client_data_json) {
        const auto at = client_data_json.find("\"challenge\":\"") + 13;
        return *crypto::base64url_decode(
            client_data_json.substr(at, client_data_json.find('"', at) - at));
    }

  private:
    struct KeyFree {
        void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
    };
    std::unique_ptr<EVP_PKEY, KeyFree> key_;

    static std::string sha256(const std::string& data) {
        std::array<unsigned char, 32> d{};
        SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
        return {reinterpret_cast<const char*>(d.data()), d.size()};
    }

    std::string client_data(const std::string& type, const std::string& challenge) const {
        return R"({"type":")" + type + R"(","challenge":")" + crypto::base64url_encode(challenge) +
               R"(","origin":")" + origin + R"(","crossOrigin":false})";
    }

    // CBOR (RFC 8949): a head is the major type and the argument, in the shortest form.
    static void head(std::string& out, unsigned major, std::uint64_t value) {
        const auto m = static_cast<char>(major << 5);
        if (value < 24) {
            out += static_cast<char>(m | static_cast<char>(value));
        } else if (value < 256) {
            out += static_cast<char>(m | 24);
            out += static_cast<char>(value);
        } else {
            out += static_cast<char>(m | 25);
            out += static_cast<char>(value >> 8);
            out += static_cast<char>(value & 0xff);
        }
    }
    static void map_head(std::string& out, std::uint64_t n) { head(out, 5, n); }
    static void text(std::string& out, const std::string& t) {
        head(out, 3, t.size());
        out += t;
    }
    static void bytes(std::string& out, const std::string& b) {
        head(out, 2, b.size());
        out += b;
    }
    static void integer(std::string& out, std::int64_t v) {
        if (v >= 0) {
            head(out, 0, static_cast<std::uint64_t>(v));
        } else {
            head(out, 1, static_cast<std::uint64_t>(-1 - v));
        }
    }

    std::string cose_key() const {
        std::array<unsigned char, 65> point{};
        std::size_t size = point.size();
        EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size(), &size);
        const std::string x(reinterpret_cast<const char*>(point.data()) + 1, 32);
        const std::string y(reinterpret_cast<const char*>(point.data()) + 33, 32);
        std::string k;
        map_head(k, 5);
        integer(k, 1);  // kty: EC2
        integer(k, 2);
        integer(k, 3);  // alg: ES256
        integer(k, -7);
        integer(k, -1);  // crv: P-256
        integer(k, 1);
        integer(k, -2);
        bytes(k, x);
        integer(k, -3);
        bytes(k, y);
        return k;
    }

    std::string authenticator_data(bool attested) {
        std::string d = sha256(rp_id);
        unsigned char flags = 0;
        flags |= user_present ? 0x01 : 0;
        flags |= user_verified ? 0x04 : 0;
        flags |= attested ? 0x40 : 0;
        d += static_cast<char>(flags);
        if (counter_grows) {
            ++counter;
        }
        for (int shift = 24; shift >= 0; shift -= 8) {
            d += static_cast<char>((counter >> shift) & 0xff);
        }
        if (attested) {
            d += std::string(16, '\0');  // AAGUID
            d += static_cast<char>(credential_id.size() >> 8);
            d += static_cast<char>(credential_id.size() & 0xff);
            d += credential_id;
            d += cose_key();
        }
        return d;
    }

    std::string sign(const std::string& data) const {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        std::size_t size = 0;
        EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_.get());
        EVP_DigestSign(ctx, nullptr, &size, reinterpret_cast<const unsigned char*>(data.data()),
                       data.size());
        std::string sig(size, '\0');
        EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &size,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size());
        EVP_MD_CTX_free(ctx);
        sig.resize(size);
        return sig;
    }
};

}  // namespace dkim::test

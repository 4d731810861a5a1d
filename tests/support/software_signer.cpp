#include "software_signer.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/sha256.hpp"
#include "test_paths.hpp"

namespace dkim::test {

struct SoftwareSigner::Key {
    explicit Key(EVP_PKEY* p) : pkey(p) {}
    ~Key() { EVP_PKEY_free(pkey); }
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;
    EVP_PKEY* pkey;
};

SoftwareSigner::SoftwareSigner(std::unique_ptr<Key> key, SigningAlgorithm algorithm)
    : key_(std::move(key)), algorithm_(algorithm) {}
SoftwareSigner::~SoftwareSigner() = default;

std::unique_ptr<SoftwareSigner> SoftwareSigner::from_pem(std::string_view pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (pkey == nullptr) {
        throw std::runtime_error("cannot read PEM private key");
    }
    const auto alg = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519
                         ? SigningAlgorithm::ed25519_sha256
                         : SigningAlgorithm::rsa_sha256;
    return std::unique_ptr<SoftwareSigner>(new SoftwareSigner(std::make_unique<Key>(pkey), alg));
}

std::unique_ptr<SoftwareSigner> SoftwareSigner::ed25519_from_seed(std::string_view seed) {
    EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()),
        seed.size());
    if (pkey == nullptr) {
        throw std::runtime_error("bad Ed25519 seed");
    }
    return std::unique_ptr<SoftwareSigner>(
        new SoftwareSigner(std::make_unique<Key>(pkey), SigningAlgorithm::ed25519_sha256));
}

std::unique_ptr<SoftwareSigner> SoftwareSigner::generate(unsigned bits) {
    EVP_PKEY* pkey = bits == 0
                         ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                         : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
    if (pkey == nullptr) {
        throw std::runtime_error("key generation failed");
    }
    return std::unique_ptr<SoftwareSigner>(
        new SoftwareSigner(std::make_unique<Key>(pkey), bits == 0 ? SigningAlgorithm::ed25519_sha256
                                                                  : SigningAlgorithm::rsa_sha256));
}

Expected<std::string, std::string> SoftwareSigner::sign(std::string_view data) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::string signed_bytes;
    const EVP_MD* md = nullptr;
    if (algorithm_ == SigningAlgorithm::ed25519_sha256) {
        const auto digest = crypto::Sha256::hash(data);
        signed_bytes.assign(reinterpret_cast<const char*>(digest.data()), digest.size());
    } else {
        signed_bytes.assign(data);
        md = EVP_sha256();
    }
    std::size_t len = 0;
    std::string out;
    bool ok = EVP_DigestSignInit(ctx, nullptr, md, nullptr, key_->pkey) == 1 &&
              EVP_DigestSign(ctx, nullptr, &len,
                             reinterpret_cast<const unsigned char*>(signed_bytes.data()),
                             signed_bytes.size()) == 1;
    if (ok) {
        out.resize(len);
        ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                            reinterpret_cast<const unsigned char*>(signed_bytes.data()),
                            signed_bytes.size()) == 1;
        out.resize(len);
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return unexpected(std::string("software signing failed"));
    }
    return out;
}

std::string SoftwareSigner::key_record() const {
    std::string p;
    if (algorithm_ == SigningAlgorithm::ed25519_sha256) {
        unsigned char raw[32];
        std::size_t len = sizeof raw;
        EVP_PKEY_get_raw_public_key(key_->pkey, raw, &len);
        p.assign(reinterpret_cast<const char*>(raw), len);
        return "v=DKIM1; k=ed25519; p=" + crypto::base64_encode(p);
    }
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(key_->pkey, &der);
    p.assign(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return "v=DKIM1; k=rsa; p=" + crypto::base64_encode(p);
}

std::string read_test_file(const std::filesystem::path& relative) {
    const std::filesystem::path path = test_data_path(relative);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + path.string());
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string to_crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 16);
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) {
            out.push_back('\r');
        }
        out.push_back(text[i]);
    }
    return out;
}

}  // namespace dkim::test

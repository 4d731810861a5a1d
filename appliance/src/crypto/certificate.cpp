#include "dkim/crypto/certificate.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <cctype>
#include <memory>
#include <span>

#include "dkim/base/hex.hpp"

namespace dkim::crypto {
namespace {

struct CertificateBioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct CertificateX509Free {
    void operator()(X509* x) const { X509_free(x); }
};

}  // namespace

Expected<std::string, std::string> certificate_sha256_fingerprint(const std::string& pem_file) {
    const std::unique_ptr<BIO, CertificateBioFree> file(BIO_new_file(pem_file.c_str(), "r"));
    if (!file) {
        return unexpected("cannot read " + pem_file);
    }
    const std::unique_ptr<X509, CertificateX509Free> certificate(
        PEM_read_bio_X509(file.get(), nullptr, nullptr, nullptr));
    if (!certificate) {
        return unexpected(pem_file + " is not a PEM certificate");
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int size = 0;
    if (X509_digest(certificate.get(), EVP_sha256(), md.data(), &size) != 1) {
        return unexpected("cannot hash " + pem_file);
    }
    const std::string hex = base::hex_encode(std::span<const std::uint8_t>(md.data(), size));
    std::string out;
    out.reserve(hex.size() * 3 / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        if (i > 0) {
            out += ':';
        }
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(hex[i])));
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(hex[i + 1])));
    }
    return out;
}

}  // namespace dkim::crypto

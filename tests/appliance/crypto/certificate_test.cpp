// The certificate fingerprint that webd logs and `up` prints, against OpenSSL's command line
// (`openssl x509 -noout -fingerprint -sha256` computed the expected value).
#include "dkim/crypto/certificate.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace dkim::crypto {
namespace {

// A self-signed P-256 certificate (openssl req -x509 -newkey ec ... -subj "/CN=fingerprint
// test").
constexpr const char* kCertificate =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBijCCATGgAwIBAgIUJOUUYsHm+hh7T3+6n0NQaAgM8zowCgYIKoZIzj0EAwIw\n"
    "GzEZMBcGA1UEAwwQZmluZ2VycHJpbnQgdGVzdDAeFw0yNjEyMDIwNTI5NTZaFw0z\n"
    "NjExMjkwNTI5NTZaMBsxGTAXBgNVBAMMEGZpbmdlcnByaW50IHRlc3QwWTATBgcq\n"
    "hkjOPQIBBggqhkjOPQMBBwNCAATbY4XQIn0TZ++kBz9c3gPOJD32EVxq/J1AICDc\n"
    "qzG/G1D/grR2qyyR6I4NYfm5R4Eze7H609cf3KwTf/U01dGYo1MwUTAdBgNVHQ4E\n"
    "FgQUHBDDF0Ao2PqjI31pxaSv11E5nIgwHwYDVR0jBBgwFoAUHBDDF0Ao2PqjI31p\n"
    "xaSv11E5nIgwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAGNuAz\n"
    "M418ZaPqtqMWk/6a0OfXDEUyjpjphVg8sYVvvwIgRTRgxHBSQnBOUcjvstEQU2PR\n"
    "YEAKKKAfwyc3YBSvgW0=\n"
    "-----END CERTIFICATE-----\n";
constexpr const char* kFingerprint =
    "B1:75:A0:39:F5:5B:24:4C:2C:2D:ED:B0:E5:09:42:A0:EA:B6:C3:8C:AA:9D:65:6B:30:58:64:BD:71:E1:46:"
    "A0";

class CertificateFingerprintTest : public ::testing::Test {
  protected:
    std::string file(const std::string& name, const std::string& content) {
        const auto path = std::filesystem::temp_directory_path() /
                          ("dkim-certificate-test-" + std::to_string(::getpid()) + "-" + name);
        std::ofstream(path) << content;
        made_.push_back(path);
        return path.string();
    }
    void TearDown() override {
        for (const auto& path : made_) {
            std::filesystem::remove(path);
        }
    }

  private:
    std::vector<std::filesystem::path> made_;
};

TEST_F(CertificateFingerprintTest, IsOpenSslsSha256FingerprintOfThePemCertificate) {
    const auto fingerprint = certificate_sha256_fingerprint(file("good.crt", kCertificate));
    ASSERT_TRUE(fingerprint) << fingerprint.error();
    EXPECT_EQ(*fingerprint, kFingerprint);
}

TEST_F(CertificateFingerprintTest, AMissingFileOrOneWithoutACertificateIsAnErrorNamingIt) {
    const std::string missing = "/nonexistent/dkim-certificate-test.crt";
    const auto none = certificate_sha256_fingerprint(missing);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error(), "cannot read " + missing);
    const std::string junk = file("junk.crt", "not a certificate\n");
    const auto bad = certificate_sha256_fingerprint(junk);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), junk + " is not a PEM certificate");
}

}  // namespace
}  // namespace dkim::crypto

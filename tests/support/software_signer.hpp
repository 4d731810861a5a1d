#pragma once
// A dkim::Signer over an in-memory OpenSSL key, for tests and benchmarks only (the product
// signs in the token). Also reads test data files.

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "dkim/dkim/signer.hpp"

namespace dkim::test {

class SoftwareSigner final : public Signer {
  public:
    // A PEM private key (RSA "BEGIN RSA PRIVATE KEY" or PKCS#8).
    static std::unique_ptr<SoftwareSigner> from_pem(std::string_view pem);
    // An Ed25519 key from its 32-byte seed.
    static std::unique_ptr<SoftwareSigner> ed25519_from_seed(std::string_view seed);
    // A fresh key: RSA of `bits`, or Ed25519 when bits == 0.
    static std::unique_ptr<SoftwareSigner> generate(unsigned bits);

    ~SoftwareSigner() override;
    SigningAlgorithm algorithm() const override { return algorithm_; }
    Expected<std::string, std::string> sign(std::string_view data) override;

    // The DKIM key record for the public half: "v=DKIM1; k=...; p=...".
    std::string key_record() const;

  private:
    struct Key;
    SoftwareSigner(std::unique_ptr<Key> key, SigningAlgorithm algorithm);
    std::unique_ptr<Key> key_;
    SigningAlgorithm algorithm_;
};

// Test data under tests/data (test_data_path).
std::string read_test_file(const std::filesystem::path& relative);
// LF line endings to CRLF (test data files are stored with LF).
std::string to_crlf(std::string_view text);

}  // namespace dkim::test

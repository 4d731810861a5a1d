#pragma once
// A throwaway SoftHSM2 token store for one test binary: a temporary folder with its own
// softhsm2.conf (library.reset_on_fork = true, as a real HSM behaves), exported as
// SOFTHSM2_CONF before the module is first loaded. Tokens are created with softhsm2-util,
// an independent tool, so the fixture does not depend on the code under test.

#include <filesystem>
#include <string>
#include <vector>

namespace dkim::test {

struct TestToken {
    std::string label;
    std::string so_pin;
    std::string user_pin;
};

class SoftHsmEnvironment {
  public:
    // Creates the folder and the tokens. Call once, before anything loads the module.
    static SoftHsmEnvironment& create(const std::vector<TestToken>& tokens);
    static SoftHsmEnvironment& get();

    const std::filesystem::path& directory() const { return directory_; }
    const std::filesystem::path& config() const { return config_; }
    // Path of libsofthsm2.so (from CMake's DKIM_SOFTHSM2_MODULE), or of the openCryptoki
    // module under test (token_traits()).
    static std::string module_path();
    // Writes a PIN file (mode 0600) in the environment's folder and returns its path.
    std::filesystem::path write_pin_file(const std::string& name, const std::string& pin) const;

    ~SoftHsmEnvironment();

  private:
    std::filesystem::path directory_;
    std::filesystem::path config_;
};

// What the token under test can do. The hsm tests run against SoftHSM2 tokens that this
// environment makes, and (tests/support/opencryptoki/private-run.sh, with
// $DKIM_TEST_OPENCRYPTOKI_MODULE naming libopencryptoki.so) against the one software token of a
// private openCryptoki 3.8.1, which that script initialises with the test's label and PIN: it
// has no EdDSA, no CKA_ALLOWED_MECHANISMS and no CKM_SHA256_RSA_PKCS (opencryptoki/FINDINGS.md).
struct TokenTraits {
    const char* implementation;  // "SoftHSM2", "openCryptoki"
    bool ed25519;                // CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA
    bool allowed_mechanisms;     // CKA_ALLOWED_MECHANISMS
    unsigned long
        rsa_mechanism;  // what rsa-sha256 is signed with: CKM_SHA256_RSA_PKCS or CKM_RSA_PKCS
};
const TokenTraits& token_traits();

// Runs a shell command, returns its exit status and fills `output` with stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace dkim::test

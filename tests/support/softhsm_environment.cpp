#include "softhsm_environment.hpp"

#include <p11-kit/pkcs11.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace dkim::test {
namespace {
std::unique_ptr<SoftHsmEnvironment> g_environment;
}

int run_command(const std::string& command, std::string* output) {
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) {
        return -1;
    }
    std::string text;
    char buffer[4096];
    std::size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
        text.append(buffer, got);
    }
    const int status = pclose(pipe);
    if (output != nullptr) {
        *output = std::move(text);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

namespace {
const char* opencryptoki_module() {
    const char* path = std::getenv("DKIM_TEST_OPENCRYPTOKI_MODULE");
    return path != nullptr && *path != '\0' ? path : nullptr;
}
}  // namespace

const TokenTraits& token_traits() {
    static const TokenTraits softhsm{"SoftHSM2", true, true, CKM_SHA256_RSA_PKCS};
    static const TokenTraits opencryptoki{"openCryptoki", false, false, CKM_RSA_PKCS};
    return opencryptoki_module() != nullptr ? opencryptoki : softhsm;
}

std::string SoftHsmEnvironment::module_path() {
    const char* opencryptoki = opencryptoki_module();
    return opencryptoki != nullptr ? opencryptoki : DKIM_SOFTHSM2_MODULE;
}

SoftHsmEnvironment& SoftHsmEnvironment::create(const std::vector<TestToken>& tokens) {
    auto env = std::unique_ptr<SoftHsmEnvironment>(new SoftHsmEnvironment());
    std::string pattern = (std::filesystem::temp_directory_path() / "dkim-softhsm-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    env->directory_ = pattern;
    std::filesystem::create_directory(env->directory_ / "tokens");
    env->config_ = env->directory_ / "softhsm2.conf";
    std::ofstream(env->config_) << "directories.tokendir = "
                                << (env->directory_ / "tokens").string()
                                << "\nobjectstore.backend = file\nlog.level = ERROR\n"
                                << "slots.removable = false\nslots.mechanisms = ALL\n"
                                << "library.reset_on_fork = true\n";
    setenv("SOFTHSM2_CONF", env->config_.c_str(), 1);
    // openCryptoki's token is made by private-run.sh, around the whole test process.
    for (const auto& token : opencryptoki_module() != nullptr ? std::vector<TestToken>{} : tokens) {
        std::string output;
        const int status =
            run_command("softhsm2-util --init-token --free --label '" + token.label +
                            "' --so-pin '" + token.so_pin + "' --pin '" + token.user_pin + "'",
                        &output);
        if (status != 0) {
            throw std::runtime_error("softhsm2-util failed: " + output);
        }
    }
    g_environment = std::move(env);
    return *g_environment;
}

SoftHsmEnvironment& SoftHsmEnvironment::get() {
    if (!g_environment) {
        throw std::logic_error("SoftHsmEnvironment::create was not called");
    }
    return *g_environment;
}

std::filesystem::path SoftHsmEnvironment::write_pin_file(const std::string& name,
                                                         const std::string& pin) const {
    const auto path = directory_ / name;
    std::ofstream(path) << pin << "\n";
    chmod(path.c_str(), 0600);
    return path;
}

SoftHsmEnvironment::~SoftHsmEnvironment() {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
}

}  // namespace dkim::test

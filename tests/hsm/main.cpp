// dkim_hsm_test: unit tests of hsm/ (label unit) and tests against a real SoftHSM2 token
// store created for this binary (label hsm).
#include <gtest/gtest.h>

#include "dkim/hsm/module.hpp"
#include "hsm_test_tokens.hpp"
#include "softhsm_environment.hpp"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    auto& environment = dkim::test::SoftHsmEnvironment::create({
        {dkim::test::kKeygenToken, "so-pin-1", dkim::test::kUserPin},
        {dkim::test::kSigningToken, "so-pin-2", dkim::test::kUserPin},
        {dkim::test::kRecoveryToken, "so-pin-3", dkim::test::kUserPin},
        {dkim::test::kFaultToken, "so-pin-4", dkim::test::kUserPin},
        {dkim::test::kForkToken, "so-pin-5", dkim::test::kUserPin},
    });
    // Keep the module initialised for the whole run, as a daemon would: tests that drop
    // their last reference must not finalise it under the fault-injection module's feet.
    auto module = dkim::hsm::Module::load(environment.module_path());
    if (!module) {
        fprintf(stderr, "cannot load SoftHSM2: %s\n", module.error().to_string().c_str());
        return 1;
    }
    return RUN_ALL_TESTS();
}

#pragma once
// The tokens main() creates for dkim_hsm_test, and a fixture that opens one.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/module.hpp"
#include "dkim/hsm/token.hpp"
#include "softhsm_environment.hpp"

namespace dkim::test {

inline constexpr const char* kKeygenToken = "keygen";
inline constexpr const char* kSigningToken = "signing";
inline constexpr const char* kRecoveryToken = "recovery";
inline constexpr const char* kFaultToken = "fault";
inline constexpr const char* kForkToken = "fork";
inline constexpr const char* kUserPin = "user-pin-1234";

inline std::shared_ptr<hsm::Module> softhsm() {
    auto module = hsm::Module::load(SoftHsmEnvironment::module_path());
    EXPECT_TRUE(module) << module.error().to_string();
    return *module;
}

inline std::shared_ptr<hsm::Token> open_token(const std::string& label,
                                              std::shared_ptr<hsm::Module> module = softhsm()) {
    auto token = hsm::Token::open(std::move(module), hsm::TokenSelector::by_label(label));
    EXPECT_TRUE(token) << token.error().to_string();
    return *token;
}

inline hsm::Login login(const std::shared_ptr<hsm::Token>& token,
                        hsm::Login::Relogin relogin = hsm::Login::Relogin::allowed) {
    auto login = hsm::Login::acquire(token, hsm::Secret::from_string(kUserPin), relogin);
    EXPECT_TRUE(login) << login.error().to_string();
    return std::move(*login);
}

inline hsm::KeyName key_name(const std::string& domain, const std::string& selector) {
    auto name = hsm::KeyName::make(domain, selector);
    EXPECT_TRUE(name) << name.error().to_string();
    return *name;
}

}  // namespace dkim::test

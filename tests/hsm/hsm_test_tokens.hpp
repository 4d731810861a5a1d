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
// 8 characters: openCryptoki's software token takes PINs of 4 to 8 (SoftHSM2: 4 to 255).
inline constexpr const char* kUserPin = "pin-1234";

// The smallest key the token under test makes: Ed25519, or RSA-2048 where it has no EdDSA.
inline hsm::KeyAlgorithm small_key() {
    return token_traits().ed25519 ? hsm::KeyAlgorithm::ed25519 : hsm::KeyAlgorithm::rsa2048;
}
inline hsm::KeyType small_key_type() {
    return token_traits().ed25519 ? hsm::KeyType::ed25519 : hsm::KeyType::rsa;
}

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

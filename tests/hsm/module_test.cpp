#include "dkim/hsm/module.hpp"

#include <gtest/gtest.h>

#include "dkim/hsm/token.hpp"
#include "hsm_test_tokens.hpp"
#include "test_paths.hpp"

namespace dkim::hsm {
namespace {

using test::softhsm;

TEST(ModuleTest, MissingModuleGivesClearError) {
    auto module = Module::load("/nonexistent/libpkcs11.so");
    ASSERT_FALSE(module);
    EXPECT_EQ(module.error().code, ErrorCode::module_load);
    EXPECT_EQ(module.error().message,
              "module /nonexistent/libpkcs11.so could not be loaded: No such file or directory");
}

TEST(ModuleTest, LibraryWithoutPkcs11EntryPointIsRefused) {
    // libcrypto is a shared library with no C_GetFunctionList.
    auto module = Module::load(dkim::test::test_path("non_pkcs11_library").string());
    ASSERT_FALSE(module);
    EXPECT_EQ(module.error().code, ErrorCode::module_load);
    EXPECT_NE(module.error().message.find("is not a PKCS#11 module: it has no C_GetFunctionList"),
              std::string::npos)
        << module.error().message;
}

TEST(ModuleTest, SamePathGivesTheSameModule) {
    auto a = softhsm();
    auto b = softhsm();
    EXPECT_EQ(a.get(), b.get()) << "one C_Initialize/C_Finalize pair per module and process";
    EXPECT_NE(a->library_description().find("SoftHSM"), std::string::npos);
}

TEST(ModuleTest, ListsSlotsWithTokenInformation) {
    auto slots = softhsm()->slots();
    ASSERT_TRUE(slots) << slots.error().to_string();
    int initialised = 0;
    bool free_slot = false;
    for (const auto& slot : *slots) {
        if (slot.token_initialized) {
            ++initialised;
            EXPECT_TRUE(slot.login_required);
            EXPECT_TRUE(slot.user_pin_initialized);
            EXPECT_FALSE(slot.serial.empty());
        } else if (slot.token_present) {
            free_slot = true;
        }
    }
    EXPECT_GE(initialised, 5);
    EXPECT_TRUE(free_slot) << "SoftHSM2 always offers one uninitialised token";
}

TEST(ModuleTest, MissingTokenNamesTheSlotsPresent) {
    auto token = Token::open(softhsm(), TokenSelector::by_label("no-such-token"));
    ASSERT_FALSE(token);
    EXPECT_EQ(token.error().code, ErrorCode::token_not_found);
    const std::string& message = token.error().message;
    EXPECT_EQ(message.rfind("token 'no-such-token' not found in module ", 0), 0U) << message;
    EXPECT_NE(message.find("; slots present: "), std::string::npos) << message;
    EXPECT_NE(message.find("'keygen'"), std::string::npos) << message;
    EXPECT_NE(message.find("(uninitialised token)"), std::string::npos) << message;
}

TEST(ModuleTest, SelectsTokenByUri) {
    auto slots = softhsm()->slots();
    ASSERT_TRUE(slots);
    const SlotInfo* signing = nullptr;
    for (const auto& slot : *slots) {
        if (slot.label == test::kSigningToken) {
            signing = &slot;
        }
    }
    ASSERT_NE(signing, nullptr);
    auto uri = Pkcs11Uri::parse("pkcs11:token=signing;serial=" + signing->serial +
                                ";object=whatever;type=private");
    ASSERT_TRUE(uri) << uri.error();
    auto token = Token::open(softhsm(), TokenSelector::by_uri(*uri));
    ASSERT_TRUE(token) << token.error().to_string();
    EXPECT_EQ((*token)->slot_id(), signing->slot_id);

    auto wrong_serial = Pkcs11Uri::parse("pkcs11:token=signing;serial=0000");
    ASSERT_TRUE(wrong_serial);
    auto missing = Token::open(softhsm(), TokenSelector::by_uri(*wrong_serial));
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("token matching pkcs11:token=signing;serial=0000"),
              std::string::npos)
        << missing.error().message;

    // Several tokens match a URI without token=: ambiguous, never "the first one".
    auto any = Pkcs11Uri::parse("pkcs11:manufacturer=SoftHSM%20project");
    ASSERT_TRUE(any);
    auto ambiguous = Token::open(softhsm(), TokenSelector::by_uri(*any));
    ASSERT_FALSE(ambiguous);
    EXPECT_NE(ambiguous.error().message.find("is ambiguous"), std::string::npos)
        << ambiguous.error().message;
}

TEST(ModuleTest, InitializesAFreeSlotAndRefusesADuplicateLabel) {
    auto module = softhsm();
    auto slot = initialize_token(*module, "fresh", Secret::from_string("so-secret"),
                                 Secret::from_string("fresh-user"));
    ASSERT_TRUE(slot) << slot.error().to_string();
    EXPECT_EQ(slot->label, "fresh");
    EXPECT_TRUE(slot->user_pin_initialized);

    auto token = Token::open(module, TokenSelector::by_label("fresh"));
    ASSERT_TRUE(token);
    auto login = Login::acquire(*token, Secret::from_string("fresh-user"));
    ASSERT_TRUE(login) << login.error().to_string();
    EXPECT_TRUE((*token)->logged_in());
    ASSERT_TRUE(login->release());
    EXPECT_FALSE((*token)->logged_in());

    auto again = initialize_token(*module, "fresh", Secret::from_string("so-secret"),
                                  Secret::from_string("x"));
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message.find("token 'fresh' already exists"), std::string::npos);
}

}  // namespace
}  // namespace dkim::hsm

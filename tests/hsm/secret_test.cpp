#include "dkim/hsm/secret.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "softhsm_environment.hpp"

namespace dkim::hsm {
namespace {

std::filesystem::path write_file(const std::string& name, const std::string& content, mode_t mode) {
    const auto path = test::SoftHsmEnvironment::get().directory() / name;
    std::ofstream(path, std::ios::binary) << content;
    chmod(path.c_str(), mode);
    return path;
}

std::string text(const Secret& secret) {
    return {reinterpret_cast<const char*>(secret.bytes().data()), secret.size()};
}

TEST(SecretTest, ReadsPinFileWithoutTrailingNewline) {
    auto lf = Secret::from_file(write_file("pin-lf", "1234\n", 0600));
    ASSERT_TRUE(lf) << lf.error().to_string();
    EXPECT_EQ(text(*lf), "1234");
    auto crlf = Secret::from_file(write_file("pin-crlf", "1234\r\n", 0400));
    ASSERT_TRUE(crlf);
    EXPECT_EQ(text(*crlf), "1234");
    auto inner = Secret::from_file(write_file("pin-inner", "12 34\n\n", 0640));
    ASSERT_TRUE(inner);
    EXPECT_EQ(text(*inner), "12 34\n") << "only one trailing newline is removed";
}

TEST(SecretTest, RefusesWorldReadableEmptyMissingAndHugeFiles) {
    auto world = Secret::from_file(write_file("pin-world", "secret-pin-value\n", 0644));
    ASSERT_FALSE(world);
    EXPECT_NE(world.error().message.find("other users may read it (mode 0644)"), std::string::npos)
        << world.error().message;
    EXPECT_EQ(world.error().message.find("secret-pin-value"), std::string::npos);

    auto empty = Secret::from_file(write_file("pin-empty", "\n", 0600));
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error().message.find("empty"), std::string::npos);

    auto missing = Secret::from_file("/nonexistent/pin");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ErrorCode::io);
    EXPECT_NE(missing.error().message.find("/nonexistent/pin"), std::string::npos);

    auto huge = Secret::from_file(write_file("pin-huge", std::string(5000, 'x'), 0600));
    ASSERT_FALSE(huge);
    EXPECT_NE(huge.error().message.find("longer than"), std::string::npos);
}

TEST(SecretTest, ComparesMovesAndWipes) {
    const Secret a = Secret::from_string("abcd");
    EXPECT_TRUE(a.equals(Secret::from_string("abcd")));
    EXPECT_FALSE(a.equals(Secret::from_string("abce")));
    EXPECT_FALSE(a.equals(Secret::from_string("abc")));
    EXPECT_TRUE(Secret().equals(Secret()));

    Secret b = a.duplicate();
    Secret c = std::move(b);
    EXPECT_TRUE(b.empty());  // NOLINT: moved-from state is part of the contract
    EXPECT_TRUE(c.equals(a));
    c.wipe();
    EXPECT_TRUE(c.empty());
    static_assert(!std::is_copy_constructible_v<Secret>);
    static_assert(!std::is_copy_assignable_v<Secret>);
}

}  // namespace
}  // namespace dkim::hsm

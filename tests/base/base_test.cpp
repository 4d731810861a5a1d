// dkim_base: hex, wiping and comparing secrets, LockGuarded.
#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <vector>

#include "dkim/base/hex.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/lock_guarded.hpp"

namespace {

using namespace dkim;

TEST(HexTest, EncodesLowerCaseTwoDigitsPerByte) {
    const std::vector<std::uint8_t> bytes{0x00, 0x0f, 0xa5, 0xff};
    EXPECT_EQ(base::hex_encode(bytes), "000fa5ff");
    EXPECT_EQ(base::hex_encode(std::string_view("\x01\xfe", 2)), "01fe");
    EXPECT_EQ(base::hex_encode(std::vector<std::uint8_t>{}), "");
}

TEST(HexTest, DecodesEitherCaseAndRoundTrips) {
    EXPECT_EQ(base::hex_decode("000fA5fF"), (std::vector<std::uint8_t>{0x00, 0x0f, 0xa5, 0xff}));
    std::vector<std::uint8_t> all(256);
    for (std::size_t i = 0; i < all.size(); ++i) {
        all[i] = static_cast<std::uint8_t>(i);
    }
    EXPECT_EQ(base::hex_decode(base::hex_encode(all)), all);
}

TEST(HexTest, RefusesOddLengthsAndNonDigits) {
    EXPECT_FALSE(base::hex_decode("abc"));
    EXPECT_FALSE(base::hex_decode("0g"));
    EXPECT_FALSE(base::hex_decode(" 0"));
    EXPECT_FALSE(base::hex_decode(std::string_view("0\0", 2)));
    EXPECT_EQ(base::hex_digit_value('/'), -1);
    EXPECT_EQ(base::hex_digit_value(':'), -1);
    EXPECT_EQ(base::hex_digit_value('@'), -1);
    EXPECT_EQ(base::hex_digit_value('G'), -1);
    EXPECT_EQ(base::hex_digit_value('`'), -1);
    EXPECT_EQ(base::hex_digit_value('g'), -1);
}

TEST(HexTest, DecodeIntoWantsTheExactLengthAndLeavesTheOutputAloneOtherwise) {
    std::array<std::uint8_t, 2> out{7, 7};
    EXPECT_FALSE(base::hex_decode_into("00", out));
    EXPECT_FALSE(base::hex_decode_into("000000", out));
    EXPECT_FALSE(base::hex_decode_into("00zz", out));
    EXPECT_EQ(out, (std::array<std::uint8_t, 2>{7, 7}));
    EXPECT_TRUE(base::hex_decode_into("beef", out));
    EXPECT_EQ(out, (std::array<std::uint8_t, 2>{0xbe, 0xef}));
}

TEST(WipeTest, ZeroesTheWholeCapacityAndEmpties) {
    std::string secret(64, 's');
    const char* data = secret.data();
    secret.resize(8);  // the old bytes stay past size()
    base::wipe(secret);
    EXPECT_TRUE(secret.empty());
    EXPECT_EQ(secret.data(), data);  // no reallocation: the same buffer was zeroed
    for (std::size_t i = 0; i < 64; ++i) {
        EXPECT_EQ(data[i], '\0') << i;
    }
    std::vector<std::uint8_t> bytes(32, 0xaa);
    const std::uint8_t* raw = bytes.data();
    bytes.resize(1);
    base::wipe(bytes);
    EXPECT_TRUE(bytes.empty());
    for (std::size_t i = 0; i < 32; ++i) {
        EXPECT_EQ(raw[i], 0) << i;
    }
}

TEST(WipeTest, ConstantTimeEqualComparesBytesAndLengths) {
    EXPECT_TRUE(base::constant_time_equal("", ""));
    EXPECT_TRUE(base::constant_time_equal("abc", "abc"));
    EXPECT_FALSE(base::constant_time_equal("abc", "abd"));
    EXPECT_FALSE(base::constant_time_equal("abc", "ab"));
    EXPECT_FALSE(base::constant_time_equal("", "a"));
    EXPECT_FALSE(
        base::constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST(LockGuardedTest, HoldersSerialiseWriters) {
    LockGuarded<int> counter(0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                *counter.lock() += 1;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(*counter.read_only_lock(), 4000);
}

TEST(LockGuardedTest, ReadOnlyHoldersGiveConstAccess) {
    const LockGuarded<std::vector<int>> values(std::vector<int>{1, 2, 3});
    auto holder = values.read_only_lock();
    static_assert(std::is_const_v<std::remove_reference_t<decltype(*holder)>>);
    EXPECT_EQ(holder->size(), 3U);
}

TEST(LockGuardedTest, SharedReadersAndExclusiveWriters) {
    SharedLockGuarded<int> value(1);
    {
        auto a = value.read_lock();
        auto b = value.read_lock();  // two readers at once: would deadlock on an exclusive lock
        EXPECT_EQ(*a + *b, 2);
    }
    *value.write_lock() = 5;
    EXPECT_EQ(*value.read_lock(), 5);
}

}  // namespace

#include "dkim/hsm/secret.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

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

// VmLck of /proc/self/status, in kB: the memory this process has locked.
std::optional<long> locked_kib() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmLck:", 0) == 0) {
            return std::stol(line.substr(6));
        }
    }
    return std::nullopt;
}

TEST(SecretTest, ItsBytesAreLockedInMemoryUntilWiped) {
    rlimit limit{};
    ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &limit), 0);
    const auto before = locked_kib();
    ASSERT_TRUE(before.has_value());
    const long page_kib = sysconf(_SC_PAGESIZE) / 1024;
    if (limit.rlim_cur != RLIM_INFINITY &&
        limit.rlim_cur < static_cast<rlim_t>((*before + 4 * page_kib) * 1024) && geteuid() != 0) {
        GTEST_SKIP() << "RLIMIT_MEMLOCK leaves no room to lock a page here";
    }
    {
        Secret pin = Secret::from_string("1234");
        auto from_file = Secret::from_file(write_file("pin-locked", "5678\n", 0600));
        ASSERT_TRUE(from_file) << from_file.error().to_string();
        EXPECT_TRUE(pin.locked());
        EXPECT_TRUE(from_file->locked());
        EXPECT_EQ(text(*from_file), "5678");
        EXPECT_EQ(locked_kib(), *before + 2 * page_kib) << "a page of its own for each secret";

        Secret moved = std::move(pin);
        EXPECT_TRUE(moved.locked());
        EXPECT_FALSE(pin.locked());  // NOLINT: moved-from state is part of the contract
        EXPECT_EQ(locked_kib(), *before + 2 * page_kib) << "a move locks nothing more";
        // Unlocking one secret leaves the other's page locked (mlock does not count).
        moved.wipe();
        EXPECT_EQ(locked_kib(), *before + page_kib);
        EXPECT_EQ(text(*from_file), "5678");
    }
    EXPECT_EQ(locked_kib(), *before) << "wiped secrets unlock their pages";
}

TEST(SecretTest, ASecretThatCannotBeLockedStillWorks) {
    // In a child: root (CAP_IPC_LOCK) locks whatever RLIMIT_MEMLOCK says, so the child becomes
    // nobody first; then it may lock nothing at all.
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
            _exit(2);
        }
        const rlimit none{0, 0};
        if (setrlimit(RLIMIT_MEMLOCK, &none) != 0) {
            _exit(3);
        }
        const Secret pin = Secret::from_string("1234");
        const bool works = !pin.locked() && text(pin) == "1234" && pin.duplicate().equals(pin);
        _exit(works ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the secret was locked or lost its bytes; 2, 3: setup";
}

}  // namespace
}  // namespace dkim::hsm

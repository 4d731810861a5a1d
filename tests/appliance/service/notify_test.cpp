// The daemons' sd_notify messages, read from a datagram socket of the test's own, as systemd
// (or `dkim-appliance up`) would read them: READY/STATUS, STOPPING, and a watchdog that pings
// only while its probe answers.
#include "dkim/service/notify.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

namespace {

using dkim::service::Watchdog;

class NotifyTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ =
            std::filesystem::temp_directory_path() / ("notify-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd_, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const std::string path = (dir_ / "notify").string();
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    }
    void TearDown() override {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
        ::close(fd_);
        std::filesystem::remove_all(dir_);
    }
    // The next message, or "" when none is waiting (the sender has already returned: a
    // datagram is queued before sd_notify() does).
    std::string next() {
        char buffer[512];
        const auto n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
        return n <= 0 ? std::string() : std::string(buffer, static_cast<std::size_t>(n));
    }
    std::filesystem::path dir_;
    int fd_ = -1;
};

TEST_F(NotifyTest, ReadyCarriesTheStatusLine) {
    EXPECT_TRUE(dkim::service::notify_ready("SMTP on 127.0.0.1:2525"));
    EXPECT_EQ(next(), "READY=1\nSTATUS=SMTP on 127.0.0.1:2525");
    EXPECT_TRUE(dkim::service::notify_stopping());
    EXPECT_EQ(next(), "STOPPING=1\nSTATUS=stopping");
    EXPECT_EQ(next(), "");
}

TEST_F(NotifyTest, WithoutAServiceManagerNothingIsSent) {
    ::unsetenv("NOTIFY_SOCKET");
    EXPECT_FALSE(dkim::service::notify_ready("x"));
    EXPECT_EQ(next(), "");
}

TEST_F(NotifyTest, TheWatchdogIntervalIsOnlyForThisProcess) {
    EXPECT_FALSE(dkim::service::watchdog_interval().has_value());
    ::setenv("WATCHDOG_USEC", "30000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    ASSERT_TRUE(dkim::service::watchdog_interval().has_value());
    EXPECT_EQ(dkim::service::watchdog_interval()->count(), 30'000'000);
    // Inherited from a parent that was the watched one: not ours.
    ::setenv("WATCHDOG_PID", std::to_string(::getppid()).c_str(), 1);
    EXPECT_FALSE(dkim::service::watchdog_interval().has_value());
}

TEST_F(NotifyTest, TheWatchdogPingsOnlyWhileTheLoopAnswers) {
    bool answers = true;
    std::chrono::milliseconds asked{0};
    // No interval: no thread; tick() is driven by the test.
    Watchdog watchdog(
        std::nullopt,
        [&](std::chrono::milliseconds budget) {
            asked = budget;
            return answers;
        },
        "test");
    EXPECT_TRUE(watchdog.tick());
    EXPECT_EQ(next(), "WATCHDOG=1");
    answers = false;
    EXPECT_FALSE(watchdog.tick());
    EXPECT_FALSE(watchdog.tick());
    EXPECT_EQ(next(), "");
    answers = true;
    EXPECT_TRUE(watchdog.tick());
    EXPECT_EQ(next(), "WATCHDOG=1");
    EXPECT_GE(asked.count(), 1);
}

TEST_F(NotifyTest, TheProbeBudgetIsAQuarterOfTheInterval) {
    std::chrono::milliseconds asked{0};
    {
        // A long interval: the thread waits on a condition variable and ends at once when the
        // watchdog is destroyed, before its first tick.
        Watchdog watchdog(
            std::chrono::microseconds(40'000'000),
            [&](std::chrono::milliseconds budget) {
                asked = budget;
                return true;
            },
            "test");
        EXPECT_TRUE(watchdog.tick());
    }
    EXPECT_EQ(asked.count(), 10'000);
}

}  // namespace

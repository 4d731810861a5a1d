// `up`'s supervisor against a fake operating system on a ManualClock: readiness, restarts
// with back-off, the watchdog, and stops in waves, as the supervisor implements them.
#include "up_supervisor.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <sstream>

#include "fake_child_processes.hpp"
#include "up_test_folder.hpp"

namespace dkim::cli::up {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using test::FakeChildProcesses;
using ChildRun = FakeChildProcesses::Run;

ChildRun never_ready() {
    ChildRun r;
    r.ready_after = std::nullopt;
    return r;
}
ChildRun exits_after(Duration after, int status = W_EXITCODE(1, 0)) {
    ChildRun r;
    r.exit_after = after;
    r.exit_status = status;
    return r;
}

class SupervisorTest : public ::testing::Test {
  protected:
    SupervisorTest() {
        for (const char* name : {"dkim-signerd", "dkim-relayd", "dkim-webd"}) {
            ChildSpec spec;
            spec.name = name;
            spec.exe = std::string("/usr/sbin/") + name;
            spec.log = folder.path() / (std::string(name) + ".log");
            supervisor.add(spec);
        }
    }
    Duration elapsed() const {
        return std::chrono::duration_cast<Duration>(clock.monotonic() - start);
    }
    bool said(const std::string& text) const {
        return messages.str().find(text) != std::string::npos;
    }

    test::TestFolder folder;
    ManualClock clock{from_unix_ms(1'795'694'400'000)};
    FakeChildProcesses os{clock};
    std::ostringstream messages;
    Supervisor supervisor{os, clock, messages};
    MonotonicTime start = clock.monotonic();
};

TEST_F(SupervisorTest, StartAndWaitReturnsOnReadyWithTheStatusLine) {
    ChildRun r;
    r.ready_after = milliseconds(300);
    os.script("dkim-signerd", {r});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-signerd")) << messages.str();
    EXPECT_EQ(elapsed(), milliseconds(300));
    const SupervisedChild& c = supervisor.child("dkim-signerd");
    EXPECT_TRUE(c.ready);
    EXPECT_EQ(c.status, "serving");
    EXPECT_EQ(c.pid, os.starts().front().pid);
    EXPECT_EQ(os.starts().size(), 1U);
}

TEST_F(SupervisorTest, AChildThatExitsBeforeItIsReadyFailsTheStartWithItsLog) {
    std::string log;
    for (int i = 1; i <= 14; ++i) {
        log += "line " + std::to_string(i) + "\n";
    }
    folder.write("dkim-signerd.log", log);
    ChildRun r = never_ready();
    r.exit_after = milliseconds(50);
    r.exit_status = W_EXITCODE(1, 0);
    os.script("dkim-signerd", {r});
    EXPECT_FALSE(supervisor.start_and_wait("dkim-signerd"));
    EXPECT_TRUE(said("up: dkim-signerd exited with status 1 before it was ready; its log (" +
                     (folder.path() / "dkim-signerd.log").string() + "):\n  | line 3\n"))
        << messages.str();
    EXPECT_FALSE(said("line 2\n")) << "the last 12 lines only";
    EXPECT_TRUE(said("  | line 14\n"));
    EXPECT_EQ(os.starts().size(), 1U) << "no restart before supervision";
}

TEST_F(SupervisorTest, AChildThatNeverReportsReadyFailsAfterAMinute) {
    os.script("dkim-relayd", {never_ready()});
    EXPECT_FALSE(supervisor.start_and_wait("dkim-relayd"));
    EXPECT_EQ(elapsed(), kReadyTimeout);
    EXPECT_TRUE(said("up: dkim-relayd did not report ready within 60 s; its log:\n"))
        << messages.str();
}

TEST_F(SupervisorTest, AStopRequestedWhileStartingEndsTheWait) {
    os.script("dkim-signerd", {never_ready()});
    os.signal_up(seconds(2), SIGINT);
    EXPECT_FALSE(supervisor.start_and_wait("dkim-signerd"));
    EXPECT_TRUE(supervisor.stop_requested());
    EXPECT_EQ(elapsed(), seconds(2));
    EXPECT_TRUE(said("\nup: Interrupt: stopping the appliance\n")) << messages.str();
}

TEST_F(SupervisorTest, OnlyTheChildsOwnNotificationsCount) {
    os.script("dkim-signerd", {never_ready()});
    os.notify(milliseconds(100), 4242, "READY=1\n");
    os.signal_up(seconds(1), SIGTERM);
    EXPECT_FALSE(supervisor.start_and_wait("dkim-signerd"));
    EXPECT_FALSE(supervisor.child("dkim-signerd").ready);
}

TEST_F(SupervisorTest, AFailingChildIsRestartedWithADoublingBackOffUpToThirtySeconds) {
    os.script("dkim-relayd", {exits_after(seconds(2))});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-relayd"));
    os.signal_up(seconds(200), SIGTERM);
    supervisor.supervise();
    const auto starts = os.starts_of("dkim-relayd");
    ASSERT_GE(starts.size(), 8U) << messages.str();
    const std::vector<seconds> backoffs{seconds(1),  seconds(2),  seconds(4), seconds(8),
                                        seconds(16), seconds(30), seconds(30)};
    for (std::size_t i = 0; i < backoffs.size(); ++i) {
        // Each run lasts 2 s; the next starts the back-off after its exit.
        EXPECT_EQ(starts[i + 1].at - starts[i].at, seconds(2) + backoffs[i]) << "restart " << i + 1;
        EXPECT_TRUE(said("up: dkim-relayd exited with status 1; restarting in " +
                         std::to_string(backoffs[i].count()) + " s (log: "))
            << backoffs[i].count();
    }
    EXPECT_TRUE(said("up: restarting dkim-relayd (restart 7)\n")) << messages.str();
    EXPECT_EQ(supervisor.child("dkim-relayd").restarts, static_cast<int>(starts.size()) - 1);
}

TEST_F(SupervisorTest, ARunOfAMinuteResetsTheBackOff) {
    os.script("dkim-relayd", {exits_after(seconds(2)), exits_after(seconds(2)),
                              exits_after(seconds(61)), exits_after(seconds(2))});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-relayd"));
    os.signal_up(seconds(80), SIGTERM);
    supervisor.supervise();
    const auto starts = os.starts_of("dkim-relayd");
    ASSERT_GE(starts.size(), 5U) << messages.str();
    EXPECT_EQ(starts[1].at - starts[0].at, seconds(2 + 1));
    EXPECT_EQ(starts[2].at - starts[1].at, seconds(2 + 2));
    EXPECT_EQ(starts[3].at - starts[2].at, seconds(61 + 1)) << "healthy for a minute: 1 s again";
    EXPECT_EQ(starts[4].at - starts[3].at, seconds(2 + 2)) << "and doubling from there";
}

TEST_F(SupervisorTest, AChildThatStopsPingingIsAbortedAndRestarted) {
    ChildRun hung;
    hung.ping_every = std::nullopt;
    os.script("dkim-webd", {hung, ChildRun{}});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-webd"));
    const MonotonicTime ready = os.now();
    os.signal_up(seconds(40), SIGTERM);
    supervisor.supervise();
    const auto sent = os.sent_to("dkim-webd");
    ASSERT_FALSE(sent.empty());
    EXPECT_EQ(sent.front().sig, SIGABRT);
    EXPECT_GT(sent.front().at - ready, kWatchdog);
    EXPECT_LE(sent.front().at - ready, kWatchdog + milliseconds(1));
    EXPECT_TRUE(said("up: dkim-webd sent no watchdog ping for 10 s; aborting it\n"))
        << messages.str();
    EXPECT_TRUE(said("up: dkim-webd was killed by Aborted; restarting in 1 s"));
    const auto starts = os.starts_of("dkim-webd");
    ASSERT_EQ(starts.size(), 2U) << messages.str();
    EXPECT_EQ(starts[1].at - sent.front().at, seconds(1));
    EXPECT_EQ(sent.size(), 1U) << "the second run pings every 5 s and is left alone";
}

TEST_F(SupervisorTest, AHealthyChildIsLeftAlone) {
    os.script("dkim-signerd", {ChildRun{}});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-signerd"));
    os.signal_up(seconds(300), SIGHUP);
    supervisor.supervise();
    EXPECT_TRUE(os.sent().empty()) << messages.str();
    EXPECT_EQ(os.starts().size(), 1U);
    EXPECT_TRUE(said("up: Hangup: stopping the appliance\n"));
}

TEST_F(SupervisorTest, AChildNotReadyAfterARestartIsKilled) {
    os.script("dkim-relayd", {exits_after(seconds(2)), never_ready(), ChildRun{}});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-relayd"));
    os.signal_up(seconds(100), SIGTERM);
    supervisor.supervise();
    const auto starts = os.starts_of("dkim-relayd");
    const auto sent = os.sent_to("dkim-relayd");
    ASSERT_GE(starts.size(), 3U) << messages.str();
    ASSERT_FALSE(sent.empty());
    EXPECT_EQ(sent.front().sig, SIGKILL);
    EXPECT_GT(sent.front().at - starts[1].at, kReadyTimeout);
    EXPECT_TRUE(said("up: dkim-relayd did not report ready after a restart; killing it\n"))
        << messages.str();
    EXPECT_TRUE(said("up: dkim-relayd was killed by Killed; restarting in 2 s"));
}

// signerd's $CREDENTIALS_DIRECTORY in `up --pin-custody sealed`: made afresh before each start.
TEST_F(SupervisorTest, BeforeStartAddsToTheEnvironmentOfEachStart) {
    int calls = 0;
    ChildSpec spec;
    spec.name = "dkim-sealed";
    spec.exe = "/usr/sbin/dkim-signerd";
    spec.log = folder.path() / "dkim-sealed.log";
    spec.extra_env = {"SOFTHSM2_CONF=/x"};
    spec.before_start = [&calls]() -> Expected<std::vector<std::string>, std::string> {
        ++calls;
        return std::vector<std::string>{"CREDENTIALS_DIRECTORY=/run/c" + std::to_string(calls)};
    };
    supervisor.add(spec);
    os.script("dkim-sealed", {exits_after(seconds(2)), ChildRun{}});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-sealed")) << messages.str();
    os.signal_up(seconds(10), SIGTERM);
    supervisor.supervise();
    const auto starts = os.starts_of("dkim-sealed");
    ASSERT_EQ(starts.size(), 2U) << messages.str();
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(starts[0].env,
              (std::vector<std::string>{"SOFTHSM2_CONF=/x", "CREDENTIALS_DIRECTORY=/run/c1"}));
    EXPECT_EQ(starts[1].env,
              (std::vector<std::string>{"SOFTHSM2_CONF=/x", "CREDENTIALS_DIRECTORY=/run/c2"}));
}

TEST_F(SupervisorTest, ABeforeStartThatFailsIsAFailedStartTriedAgainAfterTheBackOff) {
    int calls = 0;
    ChildSpec spec;
    spec.name = "dkim-sealed";
    spec.exe = "/usr/sbin/dkim-signerd";
    spec.log = folder.path() / "dkim-sealed.log";
    spec.before_start = [&calls]() -> Expected<std::vector<std::string>, std::string> {
        if (++calls == 2 || calls == 3) {
            return unexpected(std::string("the credential does not open"));
        }
        return std::vector<std::string>{};
    };
    supervisor.add(spec);
    os.script("dkim-sealed", {exits_after(seconds(2)), ChildRun{}});
    ASSERT_TRUE(supervisor.start_and_wait("dkim-sealed")) << messages.str();
    os.signal_up(seconds(30), SIGTERM);
    supervisor.supervise();
    EXPECT_TRUE(said("up: cannot start dkim-sealed: the credential does not open\n"))
        << messages.str();
    const auto starts = os.starts_of("dkim-sealed");
    ASSERT_EQ(starts.size(), 2U) << messages.str();
    EXPECT_EQ(calls, 4);
    // Exit at 2 s, 1 s of back-off, a failed start, 2 s, another, 4 s: started at 9 s.
    EXPECT_EQ(starts[1].at - starts[0].at, seconds(9));

    ChildSpec never;
    never.name = "dkim-never";
    never.exe = "/usr/sbin/dkim-signerd";
    never.log = folder.path() / "dkim-never.log";
    never.before_start = []() -> Expected<std::vector<std::string>, std::string> {
        return unexpected(std::string("no credential"));
    };
    supervisor.add(never);
    EXPECT_FALSE(supervisor.start_and_wait("dkim-never"));
    EXPECT_TRUE(os.starts_of("dkim-never").empty());
}

TEST_F(SupervisorTest, StopsTheWebAndTheRelayFirstAndSignerdOnceTheyAreGone) {
    ChildRun slow;
    slow.stops_after_term = seconds(3);
    os.script("dkim-relayd", {slow});
    for (const char* name : {"dkim-signerd", "dkim-relayd", "dkim-webd"}) {
        ASSERT_TRUE(supervisor.start_and_wait(name));
    }
    const MonotonicTime stopping = os.now();
    supervisor.stop_all({{"dkim-webd", "dkim-relayd"}, {"dkim-signerd"}});
    const auto& sent = os.sent();
    ASSERT_EQ(sent.size(), 3U) << messages.str();
    EXPECT_EQ(sent[0].name, "dkim-webd");
    EXPECT_EQ(sent[1].name, "dkim-relayd");
    EXPECT_EQ(sent[2].name, "dkim-signerd");
    for (const auto& s : sent) {
        EXPECT_EQ(s.sig, SIGTERM) << s.name;
    }
    EXPECT_EQ(sent[2].at - stopping, seconds(3)) << "signerd after the relay's exit";
    for (const char* name : {"dkim-signerd", "dkim-relayd", "dkim-webd"}) {
        EXPECT_FALSE(os.running(name)) << name;
        EXPECT_TRUE(said(std::string("up: ") + name + " exited with status 0\n")) << name;
    }
    EXPECT_FALSE(said("restarting")) << "no restarts while stopping";
    EXPECT_EQ(os.starts().size(), 3U);
}

TEST_F(SupervisorTest, AChildThatIgnoresSigtermIsKilledAfterTenSeconds) {
    ChildRun stubborn;
    stubborn.ignores_term = true;
    os.script("dkim-webd", {stubborn});
    for (const char* name : {"dkim-signerd", "dkim-relayd", "dkim-webd"}) {
        ASSERT_TRUE(supervisor.start_and_wait(name));
    }
    const MonotonicTime stopping = os.now();
    supervisor.stop_all({{"dkim-webd", "dkim-relayd"}, {"dkim-signerd"}});
    const auto web = os.sent_to("dkim-webd");
    ASSERT_EQ(web.size(), 2U) << messages.str();
    EXPECT_EQ(web[0].sig, SIGTERM);
    EXPECT_EQ(web[1].sig, SIGKILL);
    EXPECT_GE(web[1].at - stopping, kStopTimeout);
    EXPECT_TRUE(said("up: dkim-webd did not stop within 10 s; killing it\n")) << messages.str();
    const auto signer = os.sent_to("dkim-signerd");
    ASSERT_EQ(signer.size(), 1U);
    EXPECT_GE(signer[0].at, web[1].at) << "signerd is stopped after the web daemon is gone";
    EXPECT_FALSE(os.running("dkim-webd"));
    EXPECT_EQ(supervisor.child("dkim-webd").pid, -1);
}

TEST(DescribeExitTest, NamesTheStatusOrTheSignal) {
    EXPECT_EQ(describe_exit(W_EXITCODE(3, 0)), "exited with status 3");
    EXPECT_EQ(describe_exit(SIGKILL), "was killed by Killed");
    EXPECT_EQ(describe_exit(SIGABRT), "was killed by Aborted");
}

}  // namespace
}  // namespace dkim::cli::up

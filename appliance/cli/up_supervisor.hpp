#pragma once
// `up`'s supervisor: the daemons as systemd runs them on the appliance. Each is started and
// must report READY=1 over $NOTIFY_SOCKET within a minute, then WATCHDOG=1 at least every
// 10 s; one that exits is started again after a back-off (1 s, doubling to 30 s while it keeps
// failing, 1 s again once it ran for a minute); one that stops pinging is aborted (SIGABRT) and
// so restarted. SIGINT, SIGTERM or SIGHUP ends supervision; the daemons are stopped in waves
// (SIGTERM, then SIGKILL after 10 s), each wave once the one before it is gone.
//
// The operating system sits behind ChildProcesses (fork and exec, signals, the signal and
// notification descriptors: up_child_processes.hpp); time comes from a dkim::Clock's monotonic
// time; the supervisor's own messages go to a stream. Tests drive it with a fake of both.

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "dkim/clock.hpp"
#include "dkim/expected.hpp"

namespace dkim::cli::up {

inline constexpr std::chrono::seconds kReadyTimeout{60};
inline constexpr std::chrono::seconds kWatchdog{10};
inline constexpr std::chrono::seconds kFirstBackoff{1};
inline constexpr std::chrono::seconds kMaxBackoff{30};
inline constexpr std::chrono::seconds kHealthyAfter{60};
inline constexpr std::chrono::seconds kStopTimeout{10};

// How to start one daemon: `exe --config config` as uid/gid with the supplementary groups,
// standard output and error appended to `log`.
struct ChildSpec {
    std::string name;
    std::filesystem::path exe;
    std::filesystem::path config;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::vector<std::string> extra_env;  // "NAME=value"
    std::filesystem::path log;
    // The arguments after exe; empty: `--config config`.
    std::vector<std::string> args;
    // Whether it sends WATCHDOG=1 (PostgreSQL says READY=1 and nothing after).
    bool watchdog = true;
    // What asks it to stop (PostgreSQL's fast shutdown is SIGINT: SIGTERM waits for clients).
    int stop_signal = SIGTERM;
    // Called before each start: more of its environment ("NAME=value"), made afresh (signerd's
    // $CREDENTIALS_DIRECTORY, as systemd makes it at each start). An error counts as a failed
    // start: a restart is tried again after the back-off.
    std::function<Expected<std::vector<std::string>, std::string>()> before_start{};
};

// One datagram on the notification socket and the pid that sent it (SCM_CREDENTIALS).
struct Notification {
    pid_t sender = -1;
    std::string text;  // "READY=1\nSTATUS=...\n"
};

// What a wait returned with: datagrams, and signals sent to `up` (SIGCHLD, SIGINT, SIGTERM,
// SIGHUP).
struct Wakeup {
    std::vector<Notification> notifications;
    std::vector<int> signals;
};

// A child that exited, with its status as waitpid() reports it.
struct ChildExit {
    pid_t pid = -1;
    int status = 0;
};

// The supervisor's side effects: starting, signalling and reaping children, and waiting for
// what they (and the terminal) say.
class ChildProcesses {
  public:
    virtual ~ChildProcesses() = default;
    // Starts the child; its pid, or why not.
    virtual Expected<pid_t, std::string> spawn(const ChildSpec& spec) = 0;
    virtual void signal(pid_t pid, int sig) = 0;
    // Waits at most `timeout` for notifications or signals; returns early with the first.
    virtual Wakeup wait(std::chrono::milliseconds timeout) = 0;
    // The children that have exited, without waiting.
    virtual std::vector<ChildExit> reap() = 0;
    // Waits until `pid` exits (after SIGKILL); its status.
    virtual int wait_exit(pid_t pid) = 0;
};

// One supervised daemon and what the supervisor knows of it.
struct SupervisedChild {
    ChildSpec spec;
    pid_t pid = -1;
    bool ready = false;
    bool exited = false;
    int last_status = 0;
    std::string status;  // the last STATUS= line
    MonotonicTime started{}, last_ping{}, restart_at{};
    std::chrono::seconds backoff = kFirstBackoff;
    int restarts = 0;
};

// "exited with status 1", "was killed by Killed", ...
std::string describe_exit(int status);

class Supervisor {
  public:
    // `log`: the supervisor's messages ("up: dkim-relayd exited with status 1; restarting in
    // 1 s ...").
    Supervisor(ChildProcesses& processes, const Clock& clock, std::ostream& log);

    void add(ChildSpec spec);
    const SupervisedChild& child(const std::string& name) const;
    bool stop_requested() const { return stop_; }

    // Starts `name` and waits for its READY=1. False, with the reason and its log's tail in
    // the messages, when it exits first, does not answer within kReadyTimeout, or a stop was
    // requested.
    bool start_and_wait(const std::string& name);
    // Until SIGINT, SIGTERM or SIGHUP: restarts with back-off, the watchdog.
    void supervise();
    // Stops the children wave by wave: SIGTERM to a wave's children, SIGKILL to those still
    // running after kStopTimeout, then the next wave.
    void stop_all(const std::vector<std::vector<std::string>>& waves);

  private:
    SupervisedChild& find(const std::string& name);
    std::size_t index(const std::string& name) const;
    bool spawn(SupervisedChild& c);
    // Handles what arrives within `wait`.
    void pump(std::chrono::milliseconds wait);
    void on_message(const Notification& message);
    void reap();
    std::chrono::milliseconds next_deadline() const;

    ChildProcesses& processes_;
    const Clock& clock_;
    std::ostream& log_;
    bool stop_ = false;
    std::vector<SupervisedChild> children_;
};

}  // namespace dkim::cli::up

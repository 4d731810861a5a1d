#pragma once
// The supervisor's ChildProcesses on Linux: fork and exec (each daemon in its own process
// group, as its own user, its output appended to its log), signals to `up` through a signalfd
// (SIGCHLD, SIGINT, SIGTERM, SIGHUP are blocked and read from it), and the notification socket
// the daemons send READY=1 and WATCHDOG=1 to ($NOTIFY_SOCKET, a datagram socket that passes
// the sender's credentials).

#include <filesystem>
#include <memory>
#include <string>

#include "up_supervisor.hpp"
#include "up_unique_fd.hpp"

namespace dkim::cli::up {

class SystemChildProcesses final : public ChildProcesses {
  public:
    // Blocks the signals above, opens the signalfd and binds the notification socket at
    // `notify_path` (mode 0660, group `notify_gid`: the daemons' shared group).
    static Expected<std::unique_ptr<SystemChildProcesses>, std::string> open(
        const std::filesystem::path& notify_path, gid_t notify_gid);
    ~SystemChildProcesses() override;
    SystemChildProcesses(const SystemChildProcesses&) = delete;
    SystemChildProcesses& operator=(const SystemChildProcesses&) = delete;

    Expected<pid_t, std::string> spawn(const ChildSpec& spec) override;
    void signal(pid_t pid, int sig) override;
    Wakeup wait(std::chrono::milliseconds timeout) override;
    std::vector<ChildExit> reap() override;
    int wait_exit(pid_t pid) override;

    // Takes what open() prepared.
    SystemChildProcesses(UniqueFd signals, UniqueFd notify, std::filesystem::path notify_path);

  private:
    void read_notifications(Wakeup& woke) const;

    UniqueFd signal_fd_;
    UniqueFd notify_fd_;
    std::filesystem::path notify_path_;
};

}  // namespace dkim::cli::up

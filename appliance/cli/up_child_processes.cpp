#include "up_child_processes.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string_view>
#include <system_error>
#include <vector>

namespace dkim::cli::up {

namespace {

std::string system_error_text() {
    return std::error_code(errno, std::system_category()).message();
}

}  // namespace

Expected<std::unique_ptr<SystemChildProcesses>, std::string> SystemChildProcesses::open(
    const std::filesystem::path& notify_path, gid_t notify_gid) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) {
        sigaddset(&set, sig);
    }
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    UniqueFd signals(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    UniqueFd notify(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, notify_path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(notify_path.c_str());
    const int on = 1;
    const bool ok =
        signals && notify && notify_path.string().size() < sizeof addr.sun_path &&
        ::bind(notify.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
        ::setsockopt(notify.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0 &&
        ::chown(notify_path.c_str(), 0, notify_gid) == 0 && ::chmod(notify_path.c_str(), 0660) == 0;
    if (!ok) {
        const std::string why = system_error_text();
        ::unlink(notify_path.c_str());
        return unexpected("cannot listen for the daemons' notifications on " +
                          notify_path.string() + ": " + why);
    }
    return std::make_unique<SystemChildProcesses>(std::move(signals), std::move(notify),
                                                  notify_path);
}

SystemChildProcesses::SystemChildProcesses(UniqueFd signals, UniqueFd notify,
                                           std::filesystem::path notify_path)
    : signal_fd_(std::move(signals)),
      notify_fd_(std::move(notify)),
      notify_path_(std::move(notify_path)) {}

SystemChildProcesses::~SystemChildProcesses() {
    ::unlink(notify_path_.c_str());
}

Expected<pid_t, std::string> SystemChildProcesses::spawn(const ChildSpec& c) {
    // Everything the child needs is prepared here: between fork and exec only
    // async-signal-safe calls.
    UniqueFd log(::open(c.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!log || !null) {
        return unexpected("cannot open " + c.log.string() + ": " + system_error_text());
    }
    std::vector<std::string> env = {
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=" + notify_path_.string(),
        "WATCHDOG_USEC=" + std::to_string(std::chrono::microseconds(kWatchdog).count()),
        "WATCHDOG_PID=0000000000"};
    env.insert(env.end(), c.extra_env.begin(), c.extra_env.end());
    // The rest of up's environment stays behind, but for the time zone and the sanitizers'
    // options of a test build.
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v(*e);
        for (const std::string_view prefix :
             {"TZ=", "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS="}) {
            if (v.substr(0, prefix.size()) == prefix) {
                env.emplace_back(v);
            }
        }
    }
    std::vector<char*> envp;
    envp.reserve(env.size() + 1);
    for (auto& e : env) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    char* pid_digits = env[3].data() + std::strlen("WATCHDOG_PID=");
    std::string exe = c.exe.string();
    std::vector<std::string> args = c.args;
    if (args.empty()) {
        args = {"--config", c.config.string()};
    }
    std::vector<char*> argv{exe.data()};
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    sigset_t none;
    sigemptyset(&none);
    const pid_t parent = ::getpid();
    // When up dies without stopping its children (kill -9), each child gets its stop signal
    // (PostgreSQL's fast shutdown, the daemons' SIGTERM) instead of running on unsupervised.
    const int orphan_signal = c.stop_signal;

    const pid_t pid = ::fork();
    if (pid == 0) {
        // The child: its own process group (Ctrl-C reaches up only), its user, its log.
        (void)::setpgid(0, 0);
        ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
        // WATCHDOG_PID=<our pid>, without leading zeros (a leading 0 would read as octal).
        std::array<char, 16> digits{};
        std::size_t n = 0;
        for (pid_t self = ::getpid(); self > 0; self /= 10) {
            digits[n++] = static_cast<char>('0' + self % 10);
        }
        for (std::size_t i = 0; i < n; ++i) {
            pid_digits[i] = digits[n - 1 - i];
        }
        pid_digits[n] = '\0';
        if (::dup2(null.get(), 0) < 0 || ::dup2(log.get(), 1) < 0 || ::dup2(log.get(), 2) < 0 ||
            ::setgroups(c.groups.size(), c.groups.data()) != 0 || ::setgid(c.gid) != 0 ||
            ::setuid(c.uid) != 0) {
            ::_exit(126);
        }
        // After setuid, which clears the parent-death signal; up may have died before it.
        if (::prctl(PR_SET_PDEATHSIG, orphan_signal) != 0 || ::getppid() != parent) {
            ::_exit(126);
        }
        ::execve(exe.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    if (pid < 0) {
        return unexpected("cannot start " + c.name + ": " + system_error_text());
    }
    return pid;
}

void SystemChildProcesses::signal(pid_t pid, int sig) {
    ::kill(pid, sig);
}

void SystemChildProcesses::read_notifications(Wakeup& woke) const {
    for (;;) {
        std::array<char, 4096> buffer{};
        alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(ucred))> control{};
        iovec iov{buffer.data(), buffer.size() - 1};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        const auto n = ::recvmsg(notify_fd_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            return;
        }
        Notification message;
        for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS) {
                ucred cred{};
                std::memcpy(&cred, CMSG_DATA(h), sizeof cred);
                message.sender = cred.pid;
            }
        }
        message.text.assign(buffer.data(), static_cast<std::size_t>(n));
        woke.notifications.push_back(std::move(message));
    }
}

Wakeup SystemChildProcesses::wait(std::chrono::milliseconds timeout) {
    Wakeup woke;
    std::array<pollfd, 2> fds{{{signal_fd_.get(), POLLIN, 0}, {notify_fd_.get(), POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), static_cast<int>(timeout.count())) <= 0) {
        return woke;
    }
    if ((fds[1].revents & POLLIN) != 0) {
        read_notifications(woke);
    }
    if ((fds[0].revents & POLLIN) != 0) {
        signalfd_siginfo info{};
        while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            woke.signals.push_back(static_cast<int>(info.ssi_signo));
        }
    }
    return woke;
}

std::vector<ChildExit> SystemChildProcesses::reap() {
    std::vector<ChildExit> exits;
    for (;;) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return exits;
        }
        exits.push_back({pid, status});
    }
}

int SystemChildProcesses::wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

}  // namespace dkim::cli::up

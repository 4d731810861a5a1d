#include "up_supervisor.hpp"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace dkim::cli::up {

namespace {

using std::chrono::milliseconds;

std::string signal_name(int sig) {
    const char* name = ::sigdescr_np(sig);
    return name != nullptr ? name : "signal " + std::to_string(sig);
}

// The last lines of a daemon's log, indented, for the message that says why it stopped.
std::string log_tail(const std::filesystem::path& log, std::size_t lines) {
    std::vector<std::string> all;
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
        all.push_back(line);
    }
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
        out += "  | " + all[i] + "\n";
    }
    return out;
}

}  // namespace

std::string describe_exit(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return std::string("was killed by ") + signal_name(WTERMSIG(status));
    }
    return "stopped";
}

Supervisor::Supervisor(ChildProcesses& processes, const Clock& clock, std::ostream& log)
    : processes_(processes), clock_(clock), log_(log) {}

void Supervisor::add(ChildSpec spec) {
    SupervisedChild c;
    c.spec = std::move(spec);
    children_.push_back(std::move(c));
}

const SupervisedChild& Supervisor::child(const std::string& name) const {
    return children_.at(index(name));
}

SupervisedChild& Supervisor::find(const std::string& name) {
    return children_.at(index(name));
}

std::size_t Supervisor::index(const std::string& name) const {
    for (std::size_t i = 0; i < children_.size(); ++i) {
        if (children_[i].spec.name == name) {
            return i;
        }
    }
    throw std::logic_error("no child " + name);
}

bool Supervisor::spawn(SupervisedChild& c) {
    Expected<pid_t, std::string> pid = unexpected(std::string());
    if (c.spec.before_start) {
        auto env = c.spec.before_start();
        if (env) {
            ChildSpec spec = c.spec;
            spec.extra_env.insert(spec.extra_env.end(), env->begin(), env->end());
            pid = processes_.spawn(spec);
        } else {
            pid = unexpected("cannot start " + c.spec.name + ": " + env.error());
        }
    } else {
        pid = processes_.spawn(c.spec);
    }
    if (!pid) {
        log_ << "up: " << pid.error() << "\n";
        // Tried again after a doubled back-off, like a start that exited at once.
        c.pid = -1;
        c.exited = true;
        c.backoff = std::min(c.backoff * 2, kMaxBackoff);
        c.restart_at = clock_.monotonic() + c.backoff;
        return false;
    }
    c.pid = *pid;
    c.ready = false;
    c.exited = false;
    c.started = clock_.monotonic();
    c.last_ping = c.started;
    return true;
}

void Supervisor::on_message(const Notification& message) {
    for (SupervisedChild& c : children_) {
        if (c.pid != message.sender || message.sender <= 0) {
            continue;
        }
        std::istringstream lines(message.text);
        for (std::string line; std::getline(lines, line);) {
            if (line == "READY=1") {
                c.ready = true;
                c.last_ping = clock_.monotonic();
            } else if (line == "WATCHDOG=1") {
                c.last_ping = clock_.monotonic();
            } else if (line.rfind("STATUS=", 0) == 0) {
                c.status = line.substr(7);
            }
        }
    }
}

void Supervisor::reap() {
    for (const ChildExit& exit : processes_.reap()) {
        for (SupervisedChild& c : children_) {
            if (c.pid != exit.pid) {
                continue;
            }
            c.pid = -1;
            c.exited = true;
            c.last_status = exit.status;
            if (stop_) {
                continue;
            }
            // Back-off doubles while a daemon keeps failing, and starts again at one second
            // once it ran for a minute.
            const auto now = clock_.monotonic();
            c.backoff = now - c.started >= kHealthyAfter || c.restarts == 0
                            ? kFirstBackoff
                            : std::min(c.backoff * 2, kMaxBackoff);
            c.restart_at = now + c.backoff;
            log_ << "up: " << c.spec.name << " " << describe_exit(exit.status) << "; restarting in "
                 << c.backoff.count() << " s (log: " << c.spec.log.string() << ")\n"
                 << log_tail(c.spec.log, 3) << std::flush;
        }
    }
}

void Supervisor::pump(milliseconds wait) {
    const Wakeup woke = processes_.wait(std::max(milliseconds(0), wait));
    for (const Notification& message : woke.notifications) {
        on_message(message);
    }
    for (const int sig : woke.signals) {
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            if (!stop_) {
                log_ << "\nup: " << signal_name(sig) << ": stopping the appliance\n" << std::flush;
            }
            stop_ = true;
        }
    }
    if (!woke.signals.empty()) {
        reap();
    }
}

milliseconds Supervisor::next_deadline() const {
    const auto now = clock_.monotonic();
    auto next = now + std::chrono::seconds(1);
    for (const SupervisedChild& c : children_) {
        if (c.pid < 0 && c.exited) {
            next = std::min(next, c.restart_at);
        } else if (c.ready && c.spec.watchdog) {
            next = std::min(next, c.last_ping + kWatchdog);
        }
    }
    return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(next - now));
}

bool Supervisor::start_and_wait(const std::string& name) {
    SupervisedChild& c = find(name);
    if (!spawn(c)) {
        return false;
    }
    const auto deadline = clock_.monotonic() + kReadyTimeout;
    while (!c.ready && !stop_) {
        if (c.exited) {
            log_ << "up: " << c.spec.name << " " << describe_exit(c.last_status)
                 << " before it was ready; its log (" << c.spec.log.string() << "):\n"
                 << log_tail(c.spec.log, 12);
            return false;
        }
        if (clock_.monotonic() >= deadline) {
            log_ << "up: " << c.spec.name << " did not report ready within "
                 << kReadyTimeout.count() << " s; its log:\n"
                 << log_tail(c.spec.log, 12);
            return false;
        }
        pump(milliseconds(200));
    }
    return c.ready;
}

void Supervisor::supervise() {
    while (!stop_) {
        pump(next_deadline());
        const auto now = clock_.monotonic();
        for (SupervisedChild& c : children_) {
            if (c.pid < 0 && c.exited && now >= c.restart_at && !stop_) {
                ++c.restarts;
                log_ << "up: restarting " << c.spec.name << " (restart " << c.restarts << ")\n"
                     << std::flush;
                spawn(c);
            } else if (c.pid > 0 && c.ready && c.spec.watchdog && now - c.last_ping > kWatchdog) {
                log_ << "up: " << c.spec.name << " sent no watchdog ping for " << kWatchdog.count()
                     << " s; aborting it\n"
                     << std::flush;
                processes_.signal(c.pid, SIGABRT);
                c.last_ping = now;  // one abort; reap() restarts it
            } else if (c.pid > 0 && !c.ready && now - c.started > kReadyTimeout) {
                log_ << "up: " << c.spec.name << " did not report ready after a restart; "
                     << "killing it\n";
                processes_.signal(c.pid, SIGKILL);
                c.started = now;
            }
        }
    }
}

void Supervisor::stop_all(const std::vector<std::vector<std::string>>& waves) {
    stop_ = true;
    for (const std::vector<std::string>& wave : waves) {
        auto in_wave = [&](const SupervisedChild& c) {
            return std::find(wave.begin(), wave.end(), c.spec.name) != wave.end();
        };
        // In the wave's order, as it names them.
        for (const auto& name : wave) {
            for (const SupervisedChild& c : children_) {
                if (c.spec.name == name && c.pid > 0) {
                    processes_.signal(c.pid, c.spec.stop_signal);
                }
            }
        }
        const auto deadline = clock_.monotonic() + kStopTimeout;
        auto running = [&] {
            return std::any_of(children_.begin(), children_.end(),
                               [&](const SupervisedChild& c) { return in_wave(c) && c.pid > 0; });
        };
        while (running() && clock_.monotonic() < deadline) {
            pump(milliseconds(100));
            reap();
        }
        for (SupervisedChild& c : children_) {
            if (in_wave(c) && c.pid > 0) {
                log_ << "up: " << c.spec.name << " did not stop within " << kStopTimeout.count()
                     << " s; killing it\n";
                processes_.signal(c.pid, SIGKILL);
                (void)processes_.wait_exit(c.pid);
                c.pid = -1;
            }
        }
        for (const SupervisedChild& c : children_) {
            if (in_wave(c) && c.exited) {
                log_ << "up: " << c.spec.name << " " << describe_exit(c.last_status) << "\n";
            }
        }
    }
}

}  // namespace dkim::cli::up

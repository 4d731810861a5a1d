#pragma once
// A fake of the supervisor's operating system: children that report ready, ping the watchdog,
// exit and answer signals as a test scripts them, on a ManualClock that moves only when the
// supervisor waits (to the next scripted event, or by the whole timeout when none is due).

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dkim/clock.hpp"
#include "up_supervisor.hpp"

namespace dkim::cli::up::test {

class FakeChildProcesses final : public ChildProcesses {
  public:
    // How one start of a daemon behaves.
    struct Run {
        std::optional<Duration> ready_after = Duration(100);  // READY=1; none: never
        std::optional<Duration> ping_every = Duration(5000);  // WATCHDOG=1 once ready; none: never
        std::optional<Duration> exit_after;                   // exits by itself
        int exit_status = W_EXITCODE(1, 0);
        Duration stops_after_term{0};  // SIGTERM: exits with status 0 this much later
        bool ignores_term = false;
    };
    struct Start {
        std::string name;
        pid_t pid;
        MonotonicTime at;
        std::vector<std::string> env{};  // the spec's extra_env at this start
    };
    struct Sent {
        std::string name;
        int sig;
        MonotonicTime at;
    };

    explicit FakeChildProcesses(ManualClock& clock) : clock_(clock) {}

    // The runs of `name`'s next starts, in order; the last one repeats.
    void script(const std::string& name, std::vector<Run> runs) { runs_[name] = std::move(runs); }
    // A signal to `up` itself (Ctrl-C, SIGTERM) `after` from now.
    void signal_up(Duration after, int sig) { at(after, Event::up_signal, -1, sig); }
    // A datagram from `sender` `after` from now.
    void notify(Duration after, pid_t sender, std::string text) {
        at(after, Event::message, sender, 0, std::move(text));
    }

    MonotonicTime now() const { return clock_.monotonic(); }
    const std::vector<Start>& starts() const { return starts_; }
    const std::vector<Sent>& sent() const { return sent_; }
    std::vector<Start> starts_of(const std::string& name) const {
        std::vector<Start> out;
        std::copy_if(starts_.begin(), starts_.end(), std::back_inserter(out),
                     [&](const Start& s) { return s.name == name; });
        return out;
    }
    std::vector<Sent> sent_to(const std::string& name) const {
        std::vector<Sent> out;
        std::copy_if(sent_.begin(), sent_.end(), std::back_inserter(out),
                     [&](const Sent& s) { return s.name == name; });
        return out;
    }
    bool running(const std::string& name) const {
        return std::any_of(running_.begin(), running_.end(),
                           [&](const auto& r) { return r.second.name == name; });
    }

    Expected<pid_t, std::string> spawn(const ChildSpec& spec) override {
        const auto& runs = runs_[spec.name];
        const std::size_t n = static_cast<std::size_t>(starts_of(spec.name).size());
        const Run run = runs.empty() ? Run{} : runs[std::min(n, runs.size() - 1)];
        const pid_t pid = next_pid_++;
        running_[pid] = Child{spec.name, run};
        starts_.push_back({spec.name, pid, now(), spec.extra_env});
        if (run.ready_after) {
            at(*run.ready_after, Event::message, pid, 0, "READY=1\nSTATUS=serving\n");
            if (run.ping_every) {
                at(*run.ready_after + *run.ping_every, Event::ping, pid);
            }
        }
        if (run.exit_after) {
            at(*run.exit_after, Event::exit, pid, run.exit_status);
        }
        return pid;
    }

    void signal(pid_t pid, int sig) override {
        const auto child = running_.find(pid);
        if (child == running_.end()) {
            return;
        }
        sent_.push_back({child->second.name, sig, now()});
        if (sig == SIGTERM && !child->second.run.ignores_term) {
            at(child->second.run.stops_after_term, Event::exit, pid, W_EXITCODE(0, 0));
        } else if (sig == SIGKILL || sig == SIGABRT) {
            at(Duration(0), Event::exit, pid, sig);
        }
    }

    Wakeup wait(std::chrono::milliseconds timeout) override {
        Wakeup woke;
        const MonotonicTime until = now() + timeout;
        auto first =
            std::min_element(events_.begin(), events_.end(),
                             [](const Event& a, const Event& b) { return a.when < b.when; });
        if (first == events_.end() || first->when > until) {
            // Nothing due: the whole timeout passes (at least a millisecond, as real time would).
            clock_.advance(std::max(timeout, std::chrono::milliseconds(1)));
            return woke;
        }
        const MonotonicTime when = first->when;
        if (when > now()) {
            clock_.advance(std::chrono::duration_cast<Duration>(when - now()));
        }
        std::vector<Event> due;
        for (auto it = events_.begin(); it != events_.end();) {
            if (it->when <= when) {
                due.push_back(std::move(*it));
                it = events_.erase(it);
            } else {
                ++it;
            }
        }
        std::stable_sort(due.begin(), due.end(),
                         [](const Event& a, const Event& b) { return a.when < b.when; });
        for (Event& e : due) {
            deliver(e, woke);
        }
        return woke;
    }

    std::vector<ChildExit> reap() override { return std::exchange(zombies_, {}); }

    int wait_exit(pid_t pid) override {
        for (auto it = zombies_.begin(); it != zombies_.end(); ++it) {
            if (it->pid == pid) {
                const int status = it->status;
                zombies_.erase(it);
                return status;
            }
        }
        running_.erase(pid);
        return SIGKILL;
    }

  private:
    struct Event {
        enum Kind { message, ping, exit, up_signal };
        Kind kind = message;
        pid_t pid = -1;
        int value = 0;  // exit status, or the signal to up
        std::string text;
        MonotonicTime when{};
    };
    struct Child {
        std::string name;
        Run run;
    };

    void at(Duration after, Event::Kind kind, pid_t pid, int value = 0, std::string text = {}) {
        Event e;
        e.kind = kind;
        e.pid = pid;
        e.value = value;
        e.text = std::move(text);
        e.when = now() + after;
        events_.push_back(std::move(e));
    }

    void deliver(const Event& e, Wakeup& woke) {
        if (e.kind == Event::up_signal) {
            woke.signals.push_back(e.value);
            return;
        }
        if (e.kind == Event::message && running_.count(e.pid) == 0) {
            woke.notifications.push_back({e.pid, e.text});  // a stranger, or one that is gone
            return;
        }
        const auto child = running_.find(e.pid);
        if (child == running_.end()) {
            return;  // it exited before
        }
        switch (e.kind) {
            case Event::message: woke.notifications.push_back({e.pid, e.text}); break;
            case Event::ping:
                woke.notifications.push_back({e.pid, "WATCHDOG=1\n"});
                at(*child->second.run.ping_every, Event::ping, e.pid);
                break;
            case Event::exit:
                running_.erase(child);
                zombies_.push_back({e.pid, e.value});
                woke.signals.push_back(SIGCHLD);
                break;
            case Event::up_signal: break;
        }
    }

    ManualClock& clock_;
    std::map<std::string, std::vector<Run>> runs_;
    std::map<pid_t, Child> running_;
    std::vector<Event> events_;
    std::vector<ChildExit> zombies_;
    std::vector<Start> starts_;
    std::vector<Sent> sent_;
    pid_t next_pid_ = 1000;
};

}  // namespace dkim::cli::up::test

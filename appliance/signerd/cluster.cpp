#include "cluster.hpp"

#include <iostream>

namespace dkim::signerd {

ClusterNode::ClusterNode(jit::SharedStore& store, jit::Authority& authority,
                         jit::Directory& directory, jit::KeyRegistry& keys, const Clock& clock,
                         ClusterOptions options)
    : store_(store),
      authority_(authority),
      directory_(directory),
      keys_(keys),
      clock_(clock),
      options_(std::move(options)) {
    last_contact_ms_ = to_unix_ms(clock_.now());
}

ClusterNode::~ClusterNode() {
    stop();
}

void ClusterNode::start(std::function<void()> changed, std::function<jit::NodeStatus()> status) {
    changed_ = std::move(changed);
    status_ = std::move(status);
    listener_ = std::thread([this] { run(); });
}

void ClusterNode::stop() {
    {
        std::lock_guard<std::mutex> lock(stop_mutex_);
        stopping_ = true;
    }
    if (listener_.joinable()) {
        listener_.join();
    }
}

std::vector<jit::NodeStatus> ClusterNode::seen_nodes() const {
    std::lock_guard<std::mutex> lock(seen_mutex_);
    return seen_;
}

bool ClusterNode::fenced() const {
    return fenced_.load() ||
           to_unix_ms(clock_.now()) - last_contact_ms_.load() > options_.lease.count();
}

void ClusterNode::renew(TimePoint now) {
    last_contact_ms_ = to_unix_ms(now);
}

Expected<void, std::string> ClusterNode::reload_locked() {
    // A relay's request filed on the old memory while the snapshot is read and applied would
    // be wiped by it: the store refuses decisions until the memory is adopted.
    store_.begin_reload();
    auto state = store_.load();
    if (!state) {
        store_.adopt(-1);  // unknown: the next decision reloads
        return unexpected(state.error());
    }
    authority_.reload(*state);
    directory_.reload(*state);
    keys_.reload(std::move(state->keys));
    keys_.reload_rotations(std::move(state->rotations));
    store_.adopt(state->version);
    renew(clock_.now());
    return {};
}

Expected<void, std::string> ClusterNode::reload() {
    std::lock_guard<std::mutex> lock(decisions_);
    auto reloaded = reload_locked();
    if (reloaded && changed_) {
        changed_();
    }
    return reloaded;
}

Expected<void, std::string> ClusterNode::decide(const std::function<void()>& decision) {
    std::lock_guard<std::mutex> lock(decisions_);
    auto behind = store_.lock_decisions();
    if (!behind) {
        return unexpected("the cluster's shared store cannot be reached: " + behind.error());
    }
    renew(clock_.now());
    if (*behind) {
        if (auto reloaded = reload_locked(); !reloaded) {
            store_.unlock_decisions();
            return unexpected("the cluster's state cannot be read: " + reloaded.error());
        }
    }
    decision();
    store_.unlock_decisions();
    return {};
}

void ClusterNode::run() {
    for (;;) {
        {
            std::lock_guard<std::mutex> lock(stop_mutex_);
            if (stopping_) {
                return;
            }
        }
        auto behind = store_.wait_for_change(options_.poll);
        const TimePoint now = clock_.now();
        bool notify = false;
        if (behind) {
            renew(now);
            if (*behind) {
                std::lock_guard<std::mutex> lock(decisions_);
                if (auto reloaded = reload_locked(); !reloaded) {
                    std::cerr << "dkim-signerd: cluster: cannot reload the state: "
                              << reloaded.error() << "\n";
                }
                notify = true;
            }
            if (fenced_.exchange(false)) {
                // Back in contact: what changed meanwhile is read before anything signs again.
                std::lock_guard<std::mutex> lock(decisions_);
                (void)reload_locked();
                std::cerr << "dkim-signerd: cluster: the shared store is back; fence lifted\n";
                notify = true;
            }
            if (notify && changed_) {
                // The lifecycle hears of a revoke or a new grant before the registry's writes.
                changed_();
                notify = false;
            }
            if (status_) {
                jit::NodeStatus s = status_();
                s.last_seen = now;
                if (auto beat = store_.heartbeat(s); !beat) {
                    std::cerr << "dkim-signerd: cluster: " << beat.error() << "\n";
                }
            }
            if (auto nodes = store_.nodes(); nodes) {
                std::lock_guard<std::mutex> lock(seen_mutex_);
                seen_ = std::move(*nodes);
            }
        } else {
            const auto silent =
                std::chrono::milliseconds(to_unix_ms(now) - last_contact_ms_.load());
            if (silent > options_.lease && !fenced_.exchange(true)) {
                std::cerr << "dkim-signerd: cluster: no contact with the shared store for "
                          << silent.count() << " ms (lease " << options_.lease.count()
                          << " ms): fenced, the token logs out: " << behind.error() << "\n";
                notify = true;
            }
            // Not a busy loop while the server is down: a connection attempt waits, and a
            // refused one returns at once.
            std::unique_lock<std::mutex> lock(stop_mutex_);
            if (stopping_) {
                return;
            }
            lock.unlock();
            std::this_thread::sleep_for(std::min(options_.poll, std::chrono::milliseconds(200)));
        }
        if (notify && changed_) {
            changed_();
        }
    }
}

}  // namespace dkim::signerd

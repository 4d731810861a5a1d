#pragma once
// One signerd among several that share a PostgreSQL store (dkim/jit/shared_store.hpp): keeps
// this node's memory (requests, grants, users, keys) in step with the cluster's, makes each
// decision under the cluster's decision lock on the latest state, and fences the node when it
// has lost the database for longer than its lease.
//
// - decide(): the node's decisions one at a time (a mutex), under the cluster's advisory lock,
//   after a reload when another node changed the state since this one last read or wrote it.
// - The listener thread waits for the other nodes' announcements (LISTEN/NOTIFY), and reads the
//   state version at least every `poll` itself (announcements are lost across a reconnect);
//   when the node is behind, it reloads and wakes the token's lifecycle (a revoke or the end of
//   the last grant logs the token out; a new grant logs it in). It also writes the node's row
//   (name, version, token state, grants, selectors) in the registry.
// - Fencing: every successful exchange with the database renews the lease. With none for longer
//   than `lease`, fenced() is true: the lifecycle logs the token out and signing is refused (451
//   at the relay) without asking the token. A signature needs its record in the shared log in
//   any case (the journal's commit), so none is ever issued that the log does not hold; the lease
//   bounds how long the token stays logged in on a node that cannot learn of a revoke. The node
//   resumes by itself: the first exchange that succeeds reloads the state and lifts the fence.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dkim/clock.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/keys.hpp"
#include "dkim/jit/shared_store.hpp"

namespace dkim::signerd {

// A node whose last heartbeat is older than this is shown as gone (it heartbeats every poll).
inline constexpr std::chrono::seconds kNodeGoneAfter{10};

struct ClusterOptions {
    std::chrono::milliseconds lease{5000};
    std::chrono::milliseconds poll{1000};
    std::string version;  // the binary's, for the registry
};

class ClusterNode {
  public:
    ClusterNode(jit::SharedStore& store, jit::Authority& authority, jit::Directory& directory,
                jit::KeyRegistry& keys, const Clock& clock, ClusterOptions options);
    ClusterNode(const ClusterNode&) = delete;
    ClusterNode& operator=(const ClusterNode&) = delete;
    ~ClusterNode();

    // Starts the listener. `changed` runs after each reload and when the fence goes up or down
    // (the lifecycle's wake-up); `status` describes the node for the registry.
    void start(std::function<void()> changed, std::function<jit::NodeStatus()> status);
    void stop();

    // Runs `decision` as one decision of the cluster. An error: the lock or the reload failed
    // (the database cannot be reached), and `decision` did not run.
    Expected<void, std::string> decide(const std::function<void()>& decision);

    // No exchange with the database for longer than the lease (read at each call, so that the
    // lifecycle's next tick sees it even while the listener waits for a connection).
    bool fenced() const;
    const std::string& node() const { return store_.node(); }
    jit::SharedStore& store() { return store_; }
    const jit::SharedStore& store() const { return store_; }

    // Reloads now (under the decision mutex).
    Expected<void, std::string> reload();

    std::chrono::milliseconds lease() const { return options_.lease; }
    // The registry as the listener last read it (every poll), for /metrics without a query.
    std::vector<jit::NodeStatus> seen_nodes() const;

  private:
    Expected<void, std::string> reload_locked();
    void run();
    void renew(TimePoint now);

    jit::SharedStore& store_;
    jit::Authority& authority_;
    jit::Directory& directory_;
    jit::KeyRegistry& keys_;
    const Clock& clock_;
    const ClusterOptions options_;

    std::mutex decisions_;  // this node's decisions and reloads, one at a time
    std::atomic<bool> fenced_{false};
    std::atomic<std::int64_t> last_contact_ms_{0};  // unix ms of the last exchange that worked

    mutable std::mutex seen_mutex_;
    std::vector<jit::NodeStatus> seen_;  // behind seen_mutex_

    std::function<void()> changed_;
    std::function<jit::NodeStatus()> status_;
    std::mutex stop_mutex_;
    bool stopping_ = false;  // behind stop_mutex_
    std::thread listener_;
};

}  // namespace dkim::signerd

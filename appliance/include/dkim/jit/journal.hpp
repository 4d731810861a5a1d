#pragma once
// Group commit in front of the Store. Every state change and every audit record goes
// through write(), which returns only when they are durable, or with the reason they are
// not. Concurrent writers are batched: whoever finds no commit in progress commits
// everything queued so far in one transaction (one fsync), so that thousands of signatures a
// second cost a few hundred fsyncs, not thousands.
//
// The journal numbers the records and chains their hashes in commit order. When a commit
// fails, nothing of the batch is kept and every writer in it gets the error: the caller must
// then not release the signature or acknowledge the decision (fail closed).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dkim/jit/store.hpp"

namespace dkim::jit {

class Journal {
  public:
    Journal(Store& store, std::int64_t seq, const ChainHash& head);
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    // Durable on success. The records' seq and hash are filled in.
    Expected<void, std::string> write(std::vector<Mutation> mutations,
                                      std::vector<AuditRecord>& records);
    Expected<void, std::string> write(std::vector<Mutation> mutations, AuditRecord record);

    // The durable end of the log.
    std::int64_t seq() const;
    ChainHash head() const;
    // seq and head of the same moment, both durable.
    std::pair<std::int64_t, ChainHash> position() const;
    // The reason of the last failed commit, cleared by the next successful one.
    std::optional<std::string> failure() const;

    // Called after each commit with its duration and the number of records (metrics).
    void on_commit(std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer);

    Store& store() { return store_; }

  private:
    struct Entry;

    Store& store_;
    mutable std::mutex mutex_;
    std::condition_variable committed_;
    std::vector<Entry*> queue_;
    bool committing_ = false;
    std::int64_t seq_;  // including a batch being committed
    ChainHash head_;
    std::int64_t committed_seq_;  // durable
    ChainHash committed_head_;
    std::optional<std::string> failure_;
    std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer_;
};

}  // namespace dkim::jit

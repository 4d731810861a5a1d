#pragma once
// Group commit in front of the Store. Every state change and every audit record goes
// through the journal, and is durable (one transaction, fsync'd) before the writer is told
// so. One committer thread takes everything queued since its last commit and commits it in
// one transaction: concurrent writers share one fsync, so thousands of signatures a second
// cost a few hundred fsyncs, not thousands.
//
// submit() queues and returns at once; wait() on the ticket blocks until the batch holding it
// is durable. That lets a signer start the durable write of a signature's record and sign
// with the token meanwhile, releasing the signature only when both are done (write-ahead,
// with the fsync hidden behind the token's own latency). write() is submit() + wait().
//
// The journal numbers the records and chains their hashes in commit order, and keeps their
// times in that order too: a record dated before the one committed ahead of it (two writers
// that read the clock in one order and committed in the other, or a clock stepped back) takes
// that one's time, so that times never decrease along the chain (`audit verify` checks it).
// A SigningTally without an hour is dated with the time its ticket's first record got so.
// When a commit
// fails, nothing of the batch is kept and every writer in it gets the error: the caller must
// then not release the signature or acknowledge the decision (fail closed).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dkim/jit/store.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::jit {

// What dkim-signerd sets (Journal::set_commit_delay): shorter than a commit (an fsync of SQLite's
// WAL or PostgreSQL's, a few hundred microseconds), longer than a client's turn-around on the
// socket (tens of microseconds).
inline constexpr std::chrono::microseconds kSignerdCommitDelay{250};

class Journal {
  public:
    class Ticket;

    Journal(Store& store, std::int64_t seq, const ChainHash& head);
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;
    // Commits what is queued, then stops the committer.
    ~Journal();

    // `claim`: the grant whose use this signature spends (CommitEntry::claim): a store shared by
    // several nodes refuses the ticket when that grant has ended elsewhere.
    std::shared_ptr<Ticket> submit(std::vector<Mutation> mutations,
                                   std::vector<AuditRecord> records, std::int64_t claim = 0,
                                   TimePoint claim_at = {});
    // Durable on success. The records' seq and hash are filled in.
    Expected<void, std::string> write(std::vector<Mutation> mutations,
                                      std::vector<AuditRecord>& records);
    Expected<void, std::string> write(std::vector<Mutation> mutations, AuditRecord record);
    // A checkpoint record, then `records`, in one commit and with consecutive numbers: the
    // committer calls `make` with the seq and hash of the record just before the checkpoint
    // (the end of the log as this commit will leave it), so that the checkpoint covers
    // exactly the record before it whatever other writers queued meanwhile, and the time of
    // that record: the checkpoint is dated no earlier (its time is signed, so the journal
    // cannot move it afterwards). `make` runs on the committer thread (it may use the token;
    // other writers wait for it). On success `records` holds the checkpoint record first,
    // then the others, numbered and hashed.
    using CheckpointMaker = jit::CheckpointMaker;
    Expected<void, std::string> write_checkpoint(CheckpointMaker make,
                                                 std::vector<AuditRecord>& records);

    // The durable end of the log.
    std::int64_t seq() const;
    ChainHash head() const;
    // seq and head of the same moment, both durable.
    std::pair<std::int64_t, ChainHash> position() const;
    // The reason of the last failed commit, cleared by the next successful one.
    std::optional<std::string> failure() const;

    // Called after each commit with its duration, the number of records and the outcome.
    void on_commit(std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer);

    Store& store() { return store_; }

    // Group commit across clients. A writer on its way (a signature request, from its start to
    // its answer) holds a Writer; one that answered less than the commit delay ago counts as
    // coming back (a client asks again as soon as it has its answer), until it does or the
    // delay passes. When the committer finds fewer entries queued than writers on their way, it
    // waits up to the commit delay for the others before it commits (as PostgreSQL's
    // commit_delay with commit_siblings): with two clients the commits otherwise alternate,
    // one record per fsync, and each signature waits for the other's commit as well as its
    // own. One writer alone never waits. The delay is 0 (off) until set.
    class Writer {
      public:
        explicit Writer(Journal& journal);
        ~Writer();
        Writer(const Writer&) = delete;
        Writer& operator=(const Writer&) = delete;

      private:
        Journal& journal_;
    };
    void set_commit_delay(std::chrono::microseconds delay);

  private:
    // Everything the lock guards. The committer holds it only to take the queue and the end of
    // the log, and again to record how the commit went: never while the store commits.
    struct State {
        std::deque<std::shared_ptr<Ticket>> queue;
        bool stopping = false;
        // The durable end of the log: only the committer changes it, after a successful commit.
        std::int64_t seq = 0;
        ChainHash head{};
        TimePoint time{};  // the time of the last record committed
        std::optional<std::string> failure;
        std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer;
        std::size_t writers = 0;                                     // Writers alive
        std::deque<std::chrono::steady_clock::time_point> answered;  // Writers ended, oldest first
        std::chrono::microseconds commit_delay{0};
    };

    void run();

    Store& store_;
    LockGuarded<State> state_;
    // Signalled when a ticket is queued, a Writer ends and the journal stops; waited on with
    // state_ locked.
    std::condition_variable queued_;
    std::thread committer_;
};

class Journal::Ticket {
  public:
    // Blocks until the batch holding this entry is committed (or failed).
    Expected<void, std::string> wait();
    // The records as numbered and hashed by the commit (valid after a successful wait()).
    const std::vector<AuditRecord>& records() const { return records_; }

  private:
    friend class Journal;
    // Not behind a lock: the writer fills them before the ticket is queued, the committer alone
    // uses them while it commits, and the writer reads the records after wait() (the journal's
    // lock, then completion_'s, hand them over).
    std::vector<Mutation> mutations_;
    std::vector<AuditRecord> records_;
    CheckpointMaker make_;
    std::int64_t claim_ = 0;
    TimePoint claim_at_{};
    struct Completion {
        bool finished = false;
        Expected<void, std::string> result{};
    };
    LockGuarded<Completion> completion_;
    // Signalled when the batch holding this entry is committed or failed; waited on with
    // completion_ locked.
    std::condition_variable done_;
};

}  // namespace dkim::jit

#include "dkim/jit/journal.hpp"

#include <algorithm>

namespace dkim::jit {

Journal::Journal(Store& store, std::int64_t seq, const ChainHash& head)
    : store_(store), seq_(seq), head_(head) {
    if (seq > 0) {
        // Unreadable here: the commit that follows fails the same way, or the verifier names
        // the first record out of order.
        if (auto last = store_.audit_records(seq, 1); last && !last->empty()) {
            time_ = last->back().time;
        }
    }
    committer_ = std::thread([this] { run(); });
}

Journal::~Journal() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    queued_.notify_all();
    committer_.join();
}

std::int64_t Journal::seq() const {
    return position().first;
}

ChainHash Journal::head() const {
    return position().second;
}

std::pair<std::int64_t, ChainHash> Journal::position() const {
    std::lock_guard lock(mutex_);
    return {seq_, head_};  // only the committer changes them, after a successful commit
}

std::optional<std::string> Journal::failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
}

void Journal::on_commit(std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer) {
    std::lock_guard lock(mutex_);
    observer_ = std::move(observer);
}

std::shared_ptr<Journal::Ticket> Journal::submit(std::vector<Mutation> mutations,
                                                 std::vector<AuditRecord> records) {
    auto ticket = std::make_shared<Ticket>();
    ticket->mutations_ = std::move(mutations);
    ticket->records_ = std::move(records);
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(ticket);
    }
    queued_.notify_one();
    return ticket;
}

Expected<void, std::string> Journal::write(std::vector<Mutation> mutations,
                                           std::vector<AuditRecord>& records) {
    auto ticket = submit(std::move(mutations), std::move(records));
    auto result = ticket->wait();
    records = ticket->records();
    return result;
}

Expected<void, std::string> Journal::write(std::vector<Mutation> mutations, AuditRecord record) {
    std::vector<AuditRecord> records{std::move(record)};
    return write(std::move(mutations), records);
}

Expected<void, std::string> Journal::write_checkpoint(CheckpointMaker make,
                                                      std::vector<AuditRecord>& records) {
    auto ticket = std::make_shared<Ticket>();
    ticket->records_ = std::move(records);
    ticket->make_ = std::move(make);
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(ticket);
    }
    queued_.notify_one();
    auto result = ticket->wait();
    records = ticket->records();
    return result;
}

Expected<void, std::string> Journal::Ticket::wait() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return finished_; });
    return result_;
}

void Journal::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) {
            return;  // stopping, and everything queued was committed
        }
        std::deque<std::shared_ptr<Ticket>> batch;
        batch.swap(queue_);
        std::int64_t seq = seq_;
        ChainHash head = head_;
        TimePoint time = time_;
        auto observer = observer_;
        lock.unlock();

        std::vector<Mutation> mutations;
        std::vector<AuditRecord> records;
        for (const auto& ticket : batch) {
            for (Mutation& m : ticket->mutations_) {
                mutations.push_back(std::move(m));
            }
            if (ticket->make_) {
                // The head this commit leaves before the checkpoint: earlier tickets of the
                // batch are numbered already.
                ticket->records_.insert(ticket->records_.begin(), ticket->make_(seq, head, time));
                ticket->make_ = nullptr;
            }
            for (AuditRecord& r : ticket->records_) {
                r.time = std::max(r.time, time);
                time = r.time;
                r.seq = ++seq;
                r.hash = chain_hash(head, r);
                head = r.hash;
                records.push_back(r);
            }
        }
        const auto started = std::chrono::steady_clock::now();
        auto result = store_.commit(mutations, records);
        const auto took = std::chrono::steady_clock::now() - started;
        if (observer) {
            observer(std::chrono::duration_cast<std::chrono::nanoseconds>(took), records.size(),
                     result.has_value());
        }

        lock.lock();
        if (result) {
            seq_ = seq;
            head_ = head;
            time_ = time;
            failure_.reset();
        } else {
            failure_ = result.error();  // seq_ and head_ stay: the batch never happened
        }
        lock.unlock();
        for (const auto& ticket : batch) {
            {
                std::lock_guard done(ticket->mutex_);
                ticket->result_ = result;
                ticket->finished_ = true;
            }
            ticket->done_.notify_all();
        }
        lock.lock();
    }
}

}  // namespace dkim::jit

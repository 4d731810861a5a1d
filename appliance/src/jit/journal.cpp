#include "dkim/jit/journal.hpp"

namespace dkim::jit {

struct Journal::Entry {
    std::vector<Mutation> mutations;
    std::vector<AuditRecord>* records = nullptr;
    bool done = false;
    Expected<void, std::string> result{};
};

Journal::Journal(Store& store, std::int64_t seq, const ChainHash& head)
    : store_(store), seq_(seq), head_(head), committed_seq_(seq), committed_head_(head) {}

std::int64_t Journal::seq() const {
    std::lock_guard lock(mutex_);
    return committed_seq_;
}

ChainHash Journal::head() const {
    std::lock_guard lock(mutex_);
    return committed_head_;
}

std::pair<std::int64_t, ChainHash> Journal::position() const {
    std::lock_guard lock(mutex_);
    return {committed_seq_, committed_head_};
}

std::optional<std::string> Journal::failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
}

void Journal::on_commit(std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer) {
    std::lock_guard lock(mutex_);
    observer_ = std::move(observer);
}

Expected<void, std::string> Journal::write(std::vector<Mutation> mutations, AuditRecord record) {
    std::vector<AuditRecord> records{std::move(record)};
    return write(std::move(mutations), records);
}

Expected<void, std::string> Journal::write(std::vector<Mutation> mutations,
                                           std::vector<AuditRecord>& records) {
    Entry entry;
    entry.mutations = std::move(mutations);
    entry.records = &records;
    std::unique_lock lock(mutex_);
    queue_.push_back(&entry);
    while (!entry.done) {
        if (committing_) {
            committed_.wait(lock);
            continue;
        }
        // Lead a commit of everything queued so far (including our own entry).
        committing_ = true;
        std::vector<Entry*> batch;
        batch.swap(queue_);
        const std::int64_t seq_before = seq_;
        const ChainHash head_before = head_;
        std::vector<Mutation> all_mutations;
        std::vector<AuditRecord> all_records;
        for (Entry* e : batch) {
            for (Mutation& m : e->mutations) {
                all_mutations.push_back(std::move(m));
            }
            for (AuditRecord& r : *e->records) {
                r.seq = ++seq_;
                r.hash = chain_hash(head_, r);
                head_ = r.hash;
                all_records.push_back(r);
            }
        }
        auto observer = observer_;
        lock.unlock();
        const auto started = std::chrono::steady_clock::now();
        auto result = store_.commit(all_mutations, all_records);
        const auto took = std::chrono::steady_clock::now() - started;
        if (observer) {
            observer(std::chrono::duration_cast<std::chrono::nanoseconds>(took), all_records.size(),
                     result.has_value());
        }
        lock.lock();
        if (result) {
            failure_.reset();
            committed_seq_ = seq_;
            committed_head_ = head_;
        } else {
            seq_ = seq_before;
            head_ = head_before;
            failure_ = result.error();
        }
        for (Entry* e : batch) {
            e->result = result;
            e->done = true;
        }
        committing_ = false;
        committed_.notify_all();
    }
    return entry.result;
}

}  // namespace dkim::jit

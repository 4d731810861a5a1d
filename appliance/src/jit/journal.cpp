#include "dkim/jit/journal.hpp"

#include <algorithm>

namespace dkim::jit {

Journal::Journal(Store& store, std::int64_t seq, const ChainHash& head) : store_(store) {
    TimePoint time{};
    if (seq > 0) {
        // Unreadable here: the commit that follows fails the same way, or the verifier names
        // the first record out of order.
        if (auto last = store_.audit_records(seq, 1); last && !last->empty()) {
            time = last->back().time;
        }
    }
    {
        auto state = state_.lock();
        state->seq = seq;
        state->head = head;
        state->time = time;
    }
    committer_ = std::thread([this] { run(); });
}

Journal::~Journal() {
    state_.lock()->stopping = true;
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
    const auto state = state_.read_only_lock();
    return {state->seq, state->head};  // only the committer changes them, after a successful commit
}

std::optional<std::string> Journal::failure() const {
    return state_.read_only_lock()->failure;
}

void Journal::on_commit(std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer) {
    state_.lock()->observer = std::move(observer);
}

Journal::Writer::Writer(Journal& journal) : journal_(journal) {
    auto state = journal_.state_.lock();
    ++state->writers;
    if (!state->answered.empty()) {
        state->answered.pop_front();  // one that answered is back
    }
}

Journal::Writer::~Writer() {
    {
        auto state = journal_.state_.lock();
        --state->writers;
        if (state->commit_delay.count() > 0) {
            state->answered.push_back(std::chrono::steady_clock::now());
        }
    }
    journal_.queued_.notify_one();
}

void Journal::set_commit_delay(std::chrono::microseconds delay) {
    state_.lock()->commit_delay = delay;
}

std::shared_ptr<Journal::Ticket> Journal::submit(std::vector<Mutation> mutations,
                                                 std::vector<AuditRecord> records,
                                                 std::int64_t claim, TimePoint claim_at) {
    auto ticket = std::make_shared<Ticket>();
    ticket->mutations_ = std::move(mutations);
    ticket->records_ = std::move(records);
    ticket->claim_ = claim;
    ticket->claim_at_ = claim_at;
    state_.lock()->queue.push_back(ticket);
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
    state_.lock()->queue.push_back(ticket);
    queued_.notify_one();
    auto result = ticket->wait();
    records = ticket->records();
    return result;
}

Expected<void, std::string> Journal::Ticket::wait() {
    auto completion = completion_.lock();
    done_.wait(completion.lock(), [&completion] { return completion->finished; });
    return completion->result;
}

// The lock is taken twice per batch: to take the queue and the end of the log, then to record
// the commit's outcome; the tickets are told after that, and the next wait takes it again.
void Journal::run() {
    for (;;) {
        std::deque<std::shared_ptr<Ticket>> batch;
        std::int64_t seq = 0;
        ChainHash head{};
        TimePoint time{};
        std::function<void(std::chrono::nanoseconds, std::size_t, bool)> observer;
        {
            auto state = state_.lock();
            queued_.wait(state.lock(),
                         [&state] { return state->stopping || !state->queue.empty(); });
            if (state->commit_delay.count() > 0) {
                // Others are on their way (or just answered and about to ask again): one
                // commit for all of them rather than one each.
                const auto expected = [&state] {
                    const auto since = std::chrono::steady_clock::now() - state->commit_delay;
                    while (!state->answered.empty() && state->answered.front() < since) {
                        state->answered.pop_front();
                    }
                    return state->writers + state->answered.size();
                };
                if (state->queue.size() < expected()) {
                    queued_.wait_for(state.lock(), state->commit_delay, [&state, &expected] {
                        return state->stopping || state->queue.size() >= expected();
                    });
                }
            }
            if (state->queue.empty()) {
                return;  // stopping, and everything queued was committed
            }
            batch.swap(state->queue);
            seq = state->seq;
            head = state->head;
            time = state->time;
            observer = state->observer;
        }

        std::vector<CommitEntry> entries;
        entries.reserve(batch.size());
        for (const auto& ticket : batch) {
            CommitEntry e;
            e.mutations = &ticket->mutations_;
            e.records = &ticket->records_;
            e.make = ticket->make_ ? &ticket->make_ : nullptr;
            e.claim = ticket->claim_;
            e.claim_at = ticket->claim_at_;
            entries.push_back(std::move(e));
        }
        std::size_t count = 0;
        for (const auto& ticket : batch) {
            count += ticket->records_.size() + (ticket->make_ ? 1 : 0);
        }
        const auto started = std::chrono::steady_clock::now();
        auto result = store_.append(entries, ChainEnd{seq, head, time});
        const auto took = std::chrono::steady_clock::now() - started;
        if (observer) {
            observer(std::chrono::duration_cast<std::chrono::nanoseconds>(took), count,
                     result.has_value());
        }

        {
            auto state = state_.lock();
            if (result) {
                state->seq = result->seq;
                state->head = result->head;
                state->time = result->time;
                state->failure.reset();
            } else {
                state->failure = result.error();  // seq and head stay: the batch never happened
            }
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto& ticket = batch[i];
            ticket->make_ = nullptr;
            {
                auto completion = ticket->completion_.lock();
                if (!result) {
                    completion->result = unexpected(result.error());
                } else if (entries[i].refused) {
                    completion->result = unexpected(*entries[i].refused);
                } else {
                    completion->result = {};
                }
                completion->finished = true;
            }
            ticket->done_.notify_all();
        }
    }
}

ChainEnd chain_entries(std::vector<CommitEntry>& entries, ChainEnd end, const std::string& node) {
    for (CommitEntry& entry : entries) {
        if (entry.refused) {
            continue;
        }
        if (entry.make != nullptr && *entry.make) {
            // The head this commit leaves before the checkpoint: earlier entries of the batch
            // are numbered already.
            entry.records->insert(entry.records->begin(),
                                  (*entry.make)(end.seq, end.head, end.time));
        }
        for (AuditRecord& r : *entry.records) {
            r.time = std::max(r.time, end.time);
            end.time = r.time;
            r.seq = ++end.seq;
            r.node = node;
            r.hash = chain_hash(end.head, r);
            end.head = r.hash;
        }
        for (Mutation& m : *entry.mutations) {
            // A signing tally counts in the hour of its record as dated here (store.hpp).
            if (auto* tally = std::get_if<SigningTally>(&m);
                tally != nullptr && !tally->hour && !entry.records->empty()) {
                tally->hour = signing_hour(entry.records->front().time);
            }
        }
    }
    return end;
}

// A store that only this process writes: the journal's end is the log's end.
Expected<ChainEnd, std::string> Store::append(std::vector<CommitEntry>& entries,
                                              const ChainEnd& local) {
    const ChainEnd end = chain_entries(entries, local, {});
    std::vector<Mutation> mutations;
    std::vector<AuditRecord> records;
    for (const CommitEntry& entry : entries) {
        mutations.insert(mutations.end(), entry.mutations->begin(), entry.mutations->end());
        records.insert(records.end(), entry.records->begin(), entry.records->end());
    }
    if (auto committed = commit(mutations, records); !committed) {
        return unexpected(committed.error());
    }
    return end;
}

}  // namespace dkim::jit

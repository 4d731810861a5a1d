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

std::shared_ptr<Journal::Ticket> Journal::submit(std::vector<Mutation> mutations,
                                                 std::vector<AuditRecord> records) {
    auto ticket = std::make_shared<Ticket>();
    ticket->mutations_ = std::move(mutations);
    ticket->records_ = std::move(records);
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
            if (state->queue.empty()) {
                return;  // stopping, and everything queued was committed
            }
            batch.swap(state->queue);
            seq = state->seq;
            head = state->head;
            time = state->time;
            observer = state->observer;
        }

        std::vector<Mutation> mutations;
        std::vector<AuditRecord> records;
        for (const auto& ticket : batch) {
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
            for (Mutation& m : ticket->mutations_) {
                // A signing tally counts in the hour of its record as dated here (store.hpp).
                if (auto* tally = std::get_if<SigningTally>(&m);
                    tally != nullptr && !tally->hour && !ticket->records_.empty()) {
                    tally->hour = signing_hour(ticket->records_.front().time);
                }
                mutations.push_back(std::move(m));
            }
        }
        const auto started = std::chrono::steady_clock::now();
        auto result = store_.commit(mutations, records);
        const auto took = std::chrono::steady_clock::now() - started;
        if (observer) {
            observer(std::chrono::duration_cast<std::chrono::nanoseconds>(took), records.size(),
                     result.has_value());
        }

        {
            auto state = state_.lock();
            if (result) {
                state->seq = seq;
                state->head = head;
                state->time = time;
                state->failure.reset();
            } else {
                state->failure = result.error();  // seq and head stay: the batch never happened
            }
        }
        for (const auto& ticket : batch) {
            {
                auto completion = ticket->completion_.lock();
                completion->result = result;
                completion->finished = true;
            }
            ticket->done_.notify_all();
        }
    }
}

}  // namespace dkim::jit

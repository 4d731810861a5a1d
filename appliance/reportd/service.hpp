#pragma once
// dkim-reportd's operations, socket-free: a request (a channel message) and the peer's kind in,
// the answer out. Submissions are stored durably, then read; queries read the store and join it
// with signerd's signing record. One store connection, used under one lock.

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/reports/channel.hpp"
#include "findings.hpp"
#include "spool.hpp"
#include "store.hpp"

namespace dkim::reportd {

// signerd's side of the join (dkim-signerd's socket as its reports peer; a fake in tests).
class SigningRecord {
  public:
    virtual ~SigningRecord() = default;
    // One domain's summary (signerd caps a reply's rows: a year of one domain fits, a year of
    // fifty may not).
    virtual Expected<ipc::SigningSummaryReply, std::string> summary(std::int64_t from,
                                                                    std::int64_t until,
                                                                    const std::string& domain) = 0;
    // The (domain, selector) pairs signerd signs with now.
    virtual Expected<std::vector<std::pair<std::string, std::string>>, std::string> active_keys(
        const std::vector<std::string>& domains) = 0;
};

// Where findings worth a webhook go (dkim-notifyd's outbox; a fake in tests). put() is durable
// when it returns.
class FindingSink {
  public:
    virtual ~FindingSink() = default;
    virtual Expected<void, std::string> put(const std::string& body, std::int64_t unix_ms) = 0;
};

class Service {
  public:
    // `reader`: a second connection to the same store for the queries (the dashboard, findings,
    // lists, metrics). SQLite's WAL lets it read the last commit while `store` is in the middle
    // of reading a large submission, so the console never waits for a report being parsed;
    // without it, queries share `store` and its lock.
    Service(ReportStore& store, SigningRecord& signing, const Clock& clock, const Config& config,
            FindingSink* notifications = nullptr, ReportStore* reader = nullptr);

    // `spooled`: the request's body when the server spooled it out of memory (request.body is
    // then empty).
    reports::channel::Message handle(PeerKind peer, const reports::channel::Message& request,
                                     const SpooledBody* spooled = nullptr);

    // Submissions stored but not read (the daemon stopped while reading them): read them now.
    std::size_t recover();

    // The findings of the last readiness window that are worth a webhook and were not sent yet,
    // spooled to the FindingSink; how many. Called after each submission that stored reports.
    std::size_t notify_new_findings();
    // After an answer went out (the server calls it): the webhook's findings, when a submission
    // stored reports. Kept off the answer's path, so a relay's 250 never waits for signerd.
    void after_answer();
    // The bytes of submissions read more than keep_submissions_days ago, deleted (at most once
    // an hour; the reports read from them stay): how many.
    std::size_t forget_old_submissions();

  private:
    reports::channel::Message submit(const reports::channel::Message& request, PeerKind peer,
                                     const SpooledBody* spooled);
    reports::channel::Message list_reports(const boost::json::object& args);
    reports::channel::Message dashboard(const boost::json::object& args);
    reports::channel::Message findings(const boost::json::object& args);
    reports::channel::Message status();
    reports::channel::Message metrics();
    bool admit_submission(std::int64_t now_ms);
    // The summaries of `domains` (at most kMaxSummaryDomains of them) merged into one.
    Expected<ipc::SigningSummaryReply, std::string> summaries(
        std::int64_t from, std::int64_t until, const std::vector<std::string>& domains);

    ReportStore& store_;
    SigningRecord& signing_;
    const Clock& clock_;
    const Config& config_;
    FindingSink* notifications_;
    std::atomic<bool> pending_notification_{false};
    std::atomic<std::int64_t> last_forget_ms_{0};
    std::mutex store_mutex_;  // the writing connection
    std::mutex reader_own_mutex_;
    ReportStore& reader_;
    std::mutex& read_mutex_;  // reader_own_mutex_, or store_mutex_ when reader_ is store_
    std::mutex rate_mutex_;
    std::deque<std::int64_t> recent_;  // submission times (ms) in the last minute
};

// "2024-01-09" for a day number.
std::string day_text(std::int64_t day);

}  // namespace dkim::reportd

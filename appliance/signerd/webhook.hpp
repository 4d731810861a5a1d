#pragma once
// Notifications to an operator's webhook: new pending requests, approvals, denials,
// revokes, expiries and break-glass. Informational only, never an approval channel.
//
//   POST <url>
//   Content-Type: application/json
//   X-DKIM-Signerd-Timestamp: 1790000000
//   X-DKIM-Signerd-Signature: v1=<hex HMAC-SHA256(key, timestamp + "." + body)>
//
// The receiver recomputes the HMAC and refuses a timestamp older than a few minutes
// (replay). Deliveries run on their own thread with a bounded queue; a failed delivery is
// retried with exponential back-off (1 s, 2 s, 4 s, ... up to 5 attempts), and nothing here
// ever blocks a signature or a decision.

#include <condition_variable>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "dkim/clock.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::signerd {

std::string event_json(const jit::Event& event);
// "v1=<hex>" over timestamp + "." + body.
std::string webhook_signature(std::string_view key, std::int64_t timestamp, std::string_view body);

class Webhook {
  public:
    struct Options {
        std::string url;
        std::string key;  // HMAC key (wiped on destruction)
        std::size_t queue_limit = 1000;
        int attempts = 5;
        std::chrono::milliseconds first_backoff{1000};
        std::chrono::milliseconds timeout{5000};
    };
    // `clock` (which must outlive the webhook) timestamps each signed POST.
    Webhook(Options options, const Clock& clock, std::function<void(bool delivered)> on_result);
    Webhook(const Webhook&) = delete;
    Webhook& operator=(const Webhook&) = delete;
    ~Webhook();

    // Never blocks; drops the oldest event when the queue is full.
    void notify(const jit::Event& event);
    void stop();

  private:
    void run();
    // "" on success, else why it failed.
    std::string deliver(const std::string& body);

    struct Queue {
        std::deque<std::string> bodies;  // the events' JSON, oldest first
        bool stopping = false;
    };

    Options options_;
    const Clock& clock_;
    std::function<void(bool)> on_result_;
    LockGuarded<Queue> queue_;
    std::condition_variable wake_;  // with queue_'s lock
    std::thread thread_;
};

}  // namespace dkim::signerd

#include "webhook.hpp"

#include <chrono>

#include "dkim/base/wipe.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/text/json.hpp"
#include "webhook_post.hpp"

namespace dkim::signerd {

std::string event_json(const jit::Event& e) {
    const auto ms = to_unix_ms(e.time);
    return "{\"type\":" + text::json_quote(e.type) +
           ",\"request_id\":" + std::to_string(e.request_id) +
           ",\"grant_id\":" + std::to_string(e.grant_id) +
           ",\"scope\":" + text::json_quote(e.scope) + ",\"actor\":" + text::json_quote(e.actor) +
           ",\"reason\":" + text::json_quote(e.reason) + ",\"time_ms\":" + std::to_string(ms) + "}";
}

std::string webhook_signature(std::string_view key, std::int64_t timestamp, std::string_view body) {
    return notify::webhook_signature(key, timestamp, body);
}

Webhook::Webhook(Options options, const Clock& clock, std::function<void(bool)> on_result)
    : options_(std::move(options)), clock_(clock), on_result_(std::move(on_result)) {
    thread_ = std::thread([this] { run(); });
}

Webhook::~Webhook() {
    stop();
    base::wipe(options_.key);
}

void Webhook::stop() {
    queue_.lock()->stopping = true;
    wake_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Webhook::notify(const jit::Event& event) {
    {
        auto queue = queue_.lock();
        if (queue->bodies.size() >= options_.queue_limit) {
            queue->bodies.pop_front();
        }
        queue->bodies.push_back(event_json(event));
    }
    wake_.notify_one();
}

void Webhook::run() {
    auto queue = queue_.lock();
    for (;;) {
        wake_.wait(queue.lock(), [&queue] { return queue->stopping || !queue->bodies.empty(); });
        if (queue->stopping) {
            return;
        }
        std::string body = std::move(queue->bodies.front());
        queue->bodies.pop_front();
        auto backoff = options_.first_backoff;
        for (int attempt = 1; attempt <= options_.attempts; ++attempt) {
            queue.lock().unlock();  // no delivery holds up notify()
            const std::string problem = deliver(body);
            queue.lock().lock();
            if (on_result_) {
                on_result_(problem.empty());
            }
            if (problem.empty() || attempt == options_.attempts) {
                break;
            }
            if (wake_.wait_for(queue.lock(), backoff, [&queue] { return queue->stopping; })) {
                return;
            }
            backoff *= 2;
        }
    }
}

std::string Webhook::deliver(const std::string& body) {
    return notify::post_signed(options_.url, options_.key, body, options_.timeout, clock_.now());
}

}  // namespace dkim::signerd

#include "reports_api.hpp"

namespace dkim::web {

ReportsPool::ReportsPool(std::string socket_path) : socket_path_(std::move(socket_path)) {}

Expected<reports::channel::Message, std::string> ReportsPool::call(
    const reports::channel::Message& request) {
    std::unique_ptr<reports::channel::Client> client;
    {
        auto idle = idle_.lock();
        if (!idle->empty()) {
            client = std::move(idle->back());
            idle->pop_back();
        }
    }
    const bool reused = client != nullptr;
    if (!client) {
        client = std::make_unique<reports::channel::Client>(socket_path_);
    }
    auto answer = client->call(request);
    if (!answer && reused) {
        // A kept connection that reportd closed meanwhile (a restart): once more, afresh.
        client = std::make_unique<reports::channel::Client>(socket_path_);
        answer = client->call(request);
    }
    if (answer) {
        idle_.lock()->push_back(std::move(client));
    }
    return answer;
}

}  // namespace dkim::web

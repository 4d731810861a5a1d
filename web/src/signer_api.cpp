#include "signer_api.hpp"

namespace dkim::web {

SignerPool::SignerPool(std::string socket_path, ipc::ClientOptions options)
    : socket_path_(std::move(socket_path)), options_(options) {}

Expected<ipc::Reply, std::string> SignerPool::call(ipc::Request& request) {
    std::unique_ptr<ipc::SignerClient> client;
    {
        auto idle = idle_.lock();
        if (!idle->empty()) {
            client = std::move(idle->back());
            idle->pop_back();
        }
    }
    if (!client) {
        client = std::make_unique<ipc::SignerClient>(socket_path_, options_);
    }
    auto reply = client->call(request);
    ipc::wipe_secrets(request);
    if (reply) {
        idle_.lock()->push_back(std::move(client));
    }
    return reply;
}

}  // namespace dkim::web

#include "signer_api.hpp"

#include <openssl/crypto.h>

namespace dkim::web {

void wipe_secret(std::string& secret) {
    if (!secret.empty()) {
        OPENSSL_cleanse(secret.data(), secret.size());
    }
    secret.clear();
}

void wipe_secrets(ipc::Request& request) {
    std::visit(
        [](auto& r) {
            if constexpr (requires { r.auth; }) {
                wipe_secret(r.auth.password);
                wipe_secret(r.auth.token);
                wipe_secret(r.auth.totp);
            }
            if constexpr (requires { r.password; }) {
                wipe_secret(r.password);
            }
            if constexpr (requires { r.pin; }) {
                wipe_secret(r.pin);
            }
            if constexpr (requires { r.code; }) {
                wipe_secret(r.code);
            }
        },
        request);
}

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
    wipe_secrets(request);
    if (reply) {
        idle_.lock()->push_back(std::move(client));
    }
    return reply;
}

}  // namespace dkim::web

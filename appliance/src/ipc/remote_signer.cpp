#include "dkim/ipc/remote_signer.hpp"

namespace dkim::ipc {

Expected<std::string, std::string> RemoteSigner::sign(std::string_view data) {
    last_code_.reset();
    last_request_id_ = 0;
    auto reply = client_.call(SignRequest{domain_, selector_, std::string(to_string(algorithm_)),
                                          std::string(data), smtp_client_});
    if (!reply) {
        last_code_ = ErrorCode::unavailable;
        return unexpected(reply.error());
    }
    if (auto* signed_reply = std::get_if<SignReply>(&*reply)) {
        return std::move(signed_reply->signature);
    }
    if (auto* error = std::get_if<ErrorReply>(&*reply)) {
        last_code_ = error->code;
        last_request_id_ = error->request_id;
        return unexpected(error->describe());
    }
    last_code_ = ErrorCode::protocol;
    return unexpected(std::string("unexpected reply from dkim-signerd"));
}

}  // namespace dkim::ipc

#pragma once
// dkim::Signer through dkim-signerd: the key stays in the token, signerd checks the grant.
// Used by dkim-relayd and by `dkim-appliance sign --signerd`.

#include <cstdint>
#include <string>

#include "dkim/dkim/signer.hpp"
#include "dkim/ipc/client.hpp"

namespace dkim::ipc {

class RemoteSigner final : public Signer {
  public:
    RemoteSigner(SignerClient& client, std::string domain, std::string selector,
                 SigningAlgorithm algorithm, std::string smtp_client = {})
        : client_(client),
          domain_(std::move(domain)),
          selector_(std::move(selector)),
          algorithm_(algorithm),
          smtp_client_(std::move(smtp_client)) {}

    SigningAlgorithm algorithm() const override { return algorithm_; }
    // Errors: "locked: ... (pending request 12)", "unavailable: ...", or the transport's.
    Expected<std::string, std::string> sign(std::string_view data) override;

    // The code of the last refusal ("locked", "unavailable", ...), "" after a success.
    std::optional<ErrorCode> last_code() const { return last_code_; }
    std::int64_t last_request_id() const { return last_request_id_; }

  private:
    SignerClient& client_;
    std::string domain_;
    std::string selector_;
    SigningAlgorithm algorithm_;
    std::string smtp_client_;  // stated in each request (SignRequest::smtp_client)
    std::optional<ErrorCode> last_code_;
    std::int64_t last_request_id_ = 0;
};

}  // namespace dkim::ipc

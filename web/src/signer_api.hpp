#pragma once
// How dkim-webd reaches dkim-signerd: one request, one reply. SignerPool is the real one (a
// few connections to signerd's socket, one per request in flight); tests use a fake.

#include <memory>
#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/ipc/client.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::web {

class SignerApi {
  public:
    virtual ~SignerApi() = default;
    // The reply, or why there is none (signerd cannot be reached). Secrets in `request` are
    // wiped before this returns (ipc::wipe_secrets).
    virtual Expected<ipc::Reply, std::string> call(ipc::Request& request) = 0;
};

class SignerPool final : public SignerApi {
  public:
    explicit SignerPool(std::string socket_path, ipc::ClientOptions options = {});
    Expected<ipc::Reply, std::string> call(ipc::Request& request) override;

  private:
    std::string socket_path_;
    ipc::ClientOptions options_;
    LockGuarded<std::vector<std::unique_ptr<ipc::SignerClient>>> idle_;
};

}  // namespace dkim::web

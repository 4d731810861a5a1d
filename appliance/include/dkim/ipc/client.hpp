#pragma once
// A connection to dkim-signerd's Unix socket: one request, one reply, in order. Not shared
// between threads (a relay keeps one per worker). A call on a broken connection reconnects
// once; a request is never sent twice (a sign request that failed after it was sent is not
// retried here: the caller answers 4xx and the client retries the mail).

#include <chrono>
#include <cstdint>
#include <string>

#include "dkim/expected.hpp"
#include "dkim/ipc/protocol.hpp"

namespace dkim::ipc {

struct ClientOptions {
    std::chrono::milliseconds timeout{30'000};  // per call: write, signerd's work, read
    // A connection idle for longer is replaced before use (signerd closes idle connections
    // after 60 s; reconnecting first avoids sending into a connection it is closing).
    std::chrono::milliseconds max_idle{20'000};
};

class SignerClient {
  public:
    explicit SignerClient(std::string socket_path, ClientOptions options = {});
    SignerClient(const SignerClient&) = delete;
    SignerClient& operator=(const SignerClient&) = delete;
    SignerClient(SignerClient&& other) noexcept;
    SignerClient& operator=(SignerClient&& other) noexcept;
    ~SignerClient();

    // The reply, or why there is none ("cannot connect to /run/...: No such file or directory").
    Expected<Reply, std::string> call(const Request& request);
    void close();

  private:
    Expected<void, std::string> connect();

    std::string path_;
    ClientOptions options_;
    int fd_ = -1;
    std::chrono::steady_clock::time_point last_used_;
};

// signerd's signing summary for [from, until) (unix seconds), of `domain` or, empty, of every
// domain: for dkim-reportd (the reports peer) and the operator CLI (the admin peer). The
// refusal is signerd's (invalid: the range is over kMaxSummaryRange or holds more than
// kMaxSummaryRows hours or grants, so ask for less; forbidden: not the reports or admin peer);
// no reply at all reads as unavailable, an unexpected one as protocol.
Expected<SigningSummaryReply, ErrorReply> signing_summary(SignerClient& client, std::int64_t from,
                                                          std::int64_t until,
                                                          const std::string& domain = {});

}  // namespace dkim::ipc

#pragma once
// What a handler is given: the request, the client, the dependencies and the time (Context),
// and who asks (Caller, from auth.hpp's authenticate). Context::call is the one way to signerd.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dkim/base/wipe.hpp"
#include "dkim/clock.hpp"
#include "dkim/ipc/protocol.hpp"
#include "handlers.hpp"
#include "response.hpp"
#include "sessions.hpp"

namespace dkim::web::detail {

// A secret read from a body (absent or not), wiped when the handler is done with it.
inline void wipe(std::optional<std::string>& secret) noexcept {
    if (secret) {
        base::wipe(*secret);
    }
}

// Who asks. Its token is wiped when the request is done.
struct Caller {
    ipc::Credentials credentials;  // token (session or API)
    std::optional<BrowserSession> session;
    std::string token;  // the raw token (to forget a session)
    Caller() = default;
    Caller(const Caller&) = delete;
    Caller& operator=(const Caller&) = delete;
    Caller(Caller&&) = default;
    Caller& operator=(Caller&&) = default;
    ~Caller() {
        base::wipe(credentials.token);
        base::wipe(token);
    }
};

struct Context {
    const Request& req;
    const ClientInfo& client;
    Deps& deps;
    TimePoint now;
    std::vector<std::string> params;  // the {id}, {domain} parts of the path
    std::string_view query;

    // Calls signerd (which wipes the secrets in `request`); its refusals and its absence
    // become ApiErrors.
    template <class Reply>
    Result<Reply> call(ipc::Request&& request) {
        auto reply = deps.signer.call(request);
        if (!reply) {
            deps.metrics.signerd_unreachable();
            return unexpected(failure(http::status::service_unavailable, "signerd_unavailable",
                                      "dkim-signerd cannot be reached; nothing was changed"));
        }
        if (const auto* e = std::get_if<ipc::ErrorReply>(&*reply)) {
            return unexpected(from_signerd(*e));
        }
        if (auto* ok = std::get_if<Reply>(&*reply)) {
            return std::move(*ok);
        }
        return unexpected(failure(http::status::bad_gateway, "protocol",
                                  "dkim-signerd answered with an unexpected reply"));
    }
};

}  // namespace dkim::web::detail

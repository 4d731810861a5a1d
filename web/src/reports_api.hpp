#pragma once
// How dkim-webd reaches dkim-reportd (the report store and its findings): one request, one
// answer, over reportd's own socket protocol (dkim/reports/channel.hpp). webd links only the
// channel, never the report parsers: reports are read in reportd, the one process with nothing
// to lose. ReportsPool is the real one (a few connections, one per request in flight); tests
// use a fake.

#include <memory>
#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/lock_guarded.hpp"
#include "dkim/reports/channel.hpp"

namespace dkim::web {

class ReportsApi {
  public:
    virtual ~ReportsApi() = default;
    // The answer ({"ok":true,...} or {"ok":false,"code","error"}), or why there is none
    // (reportd cannot be reached, or broke the protocol).
    virtual Expected<reports::channel::Message, std::string> call(
        const reports::channel::Message& request) = 0;
};

class ReportsPool final : public ReportsApi {
  public:
    explicit ReportsPool(std::string socket_path);
    Expected<reports::channel::Message, std::string> call(
        const reports::channel::Message& request) override;

  private:
    std::string socket_path_;
    LockGuarded<std::vector<std::unique_ptr<reports::channel::Client>>> idle_;
};

}  // namespace dkim::web

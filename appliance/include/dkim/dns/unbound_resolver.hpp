#pragma once
// The production Resolver: libunbound as a stub resolver forwarding to the system's
// nameservers (/etc/resolv.conf) or to one configured upstream ("127.0.0.1:5353", "[::1]:53"),
// with a deadline on every lookup (a dead upstream gives temperror after `timeout`, not after
// unbound's own minutes of retries).

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "dkim/dns/resolver.hpp"
#include "dkim/expected.hpp"

namespace dkim::dns {

struct UnboundOptions {
    std::optional<std::string> upstream;  // IP or IP:PORT; IPv6 as [addr]:port
    std::chrono::milliseconds timeout{5000};
    // DNSSEC: a trust anchor file (e.g. Debian's /usr/share/dns/root.key) turns validation on;
    // answers then say secure, insecure or (as a temporary failure) bogus.
    std::optional<std::string> trust_anchor_file;
};

class UnboundResolver final : public Resolver {
  public:
    static Expected<std::unique_ptr<UnboundResolver>, std::string> create(
        const UnboundOptions& options);
    ~UnboundResolver() override;
    UnboundResolver(const UnboundResolver&) = delete;
    UnboundResolver& operator=(const UnboundResolver&) = delete;

    Answer lookup(std::string_view name, RecordType type) override;

  private:
    struct Impl;
    explicit UnboundResolver(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// "127.0.0.1:5353" -> "127.0.0.1@5353" (unbound's syntax); std::nullopt if malformed.
std::optional<std::string> unbound_forward_address(std::string_view upstream);

}  // namespace dkim::dns

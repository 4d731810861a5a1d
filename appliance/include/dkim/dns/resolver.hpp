#pragma once
// DNS behind an interface (ARCHITECTURE.md: every side effect has a fake): the DKIM verifier
// asks for TXT records; the verifying-mode issue extends this for SPF and DMARC.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/lock_guarded.hpp"

namespace dkim::dns {

enum class LookupStatus : std::uint8_t {
    found,
    no_such_name,       // NXDOMAIN
    no_data,            // the name exists, without records of that type
    temporary_failure,  // SERVFAIL, REFUSED, timeout, network error: try again later
};

struct TxtResult {
    LookupStatus status = LookupStatus::temporary_failure;
    // One entry per TXT record, its character-strings concatenated (RFC 6376 §3.6.2.2:
    // "Strings in a TXT RR MUST be concatenated together before use").
    std::vector<std::string> records;
    std::chrono::seconds ttl{0};
    std::string error;  // for temporary_failure: what went wrong
};

class Resolver {
  public:
    virtual ~Resolver() = default;
    // `name` without a trailing dot. Blocking; safe to call from several threads.
    virtual TxtResult lookup_txt(std::string_view name) = 0;
};

// For unit tests: answers from a table, counts lookups.
class FakeResolver final : public Resolver {
  public:
    void set_txt(std::string_view name, std::vector<std::string> records,
                 std::chrono::seconds ttl = std::chrono::seconds(300));
    void set_status(std::string_view name, LookupStatus status);
    void clear(std::string_view name);

    TxtResult lookup_txt(std::string_view name) override;
    std::size_t lookups() const;

  private:
    struct State {
        std::map<std::string, TxtResult> answers;
        std::size_t lookups = 0;
    };
    mutable LockGuarded<State> state_;
};

}  // namespace dkim::dns

#pragma once
// Reverse DNS of the report sources the Reports view and API show: the PTR name of an address,
// shown only when it is forward-confirmed (FCrDNS: the name's A or AAAA records include the
// address again). A PTR record alone is whatever the address's owner wrote, anyone's claim.
//
// The addresses come from reports anyone can send, so the work is bounded: one request
// resolves at most `lookups_per_request` addresses it does not know yet, within `budget` of
// DNS time (checked before every query; one query takes at most the resolver's timeout), the
// rest stay unnamed; answers, failures included, are cached (bounded, oldest out first).
// Lookups block the calling thread (a handler worker, never the I/O thread).
//
// STANDARDS: RFC 1035 §3.5 (in-addr.arpa), RFC 3596 §2.5 (ip6.arpa), RFC 8499 §6
// ("forward-confirmed reverse DNS").

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "dkim/clock.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/lock_guarded.hpp"
#include "dkim/net/ip_address.hpp"

namespace dkim::web {

struct ReverseDnsLimits {
    std::size_t cache_entries = 4096;
    std::chrono::seconds ttl{3600};          // a name, or no name (NXDOMAIN, not confirmed)
    std::chrono::seconds failure_ttl{300};   // a temporary failure (SERVFAIL, timeout)
    std::size_t lookups_per_request = 25;    // addresses resolved (not from the cache)
    std::chrono::milliseconds budget{2000};  // DNS time per request
    std::size_t names_per_address = 3;       // PTR names forward-checked per address
};

// A PTR record's name as shown: lower-cased, without the root's dot; std::nullopt unless it
// is a host name of two labels or more (letters, digits, '-', and '_' that some zones use).
std::optional<std::string> reverse_dns_name(std::string_view ptr);

// Whether `address` is globally reachable: not in one of IANA's special-purpose blocks
// (private, loopback, link-local, shared, documentation, benchmarking, ULA, multicast, ...).
// Only those are looked up.
bool globally_reachable(const net::IpAddress& address);

class ReverseDns {
  public:
    // What one request may still spend.
    struct Budget {
        std::size_t lookups_left = 0;
        MonotonicTime deadline;
    };

    ReverseDns(dns::Resolver& resolver, const Clock& clock, ReverseDnsLimits limits = {});

    Budget budget() const;
    // The forward-confirmed name of `address` ("192.0.2.1", "2001:db8::1"): from the cache,
    // else resolved if `budget` allows. std::nullopt when there is none, the address is not
    // one, or it was not looked up.
    std::optional<std::string> name(std::string_view address, Budget& budget);
    std::size_t cached() const;

  private:
    struct Entry {
        std::optional<std::string> name;
        MonotonicTime expires;
    };
    struct Cache {
        std::map<std::string, Entry, std::less<>> entries;
        std::deque<std::string> order;  // insertion order, for eviction
    };
    void remember(const std::string& address, Entry entry);

    dns::Resolver& resolver_;
    const Clock& clock_;
    ReverseDnsLimits limits_;
    LockGuarded<Cache> cache_;
};

}  // namespace dkim::web

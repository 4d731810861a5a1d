#pragma once
// DKIM key lookup with a cache of parsed keys: "selector._domainkey.domain" TXT through the
// Resolver, parsed (RFC 6376 §3.6.1) and, for a usable key, turned into a verification key
// once. Answers are kept for their DNS TTL (bounded); lookups that failed permanently are
// kept briefly; temporary failures are never cached.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "dkim/crypto/public_key.hpp"
#include "dkim/dkim/key_record.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim {

struct FetchedKey {
    KeyRecord record;
    crypto::PublicKey key;  // empty for a revoked key
};

struct KeyLookup {
    enum class Status : std::uint8_t { found, temperror, permerror };
    Status status = Status::permerror;
    std::shared_ptr<const FetchedKey> key;  // set when found
    std::string reason;                     // why not
};

struct KeyFetcherOptions {
    std::chrono::seconds max_ttl{3600};
    std::chrono::seconds min_ttl{60};
    std::chrono::seconds negative_ttl{60};
    std::size_t max_entries = 10000;
};

class KeyFetcher {
  public:
    explicit KeyFetcher(dns::Resolver& resolver, KeyFetcherOptions options = {})
        : resolver_(resolver), options_(options) {}

    KeyLookup fetch(std::string_view selector, std::string_view domain,
                    std::chrono::system_clock::time_point now);

  private:
    struct Entry {
        KeyLookup lookup;
        std::chrono::system_clock::time_point expires;
    };

    KeyLookup resolve(const std::string& name, std::chrono::seconds& ttl);

    dns::Resolver& resolver_;
    KeyFetcherOptions options_;
    LockGuarded<std::map<std::string, Entry, std::less<>>> cache_;
};

}  // namespace dkim

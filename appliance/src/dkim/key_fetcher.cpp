#include "dkim/dkim/key_fetcher.hpp"

#include <algorithm>

namespace dkim {
namespace {

KeyLookup permerror(std::string reason) {
    return KeyLookup{KeyLookup::Status::permerror, nullptr, std::move(reason)};
}

}  // namespace

KeyLookup KeyFetcher::resolve(const std::string& name, std::chrono::seconds& ttl) {
    const dns::TxtResult answer = resolver_.lookup_txt(name);
    ttl = answer.ttl;
    switch (answer.status) {
        case dns::LookupStatus::temporary_failure:
            // RFC 6376 §6.1.2: "If the query for the public key fails to respond, the
            // Verifier MAY seek a later verification attempt by returning TEMPFAIL".
            return KeyLookup{KeyLookup::Status::temperror, nullptr,
                             "key lookup for " + name + " failed: " + answer.error};
        case dns::LookupStatus::no_such_name:
        case dns::LookupStatus::no_data:
            // "If the query for the public key fails because the corresponding key record
            // does not exist, the Verifier MUST immediately return PERMFAIL (no key for
            // signature)."
            return permerror("no key record at " + name);
        case dns::LookupStatus::found: break;
    }
    // "If the result returned from the query does not adhere to the format defined in this
    // specification, the Verifier MUST ignore the key record". With several records, the
    // first one that parses is used.
    std::string first_error;
    for (const std::string& txt : answer.records) {
        auto record = parse_key_record(txt);
        if (!record) {
            if (first_error.empty()) {
                first_error = record.error();
            }
            continue;
        }
        auto fetched = std::make_shared<FetchedKey>();
        fetched->record = std::move(*record);
        if (!fetched->record.revoked) {
            auto key = crypto::PublicKey::parse(fetched->record.type, fetched->record.public_key);
            if (!key) {
                return permerror(key.error() + " (" + name + ")");
            }
            fetched->key = std::move(*key);
        }
        return KeyLookup{KeyLookup::Status::found, std::move(fetched), {}};
    }
    return permerror(first_error.empty() ? "no key record at " + name
                                         : first_error + " (" + name + ")");
}

KeyLookup KeyFetcher::fetch(std::string_view selector, std::string_view domain,
                            std::chrono::system_clock::time_point now) {
    const std::string name = key_record_name(selector, domain);
    {
        auto cache = cache_.lock();
        const auto it = cache->find(name);
        if (it != cache->end()) {
            if (it->second.expires > now) {
                return it->second.lookup;
            }
            cache->erase(it);
        }
    }
    std::chrono::seconds ttl{0};
    KeyLookup lookup = resolve(name, ttl);
    if (lookup.status == KeyLookup::Status::temperror) {
        return lookup;
    }
    const std::chrono::seconds keep =
        lookup.status == KeyLookup::Status::found
            ? std::clamp(ttl, options_.min_ttl, options_.max_ttl)
            : std::min(options_.negative_ttl, std::max(ttl, std::chrono::seconds(1)));
    auto cache = cache_.lock();
    if (cache->size() >= options_.max_entries) {
        std::erase_if(*cache, [&](const auto& entry) { return entry.second.expires <= now; });
        if (cache->size() >= options_.max_entries) {
            cache->clear();  // bounded memory beats a perfect hit rate
        }
    }
    cache->insert_or_assign(name, Entry{lookup, now + keep});
    return lookup;
}

}  // namespace dkim

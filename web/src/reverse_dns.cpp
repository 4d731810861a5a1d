#include "reverse_dns.hpp"

#include <algorithm>

#include "dkim/dns/name.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/net/ip_address.hpp"

namespace dkim::web {

std::optional<std::string> reverse_dns_name(std::string_view ptr) {
    if (!ptr.empty() && ptr.back() == '.') {
        ptr.remove_suffix(1);
    }
    if (!dns::is_valid_name(ptr, {dns::LabelSyntax::ldh_underscore, 2})) {
        return std::nullopt;
    }
    return mail::ascii_lowercase(ptr);
}

ReverseDns::ReverseDns(dns::Resolver& resolver, const Clock& clock, ReverseDnsLimits limits)
    : resolver_(resolver), clock_(clock), limits_(limits) {}

ReverseDns::Budget ReverseDns::budget() const {
    return Budget{limits_.lookups_per_request, clock_.monotonic() + limits_.budget};
}

std::size_t ReverseDns::cached() const {
    return cache_.read_only_lock()->entries.size();
}

void ReverseDns::remember(const std::string& address, Entry entry) {
    auto cache = cache_.lock();
    if (auto it = cache->entries.find(address); it != cache->entries.end()) {
        it->second = std::move(entry);
        return;
    }
    while (!cache->order.empty() && cache->entries.size() >= limits_.cache_entries) {
        cache->entries.erase(cache->order.front());
        cache->order.pop_front();
    }
    if (limits_.cache_entries > 0) {
        cache->entries.emplace(address, std::move(entry));
        cache->order.push_back(address);
    }
}

bool globally_reachable(const net::IpAddress& address) {
    // IANA's special-purpose registries (RFC 6890 and its updates): the blocks that are not
    // globally reachable, plus multicast and the reserved 240/4.
    static const std::vector<std::pair<net::IpAddress, unsigned>> kNotGlobal = [] {
        std::vector<std::pair<net::IpAddress, unsigned>> out;
        for (const char* block :
             {"0.0.0.0/8",      "10.0.0.0/8",     "100.64.0.0/10", "127.0.0.0/8",
              "169.254.0.0/16", "172.16.0.0/12",  "192.0.0.0/24",  "192.0.2.0/24",
              "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
              "203.0.113.0/24", "224.0.0.0/3",    "::/127",        "64:ff9b:1::/48",
              "100::/64",       "2001::/23",      "2001:db8::/32", "3fff::/20",
              "fc00::/7",       "fe80::/10",      "ff00::/8"}) {
            const std::string_view text(block);
            const auto slash = text.find('/');
            const auto network = net::IpAddress::parse(text.substr(0, slash));
            out.emplace_back(
                *network, static_cast<unsigned>(std::stoul(std::string(text.substr(slash + 1)))));
        }
        return out;
    }();
    const net::IpAddress a = address.unmapped();  // ::ffff:10.0.0.5 is 10.0.0.5
    return std::none_of(kNotGlobal.begin(), kNotGlobal.end(), [&](const auto& block) {
        return a.is_v4() == block.first.is_v4() && a.in_network(block.first, block.second);
    });
}

std::optional<std::string> ReverseDns::name(std::string_view address, Budget& budget) {
    const auto parsed = net::IpAddress::parse(address);
    if (!parsed) {
        return std::nullopt;
    }
    // A private, documentation or other special-purpose address has no name the world could
    // give, and asking the resolver about one only tells a report's sender what the local
    // reverse zones hold (10.x is the appliance's network, not the reporter's).
    if (!globally_reachable(*parsed)) {
        return std::nullopt;
    }
    const std::string key = parsed->to_string();
    const auto now = clock_.monotonic();
    {
        auto cache = cache_.lock();
        if (auto it = cache->entries.find(key);
            it != cache->entries.end() && now < it->second.expires) {
            return it->second.name;
        }
    }
    if (budget.lookups_left == 0 || now >= budget.deadline) {
        return std::nullopt;  // not looked up: maybe on the next request
    }
    --budget.lookups_left;

    // ::ffff:192.0.2.1 is 192.0.2.1: its PTR is under in-addr.arpa, its name's records are A.
    const net::IpAddress target = parsed->unmapped();
    const dns::Answer ptr = resolver_.lookup(target.reverse_name(), dns::RecordType::ptr);
    if (ptr.status == dns::LookupStatus::temporary_failure) {
        remember(key, {std::nullopt, clock_.monotonic() + limits_.failure_ttl});
        return std::nullopt;
    }
    std::optional<std::string> confirmed;
    bool failed = false;
    std::size_t checked = 0;
    const auto forward = target.is_v4() ? dns::RecordType::a : dns::RecordType::aaaa;
    if (ptr.status == dns::LookupStatus::found) {
        for (const std::string& record : ptr.records) {
            const auto candidate = reverse_dns_name(record);
            if (!candidate) {
                continue;
            }
            if (checked == limits_.names_per_address) {
                break;
            }
            ++checked;
            if (clock_.monotonic() >= budget.deadline) {
                return std::nullopt;  // undecided: not remembered
            }
            const dns::Answer answer = resolver_.lookup(*candidate, forward);
            if (answer.status == dns::LookupStatus::temporary_failure) {
                failed = true;
                continue;
            }
            for (const std::string& a : answer.records) {
                const auto back = net::IpAddress::parse(a);
                if (back && back->unmapped() == target) {
                    confirmed = candidate;
                    break;
                }
            }
            if (confirmed) {
                break;
            }
        }
    }
    const auto ttl = confirmed || !failed ? limits_.ttl : limits_.failure_ttl;
    remember(key, {confirmed, clock_.monotonic() + ttl});
    return confirmed;
}

}  // namespace dkim::web

#include "dkim/dns/resolver.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::dns {
namespace {

// DNS names compare case-insensitively; a trailing dot is the same name.
std::string normalize(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    return mail::ascii_lowercase(name);
}

Answer with_status(LookupStatus status) {
    Answer r;
    r.status = status;
    if (status == LookupStatus::temporary_failure) {
        r.error = "SERVFAIL (fake)";
    }
    return r;
}

}  // namespace

std::string_view to_string(RecordType type) {
    switch (type) {
        case RecordType::a: return "A";
        case RecordType::aaaa: return "AAAA";
        case RecordType::mx: return "MX";
        case RecordType::ptr: return "PTR";
        case RecordType::txt: return "TXT";
    }
    return "?";
}

void FakeResolver::set_txt(std::string_view name, std::vector<std::string> records,
                           std::chrono::seconds ttl) {
    auto state = state_.lock();
    Node& node = state->zone[normalize(name)];
    node.records[RecordType::txt] = std::move(records);
    node.ttl = ttl;
    node.status.reset();
    node.type_status.erase(RecordType::txt);
}

void FakeResolver::add(std::string_view name, RecordType type, std::string value) {
    state_.lock()->zone[normalize(name)].records[type].push_back(std::move(value));
}

void FakeResolver::set_cname(std::string_view name, std::string_view target) {
    state_.lock()->zone[normalize(name)].cname = normalize(target);
}

void FakeResolver::set_status(std::string_view name, LookupStatus status) {
    state_.lock()->zone[normalize(name)].status = status;
}

void FakeResolver::set_status(std::string_view name, RecordType type, LookupStatus status) {
    state_.lock()->zone[normalize(name)].type_status[type] = status;
}

void FakeResolver::clear(std::string_view name) {
    state_.lock()->zone.erase(normalize(name));
}

Answer FakeResolver::lookup(std::string_view name, RecordType type) {
    auto state = state_.lock();
    ++state->lookups;
    std::string current = normalize(name);
    // A resolver follows a chain of CNAMEs; a loop or a long chain is its SERVFAIL.
    for (int hops = 0; hops < 8; ++hops) {
        const auto it = state->zone.find(current);
        if (it == state->zone.end()) {
            return with_status(LookupStatus::no_such_name);
        }
        const Node& node = it->second;
        if (const auto forced = node.type_status.find(type); forced != node.type_status.end()) {
            return with_status(forced->second);
        }
        if (node.status) {
            return with_status(*node.status);
        }
        if (!node.cname.empty()) {
            current = node.cname;
            continue;
        }
        const auto records = node.records.find(type);
        if (records == node.records.end() || records->second.empty()) {
            Answer r = with_status(LookupStatus::no_data);
            r.ttl = node.ttl;
            return r;
        }
        Answer r = with_status(LookupStatus::found);
        r.records = records->second;
        r.ttl = node.ttl;
        return r;
    }
    Answer r = with_status(LookupStatus::temporary_failure);
    r.error = "CNAME chain too long (fake)";
    return r;
}

std::size_t FakeResolver::lookups() const {
    return state_.lock()->lookups;
}

}  // namespace dkim::dns

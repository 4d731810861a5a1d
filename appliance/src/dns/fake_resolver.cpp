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

}  // namespace

void FakeResolver::set_txt(std::string_view name, std::vector<std::string> records,
                           std::chrono::seconds ttl) {
    TxtResult r;
    r.status = records.empty() ? LookupStatus::no_data : LookupStatus::found;
    r.records = std::move(records);
    r.ttl = ttl;
    state_.lock()->answers[normalize(name)] = std::move(r);
}

void FakeResolver::set_status(std::string_view name, LookupStatus status) {
    TxtResult r;
    r.status = status;
    if (status == LookupStatus::temporary_failure) {
        r.error = "SERVFAIL (fake)";
    }
    state_.lock()->answers[normalize(name)] = std::move(r);
}

void FakeResolver::clear(std::string_view name) {
    state_.lock()->answers.erase(normalize(name));
}

TxtResult FakeResolver::lookup_txt(std::string_view name) {
    auto state = state_.lock();
    ++state->lookups;
    const auto it = state->answers.find(normalize(name));
    if (it == state->answers.end()) {
        TxtResult r;
        r.status = LookupStatus::no_such_name;
        return r;
    }
    return it->second;
}

std::size_t FakeResolver::lookups() const {
    return state_.lock()->lookups;
}

}  // namespace dkim::dns

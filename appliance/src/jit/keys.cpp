#include "dkim/jit/keys.hpp"

#include <algorithm>
#include <tuple>

namespace dkim::jit {

std::string_view to_string(KeyState state) noexcept {
    switch (state) {
        case KeyState::generating: return "generating";
        case KeyState::pending_publish: return "pending-publish";
        case KeyState::active: return "active";
        case KeyState::retiring: return "retiring";
        case KeyState::retired: return "retired";
    }
    return "retired";
}

std::optional<KeyState> parse_key_state(std::string_view text) noexcept {
    for (const KeyState s : kKeyStates) {
        if (to_string(s) == text) {
            return s;
        }
    }
    return std::nullopt;
}

std::string key_kind(std::string_view algorithm) {
    if (algorithm.rfind("rsa-", 0) == 0) {
        return "rsa";
    }
    return algorithm == "ed25519" ? "ed25519" : "";
}

std::string KeyRecord::kind() const {
    return key_kind(algorithm);
}

namespace {

bool before(const KeyRecord& a, const KeyRecord& b) {
    return std::tie(a.domain, a.selector) < std::tie(b.domain, b.selector);
}

std::vector<KeyRecord> sorted_records(std::vector<KeyRecord> records) {
    std::sort(records.begin(), records.end(), before);
    return records;
}

}  // namespace

KeyRegistry::KeyRegistry(std::vector<KeyRecord> records)
    : records_(sorted_records(std::move(records))) {}

void KeyRegistry::reload(std::vector<KeyRecord> records) {
    *records_.lock() = sorted_records(std::move(records));
}

std::optional<KeyRecord> KeyRegistry::find(std::string_view domain,
                                           std::string_view selector) const {
    const auto records = records_.read_only_lock();
    for (const KeyRecord& r : *records) {
        if (r.domain == domain && r.selector == selector) {
            return r;
        }
    }
    return std::nullopt;
}

std::vector<KeyRecord> KeyRegistry::all() const {
    return *records_.read_only_lock();
}

std::vector<KeyRecord> KeyRegistry::of_domain(std::string_view domain) const {
    const auto records = records_.read_only_lock();
    std::vector<KeyRecord> out;
    for (const KeyRecord& r : *records) {
        if (r.domain == domain) {
            out.push_back(r);
        }
    }
    return out;
}

void KeyRegistry::put(const KeyRecord& record) {
    auto records = records_.lock();
    const auto at = std::lower_bound(records->begin(), records->end(), record, before);
    if (at != records->end() && at->domain == record.domain && at->selector == record.selector) {
        *at = record;
    } else {
        records->insert(at, record);
    }
}

std::vector<ClusterRotation> KeyRegistry::rotations() const {
    return *rotations_.read_only_lock();
}

void KeyRegistry::put(const ClusterRotation& rotation) {
    auto rotations = rotations_.lock();
    for (ClusterRotation& r : *rotations) {
        if (r.domain == rotation.domain && r.kind == rotation.kind) {
            r = rotation;
            return;
        }
    }
    rotations->push_back(rotation);
}

void KeyRegistry::reload_rotations(std::vector<ClusterRotation> rotations) {
    *rotations_.lock() = std::move(rotations);
}

std::string_view to_string(ClusterRotation::Phase phase) noexcept {
    switch (phase) {
        case ClusterRotation::Phase::generate: return "generate";
        case ClusterRotation::Phase::activate: return "activate";
        case ClusterRotation::Phase::retire: return "retire";
        case ClusterRotation::Phase::done: return "done";
    }
    return "generate";
}

std::optional<ClusterRotation::Phase> parse_rotation_phase(std::string_view text) noexcept {
    for (const auto p : {ClusterRotation::Phase::generate, ClusterRotation::Phase::activate,
                         ClusterRotation::Phase::retire, ClusterRotation::Phase::done}) {
        if (to_string(p) == text) {
            return p;
        }
    }
    return std::nullopt;
}

}  // namespace dkim::jit

#include "sessions.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "dkim/base/hex.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/crypto/sha256.hpp"

namespace dkim::web {

namespace {

std::string key_of(std::string_view token) {
    const auto digest = crypto::Sha256::hash(token);
    return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

}  // namespace

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
        throw std::runtime_error("the random number generator failed");
    }
    std::string out = base::hex_encode(raw);
    base::wipe(raw);
    return out;
}

SessionTable::SessionTable(Duration idle_timeout, std::size_t max_sessions)
    : idle_timeout_(idle_timeout), max_sessions_(max_sessions) {}

void SessionTable::sweep(std::map<std::string, BrowserSession>& sessions, TimePoint now) const {
    std::erase_if(sessions, [&](const auto& kv) {
        return now >= kv.second.expires || now - kv.second.last_used >= idle_timeout_;
    });
}

std::string SessionTable::add(std::string_view token, BrowserSession session, TimePoint now) {
    session.csrf = random_hex(32);
    session.created = now;
    session.last_used = now;
    auto sessions = sessions_.lock();
    sweep(*sessions, now);
    // The table is bounded: past the limit the least recently used session goes first.
    while (sessions->size() >= max_sessions_ && !sessions->empty()) {
        auto oldest = sessions->begin();
        for (auto it = sessions->begin(); it != sessions->end(); ++it) {
            if (it->second.last_used < oldest->second.last_used) {
                oldest = it;
            }
        }
        sessions->erase(oldest);
    }
    std::string csrf = session.csrf;
    (*sessions)[key_of(token)] = std::move(session);
    return csrf;
}

std::optional<BrowserSession> SessionTable::find(std::string_view token, TimePoint now) {
    auto sessions = sessions_.lock();
    const auto it = sessions->find(key_of(token));
    if (it == sessions->end()) {
        return std::nullopt;
    }
    if (now >= it->second.expires || now - it->second.last_used >= idle_timeout_) {
        sessions->erase(it);
        return std::nullopt;
    }
    it->second.last_used = now;
    return it->second;
}

bool SessionTable::is_session(std::string_view token) {
    return sessions_.lock()->contains(key_of(token));
}

void SessionTable::remove(std::string_view token) {
    sessions_.lock()->erase(key_of(token));
}

std::size_t SessionTable::size(TimePoint now) {
    auto sessions = sessions_.lock();
    sweep(*sessions, now);
    return sessions->size();
}

LoginLimiter::LoginLimiter(Limits limits) : limits_(limits) {}

std::optional<Duration> LoginLimiter::check(std::map<std::string, Window>& windows,
                                            const std::string& key, unsigned limit,
                                            TimePoint now) const {
    Window& w = windows[key];
    while (!w.times.empty() && now - w.times.front() >= limits_.window) {
        w.times.pop_front();
    }
    if (w.times.size() >= limit) {
        return limits_.window - (now - w.times.front());
    }
    return std::nullopt;
}

std::optional<Duration> LoginLimiter::attempt(const std::string& address, const std::string& user,
                                              TimePoint now) {
    auto state = state_.lock();
    // Forget windows that are empty, so that the maps stay as small as the recent traffic.
    auto prune = [&](std::map<std::string, Window>& windows) {
        std::erase_if(windows, [&](const auto& kv) {
            return kv.second.times.empty() || now - kv.second.times.back() >= limits_.window;
        });
    };
    prune(state->addresses);
    prune(state->users);
    const auto by_address = check(state->addresses, address, limits_.per_address, now);
    const auto by_user = check(state->users, user, limits_.per_user, now);
    if (by_address || by_user) {
        return std::max(by_address.value_or(Duration(0)), by_user.value_or(Duration(0)));
    }
    state->addresses[address].times.push_back(now);
    state->users[user].times.push_back(now);
    return std::nullopt;
}

void LoginLimiter::succeeded(const std::string& user) {
    state_.lock()->users.erase(user);
}

}  // namespace dkim::web

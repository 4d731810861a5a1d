#pragma once
// What dkim-webd remembers between requests: the browser sessions it handed out and the
// recent login attempts. Nothing here is a credential signerd would accept by itself except
// the session tokens, which signerd made and checks again on every request; webd keys them
// by their SHA-256 (a lookup reveals nothing through timing) and keeps each session's CSRF
// token beside it. Time is a parameter everywhere.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "dkim/clock.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::web {

struct BrowserSession {
    std::string user;
    std::string roles;
    bool totp = false;
    std::string csrf;  // random, sent by the console in X-CSRF-Token on every POST/DELETE
    TimePoint created;
    TimePoint expires;    // signerd's session token expires then too
    TimePoint last_used;  // idle sessions end after the idle timeout
};

class SessionTable {
  public:
    SessionTable(Duration idle_timeout, std::size_t max_sessions);

    // Remembers the session of `token` (signerd's session token); returns its CSRF token.
    std::string add(std::string_view token, BrowserSession session, TimePoint now);
    // The session of `token`, if it is known, unexpired and not idle for too long; touches it.
    std::optional<BrowserSession> find(std::string_view token, TimePoint now);
    // Whether `token` is a session this table handed out (ended or not); does not touch it.
    bool is_session(std::string_view token);
    void remove(std::string_view token);
    std::size_t size(TimePoint now);

  private:
    void sweep(std::map<std::string, BrowserSession>& sessions, TimePoint now) const;

    Duration idle_timeout_;
    std::size_t max_sessions_;
    LockGuarded<std::map<std::string, BrowserSession>> sessions_;  // by SHA-256 of the token
};

// Login attempts per client address and per user name in a sliding window. signerd locks a
// user out after five failures; this keeps one address from trying many users, and keeps
// the Argon2id work signerd does per attempt bounded.
class LoginLimiter {
  public:
    struct Limits {
        unsigned per_address = 10;
        unsigned per_user = 5;
        Duration window = std::chrono::minutes(5);
    };
    explicit LoginLimiter(Limits limits);

    // Records an attempt; when one of the limits is reached, the attempt is refused and the
    // answer is how long to wait.
    std::optional<Duration> attempt(const std::string& address, const std::string& user,
                                    TimePoint now);
    // A successful login clears the user's failures (not the address's attempts).
    void succeeded(const std::string& user);

  private:
    struct Window {
        std::deque<TimePoint> times;
    };
    std::optional<Duration> check(std::map<std::string, Window>& windows, const std::string& key,
                                  unsigned limit, TimePoint now) const;
    Limits limits_;
    struct State {
        std::map<std::string, Window> addresses;
        std::map<std::string, Window> users;
    };
    LockGuarded<State> state_;
};

// 32 random bytes as 64 hex digits (the CSRF tokens).
std::string random_hex(std::size_t bytes);

}  // namespace dkim::web

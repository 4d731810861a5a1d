#include "dkim/jit/directory.hpp"

#include <algorithm>
#include <set>

#include "dkim/base/wipe.hpp"

namespace dkim::jit {
namespace {

constexpr std::size_t kMinPassword = 12;
constexpr std::size_t kMaxPassword = 1024;

// The same answer for every way authentication fails: it must not say which part was wrong.
Unexpected<Refusal> bad_credentials() {
    return refuse(Refusal::Code::unauthenticated, "authentication failed");
}

AuditRecord audit(TimePoint now, std::string actor, std::string action, std::string outcome,
                  std::string reason) {
    AuditRecord r;
    r.time = now;
    r.actor = std::move(actor);
    r.action = std::move(action);
    r.outcome = std::move(outcome);
    r.reason = std::move(reason);
    return r;
}

User blank(User u) {
    u.password_hash = u.password_hash.empty() ? "" : "set";
    u.totp_secret.clear();
    return u;
}

}  // namespace

bool is_valid_user_name(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return false;
    }
    return std::all_of(name.begin(), name.end(),
                       [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                                  c == '_' || c == '.';
                       }) &&
           name.front() >= 'a' && name.front() <= 'z';
}

Directory::Directory(Journal& journal, const StoredState& stored, PasswordCost cost)
    : journal_(journal), cost_(cost) {
    reload(stored);
}

void Directory::reload(const StoredState& stored) {
    auto state = state_.lock();
    *state = State{};
    for (const User& u : stored.users) {
        state->users[u.name] = u;
    }
    for (const ApiToken& t : stored.tokens) {
        state->tokens[t.id] = t;
        state->token_by_hash[t.hash] = t.id;
        state->next_token_id = std::max(state->next_token_id, t.id + 1);
    }
    for (const Passkey& p : stored.passkeys) {
        if (state->users.count(p.user) != 0) {
            state->passkeys[p.credential_id] = p;
        }
    }
    for (const LoginFailures& f : stored.login_failures) {
        if (state->users.count(f.user) != 0) {
            LoginFailures& kept = state->failures[f.user];
            kept = f;
            if (kept.recent.size() > kMaxFailures) {
                kept.recent.erase(kept.recent.begin(),
                                  kept.recent.end() - static_cast<std::ptrdiff_t>(kMaxFailures));
            }
        }
    }
}

Actor Directory::actor_of(const User& user) {
    return Actor{Actor::Kind::user, user.name, user.roles, {}};
}

Outcome<User> Directory::save(State& state, User user, AuditRecord record) {
    if (auto written = journal_.write({user}, std::move(record)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    state.users[user.name] = user;
    return blank(std::move(user));
}

Outcome<User> Directory::add_user(const Actor& by, const std::string& name, RoleSet roles,
                                  std::string_view password, TimePoint now) {
    if (!is_valid_user_name(name)) {
        return refuse(Refusal::Code::invalid,
                      "user names are 1-64 characters: a-z first, then a-z, 0-9, '-', '_', '.'");
    }
    if (roles == 0) {
        return refuse(Refusal::Code::invalid, "a user needs at least one role");
    }
    if (!password.empty() && (password.size() < kMinPassword || password.size() > kMaxPassword)) {
        return refuse(Refusal::Code::invalid, "passwords are 12 to 1024 bytes long");
    }
    User u;
    u.name = name;
    u.roles = roles;
    u.created = now;
    if (!password.empty()) {
        auto hashed = hash_password(password, cost_);
        if (!hashed) {
            return refuse(Refusal::Code::unavailable, "out of memory hashing the password");
        }
        u.password_hash = std::move(*hashed);
    }
    auto state = state_.lock();
    if (state->users.count(name) != 0) {
        return refuse(Refusal::Code::conflict, "user " + name + " exists already");
    }
    AuditRecord r = audit(now, by.audit_name(), "user.add", "ok", "");
    r.detail = "user " + name + " roles " + roles_to_string(roles);
    return save(*state, std::move(u), std::move(r));
}

Outcome<User> Directory::set_disabled(const Actor& by, const std::string& name, bool disabled,
                                      TimePoint now) {
    auto state = state_.lock();
    const auto it = state->users.find(name);
    if (it == state->users.end()) {
        return refuse(Refusal::Code::not_found, "no user " + name);
    }
    User u = it->second;
    u.disabled = disabled;
    AuditRecord r =
        audit(now, by.audit_name(), disabled ? "user.disable" : "user.enable", "ok", "");
    r.detail = "user " + name;
    // A disabled user's tokens stop working at once (authenticate checks the user too). A
    // lockout is not touched: disabling and enabling again does not lift it.
    return save(*state, std::move(u), std::move(r));
}

Outcome<User> Directory::set_password(const Actor& by, const std::string& name,
                                      std::string_view password, TimePoint now) {
    if (password.size() < kMinPassword || password.size() > kMaxPassword) {
        return refuse(Refusal::Code::invalid, "passwords are 12 to 1024 bytes long");
    }
    auto hashed = hash_password(password, cost_);
    if (!hashed) {
        return refuse(Refusal::Code::unavailable, "out of memory hashing the password");
    }
    auto state = state_.lock();
    const auto it = state->users.find(name);
    if (it == state->users.end()) {
        return refuse(Refusal::Code::not_found, "no user " + name);
    }
    User u = it->second;
    u.password_hash = std::move(*hashed);
    AuditRecord r = audit(now, by.audit_name(), "user.password", "ok", "");
    r.detail = "user " + name;
    return save(*state, std::move(u), std::move(r));
}

std::vector<User> Directory::users() const {
    const auto state = state_.read_only_lock();
    std::vector<User> out;
    for (const auto& [name, u] : state->users) {
        out.push_back(blank(u));
    }
    return out;
}

std::optional<User> Directory::find(const std::string& name) const {
    const auto state = state_.read_only_lock();
    const auto it = state->users.find(name);
    return it == state->users.end() ? std::nullopt : std::optional<User>(blank(it->second));
}

bool Directory::locked_out(const State& state, const std::string& name, TimePoint now) {
    const auto it = state.failures.find(name);
    return it != state.failures.end() && now < it->second.locked_until;
}

LoginFailures Directory::merge_failures(const LoginFailures& stored, const LoginFailures& noted) {
    LoginFailures out;
    out.user = noted.user;
    out.version = std::max(stored.version, noted.version) + 1;
    out.locked_until = std::max(stored.locked_until, noted.locked_until);
    // A lockout cleared the failures up to the one that locked: only later ones count
    // towards the next.
    const bool ever_locked = out.locked_until != TimePoint{};
    const TimePoint locked_at = ever_locked ? out.locked_until - kLockout : TimePoint{};
    std::set<TimePoint> times;
    for (const auto* side : {&stored, &noted}) {
        for (const TimePoint t : side->recent) {
            if (!ever_locked || t > locked_at) {
                times.insert(t);
            }
        }
    }
    out.recent.assign(times.begin(), times.end());
    if (out.recent.size() > kMaxFailures) {
        out.recent.erase(out.recent.begin(),
                         out.recent.end() - static_cast<std::ptrdiff_t>(kMaxFailures));
    }
    if (out.recent.size() == kMaxFailures && out.recent.back() >= out.locked_until &&
        out.recent.back() - out.recent.front() < kFailureWindow) {
        out.locked_until = out.recent.back() + kLockout;
        out.recent.clear();
    }
    return out;
}

bool Directory::locked_out_at(const std::string& name, TimePoint now) const {
    return locked_out(*state_.read_only_lock(), name, now);
}

std::size_t Directory::tracked_failures() const {
    return state_.read_only_lock()->failures.size();
}

std::optional<LoginFailures> Directory::note_failure(State& state, const std::string& name,
                                                     TimePoint now) {
    if (state.users.count(name) == 0) {
        // An unknown name can never authenticate: nothing to lock, nothing to remember. A
        // sprayer of random names takes no memory here (the audit log records each attempt).
        return std::nullopt;
    }
    LoginFailures& f = state.failures[name];
    if (now < f.locked_until) {
        // Locked: whatever is tried neither counts nor changes the lockout's end.
        return std::nullopt;
    }
    // A sliding window: the times of the last kMaxFailures failures are kept, and this one locks
    // when the oldest of them is less than kFailureWindow old, i.e. when kMaxFailures failures
    // fall within any kFailureWindow. (A clock set back makes the kept ones look recent: that
    // locks sooner, never later.)
    f.user = name;
    ++f.version;
    f.recent.push_back(now);
    if (f.recent.size() > kMaxFailures) {
        f.recent.erase(f.recent.begin(),
                       f.recent.end() - static_cast<std::ptrdiff_t>(kMaxFailures));
    }
    if (f.recent.size() == kMaxFailures && now - f.recent.front() < kFailureWindow) {
        // Locked for the whole period from this failure; counting starts again after it (the
        // failures before it are all at least kFailureWindow old by then anyway).
        f.locked_until = now + kLockout;
        f.recent.clear();
    }
    return f;
}

Outcome<void> Directory::audit_failure(const std::string& actor, const std::string& action,
                                       const std::string& reason,
                                       std::optional<LoginFailures> failures, TimePoint now) {
    std::vector<Mutation> changes;
    if (failures) {
        changes.emplace_back(std::move(*failures));
    }
    if (auto written =
            journal_.write(std::move(changes), audit(now, actor, action, "refused", reason));
        !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written: " + written.error());
    }
    return {};
}

Outcome<Actor> Directory::authenticate_password(const std::string& name, std::string_view password,
                                                TimePoint now) {
    User u;
    {
        const auto state = state_.read_only_lock();
        const auto it = state->users.find(name);
        if (it == state->users.end() || it->second.disabled || it->second.password_hash.empty() ||
            locked_out(*state, name, now)) {
            u.name.clear();
        } else {
            u = it->second;
        }
    }
    // Hash even when the user is unknown, so that timing does not say which names exist.
    static const std::string dummy = hash_password("not a password of anyone", cost_).value_or("");
    const bool ok = verify_password(u.name.empty() ? dummy : u.password_hash, password);
    if (!ok || u.name.empty()) {
        std::optional<LoginFailures> failures;
        bool locked = false;
        {
            auto state = state_.lock();
            locked = locked_out(*state, name, now);
            failures = note_failure(*state, name, now);
        }
        if (auto recorded = audit_failure(
                is_valid_user_name(name) ? name : "(invalid name)", "auth.password",
                locked ? "locked out" : "authentication failed", std::move(failures), now);
            !recorded) {
            return unexpected(recorded.error());
        }
        return bad_credentials();
    }
    // The lockout may have begun while the password was being checked.
    if (locked_out(*state_.read_only_lock(), name, now)) {
        return bad_credentials();
    }
    return actor_of(u);
}

Outcome<Actor> Directory::authenticate_token(std::string_view token, TimePoint now,
                                             std::optional<TokenKind> kind) {
    const std::string hash = token_hash(token);
    const auto state = state_.read_only_lock();
    // The map lookup is by hash: timing reveals nothing about valid tokens' plaintexts.
    const auto it = state->token_by_hash.find(hash);
    if (it != state->token_by_hash.end()) {
        const ApiToken& t = state->tokens.at(it->second);
        const auto user = state->users.find(t.user);
        if (base::constant_time_equal(t.hash, hash) && !t.revoked &&
            (!t.expires || now < *t.expires) && (!kind || t.kind == *kind) &&
            user != state->users.end() && !user->second.disabled) {
            return actor_of(user->second);
        }
    }
    return bad_credentials();
}

std::optional<ApiToken> Directory::token_info(std::string_view token) const {
    const std::string hash = token_hash(token);
    const auto state = state_.read_only_lock();
    const auto it = state->token_by_hash.find(hash);
    if (it == state->token_by_hash.end()) {
        return std::nullopt;
    }
    ApiToken copy = state->tokens.at(it->second);
    copy.hash.clear();
    return copy;
}

Outcome<NewToken> Directory::create_token(const Actor& by, const std::string& user, TokenKind kind,
                                          const std::string& label, std::optional<Duration> ttl,
                                          TimePoint now) {
    if (label.size() > 200) {
        return refuse(Refusal::Code::invalid, "token labels are at most 200 bytes");
    }
    auto state = state_.lock();
    const auto it = state->users.find(user);
    if (it == state->users.end() || it->second.disabled) {
        return refuse(Refusal::Code::not_found, "no enabled user " + user);
    }
    NewToken created;
    created.secret = random_token();
    ApiToken& t = created.token;
    t.id = state->next_token_id;
    t.user = user;
    t.kind = kind;
    t.label = label;
    t.hash = token_hash(created.secret);
    t.created = now;
    if (ttl) {
        t.expires = now + *ttl;
    }
    AuditRecord r = audit(now, by.audit_name(),
                          kind == TokenKind::api ? "apitoken.create" : "session.create", "ok", "");
    r.detail = "token " + std::to_string(t.id) + " for " + user +
               (label.empty() ? "" : " (" + label + ")");
    if (auto written = journal_.write({t}, std::move(r)); !written) {
        base::wipe(created.secret);
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    state->tokens[t.id] = t;
    state->token_by_hash[t.hash] = t.id;
    state->next_token_id = t.id + 1;
    created.token.hash.clear();
    return created;
}

Outcome<ApiToken> Directory::revoke_token(const Actor& by, std::int64_t id, TimePoint now) {
    auto state = state_.lock();
    const auto it = state->tokens.find(id);
    if (it == state->tokens.end()) {
        return refuse(Refusal::Code::not_found, "no token " + std::to_string(id));
    }
    ApiToken t = it->second;
    if (by.kind == Actor::Kind::user && by.name != t.user && !has_role(by.roles, Role::admin)) {
        return refuse(Refusal::Code::forbidden, "only the token's user or an admin may revoke it");
    }
    if (t.revoked) {
        return refuse(Refusal::Code::conflict,
                      "token " + std::to_string(id) + " is revoked already");
    }
    t.revoked = true;
    AuditRecord r =
        audit(now, by.audit_name(),
              t.kind == TokenKind::session ? "session.end" : "apitoken.revoke", "ok", "");
    r.detail = "token " + std::to_string(id) + " of " + t.user;
    if (auto written = journal_.write({t}, std::move(r)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    it->second = t;
    t.hash.clear();
    return t;
}

std::vector<ApiToken> Directory::tokens() const {
    const auto state = state_.read_only_lock();
    std::vector<ApiToken> out;
    for (const auto& [id, t] : state->tokens) {
        ApiToken copy = t;
        copy.hash.clear();
        out.push_back(std::move(copy));
    }
    return out;
}

Outcome<TotpEnrolment> Directory::enrol_totp(const Actor& by, const std::string& user,
                                             TimePoint now, bool replace_confirmed) {
    auto state = state_.lock();
    const auto it = state->users.find(user);
    if (it == state->users.end()) {
        return refuse(Refusal::Code::not_found, "no user " + user);
    }
    User u = it->second;
    if (u.totp_confirmed && !replace_confirmed) {
        return refuse(Refusal::Code::forbidden,
                      "the TOTP of " + user +
                          " is confirmed: only the local operator (root) or an admin under an "
                          "admin grant can replace it, never through the web console",
                      "totp-replace");
    }
    const bool replaced = u.totp_confirmed;
    u.totp_secret = random_totp_secret();
    u.totp_confirmed = false;
    u.totp_last_step = 0;
    TotpEnrolment enrolment{base32_encode(u.totp_secret),
                            totp_uri("dkim-appliance", user, u.totp_secret)};
    AuditRecord r = audit(now, by.audit_name(), "totp.enrol", "ok", "");
    r.detail = "user " + user +
               (replaced ? " (replaces a confirmed TOTP; unconfirmed)" : " (unconfirmed)");
    if (auto saved = save(*state, std::move(u), std::move(r)); !saved) {
        base::wipe(enrolment.secret_base32);
        base::wipe(enrolment.uri);
        return unexpected(saved.error());
    }
    return enrolment;
}

Outcome<User> Directory::confirm_totp(const Actor& by, const std::string& user,
                                      std::string_view code, TimePoint now) {
    auto state = state_.lock();
    const auto it = state->users.find(user);
    if (it == state->users.end() || it->second.totp_secret.empty()) {
        return refuse(Refusal::Code::conflict, "no TOTP enrolment to confirm for " + user);
    }
    User u = it->second;
    std::optional<std::int64_t> step;
    const bool locked = locked_out(*state, user, now);
    if (!locked) {
        step = totp_match(
            u.totp_secret, code,
            totp_step(
                std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
    }
    if (!step || *step <= u.totp_last_step) {
        auto failures = note_failure(*state, user, now);
        state.lock().unlock();  // the refusal is written to the log unlocked
        if (auto recorded =
                audit_failure(user, "totp.confirm", locked ? "locked out" : "TOTP code wrong",
                              std::move(failures), now);
            !recorded) {
            return unexpected(recorded.error());
        }
        return bad_credentials();
    }
    u.totp_confirmed = true;
    u.totp_last_step = *step;
    AuditRecord r = audit(now, by.audit_name(), "totp.confirm", "ok", "");
    r.detail = "user " + user;
    return save(*state, std::move(u), std::move(r));
}

Outcome<void> Directory::check_totp(const Actor& actor, std::string_view code, TimePoint now) {
    auto state = state_.lock();
    const auto it = state->users.find(actor.name);
    if (actor.kind != Actor::Kind::user || it == state->users.end()) {
        return refuse(Refusal::Code::forbidden, "a TOTP code needs a user");
    }
    User u = it->second;
    if (u.totp_secret.empty() || !u.totp_confirmed) {
        return refuse(Refusal::Code::forbidden,
                      actor.name +
                          " has no confirmed TOTP enrolment; approve, deny and revoke "
                          "need one (dkim-appliance totp enrol)");
    }
    std::optional<std::int64_t> step;
    const bool locked = locked_out(*state, u.name, now);
    if (!locked) {
        step = totp_match(
            u.totp_secret, code,
            totp_step(
                std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
    }
    if (!step || *step <= u.totp_last_step) {
        auto failures = note_failure(*state, u.name, now);
        state.lock().unlock();  // the refusal is written to the log unlocked
        if (auto recorded = audit_failure(u.name, "auth.totp",
                                          locked ? "locked out"
                                          : step ? "TOTP code reused"
                                                 : "TOTP code wrong",
                                          std::move(failures), now);
            !recorded) {
            return unexpected(recorded.error());
        }
        // The same answer as a wrong password: a guesser learns nothing about which part failed.
        return bad_credentials();
    }
    u.totp_last_step = *step;
    // Remember the step durably before the decision it authorizes: a code works once.
    if (auto written = journal_.write({u}, audit(now, u.name, "auth.totp", "ok", "")); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written: " + written.error());
    }
    state->users[u.name].totp_last_step = *step;
    return {};
}

}  // namespace dkim::jit

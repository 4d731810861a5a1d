#include "dkim/jit/directory.hpp"

#include <algorithm>

namespace dkim::jit {
namespace {

constexpr int kMaxFailures = 5;
constexpr auto kFailureWindow = std::chrono::minutes(15);
constexpr auto kLockout = std::chrono::minutes(15);
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

Directory::Directory(Journal& journal, const StoredState& state, PasswordCost cost)
    : journal_(journal), cost_(cost) {
    for (const User& u : state.users) {
        users_[u.name] = u;
    }
    for (const ApiToken& t : state.tokens) {
        tokens_[t.id] = t;
        token_by_hash_[t.hash] = t.id;
        next_token_id_ = std::max(next_token_id_, t.id + 1);
    }
}

Actor Directory::actor_of(const User& user) {
    return Actor{Actor::Kind::user, user.name, user.roles};
}

Outcome<User> Directory::save(User user, AuditRecord record) {
    if (auto written = journal_.write({user}, std::move(record)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    users_[user.name] = user;
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
    std::lock_guard lock(mutex_);
    if (users_.count(name) != 0) {
        return refuse(Refusal::Code::conflict, "user " + name + " exists already");
    }
    AuditRecord r = audit(now, by.audit_name(), "user.add", "ok", "");
    r.detail = "user " + name + " roles " + roles_to_string(roles);
    return save(std::move(u), std::move(r));
}

Outcome<User> Directory::set_disabled(const Actor& by, const std::string& name, bool disabled,
                                      TimePoint now) {
    std::lock_guard lock(mutex_);
    const auto it = users_.find(name);
    if (it == users_.end()) {
        return refuse(Refusal::Code::not_found, "no user " + name);
    }
    User u = it->second;
    u.disabled = disabled;
    AuditRecord r =
        audit(now, by.audit_name(), disabled ? "user.disable" : "user.enable", "ok", "");
    r.detail = "user " + name;
    auto saved = save(std::move(u), std::move(r));
    if (saved && disabled) {
        // A disabled user's tokens stop working at once (authenticate checks the user too).
        failures_.erase(name);
    }
    return saved;
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
    std::lock_guard lock(mutex_);
    const auto it = users_.find(name);
    if (it == users_.end()) {
        return refuse(Refusal::Code::not_found, "no user " + name);
    }
    User u = it->second;
    u.password_hash = std::move(*hashed);
    AuditRecord r = audit(now, by.audit_name(), "user.password", "ok", "");
    r.detail = "user " + name;
    return save(std::move(u), std::move(r));
}

std::vector<User> Directory::users() const {
    std::lock_guard lock(mutex_);
    std::vector<User> out;
    for (const auto& [name, u] : users_) {
        out.push_back(blank(u));
    }
    return out;
}

std::optional<User> Directory::find(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const auto it = users_.find(name);
    return it == users_.end() ? std::nullopt : std::optional<User>(blank(it->second));
}

bool Directory::locked_out(const std::string& name, TimePoint now) {
    const auto it = failures_.find(name);
    return it != failures_.end() && now < it->second.locked_until;
}

void Directory::note_failure(const std::string& name, TimePoint now) {
    Failures& f = failures_[name];
    if (f.count == 0 || now - f.first > kFailureWindow) {
        f = Failures{0, now, {}};
    }
    if (++f.count >= kMaxFailures) {
        f.locked_until = now + kLockout;
        f.count = 0;
    }
}

Outcome<void> Directory::audit_failure(const std::string& actor, const std::string& action,
                                       const std::string& reason, TimePoint now) {
    if (auto written = journal_.write({}, audit(now, actor, action, "refused", reason)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written: " + written.error());
    }
    return {};
}

Outcome<Actor> Directory::authenticate_password(const std::string& name, std::string_view password,
                                                TimePoint now) {
    User u;
    {
        std::lock_guard lock(mutex_);
        const auto it = users_.find(name);
        if (it == users_.end() || it->second.disabled || it->second.password_hash.empty() ||
            locked_out(name, now)) {
            u.name.clear();
        } else {
            u = it->second;
        }
    }
    // Hash even when the user is unknown, so that timing does not say which names exist.
    static const std::string dummy = hash_password("not a password of anyone", cost_).value_or("");
    const bool ok = verify_password(u.name.empty() ? dummy : u.password_hash, password);
    if (!ok || u.name.empty()) {
        {
            std::lock_guard lock(mutex_);
            note_failure(name, now);
        }
        if (auto recorded = audit_failure(is_valid_user_name(name) ? name : "(invalid name)",
                                          "auth.password", "authentication failed", now);
            !recorded) {
            return unexpected(recorded.error());
        }
        return bad_credentials();
    }
    return actor_of(u);
}

Outcome<Actor> Directory::authenticate_token(std::string_view token, TimePoint now) {
    const std::string hash = token_hash(token);
    std::lock_guard lock(mutex_);
    // The map lookup is by hash: timing reveals nothing about valid tokens' plaintexts.
    const auto it = token_by_hash_.find(hash);
    if (it != token_by_hash_.end()) {
        const ApiToken& t = tokens_.at(it->second);
        const auto user = users_.find(t.user);
        if (constant_time_equal(t.hash, hash) && !t.revoked && (!t.expires || now < *t.expires) &&
            user != users_.end() && !user->second.disabled) {
            return actor_of(user->second);
        }
    }
    return bad_credentials();
}

std::optional<ApiToken> Directory::token_info(std::string_view token) const {
    const std::string hash = token_hash(token);
    std::lock_guard lock(mutex_);
    const auto it = token_by_hash_.find(hash);
    if (it == token_by_hash_.end()) {
        return std::nullopt;
    }
    ApiToken copy = tokens_.at(it->second);
    copy.hash.clear();
    return copy;
}

Outcome<NewToken> Directory::create_token(const Actor& by, const std::string& user, TokenKind kind,
                                          const std::string& label, std::optional<Duration> ttl,
                                          TimePoint now) {
    if (label.size() > 200) {
        return refuse(Refusal::Code::invalid, "token labels are at most 200 bytes");
    }
    std::lock_guard lock(mutex_);
    const auto it = users_.find(user);
    if (it == users_.end() || it->second.disabled) {
        return refuse(Refusal::Code::not_found, "no enabled user " + user);
    }
    NewToken created;
    created.secret = random_token();
    ApiToken& t = created.token;
    t.id = next_token_id_;
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
        wipe(created.secret);
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    tokens_[t.id] = t;
    token_by_hash_[t.hash] = t.id;
    next_token_id_ = t.id + 1;
    created.token.hash.clear();
    return created;
}

Outcome<ApiToken> Directory::revoke_token(const Actor& by, std::int64_t id, TimePoint now) {
    std::lock_guard lock(mutex_);
    const auto it = tokens_.find(id);
    if (it == tokens_.end()) {
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
    std::lock_guard lock(mutex_);
    std::vector<ApiToken> out;
    for (const auto& [id, t] : tokens_) {
        ApiToken copy = t;
        copy.hash.clear();
        out.push_back(std::move(copy));
    }
    return out;
}

Outcome<TotpEnrolment> Directory::enrol_totp(const Actor& by, const std::string& user,
                                             TimePoint now) {
    std::lock_guard lock(mutex_);
    const auto it = users_.find(user);
    if (it == users_.end()) {
        return refuse(Refusal::Code::not_found, "no user " + user);
    }
    User u = it->second;
    u.totp_secret = random_totp_secret();
    u.totp_confirmed = false;
    u.totp_last_step = 0;
    TotpEnrolment enrolment{base32_encode(u.totp_secret),
                            totp_uri("dkim-appliance", user, u.totp_secret)};
    AuditRecord r = audit(now, by.audit_name(), "totp.enrol", "ok", "");
    r.detail = "user " + user + " (unconfirmed)";
    if (auto saved = save(std::move(u), std::move(r)); !saved) {
        wipe(enrolment.secret_base32);
        wipe(enrolment.uri);
        return unexpected(saved.error());
    }
    return enrolment;
}

Outcome<User> Directory::confirm_totp(const Actor& by, const std::string& user,
                                      std::string_view code, TimePoint now) {
    std::lock_guard lock(mutex_);
    const auto it = users_.find(user);
    if (it == users_.end() || it->second.totp_secret.empty()) {
        return refuse(Refusal::Code::conflict, "no TOTP enrolment to confirm for " + user);
    }
    User u = it->second;
    const auto step = totp_match(
        u.totp_secret, code,
        totp_step(
            std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
    if (!step || *step <= u.totp_last_step) {
        note_failure(user, now);
        return refuse(Refusal::Code::unauthenticated, "the code does not match");
    }
    u.totp_confirmed = true;
    u.totp_last_step = *step;
    AuditRecord r = audit(now, by.audit_name(), "totp.confirm", "ok", "");
    r.detail = "user " + user;
    return save(std::move(u), std::move(r));
}

Outcome<void> Directory::check_totp(const Actor& actor, std::string_view code, TimePoint now) {
    std::unique_lock lock(mutex_);
    const auto it = users_.find(actor.name);
    if (actor.kind != Actor::Kind::user || it == users_.end()) {
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
    if (!locked_out(u.name, now)) {
        step = totp_match(
            u.totp_secret, code,
            totp_step(
                std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
    }
    if (!step || *step <= u.totp_last_step) {
        note_failure(u.name, now);
        lock.unlock();
        if (auto recorded = audit_failure(u.name, "auth.totp",
                                          step ? "TOTP code reused" : "TOTP code wrong", now);
            !recorded) {
            return unexpected(recorded.error());
        }
        return refuse(Refusal::Code::unauthenticated, "the TOTP code is wrong or was used already");
    }
    u.totp_last_step = *step;
    // Remember the step durably before the decision it authorizes: a code works once.
    if (auto written = journal_.write({u}, audit(now, u.name, "auth.totp", "ok", "")); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written: " + written.error());
    }
    users_[u.name].totp_last_step = *step;
    return {};
}

}  // namespace dkim::jit

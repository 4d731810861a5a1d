#pragma once
// Identities: users with roles, their Argon2id password hashes, API and session tokens
// (kept as hashes, shown once), and TOTP enrolment. Credentials are verified here, in
// signerd; dkim-webd only forwards them. Every change and every failed authentication is
// on the audit log. Five failures within 15 minutes lock a user's password and TOTP out for
// 15 minutes (in memory: a restart clears it, the audit log keeps the attempts).

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dkim/jit/authority.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/jit/journal.hpp"

namespace dkim::jit {

struct NewToken {
    ApiToken token;
    std::string secret;  // shown once, never stored
};

struct TotpEnrolment {
    std::string secret_base32;
    std::string uri;
};

class Directory {
  public:
    Directory(Journal& journal, const StoredState& state, PasswordCost cost);
    Directory(const Directory&) = delete;
    Directory& operator=(const Directory&) = delete;

    // `by` is recorded; whether `by` may do it is the caller's check (local operator, or an
    // admin holding an admin grant).
    Outcome<User> add_user(const Actor& by, const std::string& name, RoleSet roles,
                           std::string_view password, TimePoint now);
    Outcome<User> set_disabled(const Actor& by, const std::string& name, bool disabled,
                               TimePoint now);
    Outcome<User> set_password(const Actor& by, const std::string& name, std::string_view password,
                               TimePoint now);
    // Users without their secrets (hashes and TOTP seeds blanked).
    std::vector<User> users() const;
    std::optional<User> find(const std::string& name) const;  // blanked too

    Outcome<Actor> authenticate_password(const std::string& name, std::string_view password,
                                         TimePoint now);
    Outcome<Actor> authenticate_token(std::string_view token, TimePoint now);
    // The token record behind a token (hash blanked), for a caller that has authenticated it.
    std::optional<ApiToken> token_info(std::string_view token) const;

    Outcome<NewToken> create_token(const Actor& by, const std::string& user, TokenKind kind,
                                   const std::string& label, std::optional<Duration> ttl,
                                   TimePoint now);
    Outcome<ApiToken> revoke_token(const Actor& by, std::int64_t id, TimePoint now);
    std::vector<ApiToken> tokens() const;  // hashes blanked

    // A new secret; the user must confirm it with a code before it counts.
    Outcome<TotpEnrolment> enrol_totp(const Actor& by, const std::string& user, TimePoint now);
    Outcome<User> confirm_totp(const Actor& by, const std::string& user, std::string_view code,
                               TimePoint now);
    // The second factor for approve, deny and revoke. A code is accepted once (its time step
    // is remembered durably).
    Outcome<void> check_totp(const Actor& actor, std::string_view code, TimePoint now);

  private:
    struct Failures {
        int count = 0;
        TimePoint first;
        TimePoint locked_until;
    };
    bool locked_out(const std::string& name, TimePoint now);
    void note_failure(const std::string& name, TimePoint now);
    Outcome<void> audit_failure(const std::string& actor, const std::string& action,
                                const std::string& reason, TimePoint now);
    Outcome<User> save(User user, AuditRecord record);
    static Actor actor_of(const User& user);

    Journal& journal_;
    PasswordCost cost_;
    mutable std::mutex mutex_;
    std::map<std::string, User> users_;
    std::map<std::int64_t, ApiToken> tokens_;
    std::map<std::string, std::int64_t> token_by_hash_;
    std::int64_t next_token_id_ = 1;
    std::map<std::string, Failures> failures_;
};

bool is_valid_user_name(std::string_view name);

}  // namespace dkim::jit

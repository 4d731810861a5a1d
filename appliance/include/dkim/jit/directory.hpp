#pragma once
// Identities: users with roles, their Argon2id password hashes, API and session tokens
// (kept as hashes, shown once), and TOTP enrolment. Credentials are verified here, in
// signerd; dkim-webd only forwards them. Every change and every failed authentication is
// on the audit log. Five failures (wrong passwords and wrong TOTP codes count together) within
// any 15 minutes (a sliding window: the times of the last five are kept) lock a user's
// password and TOTP out for 15 minutes from the fifth: nothing tried during the lockout is
// accepted, counted or able to shorten it, and the lockout and the failure times are in the
// state store, so a restart keeps them. Only existing users are tracked: a name that does not
// exist can never authenticate and takes no memory, however many are tried. Every refusal of
// a guessed secret (password, TOTP code, locked out or not) is the same answer.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dkim/jit/authority.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/webauthn.hpp"
#include "dkim/lock_guarded.hpp"

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
    // Replaces users, tokens, passkeys and failures with the stored ones (a cluster node whose
    // store another node changed).
    void reload(const StoredState& state);

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
    // A token of another kind than `kind` (when given) is refused like an unknown one.
    Outcome<Actor> authenticate_token(std::string_view token, TimePoint now,
                                      std::optional<TokenKind> kind = std::nullopt);
    // The token record behind a token (hash blanked), for a caller that has authenticated it.
    std::optional<ApiToken> token_info(std::string_view token) const;

    Outcome<NewToken> create_token(const Actor& by, const std::string& user, TokenKind kind,
                                   const std::string& label, std::optional<Duration> ttl,
                                   TimePoint now);
    Outcome<ApiToken> revoke_token(const Actor& by, std::int64_t id, TimePoint now);
    std::vector<ApiToken> tokens() const;  // hashes blanked

    // A new secret; the user must confirm it with a code before it counts. A confirmed one is
    // replaced only with `replace_confirmed` (the caller has checked that `by` is the local
    // operator or an admin under an admin grant, never through dkim-webd).
    Outcome<TotpEnrolment> enrol_totp(const Actor& by, const std::string& user, TimePoint now,
                                      bool replace_confirmed = false);
    Outcome<User> confirm_totp(const Actor& by, const std::string& user, std::string_view code,
                               TimePoint now);
    // The second factor for approve, deny and revoke. A code is accepted once (its time step
    // is remembered durably).
    Outcome<void> check_totp(const Actor& actor, std::string_view code, TimePoint now);

    // --- passkeys (WebAuthn credentials: dkim/jit/webauthn.hpp; challenges: challenges.hpp) ---
    // Stores a registration signerd has verified, for `user`, with the user's label for it. A
    // credential id already registered (to anyone) is refused.
    // `confirmed` false: a first passkey, pending until confirm_passkey.
    Outcome<Passkey> add_passkey(const Actor& by, const std::string& user,
                                 const webauthn::Registration& registration,
                                 const std::string& name, bool confirmed, TimePoint now);
    // The caller has checked that `by` is the local operator or an admin under an admin grant, at
    // the CLI.
    Outcome<Passkey> confirm_passkey(const Actor& by, const std::string& user,
                                     std::string_view credential_id, TimePoint now);
    // A user's passkeys (every user's when `user` is empty), oldest first, pending ones too.
    std::vector<Passkey> passkeys(const std::string& user) const;
    // Only the confirmed ones: those that sign in and decide.
    std::vector<Passkey> confirmed_passkeys(const std::string& user) const;
    Outcome<Passkey> rename_passkey(const Actor& by, const std::string& user,
                                    std::string_view credential_id, const std::string& name,
                                    TimePoint now);
    // Removing the last confirmed passkey of a user needs `allow_last` (the caller has checked that
    // `by` is the local operator or an admin under an admin grant, never through dkim-webd: the
    // same care as replacing a confirmed TOTP).
    Outcome<Passkey> remove_passkey(const Actor& by, const std::string& user,
                                    std::string_view credential_id, bool allow_last, TimePoint now);
    struct PasskeyUse {
        Actor actor;
        Passkey passkey;  // after this use (its new counter)
    };
    // Checks an assertion against the challenge it must carry (webauthn::verify_assertion), by
    // `user`'s own credential; with `user` empty (a username-less login), by whoever's
    // credential it is. A disabled or locked-out user is refused; a refusal counts as a failure
    // towards the lockout (like a wrong password) and is on the audit log as `action`. On
    // success the new counter is durable, with an `action` record, before this returns.
    // `refused_before`: the caller refused the assertion already (its challenge was not one it
    // issued for this); it is refused, counted and recorded with that reason, unverified.
    Outcome<PasskeyUse> check_passkey(const std::string& user, const webauthn::Assertion& assertion,
                                      std::string_view challenge, const webauthn::RelyingParty& rp,
                                      bool require_uv, const std::string& action, TimePoint now,
                                      const std::string& refused_before = {});

    // Whether `name` is locked out at `now` (for tests and status).
    bool locked_out_at(const std::string& name, TimePoint now) const;
    // How many names have failure records (bounded by the number of users).
    std::size_t tracked_failures() const;

    static constexpr std::size_t kMaxFailures = 5;
    static constexpr Duration kFailureWindow = std::chrono::minutes(15);
    static constexpr Duration kLockout = std::chrono::minutes(15);

    // One user's failures as two writers noted them apart (a cluster's nodes, each on its own
    // memory): the union of their failure times, the later lockout, and the lockout rule
    // applied to the union, so that guesses spread over the nodes lock as if made on one.
    // `version` is above both.
    static LoginFailures merge_failures(const LoginFailures& stored, const LoginFailures& noted);

  private:
    // Everything the lock guards. The functions below that take a State are called with it
    // locked (they are handed the locked value).
    struct State {
        std::map<std::string, User> users;
        std::map<std::int64_t, ApiToken> tokens;
        std::map<std::string, std::int64_t> token_by_hash;
        std::int64_t next_token_id = 1;
        std::map<std::string, LoginFailures> failures;  // existing users only
        std::map<std::string, Passkey> passkeys;        // by credential id
    };

    static bool locked_out(const State& state, const std::string& name, TimePoint now);
    // Counts a failure of an existing user (nothing for an unknown name, nothing during a
    // lockout) and returns the record to persist, if it changed.
    static std::optional<LoginFailures> note_failure(State& state, const std::string& name,
                                                     TimePoint now);
    // The refusal on the audit log, with the changed failure record in the same commit.
    Outcome<void> audit_failure(const std::string& actor, const std::string& action,
                                const std::string& reason, std::optional<LoginFailures> failures,
                                TimePoint now);
    Outcome<User> save(State& state, User user, AuditRecord record);
    static Actor actor_of(const User& user);

    Journal& journal_;
    PasswordCost cost_;
    LockGuarded<State> state_;
};

bool is_valid_user_name(std::string_view name);

// The WebAuthn user handle of a user (user.id in navigator.credentials.create): 16 bytes of
// SHA-256 over the name, stable, so that an authenticator replaces its discoverable credential
// for the same user instead of adding another.
std::string passkey_user_handle(std::string_view user);

}  // namespace dkim::jit

// The Directory's passkeys: WebAuthn credentials registered through the console, their counters,
// and the check of an assertion (a login, or the second factor of a decision). The bytes are
// verified by webauthn.cpp; here is what they are checked against (which user's credential, its
// stored counter) and what a refusal costs (a failure towards the lockout, an audit record).

#include <algorithm>

#include "dkim/crypto/sha256.hpp"
#include "dkim/jit/directory.hpp"

namespace dkim::jit {
namespace {

constexpr std::size_t kMaxPasskeyName = 64;
constexpr std::size_t kMaxPasskeysPerUser = 16;

AuditRecord passkey_record(TimePoint now, std::string actor, std::string action,
                           std::string outcome, std::string reason, std::string detail) {
    AuditRecord r;
    r.time = now;
    r.actor = std::move(actor);
    r.action = std::move(action);
    r.outcome = std::move(outcome);
    r.reason = std::move(reason);
    r.detail = std::move(detail);
    return r;
}

bool valid_passkey_name(std::string_view name) {
    return !name.empty() && name.size() <= kMaxPasskeyName &&
           std::all_of(name.begin(), name.end(), [](char c) {
               const auto u = static_cast<unsigned char>(c);
               return u >= 0x20 && u != 0x7f;  // printable, UTF-8 allowed
           });
}

// How the audit log and the API name a credential: its id in base64url.
std::string credential_text(std::string_view id) {
    return webauthn::base64url_encode(id);
}

Unexpected<Refusal> passkey_refused() {
    // The same answer as a wrong password: which check failed is on the audit log only.
    return refuse(Refusal::Code::unauthenticated, "authentication failed");
}

}  // namespace

std::string passkey_user_handle(std::string_view user) {
    const auto digest = crypto::Sha256::hash("dkim-appliance webauthn user\n" + std::string(user));
    return std::string(reinterpret_cast<const char*>(digest.data()), 16);
}

Outcome<Passkey> Directory::add_passkey(const Actor& by, const std::string& user,
                                        const webauthn::Registration& registration,
                                        const std::string& name, bool confirmed, TimePoint now) {
    if (!valid_passkey_name(name)) {
        return refuse(Refusal::Code::invalid, "a passkey's name is 1 to 64 printable characters");
    }
    auto state = state_.lock();
    if (state->users.count(user) == 0) {
        return refuse(Refusal::Code::not_found, "no user " + user);
    }
    if (state->passkeys.count(registration.credential_id) != 0) {
        return refuse(Refusal::Code::conflict, "this credential is registered already");
    }
    const auto owned = std::count_if(state->passkeys.begin(), state->passkeys.end(),
                                     [&user](const auto& p) { return p.second.user == user; });
    if (static_cast<std::size_t>(owned) >= kMaxPasskeysPerUser) {
        return refuse(Refusal::Code::conflict,
                      user + " has 16 passkeys, the most one user may have: remove one first");
    }
    Passkey p;
    p.credential_id = registration.credential_id;
    p.user = user;
    p.name = name;
    p.public_key = registration.public_key;
    p.algorithm = std::string(webauthn::to_string(registration.algorithm));
    p.sign_count = registration.sign_count;
    p.backup_eligible = registration.backup_eligible;
    p.confirmed = confirmed;
    p.created = now;
    // The public key is on the log, so that an auditor can check later assertions with it.
    AuditRecord r = passkey_record(
        now, by.audit_name(), "passkey.register", "ok", "",
        "user " + user + "; credential=" + credential_text(p.credential_id) +
            "; algorithm=" + p.algorithm + "; public_key=" + credential_text(p.public_key) +
            "; user_verified=" + (registration.user_verified ? "yes" : "no") +
            "; backup_eligible=" + (p.backup_eligible ? "yes" : "no") +
            (confirmed ? "" : "; pending confirmation at the CLI"));
    if (auto written = journal_.write({p}, std::move(r)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    state->passkeys[p.credential_id] = p;
    return p;
}

std::vector<Passkey> Directory::confirmed_passkeys(const std::string& user) const {
    std::vector<Passkey> out = passkeys(user);
    out.erase(std::remove_if(out.begin(), out.end(), [](const Passkey& p) { return !p.confirmed; }),
              out.end());
    return out;
}

Outcome<Passkey> Directory::confirm_passkey(const Actor& by, const std::string& user,
                                            std::string_view credential_id, TimePoint now) {
    auto state = state_.lock();
    const auto it = state->passkeys.find(std::string(credential_id));
    if (it == state->passkeys.end() || it->second.user != user) {
        return refuse(Refusal::Code::not_found, "no such passkey of " + user);
    }
    if (it->second.confirmed) {
        return refuse(Refusal::Code::conflict, "this passkey of " + user + " is confirmed already");
    }
    Passkey p = it->second;
    p.confirmed = true;
    AuditRecord r =
        passkey_record(now, by.audit_name(), "passkey.confirm", "ok", "",
                       "user " + user + "; credential=" + credential_text(p.credential_id));
    if (auto written = journal_.write({p}, std::move(r)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    it->second = p;
    return p;
}

std::vector<Passkey> Directory::passkeys(const std::string& user) const {
    const auto state = state_.read_only_lock();
    std::vector<Passkey> out;
    for (const auto& [id, p] : state->passkeys) {
        if (user.empty() || p.user == user) {
            out.push_back(p);
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const Passkey& a, const Passkey& b) {
        return std::tie(a.user, a.created) < std::tie(b.user, b.created);
    });
    return out;
}

Outcome<Passkey> Directory::rename_passkey(const Actor& by, const std::string& user,
                                           std::string_view credential_id, const std::string& name,
                                           TimePoint now) {
    if (!valid_passkey_name(name)) {
        return refuse(Refusal::Code::invalid, "a passkey's name is 1 to 64 printable characters");
    }
    auto state = state_.lock();
    const auto it = state->passkeys.find(std::string(credential_id));
    if (it == state->passkeys.end() || it->second.user != user) {
        return refuse(Refusal::Code::not_found, "no such passkey of " + user);
    }
    Passkey p = it->second;
    p.name = name;
    AuditRecord r =
        passkey_record(now, by.audit_name(), "passkey.rename", "ok", "",
                       "user " + user + "; credential=" + credential_text(p.credential_id));
    if (auto written = journal_.write({p}, std::move(r)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    it->second = p;
    return p;
}

Outcome<Passkey> Directory::remove_passkey(const Actor& by, const std::string& user,
                                           std::string_view credential_id, bool allow_last,
                                           TimePoint now) {
    auto state = state_.lock();
    const auto it = state->passkeys.find(std::string(credential_id));
    if (it == state->passkeys.end() || it->second.user != user) {
        return refuse(Refusal::Code::not_found, "no such passkey of " + user);
    }
    // The last confirmed one: removing a pending one (nobody's yet) leaves the user as they were.
    const auto owned = std::count_if(
        state->passkeys.begin(), state->passkeys.end(),
        [&user](const auto& p) { return p.second.user == user && p.second.confirmed; });
    if (it->second.confirmed && owned == 1 && !allow_last) {
        return refuse(Refusal::Code::forbidden,
                      "this is the last passkey of " + user +
                          ": only the local operator (root) or an admin under an admin grant "
                          "can remove it, never through the web console",
                      "passkey-last");
    }
    Passkey p = it->second;
    p.removed = true;
    AuditRecord r =
        passkey_record(now, by.audit_name(), "passkey.remove", "ok", "",
                       "user " + user + "; credential=" + credential_text(p.credential_id) +
                           (it->second.confirmed && owned == 1 ? "; the last one" : "") +
                           (it->second.confirmed ? "" : "; it was pending"));
    if (auto written = journal_.write({p}, std::move(r)); !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written, nothing was changed: " + written.error());
    }
    state->passkeys.erase(it);
    return p;
}

Outcome<Directory::PasskeyUse> Directory::check_passkey(
    const std::string& user, const webauthn::Assertion& assertion, std::string_view challenge,
    const webauthn::RelyingParty& rp, bool require_uv, const std::string& action, TimePoint now,
    const std::string& refused_before) {
    auto state = state_.lock();
    const auto it = state->passkeys.find(assertion.credential_id);
    // Whom a failure is counted against: the credential's owner when it exists, else the user
    // named (an unknown credential offered for a named user still counts against that user).
    const std::string owner = it != state->passkeys.end() ? it->second.user : user;
    std::string why;
    std::optional<webauthn::Verified> verified;
    const auto user_it = state->users.find(owner);
    const bool locked = !owner.empty() && locked_out(*state, owner, now);
    if (it == state->passkeys.end()) {
        why = "unknown credential";
    } else if (!user.empty() && it->second.user != user) {
        // Another user's credential: refused, and counted against the user named (the owner
        // did nothing wrong).
        why = "the credential of another user";
    } else if (user_it == state->users.end() || user_it->second.disabled) {
        why = "user disabled";
    } else if (!it->second.confirmed) {
        why = "a passkey pending confirmation at the CLI";
    } else if (locked) {
        why = "locked out";
    } else if (!refused_before.empty()) {
        why = refused_before;
    } else if (!assertion.user_handle.empty() &&
               assertion.user_handle != passkey_user_handle(owner)) {
        why = "user handle of another user";
    } else {
        const webauthn::StoredCredential stored{it->second.credential_id, it->second.public_key,
                                                it->second.sign_count};
        auto checked = webauthn::verify_assertion(rp, stored, assertion, challenge, require_uv);
        if (checked) {
            verified = *checked;
        } else {
            why = "webauthn " + std::string(webauthn::to_string(checked.error().reason)) + ": " +
                  checked.error().message;
        }
    }
    if (!verified) {
        const std::string counted = !user.empty() ? user : owner;
        auto failures = counted.empty() ? std::nullopt : note_failure(*state, counted, now);
        state.lock().unlock();  // the refusal is written to the log unlocked
        if (auto recorded = audit_failure(counted.empty() ? "unknown" : counted, action, why,
                                          std::move(failures), now);
            !recorded) {
            return unexpected(recorded.error());
        }
        return passkey_refused();
    }
    Passkey p = it->second;
    p.sign_count = verified->sign_count;
    p.last_used = now;
    // The new counter is durable before the login or decision it proves (a replay of this
    // assertion then meets a counter that did not grow, besides a challenge already used).
    if (auto written =
            journal_.write({p}, passkey_record(now, owner, action, "ok", "",
                                               "credential=" + credential_text(p.credential_id) +
                                                   "; sign_count=" + std::to_string(p.sign_count)));
        !written) {
        return refuse(Refusal::Code::unavailable,
                      "the audit log cannot be written: " + written.error());
    }
    it->second = p;
    return PasskeyUse{actor_of(user_it->second), std::move(p)};
}

}  // namespace dkim::jit

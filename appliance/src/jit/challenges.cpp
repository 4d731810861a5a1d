#include "dkim/jit/challenges.hpp"

#include <sodium.h>

#include <algorithm>
#include <map>
#include <vector>

#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/webauthn.hpp"
#include "dkim/text/json.hpp"

namespace dkim::jit {

std::string decision_statement(const DecisionSubject& subject) {
    std::string out = "dkim-appliance decision v1\n";
    out += "action=" + subject.action + "\n";
    out += "id=" + std::to_string(subject.id) + "\n";
    out += "scope=" + subject.scope + "\n";
    out += "duration=" + std::to_string(subject.duration_seconds) + "\n";
    out += "budget=" + (subject.budget ? std::to_string(*subject.budget) : std::string("-")) + "\n";
    out += "reason=" + text::json_quote(subject.reason) + "\n";
    out += "actor=" + subject.actor + "\n";
    out += "target=" + subject.target + "\n";
    return out;
}

std::array<std::uint8_t, 32> decision_digest(const DecisionSubject& subject) {
    return crypto::Sha256::hash(decision_statement(subject));
}

namespace {

// "key=value" fields of a detail, from `from` on, separated by "; " (the values written by
// SecondFactors::check and Directory::add_passkey are base64url, hex or names: no "; " in them).
std::map<std::string, std::string> detail_fields(std::string_view detail) {
    std::map<std::string, std::string> out;
    while (!detail.empty()) {
        const auto end = detail.find("; ");
        const std::string_view field = detail.substr(0, end);
        if (const auto eq = field.find('='); eq != std::string_view::npos) {
            out.emplace(std::string(field.substr(0, eq)), std::string(field.substr(eq + 1)));
        }
        if (end == std::string_view::npos) {
            break;
        }
        detail.remove_prefix(end + 2);
    }
    return out;
}

// The statement's line `name=...`, or none.
std::optional<std::string> statement_line(const std::string& statement, const std::string& name) {
    const std::string key = "\n" + name + "=";
    const auto at = statement.find(key);
    if (at == std::string::npos) {
        return std::nullopt;
    }
    const auto start = at + key.size();
    return statement.substr(start, statement.find('\n', start) - start);
}

// The decision a record is, in the statement's words, with the id it names.
std::optional<std::pair<std::string, std::int64_t>> decision_of(const AuditRecord& r) {
    if (r.action == "elevation.approve") {
        return std::make_pair(std::string("approve"), r.request_id);
    }
    if (r.action == "elevation.deny") {
        return std::make_pair(std::string("deny"), r.request_id);
    }
    if (r.action == "grant.revoke") {
        return std::make_pair(std::string("revoke"), r.grant_id);
    }
    if (r.action == "elevation.break_glass") {
        return std::make_pair(std::string("break_glass"), std::int64_t{0});
    }
    return std::nullopt;
}

}  // namespace

PasskeyDecisionReport check_passkey_decisions(const std::vector<AuditRecord>& records) {
    PasskeyDecisionReport report;
    // credential (base64url) -> (its user, its COSE key), from its passkey.register record until
    // its passkey.remove record: a decision counts only with a key of its own actor's, made
    // while that key was registered.
    std::map<std::string, std::pair<std::string, std::string>> keys;
    // "user bob; credential=...": the user a passkey record names.
    const auto user_of = [](const std::string& detail) {
        return detail.rfind("user ", 0) == 0 ? detail.substr(5, detail.find(';') - 5)
                                             : std::string();
    };
    const auto bad = [&report](const AuditRecord& r, std::string why) {
        if (report.first_bad == 0) {
            report.first_bad = r.seq;
            report.problem = "record " + std::to_string(r.seq) + " (" + r.action + " by " +
                             r.actor + "): " + std::move(why);
        }
    };
    for (const AuditRecord& r : records) {
        if (r.action == "passkey.register" && r.outcome == "ok") {
            auto f = detail_fields(r.detail);
            if (auto key = crypto::base64url_decode(f["public_key"]); key) {
                keys[f["credential"]] = {user_of(r.detail), std::move(*key)};
            }
            continue;
        }
        if (r.action == "passkey.remove" && r.outcome == "ok") {
            keys.erase(detail_fields(r.detail)["credential"]);
            continue;
        }
        const auto at = r.detail.find("factor=webauthn");
        if (at == std::string::npos || r.outcome == "refused") {
            continue;
        }
        auto f = detail_fields(std::string_view(r.detail).substr(at));
        const auto decision = decision_of(r);
        const auto challenge = crypto::base64url_decode(f["challenge"]);
        const auto statement = crypto::base64url_decode(f["statement"]);
        const auto credential = crypto::base64url_decode(f["credential"]);
        const auto data = crypto::base64url_decode(f["authenticator_data"]);
        const auto client = crypto::base64url_decode(f["client_data"]);
        const auto signature = crypto::base64url_decode(f["signature"]);
        if (!decision || !challenge || !statement || !credential || !data || !client ||
            !signature || f["rp_id"].empty()) {
            bad(r, "a passkey decision without its assertion, challenge, statement or rpId");
            continue;
        }
        const auto key = keys.find(f["credential"]);
        if (key == keys.end()) {
            bad(r, "its passkey " + f["credential"] +
                       " has no passkey.register record before it (or was removed)");
            continue;
        }
        if (key->second.first != r.actor) {
            bad(r, "its passkey " + f["credential"] + " is " + key->second.first + "'s, not " +
                       r.actor + "'s");
            continue;
        }
        const auto digest = crypto::Sha256::hash(*statement);
        if (challenge->size() != 48 ||
            challenge->compare(16, 32, reinterpret_cast<const char*>(digest.data()), 32) != 0 ||
            to_hex(digest) != f["statement_sha256"]) {
            bad(r, "the challenge does not commit to the statement");
            continue;
        }
        if (statement_line(*statement, "action") != decision->first ||
            statement_line(*statement, "id") != std::to_string(decision->second) ||
            statement_line(*statement, "actor") != r.actor) {
            bad(r, "the statement the passkey signed is of another decision");
            continue;
        }
        auto client_data = webauthn::parse_client_data(*client);
        if (!client_data) {
            bad(r, "its clientDataJSON cannot be read");
            continue;
        }
        // The origin as the browser wrote it (signerd checked it against its configuration when
        // it accepted the assertion); the rpId, the challenge and the signature are checked here.
        const webauthn::RelyingParty rp{f["rp_id"], {client_data->origin}};
        const webauthn::StoredCredential stored{*credential, key->second.second, 0};
        const webauthn::Assertion assertion{*credential, *client, *data, *signature, ""};
        if (auto verified = webauthn::verify_assertion(rp, stored, assertion, *challenge, false);
            !verified) {
            bad(r, "the assertion does not verify (" +
                       std::string(webauthn::to_string(verified.error().reason)) +
                       "): " + verified.error().message);
            continue;
        }
        ++report.checked;
    }
    return report;
}

void ChallengeBook::forget_expired(State& state, TimePoint now) {
    for (auto it = state.entries.begin(); it != state.entries.end();) {
        it = now >= it->second.expires ? state.entries.erase(it) : std::next(it);
    }
}

std::string ChallengeBook::issue(Purpose purpose, const std::string& user,
                                 const std::array<std::uint8_t, 32>& digest, TimePoint now) {
    std::string challenge(16, '\0');
    randombytes_buf(challenge.data(), challenge.size());
    if (purpose == Purpose::decision) {
        challenge.append(reinterpret_cast<const char*>(digest.data()), digest.size());
    }
    auto state = state_.lock();
    forget_expired(*state, now);
    // The oldest of this user's (or, for logins, of the anonymous pool's) challenges goes first
    // when there are too many; then the oldest of all when the book is full.
    const auto oldest = [&state](auto&& keep) {
        auto found = state->entries.end();
        std::size_t count = 0;
        for (auto it = state->entries.begin(); it != state->entries.end(); ++it) {
            if (keep(it->second)) {
                ++count;
                if (found == state->entries.end() || it->second.expires < found->second.expires) {
                    found = it;
                }
            }
        }
        return std::make_pair(found, count);
    };
    const std::size_t limit = user.empty() ? kMaxAnonymous : kMaxPerUser;
    if (auto [it, count] = oldest([&user](const Entry& e) { return e.user == user; });
        count >= limit) {
        state->entries.erase(it);
    }
    if (state->entries.size() >= kMaxEntries) {
        state->entries.erase(oldest([](const Entry&) { return true; }).first);
    }
    state->entries[challenge] =
        Entry{purpose, user, purpose == Purpose::decision ? digest : std::array<std::uint8_t, 32>{},
              now + kLifetime};
    return challenge;
}

std::optional<ChallengeBook::Entry> ChallengeBook::take(std::string_view challenge, TimePoint now) {
    auto state = state_.lock();
    const auto it = state->entries.find(std::string(challenge));
    if (it == state->entries.end()) {
        return std::nullopt;
    }
    Entry entry = it->second;
    state->entries.erase(it);
    if (now >= entry.expires) {
        return std::nullopt;
    }
    return entry;
}

std::size_t ChallengeBook::size() const {
    return state_.read_only_lock()->entries.size();
}

}  // namespace dkim::jit

#include "pin_custody.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

#include "dkim/crypto/base64.hpp"

namespace dkim::signerd {

namespace {

std::string_view as_text(std::span<const unsigned char> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};  // NOLINT
}

std::string b64url(std::span<const unsigned char> bytes) {
    return crypto::base64url_encode(as_text(bytes));
}

std::optional<std::string> new_key_id() {
    std::array<unsigned char, 12> id{};
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
        return std::nullopt;
    }
    return b64url(id);
}

std::string custodian_list(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) {
        out += (out.empty() ? "" : ", ") + n;
    }
    return out;
}

const jit::PinShareHolder* holder_of(const jit::PinShareSet& set, const std::string& custodian) {
    for (const jit::PinShareHolder& h : set.holders) {
        if (h.custodian == custodian) {
            return &h;
        }
    }
    return nullptr;
}

constexpr std::string_view kSealedRefused =
    "the token refused the PIN in the sealed credential: it is not tried again (each try counts "
    "toward the token's PIN lockout); seal the right one (dkim-appliance pin seal) and restart "
    "dkim-signerd";

constexpr std::string_view kFileRefused =
    "the token refused the PIN in the PIN file: it is not tried again until the file changes "
    "(each try counts toward the token's PIN lockout)";

// What tells one version of the PIN file from the next; nullopt when it cannot be read.
std::optional<std::array<std::int64_t, 5>> file_stamp(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return std::nullopt;
    }
    return std::array<std::int64_t, 5>{
        static_cast<std::int64_t>(st.st_dev), static_cast<std::int64_t>(st.st_ino),
        static_cast<std::int64_t>(st.st_size), static_cast<std::int64_t>(st.st_mtim.tv_sec),
        static_cast<std::int64_t>(st.st_mtim.tv_nsec)};
}

ipc::ErrorReply refusal(ipc::ErrorCode code, std::string message, std::string rule = {}) {
    return ipc::ErrorReply{code, std::move(message), 0, std::move(rule)};
}

}  // namespace

PinCustody::PinCustody(jit::Journal& journal, const jit::Authority& authority,
                       const jit::Directory& directory, CustodyOptions options)
    : journal_(journal),
      authority_(authority),
      directory_(directory),
      options_(std::move(options)),
      identity_(options_.identity) {
    if (!identity_) {
        auto made = custody::IdentityKey::generate();
        if (made) {
            identity_ = std::make_shared<const custody::IdentityKey>(std::move(*made));
        }
    }
    state_.set = options_.share_set;
}

Expected<void, std::string> PinCustody::record(TimePoint now, const std::string& actor,
                                               std::string action, std::string outcome,
                                               std::string reason, std::string detail,
                                               std::vector<jit::Mutation> mutations) {
    jit::AuditRecord r;
    r.time = now;
    r.actor = actor;
    r.action = std::move(action);
    r.outcome = std::move(outcome);
    r.reason = std::move(reason);
    r.detail = std::move(detail);
    return journal_.write(std::move(mutations), std::move(r));
}

// --- the lifecycle's PIN ------------------------------------------------------------------------

Expected<hsm::Secret, std::string> PinCustody::pin_for_login() const {
    switch (options_.mode) {
        case PinSourceKind::file:
        case PinSourceKind::sealed: {
            if (options_.mode == PinSourceKind::sealed) {
                std::lock_guard lock(mutex_);
                if (state_.credential_refused) {
                    return unexpected(std::string(kSealedRefused));
                }
            } else {
                std::lock_guard lock(mutex_);
                // A new file gets one try (refused again, login_refused stamps it).
                if (state_.refused_file && file_stamp(options_.pin_path) == state_.refused_file) {
                    return unexpected(std::string(kFileRefused));
                }
            }
            auto pin = hsm::Secret::from_file(options_.pin_path);
            if (!pin) {
                return unexpected("cannot read the token PIN: " + pin.error().to_string());
            }
            return std::move(*pin);
        }
        case PinSourceKind::approver:
            return unexpected(
                std::string("the token needs an approver's PIN (PIN custody \"approver\")"));
        case PinSourceKind::shares: {
            std::lock_guard lock(mutex_);
            if (!state_.held) {
                return unexpected(std::string(
                    "the token PIN is not in memory: a quorum of custodians must submit their "
                    "shares (PIN custody \"shares\")"));
            }
            return state_.held->duplicate();
        }
    }
    return unexpected(std::string("unknown PIN custody"));
}

void PinCustody::login_refused(TimePoint now, const std::string& why) {
    if (options_.mode == PinSourceKind::sealed) {
        // Each try would be a C_Login the token counts toward its lockout, at every tick.
        std::lock_guard lock(mutex_);
        state_.credential_refused = true;
        return;
    }
    if (options_.mode == PinSourceKind::file) {
        std::lock_guard lock(mutex_);
        state_.refused_file = file_stamp(options_.pin_path);
        if (!state_.refused_file) {
            state_.refused_file = std::array<std::int64_t, 5>{};  // unreadable now: kept refused
        }
        return;
    }
    if (options_.mode != PinSourceKind::shares) {
        return;
    }
    std::lock_guard lock(mutex_);
    if (state_.held) {
        state_.held.reset();
        (void)record(now, "signerd", "pin.forget", "ok",
                     "the token refused the PIN the quorum rebuilt: " + why,
                     "a quorum of custodians is needed again");
    }
}

// --- envelope keys
// --------------------------------------------------------------------------------

ipc::Reply PinCustody::operate(const Peer& peer, const jit::Actor& who, ipc::PinKeyOffer& r,
                               TimePoint now) {
    if (r.purpose == "approve") {
        if (options_.mode != PinSourceKind::approver) {
            return refusal(ipc::ErrorCode::conflict,
                           "approvals bring no PIN: the PIN custody is \"" +
                               std::string(to_string(options_.mode)) + "\"");
        }
        std::int64_t id = 0;
        const auto* end = r.subject.data() + r.subject.size();
        if (auto [p, ec] = std::from_chars(r.subject.data(), end, id);
            ec != std::errc() || p != end || id <= 0) {
            return refusal(ipc::ErrorCode::invalid, "subject: a request id");
        }
        if (auto allowed = authority_.may_decide(who, id, true, now); !allowed) {
            return error_reply(allowed.error());
        }
    } else if (r.purpose == "share") {
        if (options_.mode != PinSourceKind::shares) {
            return refusal(ipc::ErrorCode::conflict,
                           "there are no shares to submit: the PIN custody is \"" +
                               std::string(to_string(options_.mode)) + "\"");
        }
        std::lock_guard lock(mutex_);
        if (!state_.set || state_.set->set_id != r.subject) {
            return refusal(ipc::ErrorCode::not_found,
                           "no share set " + r.subject.substr(0, 16) + " (see pin status)");
        }
        if (holder_of(*state_.set, who.name) == nullptr) {
            return refusal(ipc::ErrorCode::forbidden,
                           who.name + " is not a custodian of share set " + r.subject, "custodian");
        }
    } else {
        return refusal(ipc::ErrorCode::invalid, "purpose: \"approve\" or \"share\"");
    }
    if (!identity_) {
        return refusal(ipc::ErrorCode::unavailable, "signerd has no identity key");
    }
    auto key = custody::generate_recipient_key();
    auto key_id = new_key_id();
    if (!key || !key_id) {
        return refusal(ipc::ErrorCode::unavailable, "cannot make an envelope key");
    }
    std::lock_guard lock(mutex_);
    std::erase_if(state_.offers, [now](const auto& o) { return o.second.expires <= now; });
    // Counted per peer: webd holds every console user's session and could keep a user's (or
    // everyone's) keys taken, five minutes at a time; the CLI's keys are counted apart.
    const bool admin_peer = peer.kind == PeerKind::admin;
    const auto same_peer =
        std::count_if(state_.offers.begin(), state_.offers.end(),
                      [admin_peer](const auto& o) { return o.second.admin_peer == admin_peer; });
    const auto mine = std::count_if(
        state_.offers.begin(), state_.offers.end(), [&who, admin_peer](const auto& o) {
            return o.second.admin_peer == admin_peer && o.second.user == who.name;
        });
    if (static_cast<std::size_t>(mine) >= kMaxKeysPerUser ||
        static_cast<std::size_t>(same_peer) >= kMaxKeys) {
        return refusal(ipc::ErrorCode::conflict,
                       "too many envelope keys outstanding; use one or wait five minutes");
    }
    const TimePoint expires = now + kKeyLifetime;
    ipc::PinKeyOfferReply out;
    out.key_id = *key_id;
    out.public_key = b64url(key->public_key);
    out.identity = b64url(identity_->public_key());
    out.fingerprint = identity_->fingerprint();
    out.expires_ms = to_unix_ms(expires);
    out.statement = custody::key_offer_statement(r.purpose, r.subject, who.name, out.key_id,
                                                 key->public_key, out.expires_ms);
    const auto statement =
        std::span(reinterpret_cast<const unsigned char*>(out.statement.data()),  // NOLINT
                  out.statement.size());
    out.signature = b64url(identity_->sign(statement));
    out.associated_data = custody::envelope_associated_data(r.purpose, r.subject, out.key_id);
    state_.offers.emplace(
        out.key_id, Offer{r.purpose, r.subject, who.name, admin_peer, std::move(*key), expires});
    return out;
}

Expected<hsm::Secret, std::string> PinCustody::open_locked(State& state, std::string_view purpose,
                                                           std::string_view subject,
                                                           const std::string& user,
                                                           const ipc::PinEnvelope& envelope,
                                                           TimePoint now) {
    auto it = state.offers.find(envelope.key_id);
    if (it == state.offers.end()) {
        return unexpected(std::string(
            "the envelope's key is unknown, used or expired: ask for a new one (pin key offer)"));
    }
    Offer offer = std::move(it->second);
    state.offers.erase(it);  // used up, whatever follows
    if (offer.expires <= now) {
        return unexpected(std::string("the envelope's key expired: ask for a new one"));
    }
    if (offer.purpose != purpose || offer.subject != subject || offer.user != user) {
        return unexpected("the envelope's key was offered to " + offer.user + " for " +
                          offer.purpose + " " + offer.subject + ", not for this");
    }
    auto parsed = custody::parse_envelope(envelope.envelope);
    if (!parsed) {
        return unexpected("the envelope: " + parsed.error());
    }
    return custody::open(
        *parsed, offer.key,
        custody::envelope_associated_data(offer.purpose, offer.subject, envelope.key_id));
}

Expected<hsm::Secret, std::string> PinCustody::open_approval_pin(const std::string& user,
                                                                 std::int64_t request_id,
                                                                 const ipc::PinEnvelope& envelope,
                                                                 TimePoint now) {
    std::lock_guard lock(mutex_);
    return open_locked(state_, "approve", std::to_string(request_id), user, envelope, now);
}

// --- shares
// ---------------------------------------------------------------------------------------

void PinCustody::sweep_locked(State& state, TimePoint now) {
    if (!state.submitted.empty() && state.window_ends <= now) {
        std::vector<std::string> names;
        for (const Submitted& s : state.submitted) {
            names.push_back(s.custodian);
        }
        const std::size_t count = state.submitted.size();
        state.submitted.clear();  // the shares' Secrets are wiped
        (void)record(
            now, "signerd", "pin.share.wipe", "ok", "the unlock window ended before the quorum",
            std::to_string(count) + " of " + std::to_string(state.set ? state.set->threshold : 0) +
                " shares wiped, from " + custodian_list(names));
    }
}

void PinCustody::sweep(TimePoint now) {
    std::lock_guard lock(mutex_);
    sweep_locked(state_, now);
    std::erase_if(state_.offers, [now](const auto& o) { return o.second.expires <= now; });
}

std::optional<TimePoint> PinCustody::next_deadline() const {
    std::lock_guard lock(mutex_);
    if (state_.submitted.empty()) {
        return std::nullopt;
    }
    return state_.window_ends;
}

ipc::Reply PinCustody::refuse_share(State& state, TimePoint now, const std::string& custodian,
                                    const std::string& why) {
    (void)record(now, custodian, "pin.share.submit", "refused", why,
                 state.set ? "set " + state.set->set_id : std::string());
    return refusal(ipc::ErrorCode::forbidden, why, "share");
}

ipc::Reply PinCustody::operate(const jit::Actor& who, ipc::PinShareSubmit& r, TimePoint now) {
    if (options_.mode != PinSourceKind::shares) {
        return refusal(
            ipc::ErrorCode::conflict,
            "the PIN custody is \"" + std::string(to_string(options_.mode)) + "\", not \"shares\"");
    }
    std::unique_lock lock(mutex_);
    State& state = state_;
    sweep_locked(state, now);
    if (!state.set) {
        return refusal(ipc::ErrorCode::not_found,
                       "the PIN was never split: run dkim-appliance pin split at the appliance");
    }
    const jit::PinShareSet& set = *state.set;
    const jit::PinShareHolder* holder = holder_of(set, who.name);
    if (holder == nullptr) {
        return refuse_share(state, now, who.audit_name(),
                            who.name + " is not a custodian of share set " + set.set_id);
    }
    if (state.held) {
        // Audited as every submission is (its envelope is not opened).
        const std::string why = "the PIN is in memory already: no share is needed (pin status)";
        (void)record(now, who.name, "pin.share.submit", "refused", why, "set " + set.set_id);
        return refusal(ipc::ErrorCode::conflict, why);
    }
    auto opened = open_locked(state, "share", set.set_id, who.name, r.share, now);
    if (!opened) {
        return refuse_share(state, now, who.name, who.name + "'s share: " + opened.error());
    }
    auto share = custody::parse_share(as_text(opened->bytes()));
    opened->wipe();
    if (!share) {
        return refuse_share(state, now, who.name, who.name + "'s share: " + share.error());
    }
    if (share->set_id != set.set_id) {
        return refuse_share(state, now, who.name,
                            who.name + "'s share is of split " + share->set_id +
                                ", not of the current split " + set.set_id);
    }
    const std::string commitment = custody::share_commitment(*share);
    if (share->index != holder->index || share->threshold != set.threshold ||
        commitment.size() != holder->commitment.size() ||
        CRYPTO_memcmp(commitment.data(), holder->commitment.data(), commitment.size()) != 0) {
        return refuse_share(state, now, who.name,
                            who.name + "'s share is not the one " + who.name +
                                " was given (it does not match its commitment in split " +
                                set.set_id + ")");
    }
    const bool again = std::any_of(state.submitted.begin(), state.submitted.end(),
                                   [&who](const Submitted& s) { return s.custodian == who.name; });
    if (again) {
        (void)record(now, who.name, "pin.share.submit", "ok", "submitted again: counted once",
                     "set " + set.set_id + "; " + std::to_string(state.submitted.size()) + " of " +
                         std::to_string(set.threshold));
        return ipc::OkReply{who.name + "'s share was counted already (" +
                                std::to_string(state.submitted.size()) + " of " +
                                std::to_string(set.threshold) + ")",
                            0, ""};
    }
    if (state.submitted.empty()) {
        state.window_ends = now + options_.unlock_window;
    }
    state.submitted.push_back(Submitted{who.name, std::move(*share), now});
    const std::size_t have = state.submitted.size();
    if (have < set.threshold) {
        if (auto written =
                record(now, who.name, "pin.share.submit", "ok", "",
                       "set " + set.set_id + "; share " + std::to_string(holder->index) + "; " +
                           std::to_string(have) + " of " + std::to_string(set.threshold));
            !written) {
            state.submitted.pop_back();  // no share counts without its record
            return refusal(ipc::ErrorCode::unavailable,
                           "the audit log cannot be written: " + written.error());
        }
        return ipc::OkReply{who.name + "'s share accepted: " + std::to_string(have) + " of " +
                                std::to_string(set.threshold) + "; the others have " +
                                jit::format_duration(state.window_ends - now),
                            0, ""};
    }
    // The quorum: combine, wipe the shares, hold the PIN.
    std::vector<const custody::Share*> shares;
    std::vector<std::string> names;
    for (const Submitted& s : state.submitted) {
        shares.push_back(&s.share);
        names.push_back(s.custodian);
    }
    auto pin = custody::combine_pin(shares);
    state.submitted.clear();
    if (!pin) {
        (void)record(now, who.name, "pin.share.quorum", "failed", pin.error(),
                     "set " + set.set_id + "; from " + custodian_list(names));
        return refusal(ipc::ErrorCode::unavailable, "the shares do not combine: " + pin.error());
    }
    if (auto written = record(
            now, who.name, "pin.share.quorum", "ok", "the PIN is rebuilt in signerd's memory",
            "set " + set.set_id + "; " + std::to_string(names.size()) + " of " +
                std::to_string(set.holders.size()) + " custodians: " + custodian_list(names));
        !written) {
        return refusal(ipc::ErrorCode::unavailable,
                       "the audit log cannot be written: " + written.error());
    }
    state.held = std::move(*pin);
    state.quorum_at = now;
    (void)record(now, "signerd", "pin.share.wipe", "ok", "the quorum combined them",
                 std::to_string(names.size()) + " shares wiped");
    lock.unlock();
    if (changed_) {
        changed_(now);
    }
    return ipc::OkReply{"quorum: " + custodian_list(names) +
                            "; the PIN is in signerd's memory and the shares are wiped",
                        0, ""};
}

ipc::Reply PinCustody::operate(const Peer& peer, const jit::Actor& who, ipc::PinSplit& r,
                               TimePoint now) {
    if (peer.kind != PeerKind::admin) {
        (void)record(now, who.audit_name(), "pin.split", "refused",
                     "only at the CLI (admin peer), never through the web console", "");
        return refusal(ipc::ErrorCode::forbidden,
                       "the PIN is split only at the appliance's CLI (admin peer)", "peer");
    }
    if (options_.mode != PinSourceKind::shares) {
        return refusal(ipc::ErrorCode::conflict,
                       "the PIN custody is \"" + std::string(to_string(options_.mode)) +
                           "\": set [pin] source = \"shares\" and restart signerd first");
    }
    std::set<std::string> distinct(r.custodians.begin(), r.custodians.end());
    if (r.custodians.size() < 2 || r.custodians.size() > kMaxCustodians ||
        distinct.size() != r.custodians.size()) {
        return refusal(ipc::ErrorCode::invalid,
                       "custodians: 2 to " + std::to_string(kMaxCustodians) + " distinct users");
    }
    if (r.threshold < 2 || r.threshold > r.custodians.size()) {
        return refusal(ipc::ErrorCode::invalid,
                       "threshold: at least 2 and at most the number of custodians");
    }
    for (const std::string& name : r.custodians) {
        const auto user = directory_.find(name);
        if (!user || user->disabled) {
            return refusal(
                ipc::ErrorCode::not_found,
                "custodian " + name + " is not an enabled user (dkim-appliance user add)");
        }
    }
    if (!r.pin.empty() && check_pin_) {
        // The first split's PIN, tried on the token before anything is split (its record is
        // token.login with this reason; a wrong one counts towards the token's lockout as any
        // wrong PIN does). Not under mutex_: the lifecycle takes its own lock, then ours.
        bool first = false;
        {
            std::unique_lock peek(mutex_);
            first = !state_.set.has_value();
        }
        if (first) {
            if (auto tried = check_pin_(hsm::Secret::from_string(r.pin), who.audit_name(), now);
                !tried) {
                (void)record(now, who.audit_name(), "pin.split", "refused",
                             "the PIN was not accepted by the token: nothing was split", "");
                return refusal(ipc::ErrorCode::forbidden, "nothing was split: " + tried.error(),
                               "pin");
            }
        }
    }
    std::unique_lock lock(mutex_);
    State& state = state_;
    std::optional<hsm::Secret> given;
    if (!r.pin.empty()) {
        given = hsm::Secret::from_string(r.pin);
    }
    if (state.set && given) {
        return refusal(ipc::ErrorCode::conflict,
                       "the PIN is split already (set " + state.set->set_id +
                           "): a re-split needs the PIN a quorum rebuilt, not a typed one",
                       "quorum");
    }
    if (state.set && !state.held) {
        return refusal(ipc::ErrorCode::conflict,
                       "a re-split needs a quorum first: " + std::to_string(state.set->threshold) +
                           " of the current custodians must submit their shares",
                       "quorum");
    }
    if (state.set && state.held && now - state.quorum_at > options_.unlock_window) {
        // The quorum agreed to let the token sign, not to a re-split hours later, whose reply
        // hands out every new share (and so the PIN) to the caller.
        return refusal(ipc::ErrorCode::conflict,
                       "a re-split follows its own quorum, within the unlock window after it: "
                       "run pin lock, have " +
                           std::to_string(state.set->threshold) +
                           " custodians submit their shares again, then re-split",
                       "quorum");
    }
    if (!state.set && !given) {
        return refusal(ipc::ErrorCode::invalid, "the first split needs the PIN");
    }
    const hsm::Secret& pin = given ? *given : *state.held;
    const std::string set_id = custody::new_share_set_id();
    auto shares =
        custody::split_pin(pin, r.threshold, static_cast<unsigned>(r.custodians.size()), set_id);
    if (!shares) {
        return refusal(ipc::ErrorCode::invalid, shares.error());
    }
    jit::PinShareSet set;
    set.set_id = set_id;
    set.threshold = r.threshold;
    set.created = now;
    set.created_by = who.audit_name();
    std::string detail = "set " + set_id + "; " + std::to_string(r.threshold) + " of " +
                         std::to_string(r.custodians.size()) + ":";
    for (std::size_t i = 0; i < shares->size(); ++i) {
        const custody::Share& s = (*shares)[i];
        set.holders.push_back({r.custodians[i], s.index, custody::share_commitment(s)});
        detail += " " + r.custodians[i] + "#" + std::to_string(s.index) + "=" +
                  set.holders.back().commitment.substr(0, 16);
    }
    if (state.set) {
        detail += "; replaces set " + state.set->set_id;
    }
    if (auto written = record(now, who.audit_name(), "pin.split", "ok",
                              state.set ? "re-split after a quorum" : "first split", detail, {set});
        !written) {
        return refusal(ipc::ErrorCode::unavailable,
                       "the audit log cannot be written: " + written.error());
    }
    state.set = set;
    state.submitted.clear();
    ipc::PinSharesReply out;
    out.set_id = set_id;
    out.threshold = r.threshold;
    for (std::size_t i = 0; i < shares->size(); ++i) {
        const hsm::Secret text = custody::format_share((*shares)[i]);
        out.shares.push_back(
            {r.custodians[i], (*shares)[i].index, std::string(as_text(text.bytes()))});
    }
    return out;
}

ipc::Reply PinCustody::operate(const Peer& peer, const jit::Actor& who, ipc::PinLock& r,
                               TimePoint now) {
    if (peer.kind != PeerKind::admin) {
        return refusal(ipc::ErrorCode::forbidden, "pin lock is for the appliance's CLI only",
                       "peer");
    }
    {
        std::lock_guard lock(mutex_);
        const bool had = state_.held.has_value() || !state_.submitted.empty();
        state_.held.reset();
        state_.submitted.clear();
        if (auto written =
                record(now, who.audit_name(), "pin.lock", "ok", r.reason,
                       had ? "the PIN and shares in memory are wiped" : "nothing was in memory");
            !written) {
            return refusal(ipc::ErrorCode::unavailable,
                           "the audit log cannot be written: " + written.error());
        }
    }
    if (changed_) {
        changed_(now);
    }
    return ipc::OkReply{"the PIN is no longer in signerd's memory; the token is logged out", 0, ""};
}

ipc::PinStatusReply PinCustody::status(bool logged_in, TimePoint now) {
    std::lock_guard lock(mutex_);
    sweep_locked(state_, now);
    ipc::PinStatusReply s;
    s.mode = std::string(to_string(options_.mode));
    s.logged_in = logged_in;
    s.identity_fingerprint = identity_ ? identity_->fingerprint() : std::string();
    switch (options_.mode) {
        case PinSourceKind::file:
        case PinSourceKind::sealed: {
            std::error_code ec;
            s.ready = std::filesystem::exists(options_.pin_path, ec);
            if (state_.credential_refused) {
                s.ready = false;
                s.missing = std::string(kSealedRefused);
            } else if (state_.refused_file &&
                       file_stamp(options_.pin_path) == state_.refused_file) {
                s.ready = false;
                s.missing = std::string(kFileRefused);
            } else if (!s.ready) {
                s.missing = "the PIN " +
                            std::string(options_.mode == PinSourceKind::sealed
                                            ? "credential (systemd LoadCredentialEncrypted=)"
                                            : "file") +
                            " cannot be found";
            }
            break;
        }
        case PinSourceKind::approver:
            s.ready = false;
            if (!logged_in) {
                s.missing =
                    "an approver's PIN: the approval that activates the next grant brings it";
            }
            break;
        case PinSourceKind::shares:
            s.ready = state_.held.has_value();
            if (state_.set) {
                s.set_id = state_.set->set_id;
                s.threshold = state_.set->threshold;
                for (const jit::PinShareHolder& h : state_.set->holders) {
                    const bool in = std::any_of(
                        state_.submitted.begin(), state_.submitted.end(),
                        [&h](const Submitted& x) { return x.custodian == h.custodian; });
                    s.custodians.push_back({h.custodian, h.index, in});
                }
                if (!state_.submitted.empty()) {
                    s.window_ends_ms = to_unix_ms(state_.window_ends);
                }
            }
            if (!s.ready) {
                if (!state_.set) {
                    s.missing = "the PIN was never split: run dkim-appliance pin split";
                } else {
                    const std::size_t have = state_.submitted.size();
                    s.missing = std::to_string(state_.set->threshold - have) +
                                " more custodian share" +
                                (state_.set->threshold - have == 1 ? "" : "s") + " (" +
                                std::to_string(have) + " of " +
                                std::to_string(state_.set->threshold) + " submitted)";
                }
            }
            break;
    }
    return s;
}

}  // namespace dkim::signerd

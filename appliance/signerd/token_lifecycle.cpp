#include "token_lifecycle.hpp"

#include <algorithm>

namespace dkim::signerd {

namespace {

// A record of signerd's own (the lifecycle's, not an operator's).
jit::AuditRecord lifecycle_record(TimePoint now, std::string action, std::string reason = {},
                                  std::string outcome = "ok") {
    jit::AuditRecord r;
    r.time = now;
    r.actor = "signerd";
    r.action = std::move(action);
    r.outcome = std::move(outcome);
    r.reason = std::move(reason);
    return r;
}

}  // namespace

TokenLifecycle::TokenLifecycle(jit::Journal& journal, const jit::Authority& authority,
                               TokenGate& gate, Metrics& metrics, PinCustody& custody,
                               LifecycleOptions options, TimePoint now)
    : journal_(journal),
      authority_(authority),
      gate_(gate),
      metrics_(metrics),
      custody_(custody),
      options_(std::move(options)),
      state_(State{journal.seq(), now, 0, {}, 0, std::nullopt}) {}

void TokenLifecycle::on_change(std::function<void()> wake) {
    *wake_.lock() = std::move(wake);
}

void TokenLifecycle::notify_change() {
    const std::function<void()> wake = *wake_.read_only_lock();
    if (wake) {
        wake();
    }
}

Expected<void, std::string> TokenLifecycle::record(TimePoint now, std::string action,
                                                   std::string outcome, std::string reason,
                                                   std::int64_t request_id, std::string detail) {
    jit::AuditRecord r =
        lifecycle_record(now, std::move(action), std::move(reason), std::move(outcome));
    r.request_id = request_id;
    r.detail = std::move(detail);
    return journal_.write({}, std::move(r));
}

std::string TokenLifecycle::login_detail() const {
    return jit::checkpoint_interval_detail(options_.checkpoint_interval.count(),
                                           options_.checkpoint_records);
}

// The lifecycle's own attempts: a failure is recorded once, not at every retry.
void TokenLifecycle::login_failed(State& state, TimePoint now, const std::string& why) {
    if (state.last_login_failure != why) {
        state.last_login_failure = why;
        (void)record(now, "token.login", "failed", why);
    }
}

Expected<void, TokenLifecycle::LoginRefusal> TokenLifecycle::log_in(State& state, TimePoint now,
                                                                    hsm::Secret pin,
                                                                    const LoginAttempt& attempt) {
    // Only a PIN file's copy is kept to recover lost sessions: an approver's is held until
    // C_Login, a sealed credential is read again by the next reconcile, and a quorum's PIN stays
    // in the custody's locked memory anyway.
    const bool keep = !attempt.approver && custody_.mode() == PinSourceKind::file;
    if (attempt.approver && state.refused_pins >= kMaxRefusedPins) {
        const std::string why = std::to_string(state.refused_pins) +
                                " PINs in a row were refused: signerd tries no more until it is "
                                "restarted (the token's own lockout is near)";
        (void)record(now, "token.login", "refused", attempt.reason + ": " + why,
                     attempt.request_id);
        return unexpected(LoginRefusal{LoginRefusal::Kind::held_back, why});
    }
    if (auto logged = gate_.login(std::move(pin), keep); !logged) {
        const std::string& why = logged.error().message;
        if (attempt.approver && logged.error().kind == GateError::Kind::wrong_pin) {
            ++state.refused_pins;
        }
        if (attempt.approver) {
            (void)record(now, "token.login", "failed", attempt.reason + ": " + why,
                         attempt.request_id);
        } else {
            login_failed(state, now, why);
            if (logged.error().kind == GateError::Kind::wrong_pin) {
                custody_.login_refused(now, why);
            }
        }
        return unexpected(LoginRefusal{LoginRefusal::Kind::wrong_pin, why});
    }
    state.last_login_failure.clear();
    state.refused_pins = 0;
    if (auto written =
            record(now, "token.login", "ok", attempt.reason, attempt.request_id, login_detail());
        !written) {
        gate_.logout();  // no login without its record
        return unexpected(LoginRefusal{LoginRefusal::Kind::audit,
                                       "the audit log cannot be written: " + written.error()});
    }
    metrics_.login();
    recover(state, now);
    return {};
}

// The token is logged out whatever happened to the records: when the checkpoint cannot be
// signed, its record says why and `audit verify` reports the session as not covered; when
// nothing can be written, the logout is recorded (unchecked) afterwards if the log takes it.
void TokenLifecycle::logout(State& state, TimePoint now, const std::string& reason) {
    auto written = checkpoint(state, now, jit::kCheckpointLogout,
                              {lifecycle_record(now, "token.logout", reason)});
    gate_.logout();
    metrics_.logout();
    if (!written) {
        (void)record(
            now, "token.logout", "ok",
            reason + "; the checkpoint before it could not be written: " + written.error());
    }
}

Expected<void, std::string> TokenLifecycle::reconcile(TimePoint now) {
    auto state = state_.lock();
    return reconcile_locked(*state, now);
}

Expected<void, std::string> TokenLifecycle::reconcile_locked(State& state, TimePoint now) {
    const bool in = gate_.logged_in();
    if (options_.fenced && options_.fenced()) {
        if (in) {
            // Out at once, without the checkpoint and the record: they need the store that
            // cannot be reached. The record is written when it is back.
            gate_.logout();
            metrics_.logout();
            state.fenced_logout = now;
        }
        return unexpected(std::string("cut off from the cluster's shared store"));
    }
    if (state.fenced_logout) {
        std::vector<jit::AuditRecord> records{lifecycle_record(
            now, "token.logout",
            "cut off from the cluster's shared store for longer than the lease at " +
                std::to_string(to_unix_ms(*state.fenced_logout)) +
                " (unix ms): logged out without a checkpoint",
            "ok")};
        if (auto written = journal_.write({}, records); !written) {
            return unexpected(written.error());
        }
        // An unclean end, as a crash's (jit::is_fenced_logout): the next login's recovery
        // checkpoint covers the session it cut short.
        if (state.unrecovered == 0) {
            state.unrecovered = records.front().seq;
        }
        state.fenced_logout.reset();
    }
    const bool active = authority_.any_active(now);
    if (active && !in) {
        if (custody_.mode() == PinSourceKind::approver) {
            // Logged in only by the approval that brings the PIN (login_for).
            return unexpected(
                std::string("the token needs an approver's PIN (PIN custody \"approver\")"));
        }
        auto pin = custody_.pin_for_login();
        if (!pin) {
            login_failed(state, now, pin.error());
            return unexpected(pin.error());
        }
        if (auto logged = log_in(state, now, std::move(*pin), {"a grant is active", 0, false});
            !logged) {
            return unexpected(logged.error().message);
        }
    } else if (!active && in) {
        logout(state, now, "no active grant");
    }
    return {};
}

Expected<void, TokenLifecycle::LoginRefusal> TokenLifecycle::login_for(
    TimePoint now, std::optional<hsm::Secret> pin, const std::string& approver,
    std::int64_t request_id, const std::function<void()>& decide) {
    auto state = state_.lock();
    if (!gate_.logged_in()) {
        if (!pin) {
            return unexpected(LoginRefusal{LoginRefusal::Kind::no_pin, "no PIN came with it"});
        }
        auto logged = log_in(*state, now, std::move(*pin),
                             {"PIN from approver " + approver, request_id, true});
        if (!logged) {
            return logged;
        }
    }
    pin.reset();  // wiped: held only until C_Login
    decide();
    // Log in for the new grant, or out again if the decision made none.
    (void)reconcile_locked(*state, now);
    return {};
}

Expected<void, std::string> TokenLifecycle::try_pin(TimePoint now, hsm::Secret pin,
                                                    const std::string& who) {
    auto state = state_.lock();
    if (gate_.logged_in()) {
        return unexpected(std::string("the token is logged in: the PIN cannot be tried now"));
    }
    // As an approver's PIN: a refusal is recorded, and forgets nothing else.
    if (auto logged = log_in(*state, now, std::move(pin),
                             {"PIN tried before the first split by " + who, 0, true});
        !logged) {
        return unexpected(logged.error().message);
    }
    logout(*state, now, "the PIN was tried before the first split");
    return {};
}

// The journal numbers the checkpoint record right after the head it signs
// (Journal::write_checkpoint): the token signs on the committer thread.
Expected<bool, std::string> TokenLifecycle::checkpoint(State& state, TimePoint now,
                                                       std::string_view kind,
                                                       std::vector<jit::AuditRecord> then) {
    const std::int64_t every_ms = options_.checkpoint_interval.count();
    const std::int64_t every_records = options_.checkpoint_records;
    if (kind == jit::kCheckpointPeriodic && state.unrecovered > 0) {
        kind = jit::kCheckpointRecovery;
    }
    const std::int64_t crash = kind == jit::kCheckpointRecovery ? state.unrecovered : 0;
    auto make = [this, now, kind, every_ms, every_records, crash](
                    std::int64_t seq, const jit::ChainHash& head, TimePoint not_before) {
        jit::Checkpoint c;
        c.seq = seq;
        c.head = head;
        c.time = std::max(now, not_before);  // the journal keeps times in chain order
        c.kind = std::string(kind);
        c.every_ms = every_ms;
        c.every_records = every_records;
        c.crash = crash;
        if (seq == 0) {
            return jit::checkpoint_record(c, "the log is empty");
        }
        auto signature = gate_.sign_checkpoint(jit::checkpoint_message(c));
        if (!signature) {
            return jit::checkpoint_record(
                c, "the audit key cannot sign: " + signature.error().message);
        }
        c.key_label = signature->key_label;
        c.algorithm = signature->algorithm;
        c.signature = std::move(signature->signature);
        return jit::checkpoint_record(c);
    };
    if (auto written = journal_.write_checkpoint(make, then); !written) {
        return unexpected(written.error());
    }
    state.checkpoint_seq = then.front().seq;
    state.last_checkpoint = now;
    const bool signed_ok = then.front().outcome == "ok";
    if (signed_ok) {
        state.unrecovered = 0;  // it covers the unclean end, whatever its kind
    }
    return signed_ok;
}

void TokenLifecycle::recover(State& state, TimePoint now) {
    if (state.unrecovered > 0) {
        // A failure is recorded; the periodic checkpoints that follow try again.
        (void)checkpoint(state, now, jit::kCheckpointRecovery);
    }
}

void TokenLifecycle::checkpoint_if_due(TimePoint now) {
    auto state = state_.lock();
    if (!gate_.logged_in()) {
        return;
    }
    if (now - state->last_checkpoint >= options_.checkpoint_interval ||
        journal_.seq() - state->checkpoint_seq >= options_.checkpoint_records) {
        (void)checkpoint(*state, now, jit::kCheckpointPeriodic);
        state->last_checkpoint =
            now;  // a failure is recorded, and tried again at the next interval
    }
}

void TokenLifecycle::shutdown(TimePoint now) {
    auto state = state_.lock();
    if (gate_.logged_in()) {
        logout(*state, now, "shutdown");
    }
}

void TokenLifecycle::lock(TimePoint now, const std::string& reason) {
    auto state = state_.lock();
    if (gate_.logged_in()) {
        logout(*state, now, reason);
    }
}

Expected<jit::LogEnd, std::string> TokenLifecycle::read_log_end() {
    std::vector<jit::AuditRecord> tail;  // newest first
    constexpr std::int64_t page = 4096;
    for (std::int64_t to = journal_.seq(); to >= 1;) {
        const std::int64_t from = std::max<std::int64_t>(1, to - page + 1);
        auto records = journal_.store().audit_records(from, to - from + 1);
        if (!records) {
            return unexpected(records.error());
        }
        for (auto it = records->rbegin(); it != records->rend(); ++it) {
            // A cluster node's own records: the others' sessions are theirs.
            if (!jit::is_lifecycle_record(*it) || it->node != options_.node) {
                continue;
            }
            tail.push_back(*it);
            if (it->action == jit::kCheckpointAction && it->outcome == "ok") {
                std::reverse(tail.begin(), tail.end());
                return jit::log_end(tail);
            }
        }
        to = from - 1;
    }
    std::reverse(tail.begin(), tail.end());
    return jit::log_end(tail);
}

Expected<void, std::string> TokenLifecycle::start(TimePoint now, const std::string& detail) {
    auto state = state_.lock();
    auto end = read_log_end();
    if (!end) {
        return unexpected("the end of the audit log cannot be read: " + end.error());
    }
    jit::AuditRecord r = lifecycle_record(now, "signerd.start");
    r.detail = detail;
    if (end->logged_in) {
        r.detail += "; unclean end: the log ends in a login session";
        if (end->login > 0) {
            r.detail += " (token.login at record " + std::to_string(end->login) + ")";
        }
        r.detail += " without a token.logout: signerd stopped without logging out";
    } else if (end->unrecovered > 0) {
        r.detail += "; the unclean end at record " + std::to_string(end->unrecovered) +
                    " is not yet covered";
    }
    if (end->logged_in || end->unrecovered > 0) {
        r.detail += "; the next login writes a signed recovery checkpoint";
    }
    std::vector<jit::AuditRecord> records{std::move(r)};
    if (auto written = journal_.write({}, records); !written) {
        return unexpected(written.error());
    }
    state->unrecovered =
        end->unrecovered > 0 ? end->unrecovered : (end->logged_in ? records.front().seq : 0);
    return {};
}

}  // namespace dkim::signerd

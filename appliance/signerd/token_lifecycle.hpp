#pragma once
// The token's login lifecycle as one object: the token is logged in exactly while at least one
// grant is active. reconcile() makes it so; the Service calls it after every decision that can
// change the answer (approve, revoke, a signature that spent a budget) before that decision is
// acknowledged, and the lifecycle thread calls it at every deadline (a grant's expiry), so a
// logout follows the last grant's end within the thread's wake-up latency.
//
// Every login is the same sequence, whoever brings the PIN (the custody's: a file or sealed
// credential read afresh, or the PIN a quorum of custodians rebuilt; or an approver's, with the
// approval that activates a grant): C_Login, its token.login
// record (no login without its record: when the log cannot take it, the token is logged out
// again), the logins counter, and the recovery checkpoint when an unclean end waits for one.
// A login that fails is on the audit log: the lifecycle's own attempts once per reason (it
// retries at every tick), an approver's each time. While logged in, a signed checkpoint (an
// audit record) comes at the interval or after the number of records, whichever first, and one
// right before every logout, in the same commit as its token.logout record.
//
// Its state (the last checkpoint, an unrecovered unclean end, the last login failure) lives
// inside its lock: login, logout and checkpoints, one at a time, from any thread.

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/expected.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/lock_guarded.hpp"
#include "metrics.hpp"
#include "pin_custody.hpp"
#include "token_gate.hpp"

namespace dkim::signerd {

struct LifecycleOptions {
    PinSourceKind pin_source = PinSourceKind::file;
    std::filesystem::path pin_path;  // file, or $CREDENTIALS_DIRECTORY/<name>
    // While the token is logged in, a signed checkpoint (an audit record) at least this often,
    // or after this many records, whichever first; and one right before every logout.
    Duration checkpoint_interval = std::chrono::minutes(5);
    std::int64_t checkpoint_records = 10'000;
    // A cluster node cut off from the shared store for longer than its lease (cluster.hpp): the
    // token logs out (without a checkpoint, which could not be written) and stays out until the
    // store is back. Unset: a single appliance.
    std::function<bool()> fenced;
    // The cluster node's name: its own records are the ones that say whether its last run
    // ended cleanly (empty: a single appliance, every record).
    std::string node;
};

class TokenLifecycle {
  public:
    // Why a login with an approver's PIN did not happen.
    struct LoginRefusal {
        enum class Kind : std::uint8_t {
            no_pin,     // logged out and no PIN came with the approval
            wrong_pin,  // the token refused it (on the audit log)
            audit,      // the token.login record could not be written: logged out again
            held_back   // kMaxRefusedPins in a row: not tried (until signerd restarts)
        } kind = Kind::wrong_pin;
        std::string message;
    };

    TokenLifecycle(jit::Journal& journal, const jit::Authority& authority, TokenGate& gate,
                   Metrics& metrics, PinCustody& custody, LifecycleOptions options, TimePoint now);
    TokenLifecycle(const TokenLifecycle&) = delete;
    TokenLifecycle& operator=(const TokenLifecycle&) = delete;

    // Once, before the first request: writes the signerd.start record (`detail`, plus what
    // the end of the log says). When the log ends inside a login session (no token.logout:
    // signerd stopped without logging out), or an earlier unclean end is not yet covered by
    // a signed checkpoint, the next login writes a signed "recovery" checkpoint naming it
    // (audit.hpp, rule 5). The PIN is not presented for it: it waits for a grant.
    Expected<void, std::string> start(TimePoint now, const std::string& detail);

    // Logs in (with the PIN file or credential) when a grant is active and the token is out;
    // logs out (after a checkpoint) when none is and it is in. In approver mode it never logs
    // in: that is login_for's.
    Expected<void, std::string> reconcile(TimePoint now);

    // Approver mode: the approval that activates a grant brings the PIN. Under the lifecycle's
    // lock, from the login through `decide` (the approval) to the reconcile after it, so that
    // the lifecycle thread cannot log out in between (no grant is active yet at that moment).
    // Logged out: logs in with `pin` first, so that a wrong PIN refuses the approval instead of
    // making a grant that cannot sign (`decide` does not run). The PIN is wiped before
    // `decide` runs; logged in already, it is not used.
    Expected<void, LoginRefusal> login_for(TimePoint now, std::optional<hsm::Secret> pin,
                                           const std::string& approver, std::int64_t request_id,
                                           const std::function<void()>& decide);

    // While logged in, a periodic checkpoint when one is due (the interval, or the records);
    // also when nothing else was written: a checkpoint is the proof that the log still ends
    // here. A failure is recorded, and tried again at the next interval.
    void checkpoint_if_due(TimePoint now);

    // Checkpoint and log out; for SIGTERM.
    void shutdown(TimePoint now);
    // Checkpoint and log out now, grants or not (`pin lock`: the PIN is no longer in memory, so
    // the next reconcile cannot log in again until people bring it).
    void lock(TimePoint now, const std::string& reason);

    bool logged_in() const { return gate_.logged_in(); }

    // PIN custody "shares": tries `pin` on the logged-out token (C_Login, its token.login record
    // naming `who`, then the logout) so that a PIN the token refuses is never split. Refused,
    // untried, while the token is logged in.
    Expected<void, std::string> try_pin(TimePoint now, hsm::Secret pin, const std::string& who);

    // After this many PINs brought by people (an approver's, a first split's) that the token
    // refused in a row, signerd tries no more of them until it is restarted: every wrong PIN
    // counts towards the token's own lockout, and whoever holds an approver's password and TOTP
    // code (a compromised webd at one approval) could otherwise bring guesses until the token
    // locks. A PIN the token accepts resets the count.
    static constexpr unsigned kMaxRefusedPins = 3;

    // The lifecycle thread's wake-up: called when a deadline may be sooner than announced (a
    // new grant, a revoke, a key change).
    void on_change(std::function<void()> wake);
    void notify_change();

  private:
    struct State {
        std::int64_t checkpoint_seq = 0;  // the last checkpoint record
        TimePoint last_checkpoint;
        // The signerd.start record of an unclean end that no signed checkpoint covers yet; 0: none.
        std::int64_t unrecovered = 0;
        std::string last_login_failure;  // recorded once, not at every retry
        // PINs people brought (approvers, a first split) that the token refused in a row.
        unsigned refused_pins = 0;
        // When the fence logged the token out: its token.logout record waits for the store.
        std::optional<TimePoint> fenced_logout;
    };
    // Whose PIN a login presents: the lifecycle's own (the PIN file or credential; it retries,
    // so a failure is recorded once per reason), or an approver's (each failure recorded).
    struct LoginAttempt {
        std::string reason;  // of the token.login record
        std::int64_t request_id = 0;
        bool approver = false;
    };

    Expected<void, std::string> reconcile_locked(State& state, TimePoint now);
    // C_Login, its record, the counter, the recovery checkpoint.
    Expected<void, LoginRefusal> log_in(State& state, TimePoint now, hsm::Secret pin,
                                        const LoginAttempt& attempt);
    void login_failed(State& state, TimePoint now, const std::string& why);
    // The checkpoint while the audit key can still sign and the token.logout record right after
    // it, in one commit, then C_Logout and C_CloseAllSessions, whatever happened to the records.
    void logout(State& state, TimePoint now, const std::string& reason);
    // A checkpoint record (kind periodic, logout or recovery) covering the record before it,
    // then `then` in the same commit. A checkpoint that cannot be signed is recorded as
    // failed. While an unclean end waits for its recovery, a periodic one is a recovery.
    // True when signed, false when recorded as failed; an error when nothing was written.
    Expected<bool, std::string> checkpoint(State& state, TimePoint now, std::string_view kind,
                                           std::vector<jit::AuditRecord> then = {});
    // After a token.login record: the recovery checkpoint, when an unclean end waits for one.
    void recover(State& state, TimePoint now);
    Expected<void, std::string> record(TimePoint now, std::string action, std::string outcome,
                                       std::string reason, std::int64_t request_id = 0,
                                       std::string detail = {});
    std::string login_detail() const;
    // The lifecycle records after the last signed checkpoint, read backwards from the end.
    Expected<jit::LogEnd, std::string> read_log_end();

    jit::Journal& journal_;
    const jit::Authority& authority_;
    TokenGate& gate_;
    Metrics& metrics_;
    PinCustody& custody_;
    const LifecycleOptions options_;
    LockGuarded<State> state_;
    LockGuarded<std::function<void()>> wake_;
};

}  // namespace dkim::signerd

#pragma once
// What dkim-signerd does with one request from one peer, without the socket: the sign
// check, the operator operations, and the token's login lifecycle. The server (server.hpp)
// only moves frames; tests drive this class directly with a ManualClock and a fake gate.
//
// The login lifecycle: the token is logged in exactly while at least one grant is active.
// reconcile() makes it so; it runs after every decision that can change the answer (approve,
// revoke, a signature that spent a budget) before that decision is acknowledged, and from
// the lifecycle thread at every deadline (a grant's expiry), so a logout follows the last
// grant's end within the thread's wake-up latency.

#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/dkim/signing_profile.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/keys.hpp"
#include "metrics.hpp"
#include "token_gate.hpp"

namespace dkim::signerd {

struct Peer {
    PeerKind kind = PeerKind::relay;
    std::string name;
    std::uint32_t uid = 0;
};

struct ServiceOptions {
    PinSourceKind pin_source = PinSourceKind::file;
    std::filesystem::path pin_path;  // file, or $CREDENTIALS_DIRECTORY/<name>
    // While the token is logged in, a signed checkpoint (an audit record) at least this often,
    // or after this many records, whichever first; and one right before every logout.
    Duration checkpoint_interval = std::chrono::minutes(5);
    std::int64_t checkpoint_records = 10'000;
    std::size_t max_sign_data = 512 * 1024;
    SigningProfile profile;  // what a relay's header block must fit to be signed
};

class Service {
  public:
    Service(jit::Journal& journal, jit::Authority& authority, jit::Directory& directory,
            jit::KeyRegistry& keys, TokenGate& gate, const Clock& clock, Metrics& metrics,
            ServiceOptions options);
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Secrets inside `request` are wiped before this returns.
    ipc::Reply handle(const Peer& peer, ipc::Request& request);

    // Once, before the first request: writes the signerd.start record (`detail`, plus what
    // the end of the log says). When the log ends inside a login session (no token.logout:
    // signerd stopped without logging out), or an earlier unclean end is not yet covered by
    // a signed checkpoint, the next login writes a signed "recovery" checkpoint naming it
    // (audit.hpp, rule 5). The PIN is not presented for it: it waits for a grant.
    Expected<void, std::string> start(const std::string& detail);

    // Records what ended by time, brings the login state in line with the grants, and takes a
    // checkpoint when one is due. Safe to call at any time from any thread.
    void tick();
    // When tick() must run next at the latest.
    TimePoint next_tick() const;
    // Called when a tick may be due earlier than announced (a new grant, a revoke).
    void on_change(std::function<void()> wake);

    // Checkpoint and log out; for SIGTERM.
    void shutdown();
    bool logged_in() const { return gate_.logged_in(); }
    Metrics::Gauges gauges() const;

    // The token's keys joined with their records.
    struct KeyEntry {
        std::optional<TokenGate::KeyDescription> token;
        std::optional<jit::KeyRecord> record;
        std::string kind() const;
        bool signs() const;    // active or retiring (or unmanaged)
        bool current() const;  // active (or unmanaged): what a relay is told to sign with
    };

  private:
    template <class T>
    ipc::Reply dispatch(const Peer& peer, T& request);
    ipc::Reply sign(const Peer& peer, const ipc::SignRequest& request);
    ipc::Reply status() const;
    ipc::Reply public_key(const ipc::PublicKeyRequest& request);
    ipc::Reply signing_keys(const ipc::SigningKeysRequest& request);
    Expected<jit::Actor, jit::Refusal> authenticate(const Peer& peer,
                                                    const ipc::Credentials& credentials,
                                                    bool need_password, TimePoint now);
    Expected<void, jit::Refusal> may_administer(const jit::Actor& actor, TimePoint now);
    // A user-management or TOTP enrolment request from a peer other than the admin peer:
    // refused, counted and on the audit log (it means a compromised or misused dkim-webd).
    template <class T>
    ipc::Reply refuse_web_peer(const Peer& peer, const jit::Actor& who, const T& r, TimePoint now);

    ipc::Reply operate(const jit::Actor& who, ipc::SessionCreate& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::UserAdd& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::UserList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::UserSetDisabled& r, TimePoint now);
    // API tokens also look at the peer (through dkim-webd a user makes them for themselves only).
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, ipc::ApiTokenCreate& r,
                       TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::ApiTokenRevoke& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::TotpEnrol& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::TotpConfirm& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::ElevationRequest& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::ElevationList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::ElevationDecide& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::GrantRevoke& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::GrantList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::AuditShow& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::WhoAmI& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::SessionEnd& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyGenerate& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::AuditVerify& r, TimePoint now);
    // The keys' lifecycle (key_lifecycle.cpp).
    ipc::Reply operate(const jit::Actor& who, ipc::KeyActivate& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyRetire& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyImport& r, TimePoint now);
    // A record made durable (with the audit records describing it), then visible.
    Expected<void, std::string> commit_keys(std::vector<jit::KeyRecord> records,
                                            std::vector<jit::AuditRecord> audit);
    Expected<std::vector<KeyEntry>, ipc::ErrorReply> key_entries(const std::string& domain);
    // key.rotate when `displacing`, else key.generate or key.rotate.
    Expected<jit::Grant, jit::Refusal> authorize_key(const jit::Actor& who, jit::Operation op,
                                                     const std::string& domain,
                                                     const std::string& selector, TimePoint now);

    // The login lifecycle.
    Expected<void, std::string> reconcile(TimePoint now);
    Expected<void, std::string> reconcile_locked(TimePoint now);  // lifecycle_mutex_ held
    void logout(TimePoint now, const std::string& reason);
    void login_failed(TimePoint now, const std::string& why);
    Expected<void, std::string> record(TimePoint now, std::string action, std::string outcome,
                                       std::string reason, std::int64_t request_id = 0,
                                       std::string detail = {});
    Expected<hsm::Secret, std::string> read_pin() const;
    // A checkpoint record (kind periodic, logout or recovery) covering the record before it,
    // then `then` in the same commit. A checkpoint that cannot be signed is recorded as
    // failed. While an unclean end waits for its recovery, a periodic one is a recovery.
    // True when signed, false when recorded as failed; an error when nothing was written.
    Expected<bool, std::string> checkpoint(TimePoint now, std::string_view kind,
                                           std::vector<jit::AuditRecord> then = {});
    std::string login_detail() const;
    // After a token.login record: the recovery checkpoint, when an unclean end waits for one.
    void recover_locked(TimePoint now);
    // The lifecycle records after the last signed checkpoint, read backwards from the end.
    Expected<jit::LogEnd, std::string> read_log_end();
    void notify_change();

    jit::Journal& journal_;
    jit::Authority& authority_;
    jit::Directory& directory_;
    jit::KeyRegistry& keys_;
    TokenGate& gate_;
    const Clock& clock_;
    Metrics& metrics_;
    ServiceOptions options_;
    mutable std::mutex lifecycle_mutex_;  // login, logout and checkpoints, one at a time
    std::int64_t checkpoint_seq_ = 0;
    TimePoint last_checkpoint_;
    // The signerd.start record of an unclean end that no signed checkpoint covers yet; 0: none.
    std::int64_t unrecovered_ = 0;
    std::string last_login_failure_;
    std::function<void()> wake_;
};

ipc::ErrorReply error_reply(const jit::Refusal& refusal);

}  // namespace dkim::signerd

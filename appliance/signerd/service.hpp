#pragma once
// What dkim-signerd does with one request from one peer, without the socket. The server
// (server.hpp) only moves frames; tests drive this class directly with a ManualClock and a fake
// gate. The Service checks what each peer may ask, authenticates the operator, dispatches to
// the handlers of the request's subject (handlers.hpp), and wipes every secret the request
// carried. The token's login lifecycle is its own object (token_lifecycle.hpp), which the
// Service drives from the lifecycle thread (tick) and at start and shutdown.

#include <functional>
#include <map>

#include "audit_handlers.hpp"
#include "cluster.hpp"
#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/dkim/signing_profile.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/keys.hpp"
#include "elevation_handlers.hpp"
#include "handlers.hpp"
#include "identity_handlers.hpp"
#include "key_handlers.hpp"
#include "metrics.hpp"
#include "passkey_handlers.hpp"
#include "pin_custody.hpp"
#include "second_factor.hpp"
#include "signing_handlers.hpp"
#include "summary_handlers.hpp"
#include "token_gate.hpp"
#include "token_lifecycle.hpp"

namespace dkim::signerd {

// The lifecycle's options (the PIN's source, the checkpoints' interval and records), and what a
// relay's header block may be.
struct ServiceOptions : LifecycleOptions {
    std::size_t max_sign_data = 512 * 1024;
    SigningProfile profile;   // what a relay's header block must fit to be signed
    WebAuthnConfig webauthn;  // passkeys: off while its rp_id is empty
    // PIN custody (pin_custody.hpp); pin_source and pin_path are LifecycleOptions'.
    Duration pin_unlock_window = std::chrono::minutes(15);
    std::shared_ptr<const custody::IdentityKey> pin_identity;  // null: a new one in memory
    std::optional<jit::PinShareSet> pin_share_set;             // as stored
    // A node of a cluster (cluster.hpp): decisions under the cluster's lock on its latest
    // state; signing refused while fenced. Null: a single appliance.
    ClusterNode* cluster = nullptr;
    // The other nodes' audit keys ([cluster] node_keys): a node's DNS records are listed only
    // when its registry row is signed with its key.
    std::map<std::string, crypto::PublicKey> node_keys;
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

    // Once, before the first request: the signerd.start record (TokenLifecycle::start).
    Expected<void, std::string> start(const std::string& detail);

    // Records what ended by time, brings the login state in line with the grants, and takes a
    // checkpoint when one is due. Safe to call at any time from any thread.
    void tick();
    // When tick() must run next at the latest.
    TimePoint next_tick() const;
    // Called when a tick may be due earlier than announced (a new grant, a revoke).
    void on_change(std::function<void()> wake) { lifecycle_.on_change(std::move(wake)); }
    // Wakes the lifecycle thread (a cluster node reloaded the state, or was fenced).
    void notify_change() { lifecycle_.notify_change(); }

    // Checkpoint and log out; for SIGTERM.
    void shutdown();
    bool logged_in() const { return lifecycle_.logged_in(); }
    Metrics::Gauges gauges() const;

  private:
    template <class T>
    ipc::Reply dispatch(const Peer& peer, T& request);
    // An operator's request, to the handlers of its subject.
    template <class T>
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, T& request, TimePoint now);
    ipc::Reply status() const;
    ipc::Reply cluster_status(TimePoint now) const;
    // Whether node n's registry row is signed with the audit key pinned for it.
    bool records_attested(const jit::NodeStatus& n) const;
    // This node's parts of the cluster's rotations (the tick's): each as one decision, as the
    // rotation's requester under their grants; one that fails is tried again after a while.
    void follow_rotations(TimePoint now);
    Expected<jit::Actor, jit::Refusal> authenticate(const Peer& peer,
                                                    const ipc::Credentials& credentials,
                                                    bool need_password, TimePoint now);
    // A user-management or TOTP enrolment request from a peer other than the admin peer:
    // refused, counted and on the audit log (it means a compromised or misused dkim-webd).
    template <class T>
    ipc::Reply refuse_web_peer(const Peer& peer, const jit::Actor& who, const T& r, TimePoint now);

    jit::Journal& journal_;
    jit::Authority& authority_;
    jit::Directory& directory_;
    TokenGate& gate_;
    const Clock& clock_;
    Metrics& metrics_;
    const PinSourceKind pin_source_;
    ClusterNode* const cluster_;
    const std::map<std::string, crypto::PublicKey> node_keys_;  // ServiceOptions::node_keys
    const jit::KeyRegistry& keys_registry_;
    PinCustody custody_;
    TokenLifecycle lifecycle_;
    SigningHandlers signing_;
    SecondFactors factors_;
    IdentityHandlers identities_;
    PasskeyHandlers passkeys_;
    ElevationHandlers elevations_;
    KeyHandlers keys_;
    AuditHandlers audit_;
    SummaryHandlers summary_;
    std::map<std::string, TimePoint> rotation_tries_;  // the tick's: a failed part's last try
};

}  // namespace dkim::signerd

#pragma once
// The DKIM keys' lifecycle in signerd (dkim/jit/keys.hpp): list, generate, import, activate,
// retire, and the selectors a relay signs with. Every change needs a grant of its operation,
// is one durable commit with its audit records, and is ordered against the token operation so
// that rerunning a step after a crash finishes it:
//   generate/import: intent (generating) committed -> token -> pending-publish committed
//   activate:        one commit (the new key active, the displaced ones retiring)
//   retire:          retired committed (it stops signing) -> private half destroyed -> recorded

#include <optional>
#include <string>
#include <vector>

#include "dkim/clock.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/keys.hpp"
#include "handlers.hpp"
#include "token_gate.hpp"
#include "token_lifecycle.hpp"

namespace dkim::signerd {

class KeyHandlers {
  public:
    KeyHandlers(jit::Journal& journal, jit::Authority& authority, jit::KeyRegistry& keys,
                TokenGate& gate, TokenLifecycle& lifecycle)
        : journal_(journal),
          authority_(authority),
          keys_(keys),
          gate_(gate),
          lifecycle_(lifecycle) {}

    // The token's keys joined with their records.
    struct KeyEntry {
        std::optional<TokenGate::KeyDescription> token;
        std::optional<jit::KeyRecord> record;
        std::string kind() const;
        bool signs() const;    // active or retiring (or unmanaged)
        bool current() const;  // active (or unmanaged): what a relay is told to sign with
    };

    // For any peer, the relay above all: the selectors to sign with.
    ipc::Reply signing_keys(const ipc::SigningKeysRequest& request);

    ipc::Reply operate(const jit::Actor& who, ipc::KeyList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyGenerate& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyImport& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyActivate& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::KeyRetire& r, TimePoint now);

    // A cluster's rotation (dkim/jit/keys.hpp, ClusterRotation): starts it or moves its phase
    // on, under the caller's grant (key.rotate; key.retire for the retire phase) for this node's
    // selector of it. Refused on a single appliance (set_cluster_node not called).
    ipc::Reply operate(const jit::Actor& who, ipc::ClusterRotate& r, TimePoint now);
    void set_cluster_node(std::string node) { node_ = std::move(node); }

    // This node's part of one of the cluster's rotations, if it has one to do now: `step` is
    // the request to make as the rotation's requester (KeyGenerate, KeyActivate or KeyRetire),
    // `key` names it ("domain/kind") for the caller's retry bookkeeping.
    struct RotationPart {
        std::string key;
        std::string requester;
        ipc::Request step;
        std::string what;  // for the log
        std::string via;   // for the records: which rotation, on which node
    };
    std::vector<RotationPart> rotation_parts(TimePoint now);

  private:
    // A record made durable (with the audit records describing it), then visible.
    Expected<void, std::string> commit_keys(std::vector<jit::KeyRecord> records,
                                            std::vector<jit::AuditRecord> audit);
    Expected<std::vector<KeyEntry>, ipc::ErrorReply> key_entries(const std::string& domain);
    // The grant of `op` for domain/selector; logs the token in when it just became active.
    Expected<jit::Grant, jit::Refusal> authorize_key(const jit::Actor& who, jit::Operation op,
                                                     const std::string& domain,
                                                     const std::string& selector, TimePoint now);

    jit::Journal& journal_;
    jit::Authority& authority_;
    jit::KeyRegistry& keys_;
    TokenGate& gate_;
    TokenLifecycle& lifecycle_;
    std::string node_;  // a cluster node's name; empty on a single appliance
};

}  // namespace dkim::signerd

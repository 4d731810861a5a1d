#pragma once
// Key rotation as a state machine over what signerd reports: each call says the one next step
// for a domain and a key kind, from the keys' lifecycle states alone. Nothing is remembered
// between calls, so a rotation interrupted anywhere (a crash, a kill, a closed terminal) goes
// on from where it stopped when it is run again:
//
//   start ──▶ generate the next selector ──▶ wait for DNS to publish it ──▶ activate it
//         (key.rotate)                                               (key.rotate; the old
//                                                                     key turns retiring)
//   ──▶ wait for the grace period ──▶ retire the old key (key.retire) ──▶ done
//
// The next selector's name comes from a scheme (default "s%Y-%m"), so rerunning within the
// same period finds the key it made instead of making another; and a rotation that has just
// ended (within min_interval) is reported done rather than started again.

#include <cstdint>
#include <string>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::provisioning {

struct KeyStatus {
    std::string selector;
    std::string algorithm;  // "rsa-2048", "ed25519"
    std::string state;      // signerd's: generating, pending-publish, active, retiring, retired
    bool managed = true;
    std::int64_t activated_ms = 0;
    std::int64_t retire_after_ms = 0;
    std::string dkim_record;
    std::int64_t retired_ms = 0;
    std::int64_t retiring_since_ms = 0;
};

struct RotationRequest {
    std::string domain;
    std::string algorithm;  // the new key's; empty: the current key's (one kind must be active)
    std::string selector;   // the new selector; empty: from selector_format
    std::string selector_format = "s%Y-%m";
    std::int64_t now_ms = 0;
    // A rotation that ended (its old key retired) less than this long ago is done: a rerun
    // right after the last step, even in a new naming period, starts nothing new.
    std::int64_t min_interval_ms = 86'400'000;
};

struct RotationStep {
    enum class Kind : std::uint8_t {
        generate,              // make `key` (pending-publish)
        wait_for_publication,  // `key` is pending: activate it once DNS publishes it
        wait_for_grace,        // `key` is retiring until not_before_ms
        retire,                // `key`'s grace period is over
        done,                  // nothing in progress
    } kind = Kind::done;
    KeyStatus key;
    std::int64_t not_before_ms = 0;
    std::string describe() const;
};

// "s2026-11" from "s%Y-%m" (UTC); %k is the kind ("rsa", "ed25519"), %% a percent sign. The
// result must be a valid selector. With `node_placeholder`, %n stays as it is (a cluster's
// pattern, which each node completes with its name) and one is added at the end ("-%n") when
// the format has none.
Expected<std::string, std::string> format_selector(const std::string& format, std::int64_t now_ms,
                                                   const std::string& kind,
                                                   bool node_placeholder = false);

Expected<RotationStep, std::string> next_rotation_step(const std::vector<KeyStatus>& keys,
                                                       const RotationRequest& request);

// --- a cluster's rotation: every node's key of one kind, in step ---------------------------
//
//   start ──▶ each node generates its next key ──▶ wait until DNS publishes every node's record
//   (key.rotate)   (the nodes' signerds)              ──▶ activate (key.rotate) ──▶ each node
//   switches ──▶ wait for the grace period ──▶ retire (key.retire) ──▶ each node destroys its
//   old key ──▶ done
//
// The CLI decides the phases (on what the nodes report and what DNS publishes); each node's
// signerd carries out its own part in its own token (the shared ClusterRotation).

struct NodeKeys {
    std::string node;
    bool gone = false;            // not seen lately: not waited for
    std::vector<KeyStatus> keys;  // of the domain
};

struct ClusterRotationPlan {  // the shared state's, as signerd reports it
    std::string kind;
    std::string algorithm;
    std::string selector;  // the pattern, "%n" for the node's name
    std::string phase;     // "generate", "activate", "retire", "done"
    std::int64_t updated_ms = 0;
    std::vector<std::string> checked;  // the nodes' selectors found published
};

struct ClusterRotationStep {
    enum class Kind : std::uint8_t {
        start,                 // ClusterRotate generate: `algorithm`, `selector` (a pattern)
        wait_for_nodes,        // `nodes` have not done the phase's part yet
        wait_for_publication,  // `keys`' records: once found published, ClusterRotate activate
                               // with them (only checked keys are activated)
        wait_for_grace,        // until not_before_ms
        retire,                // ClusterRotate retire
        finish,                // ClusterRotate done: every part is done
        done,
    } kind = Kind::done;
    std::string algorithm;
    std::string selector;
    std::vector<std::pair<std::string, KeyStatus>> keys;  // (node, key)
    std::vector<std::string> nodes;
    std::string waiting_for;  // wait_for_nodes: "generate", "activate" or "retire"
    std::int64_t not_before_ms = 0;
    std::string describe() const;
};

// The node's selector of a pattern: "%n" replaced by the node's name in lower case, its '_'
// and '.' as '-'.
std::string cluster_selector(const std::string& pattern, const std::string& node);

// The next step of the domain's rotation across `nodes`, given the cluster's plans of the
// domain (one per kind, or none). wait_for_publication is followed by activate once the caller
// has found every listed record published.
Expected<ClusterRotationStep, std::string> next_cluster_rotation_step(
    const std::vector<NodeKeys>& nodes, const std::vector<ClusterRotationPlan>& plans,
    const RotationRequest& request);

}  // namespace dkim::provisioning

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
// result must be a valid selector.
Expected<std::string, std::string> format_selector(const std::string& format, std::int64_t now_ms,
                                                   const std::string& kind);

Expected<RotationStep, std::string> next_rotation_step(const std::vector<KeyStatus>& keys,
                                                       const RotationRequest& request);

}  // namespace dkim::provisioning

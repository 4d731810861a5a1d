#pragma once
// The audit log for auditors and admins: its records, and a verification of the whole chain
// with the checkpoints' signatures (checked with the audit key's public half: no login needed).

#include <cstdint>

#include "dkim/clock.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/journal.hpp"
#include "handlers.hpp"
#include "token_gate.hpp"

namespace dkim::signerd {

// Anyone but a user without the auditor or admin role (the local operator reads it too).
bool may_read_audit(const jit::Actor& who);

class AuditHandlers {
  public:
    // The checkpoint interval and records: the defaults `audit verify` holds a log to when its
    // records do not say (jit::LogCheckOptions).
    AuditHandlers(jit::Journal& journal, TokenGate& gate, Duration checkpoint_interval,
                  std::int64_t checkpoint_records)
        : journal_(journal),
          gate_(gate),
          checkpoint_interval_(checkpoint_interval),
          checkpoint_records_(checkpoint_records) {}

    ipc::Reply operate(const jit::Actor& who, ipc::AuditShow& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::AuditVerify& r, TimePoint now);

  private:
    jit::Journal& journal_;
    TokenGate& gate_;
    const Duration checkpoint_interval_;
    const std::int64_t checkpoint_records_;
};

}  // namespace dkim::signerd

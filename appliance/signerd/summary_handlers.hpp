#pragma once
// The signing summary, read-only, for dkim-reportd (the reports peer) and the operator CLI (the
// admin peer; the Service checks): signatures issued and sign requests refused per domain,
// selector and hour (the store's summary table, kept in the commits of the audit records it
// counts: dkim/jit/store.hpp, SigningTally), the sign grants' intervals (the Authority's state),
// and how long a signature lives (the signing profile's max_lifetime). Counts, ids, names and
// times only: nothing that signs, approves or names a person.

#include <chrono>

#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/journal.hpp"
#include "handlers.hpp"

namespace dkim::signerd {

class SummaryHandlers {
  public:
    SummaryHandlers(jit::Journal& journal, const jit::Authority& authority,
                    std::chrono::seconds signature_lifetime)
        : journal_(journal), authority_(authority), signature_lifetime_(signature_lifetime) {}

    // Refused as invalid: an empty or reversed range, one longer than ipc::kMaxSummaryRange, a
    // bad domain name, more than ipc::kMaxSummaryRows hours or grants, or a reply too large for
    // one frame.
    ipc::Reply signing_summary(const ipc::SigningSummaryRequest& request) const;

  private:
    jit::Journal& journal_;
    const jit::Authority& authority_;
    const std::chrono::seconds signature_lifetime_;
};

}  // namespace dkim::signerd

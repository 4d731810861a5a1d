#pragma once
// Elevations and grants: a request (or a break-glass one, active at once), the pending list,
// approvals, denials and cancellations, and the grants with their revocation. Every decision
// that can change whether a grant is active brings the token's login in line
// (TokenLifecycle::reconcile) before it is answered; in approver mode the approval that
// activates a grant brings the PIN, sealed to signerd (PinCustody, TokenLifecycle::login_for).

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "handlers.hpp"
#include "pin_custody.hpp"
#include "second_factor.hpp"
#include "token_lifecycle.hpp"

namespace dkim::signerd {

class ElevationHandlers {
  public:
    ElevationHandlers(jit::Authority& authority, TokenLifecycle& lifecycle, PinCustody& custody,
                      SecondFactors& factors)
        : authority_(authority), lifecycle_(lifecycle), custody_(custody), factors_(factors) {}

    ipc::Reply operate(const jit::Actor& who, ipc::ElevationRequest& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::ElevationList& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::ElevationDecide& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::GrantRevoke& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::GrantList& r, TimePoint now);

  private:
    jit::Authority& authority_;
    TokenLifecycle& lifecycle_;
    PinCustody& custody_;
    SecondFactors& factors_;
};

}  // namespace dkim::signerd

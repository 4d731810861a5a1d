#pragma once
// Elevation policy: per operation, how long a grant may last, how many distinct approvers
// it needs and who they may be, how long a request may wait; auto-approval rules for
// low-risk scopes; the break-glass cap. Read from the [policy] part of signerd's TOML file.

#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/jit/model.hpp"

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace dkim::config {
struct Schema;
}

namespace dkim::jit {

// When a grant files its renewal request (Authority::sweep): a share of the grant's duration
// before it expires ("20%": percent 1..99), or a fixed lead time before it ("10m"); "off":
// never.
struct RenewBefore {
    unsigned percent = 0;
    Duration lead{0};

    bool off() const { return percent == 0 && lead <= Duration(0); }
    // How long before its expiry a grant that lasts `duration` files its renewal (at most its
    // duration: a lead longer than the grant files it as the grant starts); none: off.
    std::optional<Duration> lead_for(Duration duration) const;
    std::string to_string() const;  // "20%", "10m", "off"
    bool operator==(const RenewBefore&) const = default;
};
// "20%", "10m", "off"; none on anything else (0%, 100%, a malformed duration).
std::optional<RenewBefore> parse_renew_before(std::string_view text);

struct OperationPolicy {
    Duration max_duration = std::chrono::hours(8);
    unsigned quorum = 1;
    // Who may approve: "role:approver", "role:admin", or user names.
    std::vector<std::string> approvers{"role:approver"};
    Duration pending_expiry = std::chrono::hours(24);
    std::optional<std::string> ticket_pattern;  // the reason must contain a match
    std::optional<std::regex> ticket_regex;
    // The second factors accepted for this operation's decisions (approve, deny, revoke,
    // break-glass): "totp" (a code, which a compromised webd could spend on another decision)
    // and "webauthn" (a passkey assertion bound to the decision). Never empty.
    bool accepts_totp = true;
    bool accepts_webauthn = true;
    RenewBefore renew_before;  // off, but sign's default is 20% (Policy::defaults)

    bool may_approve(std::string_view user, RoleSet roles) const;
};

// A daily window in UTC, [start, end) in minutes since midnight; end < start wraps midnight.
struct TimeWindow {
    int start_minute = 0;
    int end_minute = 24 * 60;
    bool contains(TimePoint t) const;
};

struct AutoApproveRule {
    std::string name;
    Operation operation = Operation::sign;
    std::string domain_pattern = "*";     // "example.com", "*.example.com" or "*"
    std::vector<std::string> requesters;  // empty: anyone who may request
    Duration max_duration = std::chrono::hours(1);
    std::optional<TimeWindow> window;

    bool matches(const Request& request, TimePoint now) const;
};

struct Policy {
    std::map<Operation, OperationPolicy> operations;  // every operation has an entry
    std::vector<AutoApproveRule> auto_approve;
    Duration break_glass_max = std::chrono::minutes(30);
    // A pending request that signerd files for a locked signature asks for this long.
    Duration signer_request_duration = std::chrono::hours(1);

    const OperationPolicy& for_operation(Operation op) const { return operations.at(op); }
    // The first rule that approves `request` at `now`, or null.
    const AutoApproveRule* auto_rule(const Request& request, TimePoint now) const;

    static Policy defaults();
};

// Reads a policy table:
//   [policy.sign]            max_duration = "8h", quorum = 1, approvers = ["role:approver"],
//                            pending_expiry = "24h", ticket_pattern = "^CHG-[0-9]+",
//                            renew_before = "20%" (or "10m", or "off")
//   [[policy.auto_approve]]  name, operation, domain, requesters, max_duration,
//                            window = "08:00-18:00"
//   [policy.break_glass]     max_duration = "30m"
// Errors name the file, line, column and key. Unknown keys are errors (a typo must not
// silently weaken the policy).
// `schema`: the daemon's declarations, whose "policy." keys the reader checks against.
Expected<Policy, std::string> parse_policy(const toml::table& table, const std::string& file,
                                           const config::Schema* schema = nullptr);

// "90s", "15m", "8h", "2d", "1h30m" -> milliseconds; none on a malformed or zero value.
std::optional<Duration> parse_duration(std::string_view text);
std::string format_duration(Duration d);  // "1h30m", "45s"

// "*", "example.com", "*.example.com" (any strict sub-domain)
bool domain_matches(std::string_view pattern, std::string_view domain);

}  // namespace dkim::jit

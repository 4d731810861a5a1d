#pragma once
// What the reports, read together with signerd's signing record, mean: findings with their
// evidence. Pure: everything comes in as values (the store's rows, signerd's summary, the
// configuration), so each rule is tested with a ManualClock and made-up rows.
//
//  - replay_suspected: reporters saw more DKIM passes for one of our selectors on a day than
//    signerd signed with it that day and in the signature lifetime before it (x= - t=), times
//    `replay_ratio` (mail to several recipients at one receiver is counted once per recipient
//    by some receivers; the ratio absorbs that), and at least `replay_min_messages` passes;
//  - signed_outside_grant: DKIM passes for our selector on a day with no signature issued in
//    that window and no sign grant overlapping it (the key was used elsewhere);
//  - unknown_source: a source sending as the domain that is neither one of our outbound
//    addresses nor passing SPF, by volume;
//  - rotation_retired_seen: passes for a selector we no longer sign with, more than a
//    signature lifetime and a day after its last signature;
//    rotation_new_failing: a selector we sign with now that reporters see fail more than pass;
//  - enforcement_readiness: per domain over `readiness_days`, the share of known sources' mail
//    that is DMARC-aligned, the policy published, and the next step the evidence supports. The
//    share is each reporter's own, and the step is the one the weakest reporter (with at least
//    `readiness_reporter_min` known messages) supports: reports are unauthenticated, and a
//    forged report, however large, can only hold the ramp back, never push it on;
//  - tls_failures: TLS report failure counts by policy domain and result type.
//
// Who vouches for the evidence: anyone can mail a report address, and a report's org_name is
// the sender's word. A report whose mail carried a verified DKIM signature aligned with its From
// domain has an authenticated reporter (store.hpp, Submission). The findings about our keys
// (replay, signed outside a grant, rotation) are `authenticated` when the reports of
// authenticated reporters alone meet their condition: only those are critical and only those
// go to the webhook. The same evidence from unauthenticated reports alone is a warning that
// says so: it is worth a look, never a page.

#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dkim/ipc/protocol.hpp"
#include "store.hpp"

namespace dkim::reportd {

struct FindingOptions {
    double replay_ratio = 1.0;
    std::uint64_t replay_min_messages = 10;
    std::int64_t readiness_days = 14;
    double quarantine_at = 0.95;  // aligned share of known sources' mail to move to quarantine
    double reject_at = 0.98;      // ... and from quarantine at pct=100 to reject
    std::uint64_t readiness_min_messages = 100;
    std::uint64_t unknown_min_messages = 1;
    std::uint64_t readiness_reporter_min = 10;  // known messages a reporter needs to be weighed
};

struct Finding {
    std::string kind;
    std::string severity;  // "critical", "warning", "info"
    std::string domain;
    std::string selector;
    std::int64_t from = 0;   // unix seconds
    std::int64_t until = 0;  // unix seconds, exclusive
    std::string summary;     // one sentence for the operator
    boost::json::object evidence;
    // The condition holds on authenticated reporters' reports alone. Judged for the kinds about
    // our keys (replay, signed outside a grant, rotation); false for the others.
    bool authenticated = false;
};

struct DomainEvidence {
    std::string domain;
    std::vector<SourceTotals> sources;        // over the readiness window
    std::vector<DailyTotals> daily;           // over the readiness window
    std::vector<ReporterSource> by_reporter;  // over the readiness window
    std::optional<std::pair<std::string, std::optional<unsigned>>> published;  // p=, pct=
};

struct FindingInput {
    std::int64_t from_day = 0;  // inclusive
    std::int64_t to_day = 0;    // inclusive
    std::vector<SelectorDay> reported;
    ipc::SigningSummaryReply signing;
    bool signing_available = false;  // false: signerd could not be asked; no join-based findings
    std::vector<std::pair<std::string, std::string>> active_keys;  // (domain, selector) now
    std::vector<std::string> outbound;  // addresses or CIDR networks our mail leaves from
    std::vector<DomainEvidence> domains;
    std::vector<TlsFailureTotals> tls_failures;
    // The top sources of DKIM passes for (signer, selector, day), for evidence.
    std::function<std::vector<std::pair<std::string, std::uint64_t>>(
        const std::string&, const std::string&, std::int64_t)>
        top_sources;
    // The authenticated reporters whose reports saw (signer, selector, day), for evidence.
    std::function<std::vector<std::string>(const std::string&, const std::string&, std::int64_t)>
        reporters;
};

std::vector<Finding> find(const FindingInput& input, const FindingOptions& options);

boost::json::object to_json(const Finding& finding);

}  // namespace dkim::reportd

#pragma once
// `dkim-appliance apply --config appliance.toml`: the keys, their rotation and the domains'
// DNS policy as code. The file says what should be; plan_apply() compares it with what signerd
// reports (and what DNS publishes) and lists the steps that get there; apply carries out the
// ones it can (through signerd, each under its grant) and names the ones that need a person
// (publishing a record). Running it again once everything is in place changes nothing.
//
//   signerd_socket = "/run/dkim-signerd/signerd.sock"
//   outbound_addresses = ["192.0.2.25", "2001:db8::25"]   # for SPF
//   dmarc_rua = "mailto:dmarc-reports@example.com"      # DMARC aggregate reports (rua=)
//   dmarc_ruf = "mailto:dmarc-failures@example.com"     # DMARC failure reports (ruf=)
//   tlsrpt_rua = "mailto:tls-reports@example.com"       # TLS-RPT (_smtp._tls, RFC 8460)
//
//   [rotation]
//   selector_format = "s%Y-%m"      # %Y %m %d, %k: rsa or ed25519; %n: the cluster node's
//                                   # name (apply on each node of a cluster completes it)
//   grace = "7d"                    # how long a replaced key still signs
//
//   [[domain]]
//   name = "example.com"
//   rotate_after = "180d"           # optional: rotate keys older than this
//   dmarc_policy = "none"           # the stage DMARC should be at: none, quarantine, reject
//   dmarc_pct = 100
//   dmarc_requires_evidence = true  # a stricter stage waits until dkim-reportd's reports
//                                   # support it (enforcement readiness); default false
//   [[domain.key]]                  # one per kind: RSA and Ed25519 may sign side by side
//   algorithm = "rsa-2048"
//   selector = "rsa2026"            # optional: from selector_format; may hold %n
//   [[domain.key]]
//   algorithm = "ed25519"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dkim/dns/resolver.hpp"
#include "dkim/expected.hpp"
#include "dkim/provisioning/rotation.hpp"

namespace dkim::dmarc {
class PublicSuffixList;
}

namespace dkim::provisioning {

struct DesiredKey {
    std::string algorithm;  // "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"
    std::string selector;   // empty: from the selector format
};

struct DesiredDomain {
    std::string name;
    std::vector<DesiredKey> keys;  // at most one per kind
    std::optional<std::chrono::milliseconds> rotate_after;
    std::string dmarc_policy = "none";
    unsigned dmarc_pct = 100;
    // A DMARC stage stricter than the published one is published only once dkim-reportd's
    // enforcement readiness supports it.
    bool dmarc_requires_evidence = false;
};

struct ApplyConfig {
    std::string file;
    std::string signerd_socket = "/run/dkim-signerd/signerd.sock";
    std::string reportd_socket = "/run/dkim-appliance/reportd.sock";
    std::vector<std::string> outbound_addresses;
    std::string dmarc_rua;  // each "" or one URI or several, comma-separated
    std::string dmarc_ruf;
    std::string tlsrpt_rua;
    std::string selector_format = "s%Y-%m";
    std::chrono::seconds grace{std::chrono::hours(24 * 7)};
    std::vector<DesiredDomain> domains;
};

// Errors name file:line:column and the key.
Expected<ApplyConfig, std::string> load_apply_config(const std::string& file);

struct PlannedStep {
    enum class Action : std::uint8_t {
        create,    // generate a domain's first key of a kind (key.generate)
        rotate,    // generate the next key of a kind (key.rotate)
        activate,  // switch signing to a published pending key
        retire,    // destroy a key whose grace period is over (key.retire)
        publish,   // a person publishes a record (apply waits for it)
        wait,      // the grace period runs
        note,      // something apply leaves alone
    } action = Action::note;
    std::string domain;
    std::string selector;
    std::string algorithm;
    std::string detail;
    bool changes() const;  // create, rotate, activate, retire
};
std::string_view to_string(PlannedStep::Action action);

struct Plan {
    std::vector<PlannedStep> steps;
    bool changes() const;
    bool waiting() const;  // publish or wait steps remain
};

// `published(domain, key)` says whether DNS publishes the pending key's record (the token's
// key, byte for byte).
using PublishedCheck = std::function<bool(const std::string& domain, const KeyStatus& key)>;

Plan plan_apply(const ApplyConfig& config,
                const std::map<std::string, std::vector<KeyStatus>>& keys_by_domain,
                std::int64_t now_ms, const PublishedCheck& published);

// The DMARC record a domain's configuration asks for: "v=DMARC1; p=quarantine; pct=25;
// rua=mailto:...; ruf=mailto:...".
std::string desired_dmarc(const ApplyConfig& config, const DesiredDomain& domain);

// The domain's DNS policy as configured against what it publishes: a publish step for DMARC
// when its record is missing, at another stage (p=, pct=) or without the configured rua= and
// ruf= addresses; one for TLS-RPT when tlsrpt_rua is set and the record does not name it; one
// for each report domain outside the domain's organizational domain (by `psl`, see
// dns::is_external_report_domain) that does not authorize its DMARC reports (RFC 7489 §7.1);
// and one for SPF when it does not pass the outbound addresses (with the merged record).
//
// With dmarc_requires_evidence, a DMARC stage stricter than the published one needs `evidence`:
// dkim-reportd's enforcement readiness for the domain. When the stage it supports is below the
// configured one (or there is no evidence: fail closed), the publish step becomes a wait step
// that says what the reports support and why.
struct DmarcEvidence {
    bool available = false;
    std::string next;     // the finding's next step: "none", "quarantine; pct=25", "reject", ...
    std::string summary;  // the finding's sentence, or why there is no evidence
};
std::vector<PlannedStep> dns_policy_steps(
    const ApplyConfig& config, const DesiredDomain& domain, dns::Resolver& resolver,
    std::int64_t now_unix, std::shared_ptr<const dmarc::PublicSuffixList> psl = nullptr,
    const DmarcEvidence* evidence = nullptr);

// The monitor -> quarantine -> reject ramp as a number: none 0, quarantine below pct=100 1,
// quarantine 2, reject 3.
int dmarc_stage(std::string_view policy, unsigned pct);
// The stage a readiness "next" ("quarantine; pct=25") names.
int dmarc_stage_of_next(std::string_view next);

}  // namespace dkim::provisioning

#pragma once
// What a DMARC aggregate report, a DMARC failure report and an SMTP TLS report hold, as the
// parsers hand them on: text fields as the reporter wrote them, trimmed; result keywords,
// domain names and selectors in lower case (DNS names compare without case); times as Unix
// seconds. An empty <org_name> is the <email>'s domain (reports are told apart by reporter and
// report id). No lookups, no storage.
//
// STANDARDS: RFC 7489 Appendix C and RFC 9990 (aggregate reports, with or without the
// urn:ietf:params:xml:ns:dmarc-2.0 namespace), RFC 6591 and RFC 5965 (failure reports in the
// Abuse Reporting Format), RFC 8460 §4 (TLS reports).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dkim::reports {

// Caps on what one input may cost. A report that crosses one is refused as a whole, with the
// cap named; the rest of a batch goes on.
struct Limits {
    std::size_t max_input = std::size_t{64} << 20;          // bytes read from a file or message
    std::size_t max_decompressed = std::size_t{512} << 20;  // bytes out of one gzip/zip member
    std::size_t max_ratio = 1000;         // decompressed / compressed, for inputs over 1 MiB out
    std::size_t max_zip_members = 8;      // members of one zip archive
    std::size_t max_depth = 32;           // XML elements inside each other (JSON: nesting)
    std::size_t max_text = 4096;          // bytes in one XML element's text
    std::size_t max_records = 2'000'000;  // <record>s in one aggregate report
    std::size_t max_mime_parts = 64;      // MIME parts walked in one message
    std::size_t max_mime_depth = 8;       // multiparts inside each other
    std::size_t max_json = std::size_t{32} << 20;  // bytes of one TLS report's JSON
};

// --- Aggregate reports (RFC 7489 Appendix C, RFC 9990) ---------------------------------------

struct PolicyPublished {
    std::string domain;
    std::string adkim;  // "r", "s" or empty when not reported
    std::string aspf;
    std::string p;
    std::string sp;
    std::string np;               // RFC 9990
    std::optional<unsigned> pct;  // RFC 7489 only
    std::string fo;
    std::string testing;           // RFC 9990: "y" or "n"
    std::string discovery_method;  // RFC 9990: "psl" or "treewalk"
};

// report_metadata and policy_published: everything before the first <record>.
struct AggregateHeader {
    std::string version;  // <version>, empty when absent (RFC 7489 reports rarely carry one)
    std::string org_name;
    std::string email;
    std::string extra_contact_info;
    std::string report_id;
    std::int64_t begin = 0;  // date_range, Unix seconds
    std::int64_t end = 0;
    std::vector<std::string> errors;  // <error> texts
    std::string generator;            // RFC 9990
    PolicyPublished policy;
    bool namespaced = false;  // the root carried RFC 9990's namespace
};

struct PolicyOverride {
    std::string type;  // forwarded, sampled_out, trusted_forwarder, mailing_list, local_policy,
                       // other
    std::string comment;
};

struct DkimResult {
    std::string domain;
    std::string selector;  // may be empty: RFC 7489 makes it optional
    std::string result;    // none, pass, fail, policy, neutral, temperror, permerror
    std::string human_result;
};

struct SpfResult {
    std::string domain;
    std::string scope;  // "mfrom", "helo" or empty
    std::string result;
    std::string human_result;
};

struct AggregateRecord {
    std::string source_ip;  // checked: an IPv4 or IPv6 address in its canonical text
    std::uint64_t count = 0;
    std::string disposition;   // none, quarantine, reject (RFC 9990 adds pass)
    std::string dkim_aligned;  // policy_evaluated/dkim: pass or fail
    std::string spf_aligned;   // policy_evaluated/spf
    std::vector<PolicyOverride> reasons;
    std::string header_from;
    std::string envelope_from;
    std::string envelope_to;
    std::vector<DkimResult> dkim;
    std::vector<SpfResult> spf;
};

// --- Failure reports (RFC 6591) ----------------------------------------------------------------

struct FailureReport {
    std::string feedback_type;  // "auth-failure"
    std::string user_agent;
    std::string version;
    std::string original_mail_from;
    std::string original_rcpt_to;
    std::optional<std::int64_t> arrival_date;  // Unix seconds, when the date could be read
    std::string arrival_date_text;             // as written
    std::string source_ip;
    std::string reported_domain;
    std::string reported_uri;
    std::string auth_failure;  // "dmarc", "dkim", "spf", "adsp", "bodyhash", "revoked", ...
    std::string authentication_results;
    std::string delivery_result;
    std::string identity_alignment;
    std::string dkim_domain;
    std::string dkim_selector;
    std::string dkim_identity;
    std::string spf_dns;
    // From the reported message's own header (the message/rfc822 or text/rfc822-headers part).
    std::string original_from;
    std::string original_subject;
    std::string original_message_id;
    std::string original_date;
    // Where it came from: the report mail's own sender and Message-ID.
    std::string reporter;
    std::string report_message_id;
    bool plain_text = false;  // read from a text/plain part, not message/feedback-report
};

// --- SMTP TLS reports (RFC 8460 §4) ------------------------------------------------------------

struct TlsFailureDetail {
    std::string result_type;
    std::string sending_mta_ip;
    std::string receiving_mx_hostname;
    std::string receiving_mx_helo;
    std::string receiving_ip;
    std::uint64_t failed_session_count = 0;
    std::string additional_information;
    std::string failure_reason_code;
};

struct TlsPolicy {
    std::string policy_type;  // "tlsa", "sts", "no-policy-found"
    std::vector<std::string> policy_strings;
    std::string policy_domain;
    std::vector<std::string> mx_hosts;
    std::uint64_t successful = 0;
    std::uint64_t failed = 0;
    std::vector<TlsFailureDetail> failures;
};

struct TlsReport {
    std::string org_name;
    std::string report_id;
    std::string contact_info;
    std::int64_t begin = 0;  // date-range start-datetime, Unix seconds
    std::int64_t end = 0;
    std::vector<TlsPolicy> policies;
};

}  // namespace dkim::reports

#pragma once
// dkim-reportd's store (SQLite, WAL, synchronous=FULL): every submission's bytes as received
// (stored durably before anything parses them, so a 250 means the report is kept whatever its
// parsing says), the reports read from them (one row each; a report already stored, by kind,
// reporter, report id and domain, is counted as a duplicate and not stored again), and what the
// dashboard and the findings read: aggregate records split by UTC day (a report spanning more
// than a day has its counts shared out over the days by the seconds it covers in each, the sum
// kept exact), DKIM results by signing domain, selector and day, per-domain daily totals kept
// as reports arrive, failure reports and TLS reports.

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/reports/model.hpp"
#include "dkim/reports/reader.hpp"

namespace dkim::reportd {

namespace store_detail {
struct IngestStatements;
}  // namespace store_detail

inline constexpr std::int64_t kDay = 86400;

// `count` shared out over the UTC days of [begin, end] (end inclusive, as reports write it) by
// the seconds of each day inside it; the shares add up to `count` exactly. One day: all of it.
std::vector<std::pair<std::int64_t, std::uint64_t>> split_by_day(std::int64_t begin,
                                                                 std::int64_t end,
                                                                 std::uint64_t count);

// One submission: where it came from, its bytes, and its reporter: the domain that the report
// mail's DKIM signature vouches for (the From domain, with a verified signature aligned with it;
// relayd and the operator's CLI check it, see dkim::inbound::Verifier::authenticated_author),
// or "" when nothing vouches for the sender. Only reports with a reporter raise critical
// findings and webhooks: anyone can mail a report address with any org_name in it.
struct Submission {
    std::string_view origin;
    std::string_view bytes;
    std::string_view reporter;
    // Or, for a body spooled out of memory (spool.hpp): its bytes from `source`, `size` of
    // them (then `bytes` is not read).
    reports::ByteSource* source = nullptr;
    std::uint64_t size = 0;
};

struct IngestResult {
    std::int64_t submission = 0;
    std::size_t reports = 0;          // stored now
    std::size_t duplicates = 0;       // already stored
    std::vector<std::string> errors;  // "where: why", one per report that could not be read
};

struct DailyTotals {
    std::string domain;
    std::int64_t day = 0;  // days since 1970-01-01 (UTC)
    std::uint64_t messages = 0;
    std::uint64_t dmarc_pass = 0;  // DKIM- or SPF-aligned pass
    std::uint64_t dkim_aligned = 0;
    std::uint64_t spf_aligned = 0;
    std::uint64_t quarantined = 0;
    std::uint64_t rejected = 0;
};

struct SelectorDay {
    std::string signer;  // d=
    std::string selector;
    std::int64_t day = 0;
    std::uint64_t pass = 0;
    std::uint64_t fail = 0;  // any result but pass (fail, permerror, temperror, neutral, ...)
    // The same, counted from reports of authenticated reporters only.
    std::uint64_t authenticated_pass = 0;
    std::uint64_t authenticated_fail = 0;
};

struct SourceTotals {
    std::string source_ip;
    std::uint64_t messages = 0;
    std::uint64_t dkim_aligned = 0;
    std::uint64_t spf_aligned = 0;
    std::uint64_t spf_pass = 0;  // an SPF pass for any domain (authorised by SPF)
    std::uint64_t dmarc_pass = 0;
};

// One reporter's (org_name's) view of one source over a range.
struct ReporterSource {
    std::string reporter;
    std::string source_ip;
    std::uint64_t messages = 0;
    std::uint64_t dmarc_pass = 0;
    std::uint64_t spf_pass = 0;
};

struct StoredReport {
    std::int64_t id = 0;
    std::string kind;  // aggregate, failure, tls
    std::string org_name;
    std::string report_id;
    std::string domain;
    std::int64_t begin = 0;
    std::int64_t end = 0;
    std::int64_t received = 0;
    std::uint64_t records = 0;
    std::uint64_t messages = 0;
    std::string reporter;   // the authenticated reporter domain, or ""
    bool conflict = false;  // another report has its key with other content
};

struct TlsFailureTotals {
    std::string policy_domain;
    std::string result_type;
    std::string receiving_mx_hostname;
    std::int64_t day = 0;
    std::uint64_t sessions = 0;
};

struct TlsPolicyTotals {
    std::string policy_domain;
    std::int64_t day = 0;
    std::uint64_t successful = 0;
    std::uint64_t failed = 0;
};

class ReportStore {
  public:
    // durable=false (synchronous=OFF) only for benchmarks filling a store quickly.
    static Expected<std::unique_ptr<ReportStore>, std::string> open(const std::string& path,
                                                                    bool durable = true);
    ReportStore(const ReportStore&) = delete;
    ReportStore& operator=(const ReportStore&) = delete;
    ~ReportStore();

    // The bytes, durably (the transaction is committed with synchronous=FULL) before it returns.
    Expected<std::int64_t, std::string> add_submission(std::int64_t received,
                                                       std::string_view origin,
                                                       std::string_view bytes,
                                                       std::string_view reporter = {});
    // The same, the bytes read from `source` in pieces (exactly `size` of them).
    Expected<std::int64_t, std::string> add_submission(std::int64_t received,
                                                       std::string_view origin,
                                                       reports::ByteSource& source,
                                                       std::uint64_t size,
                                                       std::string_view reporter);
    // add_submission and ingest in one transaction, committed durably (synchronous=FULL) before
    // it returns: what a submitter's "stored" means. A crash before the commit loses nothing the
    // submitter was told was kept.
    Expected<IngestResult, std::string> submit(std::int64_t received, std::string_view origin,
                                               std::string_view bytes,
                                               const reports::Limits& limits);
    // Several submissions (origin, bytes) in one such transaction: a bulk import pays for one
    // durable commit, not one each.
    Expected<std::vector<IngestResult>, std::string> submit_batch(
        std::int64_t received, const std::vector<Submission>& parts, const reports::Limits& limits);
    // Reads the stored submission's reports into the tables: each report in a savepoint of its
    // own, so one bad report costs nothing of the others.
    IngestResult ingest(std::int64_t submission, const reports::Limits& limits,
                        std::int64_t received);

    std::vector<DailyTotals> daily(const std::string& domain, std::int64_t from_day,
                                   std::int64_t to_day);
    std::vector<std::string> domains();
    // One signing domain's (signer, d=) or, empty, every one's.
    std::vector<SelectorDay> selector_days(std::int64_t from_day, std::int64_t to_day,
                                           const std::string& signer = {});
    std::vector<SourceTotals> sources(const std::string& domain, std::int64_t from_day,
                                      std::int64_t to_day);
    // The sources of the domain by reporter: enforcement readiness weighs each reporter on its
    // own, so that no one report (anyone can send one) outweighs the others.
    std::vector<ReporterSource> reporter_sources(const std::string& domain, std::int64_t from_day,
                                                 std::int64_t to_day);
    // The sources that sent DKIM passes for signer/selector on `day`, by volume.
    std::vector<std::pair<std::string, std::uint64_t>> selector_sources(const std::string& signer,
                                                                        const std::string& selector,
                                                                        std::int64_t day,
                                                                        std::size_t limit);
    // The authenticated reporters whose reports saw signer/selector on `day` (at most 20).
    std::vector<std::string> authenticated_reporters(const std::string& signer,
                                                     const std::string& selector, std::int64_t day);
    std::vector<StoredReport> reports(const std::string& domain, std::int64_t from,
                                      std::int64_t until, std::size_t limit);
    std::vector<TlsPolicyTotals> tls_policies(std::int64_t from_day, std::int64_t to_day);
    std::vector<TlsFailureTotals> tls_failures(std::int64_t from_day, std::int64_t to_day);
    // The p= (and pct=) the latest report for the domain says it published.
    std::optional<std::pair<std::string, std::optional<unsigned>>> published_policy(
        const std::string& domain);
    std::uint64_t submission_count();
    // Deletes the bytes of the submissions received before `received` (unix seconds) that were
    // read; the reports read from them stay. How many.
    std::size_t forget_submissions_before(std::int64_t received);
    // Reports stored, by kind (aggregate, failure, tls).
    std::vector<std::pair<std::string, std::uint64_t>> report_counts();
    // true the first time `key` is marked (the finding was not notified before), durably.
    bool first_notification(const std::string& key, std::int64_t now);
    void forget_notification(const std::string& key);
    // Submissions stored but never read (reads are recorded when they end).
    std::vector<std::int64_t> unread_submissions();

  private:
    explicit ReportStore(sqlite3* db);
    class Ingest;
    store_detail::IngestStatements& statements();
    sqlite3* db_;
    std::unique_ptr<store_detail::IngestStatements> statements_;
};

}  // namespace dkim::reportd

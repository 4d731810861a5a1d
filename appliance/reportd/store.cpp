#include "store.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <numeric>
#include <span>

#include "dkim/base/hex.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/reports/json.hpp"
#include "dkim/reports/source.hpp"

namespace dkim::reportd {

// Named, not anonymous: ReportStore::Ingest holds statements.
namespace store_detail {

class Sql {
  public:
    Sql(sqlite3* db, const char* sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
            stmt_ = nullptr;
        }
    }
    Sql(const Sql&) = delete;
    Sql& operator=(const Sql&) = delete;
    ~Sql() { sqlite3_finalize(stmt_); }
    bool ok() const { return stmt_ != nullptr; }
    std::string error() const { return sqlite3_errmsg(db_); }

    // Every caller binds every parameter again after a reset.
    Sql& reset() {
        sqlite3_reset(stmt_);
        next_ = 1;
        return *this;
    }
    Sql& bind(std::int64_t v) {
        sqlite3_bind_int64(stmt_, next_++, v);
        return *this;
    }
    Sql& bind(std::uint64_t v) { return bind(static_cast<std::int64_t>(v)); }
    // The text must outlive the statement's next step (every caller steps at once).
    Sql& bind(std::string_view v) {
        sqlite3_bind_text(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    Sql& bind_blob(std::string_view v) {
        sqlite3_bind_blob(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    int step() { return stmt_ == nullptr ? SQLITE_ERROR : sqlite3_step(stmt_); }
    bool run() { return step() == SQLITE_DONE; }
    std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    std::uint64_t count(int column) const {
        return static_cast<std::uint64_t>(std::max<std::int64_t>(integer(column), 0));
    }
    std::string text(int column) const {
        const auto* p = sqlite3_column_text(stmt_, column);
        return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
    }
    std::string blob(int column) const {
        const void* p = sqlite3_column_blob(stmt_, column);
        const int n = sqlite3_column_bytes(stmt_, column);
        return p == nullptr ? std::string()
                            : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
    }

  private:
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
    int next_ = 1;
};

bool exec(sqlite3* db, const char* sql) {
    return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS submissions(
  id INTEGER PRIMARY KEY, received INTEGER NOT NULL, origin TEXT NOT NULL,
  size INTEGER NOT NULL, reporter TEXT NOT NULL DEFAULT '',
  content BLOB NOT NULL);
-- What reading a submission gave, apart from it: updating a row rewrites all of it, and a
-- submission's row holds its bytes (an UPDATE there held a 51 MB report in memory twice).
CREATE TABLE IF NOT EXISTS outcomes(
  submission INTEGER PRIMARY KEY, reports INTEGER NOT NULL, duplicates INTEGER NOT NULL,
  errors TEXT NOT NULL);  -- last: a zeroblob there is never expanded in memory
CREATE TABLE IF NOT EXISTS reports(
  id INTEGER PRIMARY KEY, submission INTEGER NOT NULL, kind TEXT NOT NULL,
  org_name TEXT NOT NULL, report_id TEXT NOT NULL, domain TEXT NOT NULL,
  begin INTEGER NOT NULL, end INTEGER NOT NULL, received INTEGER NOT NULL,
  records INTEGER NOT NULL DEFAULT 0, messages INTEGER NOT NULL DEFAULT 0,
  policy_p TEXT, policy_pct INTEGER, document TEXT,
  digest TEXT NOT NULL DEFAULT '', conflict INTEGER NOT NULL DEFAULT 0,
  reporter TEXT NOT NULL DEFAULT '',
  UNIQUE(kind, org_name, report_id, domain, digest));
CREATE INDEX IF NOT EXISTS reports_domain_begin ON reports(domain, begin);
CREATE TABLE IF NOT EXISTS records(
  report INTEGER NOT NULL, domain TEXT NOT NULL, day INTEGER NOT NULL,
  source_ip TEXT NOT NULL, count INTEGER NOT NULL, header_from TEXT NOT NULL,
  disposition TEXT NOT NULL, dkim_aligned INTEGER NOT NULL, spf_aligned INTEGER NOT NULL,
  spf_pass INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dkim_results(
  report INTEGER NOT NULL, domain TEXT NOT NULL, day INTEGER NOT NULL, signer TEXT NOT NULL,
  selector TEXT NOT NULL, result TEXT NOT NULL, source_ip TEXT NOT NULL, count INTEGER NOT NULL,
  authenticated INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS dkim_results_selector_day ON dkim_results(signer, selector, day);
CREATE INDEX IF NOT EXISTS records_domain_day ON records(domain, day, source_ip);
CREATE TABLE IF NOT EXISTS daily(
  domain TEXT NOT NULL, day INTEGER NOT NULL, messages INTEGER NOT NULL,
  dmarc_pass INTEGER NOT NULL, dkim_aligned INTEGER NOT NULL, spf_aligned INTEGER NOT NULL,
  quarantined INTEGER NOT NULL, rejected INTEGER NOT NULL,
  PRIMARY KEY(domain, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notified(key TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tls_policies(
  report INTEGER NOT NULL, day INTEGER NOT NULL, policy_domain TEXT NOT NULL,
  policy_type TEXT NOT NULL, successful INTEGER NOT NULL, failed INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tls_policies_day ON tls_policies(day);
CREATE TABLE IF NOT EXISTS tls_failures(
  report INTEGER NOT NULL, day INTEGER NOT NULL, policy_domain TEXT NOT NULL,
  result_type TEXT NOT NULL, receiving_mx_hostname TEXT NOT NULL,
  sending_mta_ip TEXT NOT NULL, sessions INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tls_failures_day ON tls_failures(day);
)SQL";

// Columns added after the first stores were made (issue 21's reporter authentication): added
// to a store that lacks them, with their defaults (unauthenticated).
constexpr std::array<std::array<const char*, 3>, 3> kAddedColumns{{
    {"submissions", "reporter", "TEXT NOT NULL DEFAULT ''"},
    {"reports", "reporter", "TEXT NOT NULL DEFAULT ''"},
    {"dkim_results", "authenticated", "INTEGER NOT NULL DEFAULT 0"},
}};

bool add_missing_columns(sqlite3* db) {
    for (const auto& [table, column, declaration] : kAddedColumns) {
        Sql q(db, "SELECT 1 FROM pragma_table_info(?) WHERE name=?");
        q.bind(std::string_view(table)).bind(std::string_view(column));
        if (q.step() == SQLITE_ROW) {
            continue;
        }
        const std::string alter =
            std::string("ALTER TABLE ") + table + " ADD COLUMN " + column + " " + declaration;
        if (!exec(db, alter.c_str())) {
            return false;
        }
    }
    // The first stores kept the outcomes in the submission's row.
    Sql old(db, "SELECT 1 FROM pragma_table_info('submissions') WHERE name='reports'");
    return old.step() != SQLITE_ROW ||
           exec(db,
                "INSERT OR IGNORE INTO outcomes(submission, reports, duplicates, errors) SELECT "
                "id, reports, COALESCE(duplicates, 0), COALESCE(errors, '') FROM submissions "
                "WHERE reports IS NOT NULL");
}

// Real reports cover a day, a few at most; a longer span is refused rather than spread thin.
constexpr std::int64_t kMaxReportSpan = 31 * kDay;

std::int64_t day_of(std::int64_t t) {
    return t >= 0 ? t / kDay : -((-t + kDay - 1) / kDay);
}

// The statements a submission's reading runs, prepared once per store (preparing costs more
// than running them for a small report).
struct IngestStatements {
    explicit IngestStatements(sqlite3* db)
        : report(db,
                 "INSERT INTO reports(submission, kind, org_name, report_id, domain, begin, end, "
                 "received, policy_p, policy_pct, document, reporter) "
                 "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"),
          finish(db, "UPDATE reports SET records=?, messages=? WHERE id=?"),
          record(db,
                 "INSERT INTO records(report, domain, day, source_ip, count, header_from, "
                 "disposition, dkim_aligned, spf_aligned, spf_pass) VALUES(?,?,?,?,?,?,?,?,?,?)"),
          dkim(db,
               "INSERT INTO dkim_results(report, domain, day, signer, selector, result, "
               "source_ip, count, authenticated) VALUES(?,?,?,?,?,?,?,?,?)"),
          daily(
              db,
              "INSERT INTO daily(domain, day, messages, dmarc_pass, dkim_aligned, spf_aligned, "
              "quarantined, rejected) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(domain, day) DO "
              "UPDATE SET messages=messages+excluded.messages, "
              "dmarc_pass=dmarc_pass+excluded.dmarc_pass, "
              "dkim_aligned=dkim_aligned+excluded.dkim_aligned, "
              "spf_aligned=spf_aligned+excluded.spf_aligned, "
              "quarantined=quarantined+excluded.quarantined, rejected=rejected+excluded.rejected"),
          tls_policy(db,
                     "INSERT INTO tls_policies(report, day, policy_domain, policy_type, "
                     "successful, failed) VALUES(?,?,?,?,?,?)"),
          tls_failure(db,
                      "INSERT INTO tls_failures(report, day, policy_domain, result_type, "
                      "receiving_mx_hostname, sending_mta_ip, sessions) VALUES(?,?,?,?,?,?,?)"),
          savepoint(db, "SAVEPOINT report"),
          release(db, "RELEASE report"),
          rollback(db, "ROLLBACK TO report"),
          submission(db,
                     "INSERT INTO submissions(received, origin, size, reporter, content) "
                     "VALUES(?,?,?,?,zeroblob(?))"),
          outcome(db,
                  "INSERT OR REPLACE INTO outcomes(reports, duplicates, errors, submission) "
                  "VALUES(?,?,?,?)") {}
    Sql report;
    Sql finish;
    Sql record;
    Sql dkim;
    Sql daily;
    Sql tls_policy;
    Sql tls_failure;
    Sql savepoint;
    Sql release;
    Sql rollback;
    Sql submission;
    Sql outcome;
};

}  // namespace store_detail

using namespace store_detail;

std::vector<std::pair<std::int64_t, std::uint64_t>> split_by_day(std::int64_t begin,
                                                                 std::int64_t end,
                                                                 std::uint64_t count) {
    std::vector<std::pair<std::int64_t, std::uint64_t>> out;
    end = std::max(end, begin);
    const std::int64_t first = day_of(begin);
    const std::int64_t last = day_of(end);
    if (first == last || count == 0) {
        out.emplace_back(first, count);
        return out;
    }
    const auto total = static_cast<std::uint64_t>(end - begin + 1);
    std::vector<std::pair<std::uint64_t, std::size_t>> remainders;  // (remainder, index)
    std::uint64_t given = 0;
    for (std::int64_t d = first; d <= last; ++d) {
        const std::int64_t from = std::max(begin, d * kDay);
        const std::int64_t to = std::min(end + 1, (d + 1) * kDay);
        const auto seconds = static_cast<std::uint64_t>(to - from);
        // count * seconds / total without overflow: the spans are below 2^32 seconds.
        const std::uint64_t whole = count / total * seconds;
        const std::uint64_t part = (count % total) * seconds;
        const std::uint64_t share = whole + part / total;
        remainders.emplace_back(part % total, out.size());
        out.emplace_back(d, share);
        given += share;
    }
    // What the floors left goes to the days with the largest remainders (earlier first).
    std::stable_sort(remainders.begin(), remainders.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (std::size_t i = 0; given < count && i < remainders.size(); ++i, ++given) {
        ++out[remainders[i].second].second;
    }
    return out;
}

// One submission's reports into the tables: a ReportSink whose aggregate report is one
// transaction.
class ReportStore::Ingest final : public reports::ReportSink {
  public:
    // `reporter`: the submission's authenticated reporter domain, or "" (see store.hpp).
    Ingest(sqlite3* db, IngestStatements& statements, std::int64_t submission,
           std::int64_t received, std::string reporter)
        : db_(db),
          q_(statements),
          submission_(submission),
          received_(received),
          reporter_(std::move(reporter)) {}

    IngestResult result;

    void header(const reports::AggregateHeader& h) override {
        header_ = h;
        records_ = 0;
        messages_ = 0;
        totals_.clear();
        refused_ = h.end - h.begin > kMaxReportSpan;
        if (refused_) {
            result.errors.push_back("aggregate report " + h.report_id + " from " + h.org_name +
                                    ": its date range spans more than 31 days");
            skipping_ = true;
            return;
        }
        // Whether it is a duplicate is known at its end: by its content's digest, not by its
        // key alone (the key is the sender's word; a forger who sent the next report id first
        // would otherwise have the real report dropped).
        skipping_ = false;
        digest_ = crypto::Sha256();
        digest_field(h.org_name);
        digest_field(h.report_id);
        digest_field(h.policy.domain);
        digest_field(std::to_string(h.begin));
        digest_field(std::to_string(h.end));
        (void)q_.savepoint.reset().run();
        open_ = true;
        report_id_ = insert_report("aggregate", h.org_name, h.report_id, h.policy.domain, h.begin,
                                   h.end, h.policy.p, h.policy.pct, {});
        first_day_ = day_of(h.begin);
        single_day_ = first_day_ == day_of(std::max(h.end, h.begin));
    }

    void record(const reports::AggregateRecord& r) override {
        if (skipping_ || !open_ || report_id_ == 0) {
            return;
        }
        ++records_;
        messages_ += r.count;
        // Every field with its length first: no two different records (a '|' or ':' moved from
        // one field into the next) digest alike.
        for (const std::string* field :
             {&r.source_ip, &r.disposition, &r.dkim_aligned, &r.spf_aligned, &r.header_from}) {
            digest_field(*field);
        }
        digest_field(std::to_string(r.count));
        digest_field(std::to_string(r.dkim.size()));
        for (const auto& d : r.dkim) {
            digest_field(d.domain);
            digest_field(d.selector);
            digest_field(d.result);
        }
        digest_field(std::to_string(r.spf.size()));
        for (const auto& sp : r.spf) {
            digest_field(sp.domain);
            digest_field(sp.scope);
            digest_field(sp.result);
        }
        const bool dkim_aligned = r.dkim_aligned == "pass";
        const bool spf_aligned = r.spf_aligned == "pass";
        const bool spf_pass = std::any_of(r.spf.begin(), r.spf.end(),
                                          [](const auto& s) { return s.result == "pass"; });
        const std::string& domain = header_.policy.domain;
        const auto store_part = [&](std::int64_t day, std::uint64_t n) {
            q_.record.reset()
                .bind(report_id_)
                .bind(domain)
                .bind(day)
                .bind(r.source_ip)
                .bind(n)
                .bind(r.header_from)
                .bind(r.disposition)
                .bind(std::int64_t{dkim_aligned})
                .bind(std::int64_t{spf_aligned})
                .bind(std::int64_t{spf_pass});
            ok_ = q_.record.run() && ok_;
            for (const auto& d : r.dkim) {
                q_.dkim.reset()
                    .bind(report_id_)
                    .bind(domain)
                    .bind(day)
                    .bind(d.domain)
                    .bind(d.selector)
                    .bind(d.result)
                    .bind(r.source_ip)
                    .bind(n)
                    .bind(std::int64_t{!reporter_.empty()});
                ok_ = q_.dkim.run() && ok_;
            }
            DailyTotals& t = totals_[day];
            t.messages += n;
            t.dmarc_pass += (dkim_aligned || spf_aligned) ? n : 0;
            t.dkim_aligned += dkim_aligned ? n : 0;
            t.spf_aligned += spf_aligned ? n : 0;
            t.quarantined += r.disposition == "quarantine" ? n : 0;
            t.rejected += r.disposition == "reject" ? n : 0;
        };
        if (single_day_) {  // most reports: no split to compute
            store_part(first_day_, r.count);
            return;
        }
        for (const auto& [day, n] : split_by_day(header_.begin, header_.end, r.count)) {
            if (n > 0) {
                store_part(day, n);
            }
        }
    }

    void aggregate_end() override {
        if (skipping_) {
            result.duplicates += refused_ ? 0 : 1;
            return;
        }
        if (!open_) {
            return;
        }
        const auto sum = digest_.finish();
        const std::string digest = base::hex_encode(std::span<const std::uint8_t>(sum));
        if (same_content_stored("aggregate", header_.org_name, header_.report_id,
                                header_.policy.domain, digest, report_id_)) {
            (void)q_.rollback.reset().run();
            (void)q_.release.reset().run();
            open_ = false;
            ++result.duplicates;
            vouch_for_stored("aggregate", header_.org_name, header_.report_id,
                             header_.policy.domain, digest);
            return;
        }
        mark_digest(report_id_, "aggregate", header_.org_name, header_.report_id,
                    header_.policy.domain, digest);
        for (const auto& [day, t] : totals_) {
            q_.daily.reset()
                .bind(header_.policy.domain)
                .bind(day)
                .bind(t.messages)
                .bind(t.dmarc_pass)
                .bind(t.dkim_aligned)
                .bind(t.spf_aligned)
                .bind(t.quarantined)
                .bind(t.rejected);
            ok_ = q_.daily.run() && ok_;
        }
        q_.finish.reset().bind(std::uint64_t{records_}).bind(messages_).bind(report_id_);
        ok_ = q_.finish.run() && ok_;
        commit("aggregate report " + header_.report_id);
    }

    void aggregate_abandoned() override {
        if (open_) {
            (void)q_.rollback.reset().run();
            (void)q_.release.reset().run();
            open_ = false;
        }
        skipping_ = false;
    }

    void failure(const reports::FailureReport& f) override {
        std::string document;
        reports::json::failure(document, f);
        // A failure report has no id of its own: the report mail's Message-ID, or its content.
        const std::string id =
            !f.report_message_id.empty()
                ? f.report_message_id
                : f.arrival_date_text + " " + f.source_ip + " " + f.original_message_id;
        const std::string org = f.reporter.empty() ? "unknown" : f.reporter;
        // A duplicate is the same key and the same content, as for aggregate reports.
        const std::string digest = content_digest(document);
        if (same_content_stored("failure", org, id, f.reported_domain, digest)) {
            ++result.duplicates;
            vouch_for_stored("failure", org, id, f.reported_domain, digest);
            return;
        }
        (void)q_.savepoint.reset().run();
        open_ = true;
        const std::int64_t t = f.arrival_date.value_or(received_);
        const std::int64_t report =
            insert_report("failure", org, id, f.reported_domain, t, t, {}, std::nullopt, document);
        mark_digest(report, "failure", org, id, f.reported_domain, digest);
        commit("failure report");
    }

    void tls(const reports::TlsReport& r) override {
        const std::string domain =
            r.policies.empty() ? std::string() : r.policies.front().policy_domain;
        // A duplicate is the same key and the same content (the report as `reports parse`
        // prints it): a forger who sends a report under the next id first has it kept beside
        // the real one, both flagged as a conflict, as for aggregate reports.
        std::string content;
        reports::json::tls(content, r);
        const std::string digest = content_digest(content);
        if (same_content_stored("tls", r.org_name, r.report_id, domain, digest)) {
            ++result.duplicates;
            vouch_for_stored("tls", r.org_name, r.report_id, domain, digest);
            return;
        }
        (void)q_.savepoint.reset().run();
        open_ = true;
        const std::int64_t id = insert_report("tls", r.org_name, r.report_id, domain, r.begin,
                                              r.end, {}, std::nullopt, {});
        mark_digest(id, "tls", r.org_name, r.report_id, domain, digest);
        const std::int64_t day = day_of(r.begin);
        for (const auto& p : r.policies) {
            q_.tls_policy.reset()
                .bind(id)
                .bind(day)
                .bind(p.policy_domain)
                .bind(p.policy_type)
                .bind(p.successful)
                .bind(p.failed);
            ok_ = q_.tls_policy.run() && ok_;
            for (const auto& f : p.failures) {
                q_.tls_failure.reset()
                    .bind(id)
                    .bind(day)
                    .bind(p.policy_domain)
                    .bind(f.result_type)
                    .bind(f.receiving_mx_hostname)
                    .bind(f.sending_mta_ip)
                    .bind(f.failed_session_count);
                ok_ = q_.tls_failure.run() && ok_;
            }
        }
        commit("TLS report " + r.report_id);
    }

    void error(const std::string& where, const std::string& reason) override {
        result.errors.push_back(where + ": " + reason);
    }

  private:
    // One field into the report's digest: its length (8 bytes), then its bytes.
    void digest_field(std::string_view field) {
        std::uint64_t n = field.size();
        std::array<unsigned char, 8> length{};
        for (int i = 7; i >= 0; --i, n >>= 8) {
            length[static_cast<std::size_t>(i)] = static_cast<unsigned char>(n & 0xff);
        }
        digest_.update(length.data(), length.size());
        digest_.update(field);
    }

    // The same report again, now from an authenticated reporter (it came first as a bare file
    // or unsigned, say): the stored copy is that reporter's from now on. Only a copy with the
    // same content (`digest`; failure and TLS reports: the same key) and no reporter yet.
    void vouch_for_stored(std::string_view kind, std::string_view org, std::string_view id,
                          std::string_view domain, std::string_view digest) {
        if (reporter_.empty()) {
            return;
        }
        Sql set(db_,
                "UPDATE reports SET reporter=?1 WHERE kind=?2 AND org_name=?3 AND report_id=?4 "
                "AND domain=?5 AND (?6='' OR digest=?6) AND reporter='' RETURNING id");
        set.bind(reporter_).bind(kind).bind(org).bind(id).bind(domain).bind(
            digest.empty() ? std::string_view("") : digest);
        std::vector<std::int64_t> vouched;
        while (set.step() == SQLITE_ROW) {
            vouched.push_back(set.integer(0));
        }
        for (const std::int64_t report : vouched) {
            Sql mark(db_, "UPDATE dkim_results SET authenticated=1 WHERE report=?");
            mark.bind(report);
            ok_ = mark.run() && ok_;
        }
    }

    static std::string content_digest(std::string_view content) {
        crypto::Sha256 sha;
        sha.update(content);
        const auto sum = sha.finish();
        return base::hex_encode(std::span<const std::uint8_t>(sum));
    }

    // A report with this key and this content is stored already (its digest), other than the
    // one being read (`reading`: an aggregate report's row is made at its start). A failure or
    // TLS report stored before their digests were kept has none: it is the same by its key.
    bool same_content_stored(std::string_view kind, std::string_view org, std::string_view id,
                             std::string_view domain, std::string_view digest,
                             std::int64_t reading = 0) {
        Sql q(db_,
              "SELECT 1 FROM reports WHERE kind=? AND org_name=? AND report_id=? AND domain=? AND "
              "(digest=? OR (digest='' AND kind<>'aggregate')) AND id<>?");
        q.bind(kind).bind(org).bind(id).bind(domain).bind(digest).bind(reading);
        return q.step() == SQLITE_ROW;
    }

    // The report's digest; when another report has its key with other content, both are kept
    // and flagged as a conflict (someone sent a report under another's name and id).
    void mark_digest(std::int64_t report, std::string_view kind, std::string_view org,
                     std::string_view id, std::string_view domain, std::string_view digest) {
        Sql set(db_, "UPDATE reports SET digest=? WHERE id=?");
        set.bind(digest).bind(report);
        ok_ = set.run() && ok_;
        Sql others(db_,
                   "SELECT COUNT(*) FROM reports WHERE kind=? AND org_name=? AND report_id=? AND "
                   "domain=? AND id<>?");
        others.bind(kind).bind(org).bind(id).bind(domain).bind(report);
        if (others.step() == SQLITE_ROW && others.integer(0) > 0) {
            Sql flag(db_,
                     "UPDATE reports SET conflict=1 WHERE kind=? AND org_name=? AND report_id=? "
                     "AND domain=?");
            flag.bind(kind).bind(org).bind(id).bind(domain);
            ok_ = flag.run() && ok_;
            result.errors.push_back(std::string(kind) + " report " + std::string(id) + " from " +
                                    std::string(org) +
                                    ": another report has its reporter and id with other "
                                    "content; both are kept and flagged as a conflict");
        }
    }

    std::int64_t insert_report(std::string_view kind, std::string_view org, std::string_view id,
                               std::string_view domain, std::int64_t begin, std::int64_t end,
                               std::string_view p, std::optional<unsigned> pct,
                               std::string_view document) {
        q_.report.reset()
            .bind(submission_)
            .bind(kind)
            .bind(org)
            .bind(id)
            .bind(domain)
            .bind(begin)
            .bind(end)
            .bind(received_)
            .bind(p);
        if (pct) {
            q_.report.bind(std::int64_t{*pct});
        } else {
            q_.report.bind(std::string_view());
        }
        q_.report.bind(document).bind(reporter_);
        ok_ = q_.report.run() && ok_;
        return sqlite3_last_insert_rowid(db_);
    }

    void commit(const std::string& what) {
        if (!open_) {
            return;
        }
        open_ = false;
        if (ok_ && q_.release.reset().run()) {
            ++result.reports;
        } else {
            result.errors.push_back(what + ": not stored (" + sqlite3_errmsg(db_) + ")");
            (void)q_.rollback.reset().run();
            (void)q_.release.reset().run();
        }
        ok_ = true;
    }

    sqlite3* db_;
    IngestStatements& q_;
    std::int64_t submission_;
    std::int64_t received_;
    std::string reporter_;
    reports::AggregateHeader header_;
    crypto::Sha256 digest_;
    std::int64_t report_id_ = 0;
    std::size_t records_ = 0;
    std::uint64_t messages_ = 0;
    std::map<std::int64_t, DailyTotals> totals_;
    std::int64_t first_day_ = 0;
    bool single_day_ = true;
    bool skipping_ = false;
    bool refused_ = false;
    bool open_ = false;
    bool ok_ = true;
};

Expected<std::unique_ptr<ReportStore>, std::string> ReportStore::open(const std::string& path,
                                                                      bool durable) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        return unexpected("cannot open " + path + ": " + why);
    }
    if (!exec(db, "PRAGMA journal_mode=WAL") ||
        !exec(db, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF") ||
        !exec(db, "PRAGMA foreign_keys=ON") ||
        // A fixed 32 MiB page cache: a large report's rows and indexes stay in memory until its
        // commit instead of spilling to the WAL page by page (the cost does not grow with it).
        !exec(db, "PRAGMA cache_size=-32768") || !exec(db, "PRAGMA temp_store=FILE") ||
        !exec(db, kSchema) || !add_missing_columns(db)) {
        std::string why = sqlite3_errmsg(db);
        sqlite3_close(db);
        return unexpected("cannot prepare " + path + ": " + why);
    }
    sqlite3_busy_timeout(db, 5000);
    return std::unique_ptr<ReportStore>(new ReportStore(db));
}

ReportStore::ReportStore(sqlite3* db) : db_(db) {}

ReportStore::~ReportStore() {
    statements_.reset();
    sqlite3_close(db_);
}

Expected<std::int64_t, std::string> ReportStore::add_submission(std::int64_t received,
                                                                std::string_view origin,
                                                                std::string_view bytes,
                                                                std::string_view reporter) {
    reports::MemorySource source(bytes);
    return add_submission(received, origin, source, bytes.size(), reporter);
}

Expected<std::int64_t, std::string> ReportStore::add_submission(std::int64_t received,
                                                                std::string_view origin,
                                                                reports::ByteSource& source,
                                                                std::uint64_t size,
                                                                std::string_view reporter) {
    // The row is made with a zeroblob and the bytes written into it in pieces: binding them
    // whole would have SQLite build the row (a copy of all of it) in memory first.
    if (size > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
        return unexpected(std::string("cannot store the submission: too large"));
    }
    Sql& insert = statements().submission;
    insert.reset().bind(received).bind(origin).bind(static_cast<std::int64_t>(size));
    // (A string_view with no data binds NULL: "" is no reporter.)
    insert.bind(reporter.empty() ? std::string_view("") : reporter)
        .bind(static_cast<std::int64_t>(size));
    if (!insert.run()) {
        return unexpected("cannot store the submission: " + insert.error());
    }
    const std::int64_t row = sqlite3_last_insert_rowid(db_);
    sqlite3_blob* blob = nullptr;
    if (sqlite3_blob_open(db_, "main", "submissions", "content", row, 1, &blob) != SQLITE_OK) {
        sqlite3_blob_close(blob);
        return unexpected(std::string("cannot store the submission: ") + sqlite3_errmsg(db_));
    }
    constexpr std::size_t kPiece = std::size_t{1} << 20;
    std::string piece(static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, size)), '\0');
    std::uint64_t at = 0;
    while (at < size) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, size - at));
        auto got = source.read(piece.data(), want);
        if (!got || *got == 0) {
            sqlite3_blob_close(blob);
            return unexpected("cannot store the submission: " +
                              (got ? std::string("its bytes ended early") : got.error()));
        }
        if (sqlite3_blob_write(blob, piece.data(), static_cast<int>(*got), static_cast<int>(at)) !=
            SQLITE_OK) {
            const std::string why = sqlite3_errmsg(db_);
            sqlite3_blob_close(blob);
            return unexpected("cannot store the submission: " + why);
        }
        at += *got;
    }
    if (sqlite3_blob_close(blob) != SQLITE_OK) {
        return unexpected(std::string("cannot store the submission: ") + sqlite3_errmsg(db_));
    }
    return row;
}

IngestStatements& ReportStore::statements() {
    if (!statements_) {
        statements_ = std::make_unique<IngestStatements>(db_);
    }
    return *statements_;
}

namespace store_detail {

// A stored submission's bytes read in pieces (SQLite's incremental blob I/O): reading a report
// costs the parser's buffers, not a second copy of the submission.
class BlobSource final : public reports::ByteSource {
  public:
    BlobSource(sqlite3* db, std::int64_t row) {
        if (sqlite3_blob_open(db, "main", "submissions", "content", row, 0, &blob_) != SQLITE_OK) {
            blob_ = nullptr;
            error_ = sqlite3_errmsg(db);
        } else {
            size_ = sqlite3_blob_bytes(blob_);
        }
    }
    BlobSource(const BlobSource&) = delete;
    BlobSource& operator=(const BlobSource&) = delete;
    ~BlobSource() override { sqlite3_blob_close(blob_); }

    Expected<std::size_t, std::string> read(char* out, std::size_t size) override {
        if (blob_ == nullptr) {
            return unexpected("cannot read the stored submission: " + error_);
        }
        const int n = static_cast<int>(
            std::min<std::size_t>(size, static_cast<std::size_t>(size_ - offset_)));
        if (n <= 0) {
            return std::size_t{0};
        }
        if (sqlite3_blob_read(blob_, out, n, offset_) != SQLITE_OK) {
            return unexpected(std::string("cannot read the stored submission"));
        }
        offset_ += n;
        return static_cast<std::size_t>(n);
    }

  private:
    sqlite3_blob* blob_ = nullptr;
    std::string error_;
    int size_ = 0;
    int offset_ = 0;
};

}  // namespace store_detail

Expected<IngestResult, std::string> ReportStore::submit(std::int64_t received,
                                                        std::string_view origin,
                                                        std::string_view bytes,
                                                        const reports::Limits& limits) {
    auto results = submit_batch(received, {{origin, bytes, {}}}, limits);
    if (!results) {
        return unexpected(results.error());
    }
    return std::move(results->front());
}

Expected<std::vector<IngestResult>, std::string> ReportStore::submit_batch(
    std::int64_t received, const std::vector<Submission>& parts, const reports::Limits& limits) {
    // One transaction, one durable commit: each submission, every report read from it (each in
    // a savepoint of its own, so one bad report costs nothing of the others) and the outcomes.
    if (!exec(db_, "BEGIN IMMEDIATE")) {
        return unexpected(std::string("cannot store the submission: ") + sqlite3_errmsg(db_));
    }
    std::vector<IngestResult> results;
    for (const Submission& part : parts) {
        auto id =
            part.source != nullptr
                ? add_submission(received, part.origin, *part.source, part.size, part.reporter)
                : add_submission(received, part.origin, part.bytes, part.reporter);
        if (!id) {
            exec(db_, "ROLLBACK");
            return unexpected(id.error());
        }
        results.push_back(ingest(*id, limits, received));
    }
    if (!exec(db_, "COMMIT")) {
        const std::string why = sqlite3_errmsg(db_);
        exec(db_, "ROLLBACK");
        return unexpected("cannot store the submission: " + why);
    }
    return results;
}

IngestResult ReportStore::ingest(std::int64_t submission, const reports::Limits& limits,
                                 std::int64_t received) {
    std::string reporter;
    {
        Sql q(db_, "SELECT reporter FROM submissions WHERE id=?");
        q.bind(submission);
        if (q.step() == SQLITE_ROW) {
            reporter = q.text(0);
        }
    }
    // The reporter vouches for a mail message (relayd's or the CLI's DKIM check of its From
    // domain); bytes the reader takes for anything else are not what was verified. A first
    // line "<!--:--><feedback>...</feedback>" above a genuine signed mail is one more header
    // field to DKIM, and to the reader an XML report (read up to </feedback>).
    bool not_mail = false;
    if (!reporter.empty()) {
        BlobSource head(db_, submission);
        std::string prefix(reports::kSniffBytes, '\0');
        std::size_t got = 0;
        while (got < prefix.size()) {
            auto n = head.read(prefix.data() + got, prefix.size() - got);
            if (!n || *n == 0) {
                break;
            }
            got += *n;
        }
        prefix.resize(got);
        not_mail = reports::sniff(prefix) != reports::ContentKind::mail;
    }
    Ingest ingest(db_, statements(), submission, received,
                  not_mail ? std::string() : std::move(reporter));
    ingest.result.submission = submission;
    if (not_mail) {
        ingest.result.errors.push_back(
            "submission " + std::to_string(submission) +
            ": not a mail message, so its reporter vouches for none of its reports");
    }
    {
        BlobSource source(db_, submission);
        reports::read_reports(source, "submission " + std::to_string(submission), ingest, limits);
    }
    std::string errors;
    for (const auto& e : ingest.result.errors) {
        errors += e + "\n";
    }
    Sql& done = statements().outcome;
    done.reset()
        .bind(static_cast<std::int64_t>(ingest.result.reports))
        .bind(static_cast<std::int64_t>(ingest.result.duplicates))
        .bind(errors)
        .bind(submission);
    (void)done.run();
    return std::move(ingest.result);
}

std::vector<DailyTotals> ReportStore::daily(const std::string& domain, std::int64_t from_day,
                                            std::int64_t to_day) {
    // Two statements, not "(? = '' OR domain = ?)": that form keeps SQLite off the index.
    Sql q(db_, domain.empty()
                   ? "SELECT domain, day, messages, dmarc_pass, dkim_aligned, spf_aligned, "
                     "quarantined, rejected FROM daily WHERE day BETWEEN ?1 AND ?2 "
                     "ORDER BY domain, day"
                   : "SELECT domain, day, messages, dmarc_pass, dkim_aligned, spf_aligned, "
                     "quarantined, rejected FROM daily WHERE domain = ?3 AND day BETWEEN ?1 AND "
                     "?2 ORDER BY day");
    q.bind(from_day).bind(to_day);
    if (!domain.empty()) {
        q.bind(domain);
    }
    std::vector<DailyTotals> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back({q.text(0), q.integer(1), q.count(2), q.count(3), q.count(4), q.count(5),
                       q.count(6), q.count(7)});
    }
    return out;
}

std::vector<std::string> ReportStore::domains() {
    Sql q(db_, "SELECT DISTINCT domain FROM daily ORDER BY domain");
    std::vector<std::string> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back(q.text(0));
    }
    return out;
}

// pass, fail, and the same from authenticated reporters' reports only.
#define SELECTOR_DAY_SUMS                                                      \
    "SUM(CASE WHEN result='pass' THEN count ELSE 0 END), "                     \
    "SUM(CASE WHEN result='pass' THEN 0 ELSE count END), "                     \
    "SUM(CASE WHEN result='pass' AND authenticated=1 THEN count ELSE 0 END), " \
    "SUM(CASE WHEN result<>'pass' AND authenticated=1 THEN count ELSE 0 END)"

std::vector<SelectorDay> ReportStore::selector_days(std::int64_t from_day, std::int64_t to_day,
                                                    const std::string& signer) {
    Sql q(db_, signer.empty()
                   ? "SELECT signer, selector, day, " SELECTOR_DAY_SUMS
                     " FROM dkim_results "
                     "WHERE day BETWEEN ?1 AND ?2 GROUP BY signer, selector, day "
                     "ORDER BY signer, selector, day"
                   : "SELECT signer, selector, day, " SELECTOR_DAY_SUMS
                     " FROM dkim_results "
                     "WHERE signer = ?3 AND day BETWEEN ?1 AND ?2 GROUP BY selector, day "
                     "ORDER BY selector, day");
    q.bind(from_day).bind(to_day);
    if (!signer.empty()) {
        q.bind(signer);
    }
    std::vector<SelectorDay> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back(
            {q.text(0), q.text(1), q.integer(2), q.count(3), q.count(4), q.count(5), q.count(6)});
    }
    return out;
}
#undef SELECTOR_DAY_SUMS

std::vector<std::string> ReportStore::authenticated_reporters(const std::string& signer,
                                                              const std::string& selector,
                                                              std::int64_t day) {
    Sql q(db_,
          "SELECT DISTINCT p.reporter FROM dkim_results d JOIN reports p ON p.id = d.report "
          "WHERE d.signer=? AND d.selector=? AND d.day=? AND d.authenticated=1 AND "
          "p.reporter<>'' ORDER BY 1 LIMIT 20");
    q.bind(signer).bind(selector).bind(day);
    std::vector<std::string> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back(q.text(0));
    }
    return out;
}

std::vector<SourceTotals> ReportStore::sources(const std::string& domain, std::int64_t from_day,
                                               std::int64_t to_day) {
    Sql q(db_,
          "SELECT source_ip, SUM(count), SUM(count*dkim_aligned), SUM(count*spf_aligned), "
          "SUM(count*spf_pass), SUM(CASE WHEN dkim_aligned=1 OR spf_aligned=1 THEN count ELSE 0 "
          "END) FROM records WHERE domain = ? AND day BETWEEN ? AND ? GROUP BY source_ip "
          "ORDER BY 2 DESC, 1");
    q.bind(domain).bind(from_day).bind(to_day);
    std::vector<SourceTotals> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back({q.text(0), q.count(1), q.count(2), q.count(3), q.count(4), q.count(5)});
    }
    return out;
}

std::vector<ReporterSource> ReportStore::reporter_sources(const std::string& domain,
                                                          std::int64_t from_day,
                                                          std::int64_t to_day) {
    Sql q(db_,
          "SELECT p.org_name, r.source_ip, SUM(r.count), SUM(CASE WHEN r.dkim_aligned=1 OR "
          "r.spf_aligned=1 THEN r.count ELSE 0 END), SUM(r.count*r.spf_pass) FROM records r "
          "JOIN reports p ON p.id = r.report WHERE r.domain = ? AND r.day BETWEEN ? AND ? "
          "GROUP BY p.org_name, r.source_ip ORDER BY p.org_name, r.source_ip");
    q.bind(domain).bind(from_day).bind(to_day);
    std::vector<ReporterSource> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back({q.text(0), q.text(1), q.count(2), q.count(3), q.count(4)});
    }
    return out;
}

std::vector<std::pair<std::string, std::uint64_t>> ReportStore::selector_sources(
    const std::string& signer, const std::string& selector, std::int64_t day, std::size_t limit) {
    Sql q(db_,
          "SELECT source_ip, SUM(count) FROM dkim_results WHERE signer=? AND selector=? AND day=? "
          "AND result='pass' GROUP BY source_ip ORDER BY 2 DESC, 1 LIMIT ?");
    q.bind(signer).bind(selector).bind(day).bind(static_cast<std::int64_t>(limit));
    std::vector<std::pair<std::string, std::uint64_t>> out;
    while (q.step() == SQLITE_ROW) {
        out.emplace_back(q.text(0), q.count(1));
    }
    return out;
}

std::vector<StoredReport> ReportStore::reports(const std::string& domain, std::int64_t from,
                                               std::int64_t until, std::size_t limit) {
    Sql q(db_, domain.empty()
                   ? "SELECT id, kind, org_name, report_id, domain, begin, end, received, records, "
                     "messages, reporter, conflict FROM reports WHERE end >= ?1 AND begin < ?2 "
                     "ORDER BY begin DESC, id DESC LIMIT ?3"
                   : "SELECT id, kind, org_name, report_id, domain, begin, end, received, records, "
                     "messages, reporter, conflict FROM reports WHERE domain = ?4 AND end >= ?1 "
                     "AND begin < ?2 ORDER BY begin DESC, id DESC LIMIT ?3");
    q.bind(from).bind(until).bind(static_cast<std::int64_t>(limit));
    if (!domain.empty()) {
        q.bind(domain);
    }
    std::vector<StoredReport> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back({q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4), q.integer(5),
                       q.integer(6), q.integer(7), q.count(8), q.count(9), q.text(10),
                       q.integer(11) != 0});
    }
    return out;
}

std::vector<TlsPolicyTotals> ReportStore::tls_policies(std::int64_t from_day, std::int64_t to_day) {
    Sql q(db_,
          "SELECT policy_domain, day, SUM(successful), SUM(failed) FROM tls_policies WHERE day "
          "BETWEEN ? AND ? GROUP BY policy_domain, day ORDER BY policy_domain, day");
    q.bind(from_day).bind(to_day);
    std::vector<TlsPolicyTotals> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back({q.text(0), q.integer(1), q.count(2), q.count(3)});
    }
    return out;
}

std::vector<TlsFailureTotals> ReportStore::tls_failures(std::int64_t from_day,
                                                        std::int64_t to_day) {
    Sql q(db_,
          "SELECT policy_domain, result_type, receiving_mx_hostname, day, SUM(sessions) FROM "
          "tls_failures WHERE day BETWEEN ? AND ? GROUP BY policy_domain, result_type, "
          "receiving_mx_hostname, day ORDER BY policy_domain, day, 5 DESC");
    q.bind(from_day).bind(to_day);
    std::vector<TlsFailureTotals> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back({q.text(0), q.text(1), q.text(2), q.integer(3), q.count(4)});
    }
    return out;
}

std::optional<std::pair<std::string, std::optional<unsigned>>> ReportStore::published_policy(
    const std::string& domain) {
    Sql q(db_,
          "SELECT policy_p, policy_pct FROM reports WHERE kind='aggregate' AND domain=? AND "
          "policy_p <> '' ORDER BY end DESC, id DESC LIMIT 1");
    q.bind(domain);
    if (q.step() != SQLITE_ROW) {
        return std::nullopt;
    }
    std::optional<unsigned> pct;
    if (!q.text(1).empty()) {
        pct = static_cast<unsigned>(q.integer(1));
    }
    return std::make_pair(q.text(0), pct);
}

bool ReportStore::first_notification(const std::string& key, std::int64_t now) {
    Sql insert(db_, "INSERT OR IGNORE INTO notified(key, at) VALUES(?, ?)");
    insert.bind(key).bind(now);
    return insert.run() && sqlite3_changes(db_) == 1;
}

void ReportStore::forget_notification(const std::string& key) {
    Sql remove(db_, "DELETE FROM notified WHERE key = ?");
    remove.bind(key);
    (void)remove.run();
}

std::vector<std::int64_t> ReportStore::unread_submissions() {
    Sql q(db_,
          "SELECT id FROM submissions s WHERE NOT EXISTS (SELECT 1 FROM outcomes o WHERE "
          "o.submission = s.id) ORDER BY id");
    std::vector<std::int64_t> out;
    while (q.step() == SQLITE_ROW) {
        out.push_back(q.integer(0));
    }
    return out;
}

std::vector<std::pair<std::string, std::uint64_t>> ReportStore::report_counts() {
    Sql q(db_, "SELECT kind, COUNT(*) FROM reports GROUP BY kind ORDER BY kind");
    std::vector<std::pair<std::string, std::uint64_t>> out;
    while (q.step() == SQLITE_ROW) {
        out.emplace_back(q.text(0), q.count(1));
    }
    return out;
}

std::size_t ReportStore::forget_submissions_before(std::int64_t received) {
    Sql q(db_,
          "DELETE FROM submissions WHERE received < ? AND EXISTS (SELECT 1 FROM outcomes o WHERE "
          "o.submission = submissions.id)");
    q.bind(received);
    if (!q.run()) {
        return 0;
    }
    return static_cast<std::size_t>(sqlite3_changes(db_));
}

std::uint64_t ReportStore::submission_count() {
    Sql q(db_, "SELECT COUNT(*) FROM submissions");
    return q.step() == SQLITE_ROW ? q.count(0) : 0;
}

}  // namespace dkim::reportd

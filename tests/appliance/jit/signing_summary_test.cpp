// The signing summary in the JIT engine (issue 21): signatures and refusals counted per domain,
// selector and hour in the commit of the audit record they count, dated as the journal dates that
// record, kept across restarts, and the sign grants' intervals (expiry, revocation, budget).

#include <sqlite3.h>

#include <map>
#include <thread>
#include <tuple>

#include "authority_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kNoon = 1'795'694'400;  // test_epoch(), 2026-11-26T12:00:00Z

bool run_sql_on(const std::filesystem::path& db, const char* sql) {
    sqlite3* handle = nullptr;
    const bool ok = sqlite3_open(db.c_str(), &handle) == SQLITE_OK &&
                    sqlite3_exec(handle, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    sqlite3_close(handle);
    return ok;
}

class SigningSummaryTest : public AuthorityTest {
  protected:
    // One signature of domain/selector at `at`, as signerd makes it: the permit, then the
    // record's durable write (write-ahead).
    Expected<void, std::string> sign_at(TimePoint at, const std::string& domain = "example.com",
                                        const std::string& selector = "s1") {
        auto permit = engine.authority().authorize_sign("relay", domain, selector, at);
        EXPECT_TRUE(permit) << permit.error().message;
        if (!permit) {
            return unexpected(permit.error().message);
        }
        return engine.authority()
            .begin_signature(*permit, "relay", "d=" + domain + "; s=" + selector, at)
            ->wait();
    }
    std::vector<jit::SigningHour> hours(const std::string& domain = {}, std::size_t limit = 1000) {
        auto read = engine.store().signing_hours(0, kNoon + 86400, domain, limit);
        EXPECT_TRUE(read) << read.error();
        return read ? read->rows : std::vector<jit::SigningHour>{};
    }
    // domain/selector@hour -> {signatures, refusals}
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> counts(
        const std::string& domain = {}) {
        std::map<std::string, std::pair<std::int64_t, std::int64_t>> out;
        for (const jit::SigningHour& h : hours(domain)) {
            EXPECT_EQ(h.hour % 3600, 0);
            out[h.domain + "/" + h.selector + "@" + std::to_string((h.hour - kNoon) / 3600)] = {
                h.signatures, h.refusals};
        }
        return out;
    }
    using Counts = std::map<std::string, std::pair<std::int64_t, std::int64_t>>;
};

TEST_F(SigningSummaryTest, SignaturesAndRefusalsAreCountedPerKeyAndHour) {
    granted(sign_request("example.com", "*", 8h));
    ASSERT_TRUE(sign_at(t0));
    ASSERT_TRUE(sign_at(t0 + 10min, "example.com", "s2"));
    ASSERT_TRUE(sign_at(t0 + 59min + 59s + 999ms));  // the last millisecond of the first hour
    ASSERT_TRUE(sign_at(t0 + 1h));                   // the first of the next
    // Refused for a key signerd knows: counted; for a request that names none: only logged.
    ASSERT_TRUE(engine.authority().record_sign_refusal(
        "relay", "sign example.com/s1", "signing profile: timestamp",
        jit::CountedKey{"example.com", "s1"}, t0 + 1h + 5min));
    ASSERT_TRUE(engine.authority().record_sign_refusal("relay", "sign bad..name/s1",
                                                       "invalid domain", std::nullopt, t0));
    // No grant for example.org: locked (a request filed), then locked again (reused).
    EXPECT_FALSE(can_sign(t0 + 2h, "example.org", "s1"));
    EXPECT_FALSE(can_sign(t0 + 2h + 1s, "example.org", "s1"));
    EXPECT_EQ(counts(), (Counts{{"example.com/s1@0", {2, 0}},
                                {"example.com/s1@1", {1, 1}},
                                {"example.com/s2@0", {1, 0}},
                                {"example.org/s1@2", {0, 2}}}));
    EXPECT_EQ(counts("example.org"), (Counts{{"example.org/s1@2", {0, 2}}}));
    EXPECT_TRUE(counts("example.net").empty());
    const auto read = engine.store().signing_hours(kNoon + 3600, kNoon + 7200, "", 100);
    ASSERT_TRUE(read);
    ASSERT_EQ(read->rows.size(), 1U) << "only the hours that start in [from, until)";
    EXPECT_EQ(read->rows[0].hour, kNoon + 3600);
    EXPECT_EQ(read->counted_since, TimePoint{}) << "a new store counts from its first record";
}

// The rows come sorted by domain, selector and hour; `limit` keeps the first ones by hour.
TEST_F(SigningSummaryTest, RowsAreSortedAndTheLimitKeepsTheEarliestHours) {
    granted(sign_request("example.com", "*", 8h));
    granted(sign_request("example.org", "*", 8h));
    for (int hour = 0; hour < 4; ++hour) {
        ASSERT_TRUE(sign_at(t0 + hour * 1h, "example.org", "b"));
        ASSERT_TRUE(sign_at(t0 + hour * 1h, "example.com", "z"));
        ASSERT_TRUE(sign_at(t0 + hour * 1h, "example.com", "a"));
    }
    const auto all = hours();
    ASSERT_EQ(all.size(), 12U);
    EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const auto& x, const auto& y) {
        return std::tie(x.domain, x.selector, x.hour) < std::tie(y.domain, y.selector, y.hour);
    }));
    const auto first = hours("", 4);
    ASSERT_EQ(first.size(), 4U);
    for (const auto& h : first) {
        EXPECT_LE(h.hour, kNoon + 3600) << h.domain << "/" << h.selector;
    }
    const auto com = hours("example.com", 3);
    ASSERT_EQ(com.size(), 3U);
    EXPECT_EQ(com[0].selector, "a");
    EXPECT_EQ(com[0].hour, kNoon);
    EXPECT_EQ(com[1].hour, kNoon + 3600);
    EXPECT_EQ(com[2].selector, "z");
}

// A signature whose token failed after its record was written is taken back, in the hour of that
// record, even when the failure is recorded in the next hour.
TEST_F(SigningSummaryTest, AFailedSignatureIsTakenBackInTheHourOfItsRecord) {
    granted(sign_request("example.com", "s1", 8h));
    const TimePoint late = t0 + 59min + 59s + 999ms;
    auto permit = engine.authority().authorize_sign("relay", "example.com", "s1", late);
    ASSERT_TRUE(permit);
    auto ticket = engine.authority().begin_signature(*permit, "relay", "d=example.com; s=s1", late);
    ASSERT_TRUE(ticket->wait());
    ASSERT_TRUE(engine.authority().record_signature(*permit, "relay", "failed",
                                                    "d=example.com; s=s1; CKR_DEVICE_ERROR",
                                                    t0 + 1h, ticket->records().front().time));
    EXPECT_TRUE(counts().empty()) << "nothing was signed";
    ASSERT_TRUE(sign_at(t0 + 1h + 1s));
    EXPECT_EQ(counts(), (Counts{{"example.com/s1@1", {1, 0}}}));
}

// The journal keeps record times in commit order: a record dated before the one committed ahead
// of it takes that one's time. Its tally follows it into that hour.
TEST_F(SigningSummaryTest, ATallyIsCountedInTheHourTheJournalGivesItsRecord) {
    granted(sign_request("example.com", "s1", 8h));
    ASSERT_TRUE(engine.authority().record_sign_refusal(
        "relay", "sign example.com/s1", "signing profile: timestamp",
        jit::CountedKey{"example.com", "s1"}, t0 + 1h + 500ms));
    ASSERT_TRUE(sign_at(t0 + 59min + 59s));  // read the clock before, committed after
    const auto last = engine.store().audit_records(engine.journal().seq(), 1);
    ASSERT_TRUE(last && last->size() == 1U);
    EXPECT_EQ(last->front().time, t0 + 1h + 500ms);
    EXPECT_EQ(counts(), (Counts{{"example.com/s1@1", {1, 1}}}));
}

// Issue 4's rule: a signature whose record cannot be written is withheld; it is not counted either.
TEST_F(SigningSummaryTest, ASignatureWithheldForItsRecordIsNotCounted) {
    granted(sign_request("example.com", "s1", 8h));
    engine.store().failing = true;
    EXPECT_FALSE(sign_at(t0));
    EXPECT_FALSE(engine.authority().record_sign_refusal("relay", "sign example.com/s1", "x",
                                                        jit::CountedKey{"example.com", "s1"}, t0));
    engine.store().failing = false;
    EXPECT_TRUE(counts().empty());
    // A tally that reaches the store without its hour fails the commit (never counted anywhere).
    std::vector<jit::AuditRecord> none;
    EXPECT_FALSE(
        engine.store().commit({jit::SigningTally{"example.com", "s1", std::nullopt, 1, 0}}, none));
}

TEST_F(SigningSummaryTest, TheCountsSurviveARestart) {
    granted(sign_request("example.com", "s1", 8h));
    ASSERT_TRUE(sign_at(t0));
    EXPECT_FALSE(can_sign(t0 + 30min, "example.org", "s1"));
    const auto before = counts();
    engine.restart();
    EXPECT_EQ(counts(), before);
    ASSERT_TRUE(sign_at(t0 + 40min));
    EXPECT_EQ(counts()["example.com/s1@0"], std::make_pair(std::int64_t{2}, std::int64_t{0}));
}

// Eight writers sign across an hour boundary at once: the summary equals a recount of the sign
// records by the hour the journal gave each.
TEST_F(SigningSummaryTest, ConcurrentSignaturesAddUpToTheRecordsOfEachHour) {
    granted(sign_request("example.com", "*", 8h));
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([this, t] {
            for (int i = 0; i < 40; ++i) {
                const TimePoint at = t0 + 59min + 59s + std::chrono::milliseconds(i * 25);
                EXPECT_TRUE(sign_at(at, "example.com", t % 2 == 0 ? "s1" : "s2"));
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    Counts recount;
    const auto records = engine.store().audit_records(1, 100000);
    ASSERT_TRUE(records);
    for (const jit::AuditRecord& r : *records) {
        if (r.action == "sign" && r.outcome == "issued") {
            const std::string selector = r.detail.substr(r.detail.rfind("s=") + 2);
            const auto hour = (jit::signing_hour(r.time) - kNoon) / 3600;
            ++recount["example.com/" + selector + "@" + std::to_string(hour)].first;
        }
    }
    EXPECT_EQ(counts(), recount);
    std::int64_t total = 0;
    for (const auto& [key, c] : recount) {
        total += c.first;
    }
    EXPECT_EQ(total, 320);
}

// --- the grants' intervals --------------------------------------------------------------------

TEST_F(SigningSummaryTest, GrantIntervalsEndAtExpiryRevocationOrTheLastUse) {
    auto& a = engine.authority();
    const auto expiring = granted(sign_request("example.com", "s1", 1h));
    const auto revoked = granted(sign_request("example.com", "s2", 2h));
    const auto spent = granted(sign_request("example.org", "*", 2h, 2));
    ASSERT_TRUE(a.revoke(bob, revoked, "CHG-9 key suspected", t0 + 10min));
    ASSERT_TRUE(sign_at(t0 + 1min, "example.org", "a"));
    ASSERT_TRUE(sign_at(t0 + 2min, "example.org", "b"));  // the budget's last use
    // Not a sign grant: never listed.
    auto generate = sign_request("example.com", "s9", 1h);
    generate.scope.operation = jit::Operation::key_generate;
    granted(generate);

    const auto check = [&](const std::vector<jit::GrantInterval>& got) {
        ASSERT_EQ(got.size(), 3U);
        EXPECT_EQ(got[0].grant_id, expiring);
        EXPECT_EQ(got[0].selector, "s1");
        EXPECT_EQ(got[0].start, t0);
        EXPECT_EQ(got[0].end, t0 + 1h);
        EXPECT_EQ(got[1].grant_id, revoked);
        EXPECT_EQ(got[1].end, t0 + 10min);
        EXPECT_EQ(got[2].grant_id, spent);
        EXPECT_EQ(got[2].domain, "example.org");
        EXPECT_EQ(got[2].selector, "*");
        EXPECT_EQ(got[2].end, t0 + 2min);
    };
    check(a.sign_grant_intervals("", t0 - 1h, t0 + 1h));
    engine.restart();  // the exhaustion time is kept in the store
    check(engine.authority().sign_grant_intervals("", t0 - 1h, t0 + 1h));

    const auto com = engine.authority().sign_grant_intervals("example.com", t0 - 1h, t0 + 1h);
    ASSERT_EQ(com.size(), 2U);
    // Intervals that overlap [from, until) only.
    const auto later = engine.authority().sign_grant_intervals("", t0 + 11min, t0 + 2h);
    ASSERT_EQ(later.size(), 1U);
    EXPECT_EQ(later[0].grant_id, expiring);
    EXPECT_TRUE(engine.authority().sign_grant_intervals("", t0 + 1h, t0 + 2h).empty());
    EXPECT_TRUE(engine.authority().sign_grant_intervals("", t0 - 1h, t0).empty());
}

// --- an older store --------------------------------------------------------------------------

// A store of schema 4 (before the summary and the exhaustion times): the upgrade adds both, and
// the summary counts from the last record the log had; the older grant ends at its expiry.
TEST_F(SigningSummaryTest, AnOlderStoreCountsFromTheEndOfItsLog) {
    granted(sign_request("example.com", "s1", 1h, 1));
    ASSERT_TRUE(sign_at(t0 + 5min));
    engine.restart();
    ASSERT_TRUE(run_sql_on(engine.db(),
                           "DROP TABLE signing_hours; ALTER TABLE grants DROP COLUMN exhausted_at; "
                           "DELETE FROM meta WHERE key = 'signing_hours_since'; "
                           "UPDATE meta SET value = '4' WHERE key = 'schema';"));
    engine.restart();
    const auto read = engine.store().signing_hours(0, kNoon + 86400, "", 100);
    ASSERT_TRUE(read) << read.error();
    EXPECT_TRUE(read->rows.empty());
    EXPECT_EQ(read->counted_since, t0 + 5min) << "the time of the log's last record";
    const auto intervals = engine.authority().sign_grant_intervals("", t0, t0 + 2h);
    ASSERT_EQ(intervals.size(), 1U);
    EXPECT_EQ(intervals[0].end, t0 + 1h) << "spent before its time was kept: its expiry";
    granted(sign_request("example.com", "s2", 1h));
    ASSERT_TRUE(sign_at(t0 + 6min, "example.com", "s2"));
    EXPECT_EQ(counts(), (Counts{{"example.com/s2@0", {1, 0}}}));
}

}  // namespace
}  // namespace dkim::test

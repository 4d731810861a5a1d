// dkim-reportd's store: submissions kept as received, reports stored once, counts shared out
// over the days a report spans (exactly), and what the dashboard and the findings read.

#include "store.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <thread>

#include "report_test_support.hpp"

namespace dkim::reportd {
namespace {

using reports::testing::aggregate_xml;
using reports::testing::gzip_bytes;
using reports::testing::sample;

TEST(SplitByDayTest, OneDayKeepsEverything) {
    const auto parts = split_by_day(1700006400, 1700092799, 17);  // 2023-11-15 whole day
    ASSERT_EQ(parts.size(), 1U);
    EXPECT_EQ(parts[0].first, 1700006400 / kDay);
    EXPECT_EQ(parts[0].second, 17U);
}

TEST(SplitByDayTest, SharesFollowTheSecondsAndAddUpExactly) {
    // Noon on day D to noon on day D+2: a quarter, a half, a quarter.
    const std::int64_t d = 19700;
    const auto parts = split_by_day(d * kDay + kDay / 2, (d + 2) * kDay + kDay / 2 - 1, 100);
    ASSERT_EQ(parts.size(), 3U);
    EXPECT_EQ(parts[0], std::make_pair(d, std::uint64_t{25}));
    EXPECT_EQ(parts[1], std::make_pair(d + 1, std::uint64_t{50}));
    EXPECT_EQ(parts[2], std::make_pair(d + 2, std::uint64_t{25}));
    for (std::uint64_t count : {1ULL, 2ULL, 3ULL, 7ULL, 1000003ULL, (1ULL << 53) - 1}) {
        const auto p = split_by_day(1574955300, 1575304683, count);  // the 4-day sample
        const std::uint64_t sum =
            std::accumulate(p.begin(), p.end(), std::uint64_t{0},
                            [](auto s, const auto& x) { return s + x.second; });
        EXPECT_EQ(sum, count);
        EXPECT_EQ(p.size(), 5U);
    }
}

class StoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("reportd-store-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        auto s = ReportStore::open((dir_ / "reports.db").string());
        ASSERT_TRUE(s) << s.error();
        store_ = std::move(*s);
    }
    void TearDown() override {
        store_.reset();
        std::filesystem::remove_all(dir_);
    }
    IngestResult submit(const std::string& bytes) {
        auto id = store_->add_submission(1700000000, "test", bytes);
        EXPECT_TRUE(id);
        return store_->ingest(*id, reports::Limits{}, 1700000000);
    }

    std::filesystem::path dir_;
    std::unique_ptr<ReportStore> store_;
};

TEST_F(StoreTest, AReportIsStoredOnceAndCounted) {
    const auto first = submit(aggregate_xml(3, 5));
    EXPECT_EQ(first.reports, 1U);
    EXPECT_EQ(first.duplicates, 0U);
    EXPECT_TRUE(first.errors.empty());
    const auto again = submit(gzip_bytes(aggregate_xml(3, 5)));  // the same report, gzip'd
    EXPECT_EQ(again.reports, 0U);
    EXPECT_EQ(again.duplicates, 1U);

    const std::int64_t day = 1700000000 / kDay;
    const auto daily = store_->daily("example.com", day - 1, day + 1);
    ASSERT_EQ(daily.size(), 1U);
    EXPECT_EQ(daily[0].messages, 15U);
    EXPECT_EQ(daily[0].dkim_aligned, 15U);
    EXPECT_EQ(daily[0].spf_aligned, 0U);
    EXPECT_EQ(daily[0].dmarc_pass, 15U);
    const auto selectors = store_->selector_days(day - 1, day + 1);
    ASSERT_EQ(selectors.size(), 1U);
    EXPECT_EQ(selectors[0].signer, "example.com");
    EXPECT_EQ(selectors[0].selector, "s1");
    EXPECT_EQ(selectors[0].pass, 15U);
    const auto sources = store_->sources("example.com", day - 1, day + 1);
    ASSERT_EQ(sources.size(), 3U);
    EXPECT_EQ(sources[0].messages, 5U);
    EXPECT_EQ(sources[0].spf_pass, 5U);
    EXPECT_EQ(store_->submission_count(), 2U);
    const auto listed = store_->reports("", 0, 2000000000, 10);
    ASSERT_EQ(listed.size(), 1U);
    EXPECT_EQ(listed[0].records, 3U);
    EXPECT_EQ(listed[0].messages, 15U);
}

TEST_F(StoreTest, AReportSpanningDaysIsSplitByDay) {
    // 1700006400 is midnight UTC: noon to noon over two days, ten messages a record.
    std::string x = aggregate_xml(1, 10);
    x.replace(x.find("1700000000"), 10, std::to_string(1700006400 + 43200));
    x.replace(x.find("1700086399"), 10, std::to_string(1700006400 + kDay + 43199));
    EXPECT_EQ(submit(x).reports, 1U);
    const std::int64_t day = 1700006400 / kDay;
    const auto daily = store_->daily("example.com", day - 2, day + 2);
    ASSERT_EQ(daily.size(), 2U);
    EXPECT_EQ(daily[0].day, day);
    EXPECT_EQ(daily[0].messages, 5U);
    EXPECT_EQ(daily[1].messages, 5U);
    const auto selectors = store_->selector_days(day - 2, day + 2);
    ASSERT_EQ(selectors.size(), 2U);
    EXPECT_EQ(selectors[0].pass + selectors[1].pass, 10U);

    // The real sample spanning four days and a bit: its one message lands on one day.
    EXPECT_EQ(submit(sample("invalid/report_with_upper_cased_pass.xml")).reports, 1U);
}

TEST_F(StoreTest, AnAbsurdSpanIsRefusedAndBadReportsCostNothingElse) {
    std::string long_span = aggregate_xml(1, 1, "long");
    long_span.replace(long_span.find("1700000000"), 10, "1600000000");
    const auto r = submit(reports::testing::zip_bytes(
        {reports::testing::zip_entry("a.xml", long_span),
         reports::testing::zip_entry("b.xml", "<feedback><broken>"),
         reports::testing::zip_entry("c.xml", aggregate_xml(2, 1, "fine"))}));
    EXPECT_EQ(r.reports, 1U);
    ASSERT_EQ(r.errors.size(), 2U);
    EXPECT_NE(r.errors[0].find("more than 31 days"), std::string::npos) << r.errors[0];
    EXPECT_EQ(store_->reports("", 0, 2000000000, 10).size(), 1U);
}

TEST_F(StoreTest, FailureAndTlsReportsAreStored) {
    EXPECT_EQ(submit(sample("failure/domain.de-failure-report.eml")).reports, 1U);
    EXPECT_EQ(submit(sample("failure/domain.de-failure-report.eml")).duplicates, 1U);
    EXPECT_EQ(submit(sample("smtp_tls/smtp_tls.json")).reports, 1U);
    const std::int64_t day = 1704758400 / kDay;
    const auto failures = store_->tls_failures(day, day);
    ASSERT_EQ(failures.size(), 1U);
    EXPECT_EQ(failures[0].result_type, "validation-failure");
    EXPECT_EQ(failures[0].sessions, 3U);
    const auto policies = store_->tls_policies(day, day);
    ASSERT_EQ(policies.size(), 1U);
    EXPECT_EQ(policies[0].failed, 3U);
}

TEST_F(StoreTest, UnreadSubmissionsAreFoundAfterARestart) {
    auto id = store_->add_submission(1700000000, "test", aggregate_xml(1));
    ASSERT_TRUE(id);
    store_.reset();
    auto reopened = ReportStore::open((dir_ / "reports.db").string());
    ASSERT_TRUE(reopened);
    store_ = std::move(*reopened);
    EXPECT_EQ(store_->unread_submissions(), std::vector<std::int64_t>{*id});
    store_->ingest(*id, reports::Limits{}, 1700000000);
    EXPECT_TRUE(store_->unread_submissions().empty());
}

// Bytes that come only when the test lets them: a submission held in the middle of being stored.
class GatedSource final : public reports::ByteSource {
  public:
    explicit GatedSource(std::string bytes) : bytes_(std::move(bytes)) {}
    Expected<std::size_t, std::string> read(char* out, std::size_t size) override {
        {
            std::unique_lock lock(mutex_);
            reading_ = true;
            changed_.notify_all();
            changed_.wait(lock, [this] { return open_; });
        }
        reports::MemorySource rest(std::string_view(bytes_).substr(at_));
        auto n = rest.read(out, size);
        at_ += n ? *n : 0;
        return n;
    }
    void wait_until_reading() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return reading_; });
    }
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }

  private:
    std::string bytes_;
    std::size_t at_ = 0;
    std::mutex mutex_;
    std::condition_variable changed_;
    bool reading_ = false;
    bool open_ = false;
};

// dkim-reportd's queries run on a second connection (main.cpp): while the first is inside the
// write transaction of a submission (its bytes still coming), the second reads the last commit
// at once (WAL), without the submission's rows, and sees them once it is committed.
TEST_F(StoreTest, ASecondConnectionReadsWhileASubmissionIsBeingStored) {
    ASSERT_EQ(submit(aggregate_xml(2, 5, "before")).reports, 1U);
    auto reader = ReportStore::open((dir_ / "reports.db").string());
    ASSERT_TRUE(reader) << reader.error();
    const std::int64_t day = 1700000000 / kDay;
    const auto messages = [&] {
        std::uint64_t n = 0;
        for (const auto& d : (*reader)->daily("example.com", day - 1, day + 2)) {
            n += d.messages;
        }
        return n;
    };
    const std::string next = aggregate_xml(3, 7, "during");
    GatedSource gate(next);
    Expected<std::vector<IngestResult>, std::string> stored = unexpected(std::string("not yet"));
    std::thread writer([&] {
        stored = store_->submit_batch(1700000000, {{"test", {}, {}, &gate, next.size()}},
                                      reports::Limits{});
    });
    gate.wait_until_reading();  // BEGIN IMMEDIATE done, the row made, its bytes not yet in
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(messages(), 10U);
    EXPECT_EQ((*reader)->reports("example.com", 0, 2000000000, 10).size(), 1U);
    // (SQLite's busy timeout is 5 s: a reader that had to wait for the writer would take it.)
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
    gate.open();
    writer.join();
    ASSERT_TRUE(stored) << stored.error();
    EXPECT_EQ(stored->front().reports, 1U);
    EXPECT_EQ(messages(), 31U);
}

}  // namespace
}  // namespace dkim::reportd

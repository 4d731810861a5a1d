// The signing summary through the Service (issue 21), as dkim-reportd reads it from the reports
// peer: signatures and refusals per domain, selector and hour after real sign requests, hour
// boundaries on a ManualClock, a restart on the same SQLite store, the token failing and the log
// unwritable, the sign grants' intervals (expiry, revocation, budget), the range and size limits,
// and the summary as a recount of the audit log.

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <string>

#include "fake_gate.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kEpochSeconds = 1'795'694'400;  // test_epoch(): 2026-11-26T12:00:00Z

// "domain/selector@hour" (hours after test_epoch()) -> {signatures, refusals}
using HourCounts = std::map<std::string, std::pair<std::int64_t, std::int64_t>>;

std::string hour_key(const std::string& domain, const std::string& selector, std::int64_t hour) {
    return domain + "/" + selector + "@" + std::to_string((hour - kEpochSeconds) / 3600);
}

class SummaryServiceTest : public ::testing::Test {
  protected:
    FakeGate gate;
    SignerdHarness h{gate, file_pin_options()};

    std::int64_t seconds_now() const { return to_unix_ms(h.clock.now()) / 1000; }

    std::int64_t grant(const std::string& domain, const std::string& selector,
                       std::int64_t seconds = 8 * 3600,
                       std::optional<std::uint64_t> budget = std::nullopt) {
        const auto id = h.request_sign(domain, selector, seconds, budget);
        const auto reply = h.decide("bob", "approve", id);
        EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(reply)) << error_message(reply);
        return std::holds_alternative<ipc::OkReply>(reply) ? std::get<ipc::OkReply>(reply).id : 0;
    }
    // A sign request with a block made now (t= is the clock's).
    ipc::Reply sign_now(const std::string& domain = "example.com",
                        const std::string& selector = "s1") {
        return h.sign(header_block(domain, selector, SigningAlgorithm::rsa_sha256, Canon::relaxed,
                                   h.clock.now()),
                      domain, selector);
    }
    ipc::SigningSummaryReply summary(std::int64_t from, std::int64_t until,
                                     const std::string& domain = {}) {
        const auto reply = h.call(h.reports_peer, ipc::SigningSummaryRequest{from, until, domain});
        EXPECT_TRUE(std::holds_alternative<ipc::SigningSummaryReply>(reply))
            << error_message(reply);
        return std::holds_alternative<ipc::SigningSummaryReply>(reply)
                   ? std::get<ipc::SigningSummaryReply>(reply)
                   : ipc::SigningSummaryReply{};
    }
    HourCounts counts(std::int64_t hours = 4, const std::string& domain = {}) {
        HourCounts out;
        for (const ipc::SigningHour& row :
             summary(kEpochSeconds, kEpochSeconds + hours * 3600, domain).hours) {
            EXPECT_EQ(row.hour % 3600, 0);
            out[hour_key(row.domain, row.selector, row.hour)] = {row.signatures, row.refusals};
        }
        return out;
    }
};

TEST_F(SummaryServiceTest, SignaturesAndRefusalsAreCountedPerKeyAndHour) {
    EXPECT_EQ(error_code(sign_now()), "locked");  // no grant yet: a refusal of example.com/s1
    grant("example.com", "s1");
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    // The signing profile refuses a stale t=: counted under the key.
    const auto stale = h.sign(header_block("example.com", "s1", SigningAlgorithm::rsa_sha256,
                                           Canon::relaxed, h.clock.now() - 1h));
    EXPECT_EQ(error_code(stale), "forbidden");
    // No key of that name in the token, a malformed name: logged, never counted.
    EXPECT_EQ(error_code(sign_now("example.net", "s1")), "not_found");
    EXPECT_EQ(error_code(h.sign(header_block("example.com", "s1"), "bad_domain!", "s1")),
              "invalid");
    h.clock.advance(1h);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    EXPECT_EQ(error_code(sign_now("example.org", "s1")), "locked");
    EXPECT_EQ(counts(), (HourCounts{{"example.com/s1@0", {2, 2}},
                                    {"example.com/s1@1", {1, 0}},
                                    {"example.org/s1@1", {0, 1}}}));
    EXPECT_EQ(counts(4, "example.org"), (HourCounts{{"example.org/s1@1", {0, 1}}}));
    const auto all = summary(kEpochSeconds, kEpochSeconds + 7200);
    EXPECT_EQ(all.signature_lifetime, 7 * 86400) << "the signing profile's max_lifetime";
    EXPECT_EQ(all.counted_since, 0) << "a new store counts everything";
    ASSERT_EQ(all.grants.size(), 1U);
    EXPECT_EQ(all.grants[0].domain, "example.com");
    EXPECT_EQ(all.grants[0].selector, "s1");
    EXPECT_EQ(all.grants[0].end - all.grants[0].start, 8 * 3600);
}

// An hour is [HH:00:00.000, HH+1:00:00.000); a range covers the hours that start in it, and the
// one that holds its `from`.
TEST_F(SummaryServiceTest, HoursEndOnTheHourAndARangeTakesTheHourOfItsStart) {
    grant("example.com", "s1");
    h.clock.set(test_epoch() + 59min + 59s + 999ms);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    h.clock.set(test_epoch() + 1h);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    EXPECT_EQ(counts(), (HourCounts{{"example.com/s1@0", {1, 0}}, {"example.com/s1@1", {1, 0}}}));
    const auto first = summary(kEpochSeconds, kEpochSeconds + 3600);
    ASSERT_EQ(first.hours.size(), 1U);
    EXPECT_EQ(first.hours[0].hour, kEpochSeconds);
    const auto half_past = summary(kEpochSeconds + 5400, kEpochSeconds + 5401);
    ASSERT_EQ(half_past.hours.size(), 1U);
    EXPECT_EQ(half_past.hours[0].hour, kEpochSeconds + 3600);
    EXPECT_TRUE(summary(kEpochSeconds + 7200, kEpochSeconds + 10800).hours.empty());
}

TEST_F(SummaryServiceTest, TheCountsAndGrantsSurviveARestart) {
    grant("example.com", "s1");
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    EXPECT_EQ(error_code(sign_now("example.org", "s1")), "locked");
    const auto before = counts();
    const auto grants_before = summary(kEpochSeconds, kEpochSeconds + 3600).grants;
    h.restart();
    EXPECT_EQ(counts(), before);
    const auto grants_after = summary(kEpochSeconds, kEpochSeconds + 3600).grants;
    ASSERT_EQ(grants_after.size(), grants_before.size());
    EXPECT_EQ(grants_after[0].grant_id, grants_before[0].grant_id);
    EXPECT_EQ(grants_after[0].end, grants_before[0].end);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    EXPECT_EQ(counts()["example.com/s1@0"], std::make_pair(std::int64_t{2}, std::int64_t{0}));
}

// The token failing after the signature's record was written takes the signature back; a
// signature withheld because its record could not be written was never counted.
TEST_F(SummaryServiceTest, OnlySignaturesThatLeftAreCounted) {
    grant("example.com", "s1");
    gate.before_sign = [this] { gate.in = false; };  // the token drops the session
    EXPECT_EQ(error_code(sign_now()), "unavailable");
    gate.before_sign = nullptr;
    gate.in = true;
    EXPECT_TRUE(counts().empty());
    h.engine.store().failing = true;
    EXPECT_EQ(error_code(sign_now()), "unavailable");
    h.engine.store().failing = false;
    EXPECT_TRUE(counts().empty());
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now()));
    EXPECT_EQ(counts(), (HourCounts{{"example.com/s1@0", {1, 0}}}));
}

// Every count is in the log: a recount of the sign records by the rule store.hpp states gives the
// summary back, after a schedule of every outcome over three hours.
TEST_F(SummaryServiceTest, TheSummaryIsARecountOfTheAuditLog) {
    (void)sign_now();  // locked
    grant("example.com", "*");
    for (int hour = 0; hour < 3; ++hour) {
        for (int i = 0; i < 3; ++i) {
            (void)sign_now("example.com", i == 2 ? "s2" : "s1");
        }
        (void)h.sign(header_block("example.com", "s2", SigningAlgorithm::rsa_sha256, Canon::relaxed,
                                  h.clock.now() - 1h),
                     "example.com", "s2");    // refused by the profile
        (void)sign_now("example.org", "s1");  // locked
        (void)sign_now("example.net", "s1");  // no such key: not counted
        gate.before_sign = [this] { gate.in = false; };
        (void)sign_now();  // the token fails: taken back
        gate.before_sign = nullptr;
        gate.in = true;
        h.clock.advance(59min + 59s);
        (void)sign_now();  // the hour's last seconds
        h.clock.advance(1s);
    }
    const auto records = h.engine.store().audit_records(1, 1'000'000);
    ASSERT_TRUE(records);
    HourCounts recount;
    std::map<std::pair<std::int64_t, std::string>, std::string> issued;  // grant, use -> key
    for (const jit::AuditRecord& r : *records) {
        if (r.action != "sign") {
            continue;
        }
        const std::size_t d = r.detail.rfind("d=", 0) == 0 ? 0 : r.detail.find("; d=");
        if (d == std::string::npos) {
            continue;  // names no key: not counted
        }
        const std::size_t d_at = d == 0 ? 2 : d + 4;
        const std::size_t s_at = r.detail.find("; s=", d_at);
        ASSERT_NE(s_at, std::string::npos) << r.detail;
        const std::string domain = r.detail.substr(d_at, s_at - d_at);
        const std::string selector =
            r.detail.substr(s_at + 4, r.detail.find(';', s_at + 4) - (s_at + 4));
        const std::string key = hour_key(domain, selector, jit::signing_hour(r.time));
        const std::string use = r.detail.substr(0, r.detail.find(';'));  // "use N"
        if (r.outcome == "issued") {
            ++recount[key].first;
            issued[{r.grant_id, use}] = key;
        } else if (r.outcome == "failed") {
            const auto it = issued.find({r.grant_id, use});
            ASSERT_NE(it, issued.end()) << r.detail;
            --recount[it->second].first;
        } else if (r.outcome == "refused" || r.outcome == "locked") {
            ++recount[key].second;
        }
    }
    std::erase_if(recount, [](const auto& entry) {
        return entry.second.first == 0 && entry.second.second == 0;
    });
    const auto summarised = counts();
    EXPECT_EQ(summarised, recount);
    EXPECT_EQ(summarised.at("example.com/s1@1"), std::make_pair(std::int64_t{3}, std::int64_t{0}));
    EXPECT_EQ(summarised.at("example.org/s1@2"), std::make_pair(std::int64_t{0}, std::int64_t{1}));
}

TEST_F(SummaryServiceTest, GrantIntervalsEndAtExpiryRevocationOrTheLastUse) {
    const std::int64_t expiring = grant("example.com", "s1", 3600);
    const std::int64_t revoked = grant("example.com", "s2", 7200);
    const std::int64_t spent = grant("example.org", "s1", 7200, 1);
    h.clock.advance(1min);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(sign_now("example.org", "s1")));
    const std::int64_t spent_at = seconds_now();
    h.clock.advance(1min);
    const auto revoke =
        h.call(h.admin_peer, ipc::GrantRevoke{h.password_of("bob", true), revoked, "CHG-9 leak"});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(revoke)) << error_message(revoke);
    const std::int64_t revoked_at = seconds_now();

    const auto all = summary(kEpochSeconds, kEpochSeconds + 86400).grants;
    ASSERT_EQ(all.size(), 3U);
    EXPECT_EQ(all[0].grant_id, expiring);
    EXPECT_EQ(all[0].end - all[0].start, 3600);
    EXPECT_EQ(all[1].grant_id, revoked);
    EXPECT_EQ(all[1].selector, "s2");
    EXPECT_EQ(all[1].end, revoked_at);
    EXPECT_EQ(all[2].grant_id, spent);
    EXPECT_EQ(all[2].domain, "example.org");
    EXPECT_EQ(all[2].end, spent_at);
    const auto org = summary(kEpochSeconds, kEpochSeconds + 86400, "example.org").grants;
    ASSERT_EQ(org.size(), 1U);
    EXPECT_EQ(org[0].grant_id, spent);
    // Only the grants whose interval overlaps the range.
    const auto later = summary(revoked_at + 1, kEpochSeconds + 86400).grants;
    ASSERT_EQ(later.size(), 1U);
    EXPECT_EQ(later[0].grant_id, expiring);
    EXPECT_TRUE(summary(all[0].end, kEpochSeconds + 86400).grants.empty());
}

TEST_F(SummaryServiceTest, TheSignatureLifetimeIsTheProfilesMaxLifetime) {
    FakeGate other_gate;
    auto options = file_pin_options();
    options.profile.max_lifetime = std::chrono::hours(48);
    SignerdHarness other{other_gate, options};
    const auto reply = other.call(other.admin_peer,
                                  ipc::SigningSummaryRequest{kEpochSeconds, kEpochSeconds + 1, ""});
    ASSERT_TRUE(std::holds_alternative<ipc::SigningSummaryReply>(reply)) << error_message(reply);
    EXPECT_EQ(std::get<ipc::SigningSummaryReply>(reply).signature_lifetime, 48 * 3600);
}

// What a reply may hold is bounded: the range, the rows, the bytes of one frame.
TEST_F(SummaryServiceTest, RangesAndRepliesAreBounded) {
    const auto refused = [&](std::int64_t from, std::int64_t until,
                             const std::string& domain = {}) {
        const auto reply = h.call(h.reports_peer, ipc::SigningSummaryRequest{from, until, domain});
        return error_code(reply) == "invalid" ? error_message(reply) : std::string();
    };
    const std::int64_t t = kEpochSeconds;
    EXPECT_NE(refused(t, t), "") << "empty";
    EXPECT_NE(refused(t, t - 1), "") << "reversed";
    EXPECT_NE(refused(-3600, t), "") << "before 1970";
    EXPECT_NE(refused(t, std::numeric_limits<std::int64_t>::max()), "");
    EXPECT_NE(refused(t, t + ipc::kMaxSummaryRange + 1).find("400 days"), std::string::npos);
    EXPECT_EQ(refused(t, t + ipc::kMaxSummaryRange), "");
    EXPECT_NE(refused(t, t + 3600, "not a domain"), "");
    EXPECT_EQ(refused(t, t + 3600, "EXAMPLE.COM"), "") << "names are compared without case";

    // More hours than one reply may list (two selectors signing every hour for 209 days):
    // refused, for every domain or the one, and a shorter range is answered.
    const auto hours = static_cast<std::int64_t>(ipc::kMaxSummaryRows / 2 + 1);
    std::vector<jit::Mutation> tallies;
    for (std::int64_t i = 0; i < hours; ++i) {
        for (const char* selector : {"s1", "s2"}) {
            tallies.emplace_back(jit::SigningTally{"example.com", selector, t + i * 3600, 1, 0});
        }
    }
    std::vector<jit::AuditRecord> none;
    ASSERT_TRUE(h.engine.store().commit(tallies, none));
    const std::int64_t end = t + hours * 3600;
    EXPECT_NE(refused(t, end).find("one domain at a time"), std::string::npos);
    EXPECT_NE(refused(t, end, "example.com").find("shorter range"), std::string::npos);
    EXPECT_EQ(summary(t, end - 3600, "example.com").hours.size(), ipc::kMaxSummaryRows);
    EXPECT_EQ(summary(t, end, "example.org").hours.size(), 0U);

    // Within the row limit, names of the longest kind can still overflow a frame: refused too.
    const std::string label(63, 'a');
    const std::string long_domain = label + "." + label + "." + label + "." + std::string(61, 'b');
    ASSERT_EQ(long_domain.size(), 253U);
    tallies.clear();
    for (std::int64_t i = 0; i < 4000; ++i) {
        tallies.emplace_back(
            jit::SigningTally{long_domain, std::string(63, 's'), t + i * 3600, 1, 0});
    }
    ASSERT_TRUE(h.engine.store().commit(tallies, none));
    EXPECT_NE(refused(t, t + 4000 * 3600, long_domain).find("one reply"), std::string::npos);
    EXPECT_EQ(summary(t, t + 1000 * 3600, long_domain).hours.size(), 1000U);
}

}  // namespace
}  // namespace dkim::test

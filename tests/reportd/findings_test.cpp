// The findings, rule by rule, from made-up rows: replay, signing outside any grant, rotation,
// unknown sources, enforcement readiness and TLS failures. Each rule is shown to fire and to
// stay quiet at its edge.

#include "findings.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace dkim::reportd {
namespace {

constexpr std::int64_t kDayN = 19700;  // the day the reports speak of
constexpr std::int64_t kHour = 3600;

FindingInput base() {
    FindingInput in;
    in.from_day = kDayN - 13;
    in.to_day = kDayN;
    in.signing_available = true;
    in.signing.signature_lifetime = 2 * 86400;
    in.active_keys = {{"example.com", "s1"}};
    return in;
}

void sign(FindingInput& in, std::int64_t hour, std::int64_t n, const std::string& selector = "s1") {
    in.signing.hours.push_back({"example.com", selector, hour, n, 0});
}

void grant(FindingInput& in, std::int64_t start, std::int64_t end,
           const std::string& selector = "s1") {
    in.signing.grants.push_back({1, "example.com", selector, start, end});
}

std::vector<Finding> of_kind(const std::vector<Finding>& all, const std::string& kind) {
    std::vector<Finding> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out),
                 [&](const Finding& f) { return f.kind == kind; });
    return out;
}

TEST(FindingsTest, ReplayWhenReportersSawMoreThanWasSigned) {
    FindingInput in = base();
    const std::int64_t day_start = kDayN * kDay;
    grant(in, day_start - kDay, day_start + kDay);
    sign(in, day_start + 10 * kHour, 40);
    sign(in, day_start - 30 * kHour, 10);  // inside the lifetime before the day: counts
    sign(in, day_start - 60 * kHour, 99);  // before it: does not
    in.reported = {{"example.com", "s1", kDayN, 500, 0, 500, 0}};  // all from authenticated
    in.top_sources = [](const std::string&, const std::string&, std::int64_t) {
        return std::vector<std::pair<std::string, std::uint64_t>>{{"203.0.113.9", 450}};
    };
    in.reporters = [](const std::string&, const std::string&, std::int64_t) {
        return std::vector<std::string>{"google.com"};
    };
    const auto found = of_kind(find(in, FindingOptions{}), "replay_suspected");
    ASSERT_EQ(found.size(), 1U);
    EXPECT_EQ(found[0].severity, "critical");
    EXPECT_TRUE(found[0].authenticated);
    EXPECT_EQ(found[0].evidence.at("authenticated_reporters").as_array().at(0).as_string(),
              "google.com");
    EXPECT_EQ(found[0].selector, "s1");
    EXPECT_EQ(found[0].evidence.at("signed").as_int64(), 50);
    EXPECT_EQ(found[0].evidence.at("reported_pass").as_uint64(), 500U);
    EXPECT_DOUBLE_EQ(found[0].evidence.at("ratio").as_double(), 10.0);
    EXPECT_EQ(found[0].evidence.at("sources").as_array().size(), 1U);
    EXPECT_NE(found[0].summary.find("10.0 times"), std::string::npos) << found[0].summary;

    // As many passes as signatures: quiet. So is a ratio option above what was seen.
    in.reported = {{"example.com", "s1", kDayN, 50, 0}};
    EXPECT_TRUE(of_kind(find(in, FindingOptions{}), "replay_suspected").empty());
    in.reported = {{"example.com", "s1", kDayN, 500, 0}};
    FindingOptions lenient;
    lenient.replay_ratio = 20;
    EXPECT_TRUE(of_kind(find(in, lenient), "replay_suspected").empty());
}

TEST(FindingsTest, NoReplayCallBelowTheMinimumOrBeforeCountingBegan) {
    FindingInput in = base();
    const std::int64_t day_start = kDayN * kDay;
    grant(in, day_start, day_start + kDay);
    sign(in, day_start, 1);
    in.reported = {{"example.com", "s1", kDayN, 9, 0}};
    EXPECT_TRUE(of_kind(find(in, FindingOptions{}), "replay_suspected").empty());
    in.reported = {{"example.com", "s1", kDayN, 900, 0}};
    in.signing.counted_since = day_start;  // the window starts before counting did
    EXPECT_TRUE(of_kind(find(in, FindingOptions{}), "replay_suspected").empty());
}

TEST(FindingsTest, SignedOutsideAnyGrant) {
    FindingInput in = base();
    in.reported = {{"example.com", "s1", kDayN, 3, 0, 1, 0}};
    auto found = of_kind(find(in, FindingOptions{}), "signed_outside_grant");
    ASSERT_EQ(found.size(), 1U);
    EXPECT_EQ(found[0].severity, "critical");
    EXPECT_EQ(found[0].evidence.at("signed").as_int64(), 0);
    // A grant that overlapped the window: not outside a grant (but a replay if over the
    // minimum; here 3 passes are under it).
    grant(in, kDayN * kDay - 3600, kDayN * kDay + 3600);
    EXPECT_TRUE(of_kind(find(in, FindingOptions{}), "signed_outside_grant").empty());
    // Another signer's selector is none of our business.
    FindingInput other = base();
    other.reported = {{"other.example", "s1", kDayN, 300, 0}};
    EXPECT_TRUE(find(other, FindingOptions{}).empty());
}

// Anyone can mail a report address: evidence that only unauthenticated reports give (no report
// mail carried a verified DKIM signature of its From domain) is a warning that says so, and is
// not `authenticated` (so no webhook); the same evidence from an authenticated reporter is
// critical. A replay needs the authenticated passes alone over the limit.
TEST(FindingsTest, OnlyAuthenticatedReportersRaiseCriticalFindings) {
    FindingInput in = base();
    in.reported = {{"example.com", "s1", kDayN, 300, 0, 0, 0}};
    auto outside = of_kind(find(in, FindingOptions{}), "signed_outside_grant");
    ASSERT_EQ(outside.size(), 1U);
    EXPECT_EQ(outside[0].severity, "warning");
    EXPECT_FALSE(outside[0].authenticated);
    EXPECT_NE(outside[0].summary.find("may be forged"), std::string::npos) << outside[0].summary;
    EXPECT_FALSE(to_json(outside[0]).at("authenticated").as_bool());

    const std::int64_t day_start = kDayN * kDay;
    grant(in, day_start - kDay, day_start + kDay);
    sign(in, day_start + kHour, 50);
    // 500 passes against 50 signatures, but the authenticated reporters saw 40 of them.
    in.reported = {{"example.com", "s1", kDayN, 500, 0, 40, 0}};
    auto replay = of_kind(find(in, FindingOptions{}), "replay_suspected");
    ASSERT_EQ(replay.size(), 1U);
    EXPECT_EQ(replay[0].severity, "warning");
    EXPECT_FALSE(replay[0].authenticated);
    EXPECT_EQ(replay[0].evidence.at("authenticated_pass").to_number<std::int64_t>(), 40);
    // The authenticated reporters alone saw 51: critical.
    in.reported = {{"example.com", "s1", kDayN, 500, 0, 51, 0}};
    replay = of_kind(find(in, FindingOptions{}), "replay_suspected");
    ASSERT_EQ(replay.size(), 1U);
    EXPECT_EQ(replay[0].severity, "critical");
    EXPECT_TRUE(replay[0].authenticated);

    // Rotation: a forged report of failures for the new selector is not authenticated.
    FindingInput rotation = base();
    rotation.reported = {{"example.com", "s1", kDayN, 0, 12, 0, 0}};
    auto failing = of_kind(find(rotation, FindingOptions{}), "rotation_new_failing");
    ASSERT_EQ(failing.size(), 1U);
    EXPECT_FALSE(failing[0].authenticated);
    rotation.reported = {{"example.com", "s1", kDayN, 0, 12, 0, 12}};
    failing = of_kind(find(rotation, FindingOptions{}), "rotation_new_failing");
    ASSERT_EQ(failing.size(), 1U);
    EXPECT_TRUE(failing[0].authenticated);
    EXPECT_EQ(failing[0].severity, "warning");
}

TEST(FindingsTest, WithoutTheSigningRecordNoJoinFindingIsMade) {
    FindingInput in = base();
    in.signing_available = false;
    in.reported = {{"example.com", "s1", kDayN, 300, 0}};
    EXPECT_TRUE(find(in, FindingOptions{}).empty());
}

TEST(FindingsTest, RotationHealth) {
    FindingInput in = base();
    const std::int64_t day_start = kDayN * kDay;
    // s0 signed last ten days ago and is no longer active; reporters still see it.
    sign(in, day_start - 10 * kDay, 5, "s0");
    grant(in, day_start - 11 * kDay, day_start - 9 * kDay, "s0");
    in.reported = {{"example.com", "s0", kDayN, 4, 0}, {"example.com", "s1", kDayN, 0, 12}};
    const auto all = find(in, FindingOptions{});
    const auto retired = of_kind(all, "rotation_retired_seen");
    ASSERT_EQ(retired.size(), 1U);
    EXPECT_EQ(retired[0].selector, "s0");
    const auto failing = of_kind(all, "rotation_new_failing");
    ASSERT_EQ(failing.size(), 1U);
    EXPECT_EQ(failing[0].selector, "s1");
    EXPECT_NE(failing[0].summary.find("published"), std::string::npos);
}

DomainEvidence domain(std::vector<SourceTotals> sources, std::string p,
                      std::optional<unsigned> pct = std::nullopt) {
    DomainEvidence d;
    d.domain = "example.com";
    d.sources = std::move(sources);
    d.published = std::make_pair(std::move(p), pct);
    return d;
}

TEST(FindingsTest, UnknownSourcesAreThoseNeitherOursNorPassingSpf) {
    FindingInput in = base();
    in.outbound = {"192.0.2.25", "2001:db8:25::/48"};
    in.domains.push_back(domain({{"192.0.2.25", 900, 900, 900, 900, 900},
                                 {"2001:db8:25::7", 50, 50, 0, 0, 50},
                                 {"198.51.100.3", 40, 0, 40, 40, 40},  // SPF-authorised
                                 {"203.0.113.66", 30, 0, 0, 0, 0},
                                 {"203.0.113.77", 10, 10, 0, 0, 10}},  // a forwarder, DKIM ok
                                "none"));
    const auto found = of_kind(find(in, FindingOptions{}), "unknown_source");
    ASSERT_EQ(found.size(), 1U);
    EXPECT_EQ(found[0].severity, "warning");
    const auto& sources = found[0].evidence.at("sources").as_array();
    ASSERT_EQ(sources.size(), 2U);
    EXPECT_EQ(sources[0].as_object().at("source_ip").as_string(), "203.0.113.66");
    EXPECT_NE(found[0].summary.find("30 of them failed DMARC"), std::string::npos)
        << found[0].summary;
}

TEST(FindingsTest, EnforcementReadinessClimbsTheRamp) {
    const auto next = [](std::vector<SourceTotals> s, const std::string& p,
                         std::optional<unsigned> pct) {
        FindingInput in = base();
        in.domains.push_back(domain(std::move(s), p, pct));
        const auto f = of_kind(find(in, FindingOptions{}), "enforcement_readiness");
        return f.empty() ? std::string("(none)")
                         : std::string(f[0].evidence.at("next").as_string());
    };
    const SourceTotals aligned{"198.51.100.1", 1000, 990, 990, 1000, 990};  // 99 %
    const SourceTotals mostly{"198.51.100.1", 1000, 960, 960, 1000, 960};   // 96 %
    const SourceTotals poor{"198.51.100.1", 1000, 800, 800, 1000, 800};     // 80 %
    const SourceTotals few{"198.51.100.1", 50, 50, 50, 50, 50};
    EXPECT_EQ(next({aligned}, "none", std::nullopt), "quarantine; pct=25");
    EXPECT_EQ(next({poor}, "none", std::nullopt), "none");
    EXPECT_EQ(next({few}, "none", std::nullopt), "none");
    EXPECT_EQ(next({mostly}, "quarantine", 25U), "quarantine; pct=100");
    EXPECT_EQ(next({mostly}, "quarantine", 100U), "quarantine");
    EXPECT_EQ(next({aligned}, "quarantine", std::nullopt), "reject");
    EXPECT_EQ(next({aligned}, "reject", std::nullopt), "reject");
}

TEST(FindingsTest, TlsFailuresByDomainAndType) {
    FindingInput in = base();
    in.tls_failures = {{"example.com", "validation-failure", "mx1.example.com", kDayN, 2},
                       {"example.com", "validation-failure", "mx2.example.com", kDayN, 1},
                       {"example.com", "starttls-not-supported", "mx1.example.com", kDayN, 4}};
    const auto found = of_kind(find(in, FindingOptions{}), "tls_failures");
    ASSERT_EQ(found.size(), 2U);
    const auto& validation = found[1].evidence.at("result_type").as_string() == "validation-failure"
                                 ? found[1]
                                 : found[0];
    EXPECT_EQ(validation.evidence.at("sessions").as_uint64(), 3U);
    EXPECT_EQ(validation.evidence.at("mx_hosts").as_array().size(), 2U);
}

}  // namespace
}  // namespace dkim::reportd

// Renewal before mail waits: a grant nearing its end (policy renew_before) files a request with
// its scope that renews it, once; approved, its grant starts exactly as the old one ends, so
// signing never pauses. All with a fake clock (times are parameters), no sleeps.

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <algorithm>
#include <iterator>

#include "authority_fixture.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/policy.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;
using jit::GrantState;
using jit::Operation;
using jit::RequestState;

class RenewalTest : public AuthorityTest {
  protected:
    void SetUp() override {
        engine.authority().on_event([this](const jit::Event& e) { events.push_back(e); });
    }
    void restart() {
        engine.restart();
        engine.authority().on_event([this](const jit::Event& e) { events.push_back(e); });
    }
    void set_renew_before(const std::string& text) {
        engine.policy().operations[Operation::sign].renew_before =
            jit::parse_renew_before(text).value();
        restart();
    }
    // The renewal requests of `grant`.
    std::vector<jit::Request> renewals_of(std::int64_t grant) {
        std::vector<jit::Request> out;
        for (const auto& r : engine.authority().requests()) {
            if (r.renews == grant) {
                out.push_back(r);
            }
        }
        return out;
    }
    std::vector<jit::Event> of_type(const std::string& type) const {
        std::vector<jit::Event> out;
        std::copy_if(events.begin(), events.end(), std::back_inserter(out),
                     [&](const jit::Event& e) { return e.type == type; });
        return out;
    }
    std::vector<jit::AuditRecord> records(const std::string& action) {
        auto all = engine.store().audit_records(1, 100'000);
        EXPECT_TRUE(all);
        if (!all) {
            return {};
        }
        const auto report = jit::verify_chain(*all, {});
        EXPECT_TRUE(report.ok) << report.problem;
        std::vector<jit::AuditRecord> out;
        std::copy_if(all->begin(), all->end(), std::back_inserter(out),
                     [&](const jit::AuditRecord& r) { return r.action == action; });
        return out;
    }
    jit::Grant grant(std::int64_t id) {
        for (const auto& g : engine.authority().grants()) {
            if (g.id == id) {
                return g;
            }
        }
        ADD_FAILURE() << "no grant " << id;
        return {};
    }
    // Files the renewal of a 1h grant made at t0 (default policy: at 48m) and returns it.
    std::int64_t filed_renewal(std::int64_t old, TimePoint at = {}) {
        engine.authority().sweep(at == TimePoint{} ? t0 + 48min : at);
        const auto filed = renewals_of(old);
        EXPECT_EQ(filed.size(), 1U);
        return filed.empty() ? 0 : filed[0].id;
    }
    std::vector<jit::Event> events;
};

// The default sign policy ("20%"): a 1h grant files its renewal 12 minutes before its end, once,
// with its scope, duration and budget, linked to it, on the audit log and as an event.
TEST_F(RenewalTest, AGrantFilesItsRenewalOnceAShareOfItsDurationBeforeItsEnd) {
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h, 500));
    EXPECT_EQ(a.next_deadline(t0), t0 + 48min);
    EXPECT_TRUE(a.sweep(t0 + 48min - 1ms).empty());
    EXPECT_TRUE(renewals_of(old).empty());

    const auto swept = a.sweep(t0 + 48min);
    ASSERT_EQ(swept.size(), 1U);
    EXPECT_EQ(swept[0].type, "request.renewal");
    EXPECT_EQ(swept[0].grant_id, old);
    EXPECT_EQ(swept[0].actor, "signerd");
    const auto filed = renewals_of(old);
    ASSERT_EQ(filed.size(), 1U);
    const jit::Request& r = filed[0];
    EXPECT_EQ(swept[0].request_id, r.id);
    EXPECT_EQ(r.state_at(t0 + 48min), RequestState::pending);
    EXPECT_EQ(r.requester, "alice");
    EXPECT_EQ(r.scope, (jit::Scope{Operation::sign, "example.com", "*", "*"}));
    EXPECT_EQ(r.duration, 1h);
    EXPECT_EQ(r.budget, 500U);
    EXPECT_EQ(r.reason,
              "renewal of grant " + std::to_string(old) + " (CHG-1234 quarterly newsletter)");
    // A late approval still restores signing: pending until the old expiry plus pending_expiry.
    EXPECT_EQ(r.pending_until, t0 + 1h + 24h);
    EXPECT_FALSE(r.filed_by_signer);
    ASSERT_EQ(of_type("request.renewal").size(), 1U);

    const auto recorded = records("elevation.renewal");
    ASSERT_EQ(recorded.size(), 1U);
    EXPECT_EQ(recorded[0].actor, "signerd");
    EXPECT_EQ(recorded[0].request_id, r.id);
    EXPECT_EQ(recorded[0].grant_id, old);
    EXPECT_NE(recorded[0].detail.find("renews grant " + std::to_string(old)), std::string::npos)
        << recorded[0].detail;

    // Once: later sweeps (and a restart) file no other.
    EXPECT_EQ(a.next_deadline(t0 + 48min), t0 + 1h);
    EXPECT_TRUE(a.sweep(t0 + 50min).empty());
    restart();
    EXPECT_TRUE(engine.authority().sweep(t0 + 55min).empty());
    EXPECT_EQ(renewals_of(old).size(), 1U);
}

// A fixed lead time ("10m") files it that long before the end.
TEST_F(RenewalTest, ALeadTimeFilesItThatLongBeforeTheEnd) {
    set_renew_before("10m");
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "s1", 1h));
    EXPECT_EQ(a.next_deadline(t0), t0 + 50min);
    EXPECT_TRUE(a.sweep(t0 + 50min - 1ms).empty());
    EXPECT_TRUE(renewals_of(old).empty());
    ASSERT_EQ(a.sweep(t0 + 50min).size(), 1U);
    EXPECT_EQ(renewals_of(old).size(), 1U);
}

// "off" files nothing, nor does a break-glass grant, and neither wakes signerd before the end.
TEST_F(RenewalTest, NothingIsRenewedWhenPolicySaysOffOrForBreakGlass) {
    set_renew_before("off");
    auto& a = engine.authority();
    const auto off = granted(sign_request("example.com", "s1", 1h));
    EXPECT_EQ(a.next_deadline(t0), t0 + 1h);
    EXPECT_TRUE(a.sweep(t0 + 59min).empty());
    EXPECT_TRUE(renewals_of(off).empty());

    set_renew_before("20%");
    auto emergency = sign_request("example.net", "*", 30min);
    emergency.break_glass = true;
    auto bg = engine.authority().request(root, emergency, t0);
    ASSERT_TRUE(bg && bg->grant) << bg.error().message;
    EXPECT_TRUE(engine.authority().sweep(t0 + 29min).empty());
    EXPECT_TRUE(renewals_of(bg->grant->id).empty());
    // The other operations renew nothing by default.
    EXPECT_TRUE(engine.policy().for_operation(Operation::admin).renew_before.off());
    EXPECT_TRUE(engine.policy().for_operation(Operation::key_rotate).renew_before.off());
}

// The renewal approved before the old grant ends is scheduled: it authorises nothing until the
// old grant's expiry, then takes over at that instant, with uses and budget of its own.
TEST_F(RenewalTest, AnApprovedRenewalStartsExactlyWhenTheOldGrantEnds) {
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h, 100));
    const auto renewal = filed_renewal(old);
    const TimePoint end = t0 + 1h;

    auto approved = a.approve(bob, renewal, t0 + 50min);
    ASSERT_TRUE(approved && approved->grant) << approved.error().message;
    const jit::Grant next = *approved->grant;
    EXPECT_EQ(next.starts, end);
    EXPECT_EQ(next.expires, end + 1h);
    EXPECT_EQ(next.budget, 100U);
    EXPECT_EQ(next.state_at(t0 + 50min), GrantState::scheduled);
    EXPECT_EQ(a.next_deadline(t0 + 50min), end);  // the old expiry and the new start
    EXPECT_EQ(a.active_count(t0 + 50min), 1U);
    const auto approvals = records("elevation.approve");
    ASSERT_FALSE(approvals.empty());
    EXPECT_NE(approvals.back().detail.find("scheduled from"), std::string::npos)
        << approvals.back().detail;

    // Sweeps before the start record no end of the scheduled grant.
    EXPECT_TRUE(a.sweep(t0 + 55min).empty());
    EXPECT_FALSE(grant(next.id).end_recorded);

    auto before = a.authorize_sign("relay", "example.com", "s1", end - 1ms);
    ASSERT_TRUE(before);
    EXPECT_EQ(before->grant_id, old);
    auto at = a.authorize_sign("relay", "example.com", "s1", end);
    ASSERT_TRUE(at);
    EXPECT_EQ(at->grant_id, next.id);
    EXPECT_EQ(at->use, 1U);  // its own uses, not the old grant's
    auto after = a.authorize_sign("relay", "example.com", "s1", end + 1ms);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->grant_id, next.id);
    EXPECT_EQ(after->use, 2U);
    for (const TimePoint t : {end - 1ms, end, end + 1ms}) {
        EXPECT_TRUE(a.any_active(t)) << "no active grant at end + " << (t - end).count() << "ms";
    }
    EXPECT_EQ(grant(old).uses, 1U);

    // The old grant's end is recorded; the new one goes on and renews itself in turn.
    const auto swept = a.sweep(end);
    ASSERT_EQ(swept.size(), 1U);
    EXPECT_EQ(swept[0].type, "grant.expired");
    EXPECT_EQ(swept[0].grant_id, old);
    EXPECT_EQ(a.next_deadline(end), end + 48min);
    EXPECT_EQ(a.sweep(end + 48min).size(), 1U);
    EXPECT_EQ(renewals_of(next.id).size(), 1U);
}

// Approved after the old grant ended (mail waited meanwhile, and the relay's locked signatures
// pointed at the renewal), it starts at once.
TEST_F(RenewalTest, ARenewalApprovedAfterTheOldGrantEndedStartsNow) {
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h));
    const auto renewal = filed_renewal(old);
    const TimePoint late = t0 + 1h + 5min;
    auto locked = a.authorize_sign("relay", "example.com", "s1", late);
    ASSERT_FALSE(locked);
    EXPECT_EQ(locked.error().request_id, renewal);  // reused: no second request

    auto approved = a.approve(bob, renewal, late);
    ASSERT_TRUE(approved && approved->grant) << approved.error().message;
    EXPECT_EQ(approved->grant->starts, late);
    EXPECT_EQ(approved->grant->expires, late + 1h);
    EXPECT_EQ(approved->grant->state_at(late), GrantState::active);
    EXPECT_TRUE(can_sign(late));
}

// Revoking the old grant closes its pending renewal, with a record, in the revoke's commit.
TEST_F(RenewalTest, RevokingTheOldGrantClosesItsPendingRenewal) {
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h));
    const auto renewal = filed_renewal(old);
    const auto commits = engine.store().commits.load();
    ASSERT_TRUE(a.revoke(bob, old, "compromised relay", t0 + 50min));
    EXPECT_EQ(engine.store().commits.load(), commits + 1);
    const auto closed = a.find_request(renewal);
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->state, RequestState::cancelled);
    EXPECT_EQ(closed->decided_by, "signerd");
    EXPECT_EQ(closed->decision_reason, "the grant it renews was revoked");
    const auto cancels = records("elevation.cancel");
    ASSERT_EQ(cancels.size(), 1U);
    EXPECT_EQ(cancels[0].request_id, renewal);
    EXPECT_EQ(cancels[0].actor, "signerd");
    EXPECT_FALSE(a.approve(bob, renewal, t0 + 51min));
    restart();
    EXPECT_EQ(engine.authority().find_request(renewal)->state, RequestState::cancelled);
}

// ... and revokes its scheduled renewal grant, so nothing signs after the revoke.
TEST_F(RenewalTest, RevokingTheOldGrantRevokesItsScheduledRenewal) {
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h));
    const auto renewal = filed_renewal(old);
    auto approved = a.approve(bob, renewal, t0 + 50min);
    ASSERT_TRUE(approved && approved->grant);
    const auto next = approved->grant->id;
    events.clear();
    ASSERT_TRUE(a.revoke(bob, old, "compromised relay", t0 + 52min));
    EXPECT_EQ(grant(next).state_at(t0 + 2h), GrantState::revoked);
    EXPECT_EQ(grant(next).revoked_by, "signerd");
    EXPECT_FALSE(can_sign(t0 + 1h));
    EXPECT_FALSE(a.any_active(t0 + 1h));
    const auto revoked = of_type("grant.revoked");
    ASSERT_EQ(revoked.size(), 2U);
    EXPECT_EQ(revoked[1].grant_id, next);
    const auto revokes = records("grant.revoke");
    ASSERT_EQ(revokes.size(), 2U);
    EXPECT_EQ(revokes[1].grant_id, next);
    EXPECT_EQ(revokes[1].actor, "signerd");
    // Never in force: the signing summary's intervals leave it out.
    const auto intervals = a.sign_grant_intervals("", t0, t0 + 3h);
    ASSERT_EQ(intervals.size(), 1U);
    EXPECT_EQ(intervals[0].grant_id, old);
    restart();
    EXPECT_EQ(grant(next).state_at(t0 + 1h), GrantState::revoked);
}

// A scheduled renewal grant can be revoked on its own; the old grant goes on until its end.
TEST_F(RenewalTest, AScheduledGrantCanBeRevokedBeforeItStarts) {
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h));
    auto approved = a.approve(bob, filed_renewal(old), t0 + 50min);
    ASSERT_TRUE(approved && approved->grant);
    const auto next = approved->grant->id;
    ASSERT_TRUE(a.revoke(carol, next, "not needed after all", t0 + 51min));
    EXPECT_TRUE(can_sign(t0 + 59min));
    EXPECT_EQ(grant(old).state_at(t0 + 59min), GrantState::active);
    EXPECT_FALSE(a.any_active(t0 + 1h));
}

// The link survives a restart: the pending renewal, its approval into a scheduled grant after
// another restart, and that grant's start.
TEST_F(RenewalTest, ARenewalSurvivesARestartWithItsLink) {
    const auto old = granted(sign_request("example.com", "*", 1h, 7));
    const auto renewal = filed_renewal(old);
    restart();
    const auto reloaded = engine.authority().find_request(renewal);
    ASSERT_TRUE(reloaded);
    EXPECT_EQ(reloaded->renews, old);
    EXPECT_EQ(reloaded->state_at(t0 + 49min), RequestState::pending);
    EXPECT_EQ(reloaded->budget, 7U);
    auto approved = engine.authority().approve(bob, renewal, t0 + 49min);
    ASSERT_TRUE(approved && approved->grant);
    const auto next = approved->grant->id;
    restart();
    const auto g = grant(next);
    EXPECT_EQ(g.starts, t0 + 1h);
    EXPECT_EQ(g.state_at(t0 + 59min), GrantState::scheduled);
    EXPECT_EQ(engine.authority().next_deadline(t0 + 59min), t0 + 1h);
    EXPECT_TRUE(engine.authority().sweep(t0 + 59min).empty());
    auto at = engine.authority().authorize_sign("relay", "example.com", "s1", t0 + 1h);
    ASSERT_TRUE(at);
    EXPECT_EQ(at->grant_id, next);
}

// The grant it renews never supersedes its renewal, even when (a lead as long as the grant)
// it covers the renewal's whole duration as it is filed.
TEST_F(RenewalTest, TheRenewedGrantNeverSupersedesItsRenewal) {
    set_renew_before("2h");
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h));
    EXPECT_EQ(a.sweep(t0).size(), 1U);
    const auto filed = renewals_of(old);
    ASSERT_EQ(filed.size(), 1U);
    EXPECT_TRUE(a.sweep(t0 + 1s).empty());
    EXPECT_EQ(a.find_request(filed[0].id)->state_at(t0 + 1s), RequestState::pending);
}

// Another grant that covers the renewal and outlives the old grant takes its place: a pending
// renewal is closed as superseded when it becomes active, and one not filed yet is not filed
// (that grant renews itself as it nears its end).
TEST_F(RenewalTest, AGrantThatOutlivesTheOldOneTakesItsRenewalsPlace) {
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h));
    const auto renewal = filed_renewal(old);
    // dave asks for the whole domain for 2h: the old grant (12 minutes left) does not cover it.
    const auto wider_request = pending(sign_request("example.com", "*", 2h), dave);
    auto wider = a.approve(bob, wider_request, t0 + 50min);
    ASSERT_TRUE(wider && wider->grant) << wider.error().message;
    ASSERT_EQ(wider->superseded.size(), 1U);
    EXPECT_EQ(wider->superseded[0].id, renewal);
    EXPECT_EQ(a.find_request(renewal)->superseded_by, wider->grant->id);

    // Not filed at all: a 2h grant from t0 + 30min outlives a 1h grant from t0.
    set_renew_before("20%");
    auto& b = engine.authority();
    const auto second = granted(sign_request("example.net", "*", 1h));
    const auto outliving = pending(sign_request("example.net", "*", 2h), dave);
    ASSERT_TRUE(b.approve(bob, outliving, t0 + 30min));
    EXPECT_EQ(of_type("request.renewal").size(), 1U);  // the first test's only
    // Due at 48min.
    b.sweep(t0 + 52min);
    EXPECT_TRUE(renewals_of(second).empty());
    EXPECT_EQ(of_type("request.renewal").size(), 1U);
}

// A grant that covers the renewal but ends no later than the renewed one does not take its
// place: when the renewed grant ends, it ends too. (With a lead as long as the grant, the renewal
// is filed as the grant starts and another grant can cover its duration and end with it.)
TEST_F(RenewalTest, AGrantThatEndsWithTheOldOneLeavesTheRenewalPending) {
    set_renew_before("2h");
    engine.policy().break_glass_max = 1h;
    restart();
    auto& a = engine.authority();
    const auto old = granted(sign_request("example.com", "*", 1h));
    ASSERT_EQ(a.sweep(t0).size(), 1U);
    const auto renewal = renewals_of(old).at(0).id;
    auto emergency = sign_request("example.com", "*", 1h);
    emergency.break_glass = true;
    auto same_end = a.request(root, emergency, t0);
    ASSERT_TRUE(same_end && same_end->grant);
    EXPECT_EQ(same_end->grant->expires, grant(old).expires);
    EXPECT_TRUE(same_end->superseded.empty());
    EXPECT_TRUE(a.sweep(t0 + 1s).empty());
    EXPECT_EQ(a.find_request(renewal)->state_at(t0 + 1s), RequestState::pending);
}

TEST(RenewBeforeTest, PolicyParsesSharesLeadTimesAndOffAndNamesErrors) {
    auto policy = jit::parse_policy(toml::parse("[sign]\nrenew_before = \"10m\"\n"
                                                "[admin]\nrenew_before = \"50%\"\n"
                                                "[key.rotate]\nrenew_before = \"off\"\n"),
                                    "p.toml");
    ASSERT_TRUE(policy) << policy.error();
    EXPECT_EQ(policy->for_operation(Operation::sign).renew_before.lead_for(1h), 10min);
    EXPECT_EQ(policy->for_operation(Operation::sign).renew_before.to_string(), "10m");
    EXPECT_EQ(policy->for_operation(Operation::admin).renew_before.lead_for(1h), 30min);
    EXPECT_EQ(policy->for_operation(Operation::admin).renew_before.to_string(), "50%");
    EXPECT_FALSE(policy->for_operation(Operation::key_rotate).renew_before.lead_for(1h));
    // Defaults: sign 20%, the others off.
    const auto defaults = jit::Policy::defaults();
    EXPECT_EQ(defaults.for_operation(Operation::sign).renew_before.to_string(), "20%");
    EXPECT_EQ(defaults.for_operation(Operation::sign).renew_before.lead_for(8h), 96min);
    EXPECT_EQ(defaults.for_operation(Operation::key_generate).renew_before.to_string(), "off");
    // A lead longer than the grant files the renewal as the grant starts.
    EXPECT_EQ(jit::parse_renew_before("2h")->lead_for(1h), 1h);

    for (const char* bad : {"0%", "100%", "150%", "%", "-5%", "5", "soon", "20 %", "ON", "0s"}) {
        auto parsed = jit::parse_policy(
            toml::parse(std::string("[sign]\nrenew_before = \"") + bad + "\"\n"), "p.toml");
        ASSERT_FALSE(parsed) << bad;
        EXPECT_NE(parsed.error().find("p.toml:2:"), std::string::npos) << parsed.error();
        EXPECT_NE(parsed.error().find("key 'policy.sign.renew_before'"), std::string::npos)
            << parsed.error();
        EXPECT_NE(parsed.error().find("\"off\""), std::string::npos) << parsed.error();
    }
    auto integer = jit::parse_policy(toml::parse("[sign]\nrenew_before = 20\n"), "p.toml");
    ASSERT_FALSE(integer);
    EXPECT_NE(integer.error().find("policy.sign.renew_before"), std::string::npos)
        << integer.error();
}

}  // namespace
}  // namespace dkim::test

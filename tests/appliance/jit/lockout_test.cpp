// The password guesser against the Directory: five failures within any 15 minutes (a sliding
// window, with its edges) lock a user out for the whole lockout period whatever is tried during
// it, a restart keeps the lockout and the failure times (also from a schema-2 store), a wrong
// TOTP code and a wrong password get the same answer, unknown names take no memory, and a
// confirmed TOTP is not replaced without the caller's say-so. Then a property test: random
// schedules of right and wrong passwords and TOTP codes, clock jumps and restarts, checked after
// every step against a small model of the rule.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

#include "dkim/jit/credentials.hpp"
#include "jit_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;
using jit::Directory;

constexpr const char* kPassword = "correct horse battery";
constexpr const char* kWrong = "guess guess guess";

class LockoutTest : public ::testing::Test {
  protected:
    LockoutTest() : engine(jit::Policy::defaults(), true) {}

    // bob, an approver with a password and a confirmed TOTP; returns the TOTP secret.
    std::string add_bob() {
        auto& d = engine.directory();
        EXPECT_TRUE(d.add_user(local, "bob", static_cast<jit::RoleSet>(jit::Role::approver),
                               kPassword, t0));
        auto enrolment = d.enrol_totp(local, "bob", t0);
        EXPECT_TRUE(enrolment);
        std::string secret = base32_decode(enrolment->secret_base32);
        EXPECT_TRUE(d.confirm_totp(bob, "bob", totp_at(secret, t0), t0));
        return secret;
    }

    JitEngine engine;
    TimePoint t0 = test_epoch();
    jit::Actor local{
        jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
    jit::Actor bob = user("bob", {jit::Role::approver});
};

TEST_F(LockoutTest, ALockoutHoldsItsWholePeriodWhateverIsTried) {
    add_bob();
    auto& d = engine.directory();
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(d.authenticate_password("bob", kWrong, t0 + 1min + std::chrono::seconds(i)));
    }
    const TimePoint locked_at = t0 + 1min + 4s;
    EXPECT_TRUE(d.locked_out_at("bob", locked_at));
    // The finding: the right password refused, then a wrong one, then the right one accepted at
    // once. Now every attempt inside the period is refused, and none of them moves its end.
    for (Duration after :
         {Duration(1s), Duration(2s), Duration(5min), Duration(14min), Duration(14min + 59s)}) {
        EXPECT_FALSE(d.authenticate_password("bob", kPassword, locked_at + after))
            << "right password " << after.count() << " ms into the lockout";
        EXPECT_FALSE(d.authenticate_password("bob", kWrong, locked_at + after));
        EXPECT_FALSE(d.check_totp(bob, "123456", locked_at + after));
    }
    EXPECT_TRUE(d.authenticate_password("bob", kPassword, locked_at + Directory::kLockout))
        << "the lockout ends at its end, not later";
}

TEST_F(LockoutTest, ARightTotpCodeIsRefusedDuringTheLockout) {
    const std::string secret = add_bob();
    auto& d = engine.directory();
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(d.check_totp(bob, "000000", t0 + 1min + std::chrono::seconds(i)));
    }
    const TimePoint t = t0 + 3min;
    EXPECT_FALSE(d.check_totp(bob, totp_at(secret, t), t)) << "locked: even the right code";
    EXPECT_FALSE(d.authenticate_password("bob", kPassword, t)) << "TOTP failures lock passwords";
    const TimePoint after = t0 + 1min + 4s + Directory::kLockout;
    EXPECT_TRUE(d.check_totp(bob, totp_at(secret, after), after));
}

TEST_F(LockoutTest, ALockoutSurvivesARestart) {
    add_bob();
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(engine.directory().authenticate_password("bob", kWrong, t0 + 1min));
    }
    engine.restart();
    EXPECT_TRUE(engine.directory().locked_out_at("bob", t0 + 2min));
    EXPECT_FALSE(engine.directory().authenticate_password("bob", kPassword, t0 + 2min))
        << "a restart lifts no lockout";
    EXPECT_TRUE(engine.directory().authenticate_password("bob", kPassword, t0 + 16min + 1s));
    // Counting survives too: four failures, a restart, one more locks.
    for (int i = 0; i < 4; ++i) {
        EXPECT_FALSE(engine.directory().authenticate_password("bob", kWrong, t0 + 40min));
    }
    engine.restart();
    EXPECT_FALSE(engine.directory().locked_out_at("bob", t0 + 41min));
    EXPECT_FALSE(engine.directory().authenticate_password("bob", kWrong, t0 + 41min));
    EXPECT_TRUE(engine.directory().locked_out_at("bob", t0 + 41min));
    const auto state = engine.store().load();
    ASSERT_TRUE(state);
    ASSERT_EQ(state->login_failures.size(), 1U);
    EXPECT_EQ(state->login_failures[0].user, "bob");
    EXPECT_EQ(state->login_failures[0].locked_until, t0 + 41min + Directory::kLockout);
}

TEST_F(LockoutTest, DisablingAndEnablingDoesNotLiftALockout) {
    add_bob();
    auto& d = engine.directory();
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(d.authenticate_password("bob", kWrong, t0 + 1min));
    }
    ASSERT_TRUE(d.set_disabled(local, "bob", true, t0 + 2min));
    ASSERT_TRUE(d.set_disabled(local, "bob", false, t0 + 2min));
    EXPECT_FALSE(d.authenticate_password("bob", kPassword, t0 + 3min));
}

TEST_F(LockoutTest, AWrongTotpCodeAndAWrongPasswordGetTheSameAnswer) {
    const std::string secret = add_bob();
    auto& d = engine.directory();
    const auto reused = d.check_totp(bob, totp_at(secret, t0), t0 + 1s);
    const auto wrong_password = d.authenticate_password("bob", kWrong, t0 + 1min);
    const auto wrong_code = d.check_totp(bob, "000000", t0 + 1min);
    const auto unknown = d.authenticate_password("mallory", kWrong, t0 + 1min);
    ASSERT_FALSE(wrong_password);
    ASSERT_FALSE(wrong_code);
    ASSERT_FALSE(reused);
    ASSERT_FALSE(unknown);
    for (const jit::Refusal& r : {wrong_code.error(), reused.error(), unknown.error()}) {
        EXPECT_EQ(r.code, wrong_password.error().code);
        EXPECT_EQ(r.message, wrong_password.error().message);
    }
    for (int i = 0; i < 3; ++i) {
        EXPECT_FALSE(d.authenticate_password("bob", kWrong, t0 + 2min));
    }
    const auto locked = d.authenticate_password("bob", kPassword, t0 + 3min);
    ASSERT_FALSE(locked);
    EXPECT_EQ(locked.error().message, wrong_password.error().message)
        << "a lockout answers like a wrong password";
    // Confirming an enrolment with a wrong code answers the same way and counts.
    ASSERT_TRUE(
        d.add_user(local, "carol", static_cast<jit::RoleSet>(jit::Role::approver), kPassword, t0));
    ASSERT_TRUE(d.enrol_totp(local, "carol", t0));
    const auto bad_confirm = d.confirm_totp(user("carol", {}), "carol", "000000", t0 + 1min);
    ASSERT_FALSE(bad_confirm);
    EXPECT_EQ(bad_confirm.error().message, wrong_password.error().message);
}

TEST_F(LockoutTest, UnknownNamesTakeNoMemory) {
    add_bob();
    auto& d = engine.directory();
    std::mt19937 rng(7);
    for (int i = 0; i < 2000; ++i) {
        const std::string name = "u" + std::to_string(rng());
        EXPECT_FALSE(d.authenticate_password(name, kWrong, t0 + 1min));
    }
    EXPECT_FALSE(d.authenticate_password("bob", kWrong, t0 + 1min));
    EXPECT_EQ(d.tracked_failures(), 1U) << "only bob, an existing user, is tracked";
    EXPECT_TRUE(d.authenticate_password("bob", kPassword, t0 + 2min))
        << "a name spray does not lock bob out";
    const auto state = engine.store().load();
    ASSERT_TRUE(state);
    EXPECT_EQ(state->login_failures.size(), 1U);
}

TEST_F(LockoutTest, AConfirmedTotpIsReplacedOnlyWhenTheCallerAllowsIt) {
    const std::string secret = add_bob();
    auto& d = engine.directory();
    const auto refused = d.enrol_totp(bob, "bob", t0 + 1min);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, jit::Refusal::Code::forbidden);
    EXPECT_TRUE(d.check_totp(bob, totp_at(secret, t0 + 2min), t0 + 2min)) << "the old one holds";
    ASSERT_TRUE(d.enrol_totp(local, "bob", t0 + 3min, true)) << "the local operator's reset";
    EXPECT_FALSE(d.find("bob")->totp_confirmed);
}

TEST(LockoutStoreTest, AnOlderWriteDoesNotBringBackAnOlderState) {
    const auto dir = make_temp_dir("dkim-lockout");
    {
        auto store = jit::open_sqlite_store(dir / "signerd.db");
        ASSERT_TRUE(store);
        jit::LoginFailures newer{"bob", 7, {}, test_epoch() + 15min};
        jit::LoginFailures older{"bob", 6, {test_epoch(), test_epoch() + 1s}, {}};
        std::vector<jit::AuditRecord> none;
        ASSERT_TRUE((*store)->commit({newer}, none));
        ASSERT_TRUE((*store)->commit({older}, none));
        auto state = (*store)->load();
        ASSERT_TRUE(state);
        ASSERT_EQ(state->login_failures.size(), 1U);
        EXPECT_EQ(state->login_failures[0].version, 7);
        EXPECT_EQ(state->login_failures[0].locked_until, test_epoch() + 15min);
        EXPECT_TRUE(state->login_failures[0].recent.empty());
    }
    std::filesystem::remove_all(dir);
}

TEST(LockoutStoreTest, FailureTimesAreKeptToTheMillisecond) {
    const auto dir = make_temp_dir("dkim-lockout");
    {
        auto store = jit::open_sqlite_store(dir / "signerd.db");
        ASSERT_TRUE(store);
        const std::vector<TimePoint> times{test_epoch(), test_epoch() + 899s + 999ms,
                                           test_epoch() + 900s};
        ASSERT_TRUE((*store)->commit({jit::LoginFailures{"bob", 1, times, {}}}, {}));
        auto state = (*store)->load();
        ASSERT_TRUE(state);
        ASSERT_EQ(state->login_failures.size(), 1U);
        EXPECT_EQ(state->login_failures[0].recent, times);
    }
    std::filesystem::remove_all(dir);
}

bool exec_sql(const std::filesystem::path& db, const char* sql) {
    sqlite3* handle = nullptr;
    const bool ok = sqlite3_open(db.c_str(), &handle) == SQLITE_OK &&
                    sqlite3_exec(handle, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    sqlite3_close(handle);
    return ok;
}

TEST(LockoutStoreTest, AVersionOneStoreIsMigrated) {
    const auto dir = make_temp_dir("dkim-lockout");
    {
        auto store = jit::open_sqlite_store(dir / "signerd.db");
        ASSERT_TRUE(store);
    }
    // Back to what schema 1 had: no login_failures table, version 1.
    ASSERT_TRUE(
        exec_sql(dir / "signerd.db",
                 "DROP TABLE login_failures; UPDATE meta SET value='1' WHERE key='schema';"));
    {
        auto store = jit::open_sqlite_store(dir / "signerd.db");
        ASSERT_TRUE(store) << store.error();
        std::vector<jit::AuditRecord> none;
        EXPECT_TRUE((*store)->commit({jit::LoginFailures{"bob", 1, {test_epoch()}, {}}}, none));
        ASSERT_TRUE((*store)->load());
    }
    // A store from a newer binary is refused rather than misread.
    ASSERT_TRUE(exec_sql(dir / "signerd.db", "UPDATE meta SET value='99' WHERE key='schema';"));
    const auto newer = jit::open_sqlite_store(dir / "signerd.db");
    ASSERT_FALSE(newer);
    EXPECT_NE(newer.error().find("schema version 99"), std::string::npos) << newer.error();
    std::filesystem::remove_all(dir);
}

// A development store of schema 2 (a failure count since the first failure of a fixed window)
// opens: its rows become `count` failures at `first`, and a lockout in it holds.
TEST(LockoutStoreTest, ASchemaTwoStoreIsMigratedWithItsFailures) {
    const TimePoint t0 = test_epoch();
    JitEngine engine(jit::Policy::defaults(), true);
    const jit::Actor local{
        jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
    for (const char* name : {"bob", "carol"}) {
        ASSERT_TRUE(engine.directory().add_user(
            local, name, static_cast<jit::RoleSet>(jit::Role::approver), kPassword, t0));
    }
    // Back to schema 2 (its login_failures table, no column recent): bob has three failures
    // since t0, carol is locked until t0+15m.
    const std::string sql =
        "DROP TABLE login_failures; "
        "CREATE TABLE login_failures(user TEXT PRIMARY KEY, version INTEGER NOT NULL, "
        "count INTEGER NOT NULL, first INTEGER NOT NULL, locked_until INTEGER NOT NULL); "
        "INSERT INTO login_failures(user, version, count, first, locked_until) VALUES "
        "('bob', 3, 3, " +
        std::to_string(to_unix_ms(t0)) + ", 0), ('carol', 5, 0, 0, " +
        std::to_string(to_unix_ms(t0 + 15min)) +
        "); UPDATE meta SET value = '2' WHERE key = 'schema';";
    ASSERT_TRUE(exec_sql(engine.db(), sql.c_str()));
    engine.restart();
    const auto state = engine.store().load();
    ASSERT_TRUE(state);
    ASSERT_EQ(state->login_failures.size(), 2U);
    EXPECT_EQ(state->login_failures[0].recent, std::vector<TimePoint>(3, t0));
    EXPECT_TRUE(state->login_failures[1].recent.empty());
    EXPECT_EQ(state->login_failures[1].locked_until, t0 + 15min);
    auto& d = engine.directory();
    EXPECT_TRUE(d.locked_out_at("carol", t0 + 15min - 1ms)) << "carol's lockout holds";
    EXPECT_FALSE(d.authenticate_password("carol", kPassword, t0 + 1min));
    // bob: three at t0, two more within the window lock him.
    EXPECT_FALSE(d.authenticate_password("bob", kWrong, t0 + 10min));
    EXPECT_FALSE(d.locked_out_at("bob", t0 + 10min));
    EXPECT_FALSE(d.authenticate_password("bob", kWrong, t0 + 14min));
    EXPECT_TRUE(d.locked_out_at("bob", t0 + 14min));
}

// --- the sliding window ----------------------------------------------------------------------

class LockoutWindowTest : public LockoutTest {
  protected:
    // A wrong password for bob at each of the times; true when bob is locked after the last.
    bool fail_at(std::initializer_list<Duration> after_t0) {
        TimePoint last = t0;
        for (Duration d : after_t0) {
            last = t0 + d;
            EXPECT_FALSE(engine.directory().authenticate_password("bob", kWrong, last));
        }
        return engine.directory().locked_out_at("bob", last);
    }
};

TEST_F(LockoutWindowTest, TheRedTeamSequenceLocksAtTheSixthFailure) {
    add_bob();
    // The finding: one failure at t0, three at t0+899s, four at t0+900s, and the right password
    // at t0+900s was accepted: the window had been reset at t0+900s, 7 failures within ~1 s.
    EXPECT_FALSE(fail_at({0s, 899s, 899s, 899s, 900s})) << "the one at t0 is out of the window";
    EXPECT_TRUE(fail_at({900s})) << "five within the last second lock";
    EXPECT_FALSE(engine.directory().authenticate_password("bob", kPassword, t0 + 900s));
    EXPECT_TRUE(engine.directory().locked_out_at("bob", t0 + 900s + Directory::kLockout - 1ms));
    EXPECT_TRUE(engine.directory().authenticate_password("bob", kPassword,
                                                         t0 + 900s + Directory::kLockout));
}

TEST_F(LockoutWindowTest, FiveFailuresJustInsideTheWindowLock) {
    add_bob();
    EXPECT_TRUE(fail_at({0s, 1s, 2s, 3s, Directory::kFailureWindow - 1ms}));
}

TEST_F(LockoutWindowTest, FiveFailuresSpanningExactlyTheWindowDoNotLock) {
    add_bob();
    EXPECT_FALSE(fail_at({0s, 1s, 2s, 3s, Directory::kFailureWindow}));
    // ...but the next one slides the window: 1s, 2s, 3s, 15m and 15m+0.5s are within 15 minutes.
    EXPECT_TRUE(fail_at({Directory::kFailureWindow + 500ms}));
}

TEST_F(LockoutWindowTest, TheWindowSlidesAcrossWhatAFixedWindowWouldHaveReset) {
    add_bob();
    // Four early failures, then a fixed window would have started over at 15m; the sliding one
    // still sees 10m, 11m, 12m and locks with two more before 25m.
    EXPECT_FALSE(fail_at({0s, 10min, 11min, 12min, 15min}));
    EXPECT_FALSE(engine.directory().locked_out_at("bob", t0 + 15min));
    EXPECT_TRUE(fail_at({24min + 59s}));
}

TEST_F(LockoutWindowTest, FailuresOlderThanTheWindowAreForgotten) {
    add_bob();
    EXPECT_FALSE(fail_at({0s, 1s, 2s, 3s}));
    // 15 minutes after the fourth, all four are out: four more do not lock, a fifth does.
    EXPECT_FALSE(fail_at({18min, 18min, 18min, 18min}));
    EXPECT_TRUE(fail_at({18min + 1ms}));
}

TEST_F(LockoutWindowTest, TheWindowSurvivesARestart) {
    add_bob();
    EXPECT_FALSE(fail_at({0s, 899s, 899s}));
    engine.restart();
    EXPECT_FALSE(fail_at({900s, 900s}));
    engine.restart();
    EXPECT_TRUE(fail_at({900s})) << "the kept times are those of the last failures";
}

// --- the property test ------------------------------------------------------------------------

// The rule, restated: failures count only outside a lockout; a failure locks for kLockout from
// it when, with it, kMaxFailures counted failures fall within the last kFailureWindow (a sliding
// window: a failure is in it while it is less than kFailureWindow old); counting starts again
// after a lockout. A success needs the right secret and no lockout; a TOTP code is right only
// for a time step later than the last accepted one.
struct LockoutModel {
    std::vector<TimePoint> counted;  // every counted failure since the last lockout
    TimePoint locked_until;
    std::int64_t last_step = 0;

    bool locked(TimePoint now) const { return now < locked_until; }
    void fail(TimePoint now) {
        if (locked(now)) {
            return;
        }
        counted.push_back(now);
        const auto in_window = std::count_if(counted.begin(), counted.end(), [now](auto t) {
            return now - t < Directory::kFailureWindow;
        });
        if (static_cast<std::size_t>(in_window) >= Directory::kMaxFailures) {
            locked_until = now + Directory::kLockout;
            counted.clear();
        }
    }
};

std::int64_t step_at(TimePoint t) {
    return jit::totp_step(
        std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
}

void run_lockout_schedule(std::uint32_t seed, int steps) {
    std::mt19937 rng(seed);
    JitEngine engine(jit::Policy::defaults(), true);
    const jit::Actor local{
        jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
    const jit::Actor approver = user("bob", {jit::Role::approver});
    TimePoint now = test_epoch();
    ASSERT_TRUE(engine.directory().add_user(local, "bob", approver.roles, kPassword, now));
    auto enrolment = engine.directory().enrol_totp(local, "bob", now);
    ASSERT_TRUE(enrolment);
    const std::string secret = base32_decode(enrolment->secret_base32);
    ASSERT_TRUE(engine.directory().confirm_totp(approver, "bob", totp_at(secret, now), now));
    LockoutModel model;
    model.last_step = step_at(now);
    int locked_successes_tried = 0;
    // Forward only, some of them to just before or at the window's edge.
    const Duration jumps[] = {0s,    1ms,   1s,    10s,   31s,         2min,      5min,
                              14min, 15min, 16min, 40min, 15min - 1ms, 7min + 30s};

    for (int step = 0; step < steps; ++step) {
        const auto where = [&] {
            return "seed " + std::to_string(seed) + " step " + std::to_string(step);
        };
        const auto what = static_cast<unsigned>(rng() % 100);
        if (what < 30) {  // a password, right or wrong
            const bool right = rng() % 3 == 0;
            const bool ok = static_cast<bool>(
                engine.directory().authenticate_password("bob", right ? kPassword : kWrong, now));
            const bool expected = right && !model.locked(now);
            locked_successes_tried += right && model.locked(now) ? 1 : 0;
            ASSERT_EQ(ok, expected) << where() << (right ? " right" : " wrong") << " password";
            if (!ok) {
                model.fail(now);
            }
        } else if (what < 55) {  // a TOTP code: right for this step, stale, or wrong
            const auto kind = static_cast<unsigned>(rng() % 3);
            const std::string code = kind == 0   ? totp_at(secret, now)
                                     : kind == 1 ? totp_at(secret, now - 90s)
                                                 : "000000";
            const bool ok = static_cast<bool>(engine.directory().check_totp(approver, code, now));
            const bool expected = kind == 0 && !model.locked(now) && step_at(now) > model.last_step;
            ASSERT_EQ(ok, expected) << where() << " TOTP kind " << kind;
            if (ok) {
                model.last_step = step_at(now);
            } else {
                model.fail(now);
            }
        } else if (what < 65) {  // another name: unknown names lock nobody
            EXPECT_FALSE(engine.directory().authenticate_password(
                "x" + std::to_string(rng() % 1000), kPassword, now));
        } else if (what < 75) {
            engine.restart();
        } else {
            now += jumps[rng() % std::size(jumps)];
        }
        // The lockout is exactly the model's: from the fifth failure for kLockout, neither
        // shortened by what is tried meanwhile nor by a restart, nor longer.
        ASSERT_EQ(engine.directory().locked_out_at("bob", now), model.locked(now)) << where();
        if (model.locked(now)) {
            ASSERT_FALSE(engine.directory().locked_out_at("bob", model.locked_until)) << where();
            ASSERT_TRUE(engine.directory().locked_out_at("bob", model.locked_until - 1ms))
                << where();
        }
        ASSERT_LE(engine.directory().tracked_failures(), 1U) << where();
    }
    // The schedule did try the right password while locked (else it proved little).
    EXPECT_GT(locked_successes_tried, 0) << "seed " << seed;
}

TEST(LockoutPropertyTest, RandomAttemptsClockJumpsAndRestartsFollowTheModel) {
    std::uint32_t base = 20261126;
    if (const char* seed = std::getenv("DKIM_RANDOM_SEED")) {  // NOLINT(concurrency-mt-unsafe)
        base = static_cast<std::uint32_t>(std::stoul(seed));
    }
    for (std::uint32_t i = 0; i < 25; ++i) {
        run_lockout_schedule(base + i, 300);
        if (::testing::Test::HasFatalFailure()) {
            return;
        }
    }
}

}  // namespace
}  // namespace dkim::test

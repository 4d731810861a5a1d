// The token's login lifecycle on its own, without the Service: a ManualClock, the JIT engine on
// SQLite (whose store can be made to fail), and the fake gate (PIN "1234"). The token is logged
// in exactly while a grant is active; a failed login is on the audit log once and leaves the
// token out; a login whose record cannot be written is undone; checkpoints come at the interval
// or after the records while logged in; shutdown checkpoints and logs out.

#include "token_lifecycle.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "fake_gate.hpp"
#include "jit_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;
using signerd::TokenLifecycle;

class TokenLifecycleTest : public ::testing::Test {
  protected:
    ~TokenLifecycleTest() override {
        std::error_code ec;
        std::filesystem::remove_all(pin_dir_, ec);
    }

    // A lifecycle as signerd makes it at start, at the clock's time.
    std::unique_ptr<TokenLifecycle> make(signerd::LifecycleOptions options) {
        signerd::CustodyOptions custody;
        custody.mode = options.pin_source;
        custody.pin_path = options.pin_path;
        // Kept for the fixture's life: a test may make a second lifecycle (a restart).
        custodies_.push_back(std::make_unique<signerd::PinCustody>(
            engine.journal(), engine.authority(), engine.directory(), std::move(custody)));
        return std::make_unique<TokenLifecycle>(engine.journal(), engine.authority(), gate, metrics,
                                                *custodies_.back(), std::move(options),
                                                clock.now());
    }
    signerd::LifecycleOptions file_pin(const std::string& pin = "1234") {
        write_pin(pin);
        signerd::LifecycleOptions o;
        o.pin_source = signerd::PinSourceKind::file;
        o.pin_path = pin_file_;
        return o;
    }
    // As an editor saves it: a new file renamed over the old one.
    void write_pin(const std::string& pin) {
        const std::string next = pin_file_.string() + ".new";
        std::ofstream(next) << pin << "\n";
        ::chmod(next.c_str(), 0600);
        std::filesystem::rename(next, pin_file_);
    }

    // A pending request of alice's for example.com/<selector>.
    std::int64_t request(const std::string& selector, Duration duration) {
        auto r = engine.authority().request(alice, sign_request("example.com", selector, duration),
                                            clock.now());
        EXPECT_TRUE(r) << r.error().message;
        return r ? r->request.id : 0;
    }
    // An active grant for example.com/<selector>, approved by bob now.
    void grant(const std::string& selector, Duration duration) {
        auto d = engine.authority().approve(bob, request(selector, duration), clock.now());
        ASSERT_TRUE(d && d->grant) << (d ? "no grant" : d.error().message);
    }

    std::vector<jit::AuditRecord> log() {
        auto records = engine.store().audit_records(1, 100'000);
        EXPECT_TRUE(records) << records.error();
        return records ? *records : std::vector<jit::AuditRecord>{};
    }
    std::vector<jit::AuditRecord> records_of(const std::string& action,
                                             const std::string& outcome = "") {
        std::vector<jit::AuditRecord> out;
        for (const jit::AuditRecord& r : log()) {
            if (r.action == action && (outcome.empty() || r.outcome == outcome)) {
                out.push_back(r);
            }
        }
        return out;
    }
    std::vector<jit::Checkpoint> checkpoints() {
        std::vector<jit::Checkpoint> out;
        for (const jit::AuditRecord& r : log()) {
            if (auto c = jit::parse_checkpoint_record(r)) {
                out.push_back(*c);
            }
        }
        return out;
    }
    // A counter as Prometheus reads it.
    std::uint64_t counter(const std::string& name) const {
        const std::string text = metrics.render(signerd::Metrics::Gauges{});
        const auto at = text.find("\n" + name + " ");
        EXPECT_NE(at, std::string::npos) << name;
        return at == std::string::npos ? 0 : std::stoull(text.substr(at + name.size() + 2));
    }
    void note() {
        jit::AuditRecord r;
        r.time = clock.now();
        r.actor = "test";
        r.action = "test.note";
        r.outcome = "ok";
        ASSERT_TRUE(engine.journal().write({}, std::move(r)));
    }

    const jit::Actor alice = user("alice", {jit::Role::requester});
    const jit::Actor bob = user("bob", {jit::Role::approver});
    JitEngine engine;
    ManualClock clock{test_epoch()};
    FakeGate gate;
    signerd::Metrics metrics;

  private:
    std::vector<std::unique_ptr<signerd::PinCustody>> custodies_;
    std::filesystem::path pin_dir_ = make_temp_dir("dkim-lifecycle-pin");
    std::filesystem::path pin_file_ = pin_dir_ / "pin";
};

TEST_F(TokenLifecycleTest, ReconcileLogsInWhenAGrantBecomesActiveAndOutWhenTheLastEnds) {
    auto lifecycle = make(file_pin());
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_FALSE(lifecycle->logged_in());
    EXPECT_EQ(gate.login_calls, 0) << "no grant: the PIN is not even read";

    grant("s1", 1h);
    grant("s2", 2h);
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_TRUE(lifecycle->logged_in());
    EXPECT_EQ(gate.logins, 1);
    EXPECT_TRUE(gate.last_relogin) << "the PIN file's PIN is kept to restore lost sessions";
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_EQ(gate.login_calls, 1) << "logged in already";
    const auto logins = records_of("token.login", "ok");
    ASSERT_EQ(logins.size(), 1U);
    EXPECT_EQ(logins[0].reason, "a grant is active");
    EXPECT_EQ(logins[0].detail, jit::checkpoint_interval_detail(300'000, 10'000));
    EXPECT_EQ(counter("dkim_signerd_token_logins_total"), 1U);

    clock.advance(1h + 1s);  // s1 has ended, s2 has not
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_TRUE(lifecycle->logged_in());
    EXPECT_EQ(gate.logouts, 0);

    clock.advance(1h);  // the last grant has ended
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_FALSE(lifecycle->logged_in());
    EXPECT_EQ(gate.logouts, 1);
    EXPECT_EQ(counter("dkim_signerd_token_logouts_total"), 1U);
    // The logout checkpoint, signed while the audit key could still sign, then the logout.
    const auto all = log();
    ASSERT_GE(all.size(), 2U);
    const auto last = jit::parse_checkpoint_record(all[all.size() - 2]);
    ASSERT_TRUE(last);
    EXPECT_EQ(last->kind, jit::kCheckpointLogout);
    EXPECT_EQ(all[all.size() - 2].outcome, "ok");
    EXPECT_EQ(all.back().action, "token.logout");
    EXPECT_EQ(all.back().reason, "no active grant");
}

TEST_F(TokenLifecycleTest, AFailedLoginIsAuditedOnceLeavesTheTokenOutAndIsNotCounted) {
    auto lifecycle = make(file_pin("9999"));
    grant("s1", 1h);
    for (int tick = 0; tick < 3; ++tick) {
        const auto reconciled = lifecycle->reconcile(clock.now());
        ASSERT_FALSE(reconciled);
        if (tick == 0) {
            EXPECT_EQ(reconciled.error(), "CKR_PIN_INCORRECT");
        } else {
            EXPECT_NE(reconciled.error().find("not tried again until the file changes"),
                      std::string::npos)
                << reconciled.error();
        }
        clock.advance(1s);
    }
    // openCryptoki locks its PIN after 3 wrong ones: the same file is never tried twice.
    EXPECT_EQ(gate.login_calls, 1) << "tried once, not at every tick";
    EXPECT_FALSE(lifecycle->logged_in());
    const auto failed = records_of("token.login", "failed");
    // The refusal, then once why the file is not tried again: not a record at every tick.
    ASSERT_EQ(failed.size(), 2U) << "recorded once each, not at every retry";
    EXPECT_EQ(failed[0].reason, "CKR_PIN_INCORRECT");
    EXPECT_NE(failed[1].reason.find("not tried again until the file changes"), std::string::npos)
        << failed[1].reason;
    EXPECT_EQ(counter("dkim_signerd_token_logins_total"), 0U);

    write_pin("1234");  // the operator fixes the PIN file
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_TRUE(lifecycle->logged_in());
    EXPECT_EQ(records_of("token.login", "ok").size(), 1U);
    EXPECT_EQ(counter("dkim_signerd_token_logins_total"), 1U);
}

TEST_F(TokenLifecycleTest, ALoginWhoseRecordCannotBeWrittenIsUndone) {
    auto lifecycle = make(file_pin());
    grant("s1", 1h);
    engine.store().failing = true;
    const auto reconciled = lifecycle->reconcile(clock.now());
    ASSERT_FALSE(reconciled);
    EXPECT_NE(reconciled.error().find("the audit log cannot be written"), std::string::npos)
        << reconciled.error();
    EXPECT_EQ(gate.logins, 1);
    EXPECT_EQ(gate.logouts, 1) << "no login without its record";
    EXPECT_FALSE(lifecycle->logged_in());
    EXPECT_EQ(counter("dkim_signerd_token_logins_total"), 0U);

    engine.store().failing = false;
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_TRUE(lifecycle->logged_in());
    EXPECT_EQ(records_of("token.login", "ok").size(), 1U);
    EXPECT_EQ(counter("dkim_signerd_token_logins_total"), 1U);
}

TEST_F(TokenLifecycleTest, AnApproversPinLogsInForTheApprovalOnly) {
    signerd::LifecycleOptions options;
    options.pin_source = signerd::PinSourceKind::approver;
    auto lifecycle = make(options);
    const auto id = request("s1", 1h);
    auto approve = [&] {
        EXPECT_TRUE(lifecycle->logged_in()) << "the approval is made while logged in";
        EXPECT_TRUE(engine.authority().approve(bob, id, clock.now()));
    };

    auto no_pin = lifecycle->login_for(clock.now(), std::nullopt, "bob", id, approve);
    ASSERT_FALSE(no_pin);
    EXPECT_EQ(no_pin.error().kind, TokenLifecycle::LoginRefusal::Kind::no_pin);

    auto wrong =
        lifecycle->login_for(clock.now(), hsm::Secret::from_string("9999"), "bob", id, approve);
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().kind, TokenLifecycle::LoginRefusal::Kind::wrong_pin);
    EXPECT_FALSE(lifecycle->logged_in());
    EXPECT_FALSE(engine.authority().any_active(clock.now())) << "no grant that cannot sign";
    auto failed = records_of("token.login", "failed");
    ASSERT_EQ(failed.size(), 1U);
    EXPECT_EQ(failed[0].reason, "PIN from approver bob: CKR_PIN_INCORRECT");
    EXPECT_EQ(failed[0].request_id, id);

    ASSERT_TRUE(
        lifecycle->login_for(clock.now(), hsm::Secret::from_string("1234"), "bob", id, approve));
    EXPECT_TRUE(lifecycle->logged_in()) << "the grant it made keeps it in";
    EXPECT_FALSE(gate.last_relogin) << "an approver's PIN is not kept";
    const auto logins = records_of("token.login", "ok");
    ASSERT_EQ(logins.size(), 1U);
    EXPECT_EQ(logins[0].reason, "PIN from approver bob");
    EXPECT_EQ(logins[0].request_id, id);
    EXPECT_EQ(counter("dkim_signerd_token_logins_total"), 1U);

    // A login whose decision makes no grant is undone at once.
    clock.advance(1h + 1s);
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    EXPECT_FALSE(lifecycle->logged_in());
    const auto other = request("s2", 1h);
    ASSERT_TRUE(
        lifecycle->login_for(clock.now(), hsm::Secret::from_string("1234"), "bob", other, [] {}));
    EXPECT_FALSE(lifecycle->logged_in());
    EXPECT_EQ(gate.logins, 2);
    EXPECT_EQ(gate.logouts, 2);
}

TEST_F(TokenLifecycleTest, InApproverModeReconcileNeverLogsIn) {
    signerd::LifecycleOptions options;
    options.pin_source = signerd::PinSourceKind::approver;
    auto lifecycle = make(options);
    grant("s1", 1h);
    const auto reconciled = lifecycle->reconcile(clock.now());
    ASSERT_FALSE(reconciled);
    EXPECT_NE(reconciled.error().find("approver's PIN"), std::string::npos);
    EXPECT_EQ(gate.login_calls, 0);
    EXPECT_TRUE(records_of("token.login").empty()) << "nothing failed: it waits for a PIN";
}

TEST_F(TokenLifecycleTest, CheckpointsComeAtTheIntervalOrAfterTheRecordsWhileLoggedIn) {
    grant("s1", 1h);
    auto options = file_pin();
    options.checkpoint_interval = 5min;
    options.checkpoint_records = 5;
    auto lifecycle = make(options);
    clock.advance(10min);
    lifecycle->checkpoint_if_due(clock.now());
    EXPECT_TRUE(checkpoints().empty()) << "logged out: nothing to cover";

    ASSERT_TRUE(lifecycle->reconcile(clock.now()));  // the token.login record: 1 of 5
    lifecycle->checkpoint_if_due(clock.now());
    ASSERT_EQ(checkpoints().size(), 1U) << "10 minutes since the last checkpoint (at start)";
    EXPECT_EQ(checkpoints().back().kind, jit::kCheckpointPeriodic);
    EXPECT_EQ(checkpoints().back().every_ms, 300'000);
    EXPECT_EQ(checkpoints().back().every_records, 5);

    clock.advance(4min);
    for (int i = 0; i < 4; ++i) {
        note();
    }
    lifecycle->checkpoint_if_due(clock.now());
    EXPECT_EQ(checkpoints().size(), 1U) << "4 minutes and 4 records: not due";
    note();
    lifecycle->checkpoint_if_due(clock.now());
    EXPECT_EQ(checkpoints().size(), 2U) << "the fifth record";
    clock.advance(5min);
    lifecycle->checkpoint_if_due(clock.now());
    EXPECT_EQ(checkpoints().size(), 3U) << "the interval, with nothing else written";
    EXPECT_EQ(gate.checkpoints, 3);

    gate.checkpoint_fails = true;
    clock.advance(5min);
    lifecycle->checkpoint_if_due(clock.now());
    ASSERT_EQ(checkpoints().size(), 4U);
    EXPECT_EQ(log().back().outcome, "failed") << "a checkpoint that cannot be signed says so";
    lifecycle->checkpoint_if_due(clock.now());
    EXPECT_EQ(checkpoints().size(), 4U) << "tried again at the next interval, not at every tick";
}

TEST_F(TokenLifecycleTest, ShutdownCheckpointsAndLogsOut) {
    auto lifecycle = make(file_pin());
    lifecycle->shutdown(clock.now());
    EXPECT_TRUE(log().empty()) << "logged out: nothing to do";

    grant("s1", 1h);
    ASSERT_TRUE(lifecycle->reconcile(clock.now()));
    ASSERT_TRUE(lifecycle->logged_in());
    lifecycle->shutdown(clock.now());
    EXPECT_FALSE(lifecycle->logged_in());
    EXPECT_EQ(gate.logouts, 1);
    const auto all = log();
    ASSERT_GE(all.size(), 2U);
    const auto c = jit::parse_checkpoint_record(all[all.size() - 2]);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->kind, jit::kCheckpointLogout);
    EXPECT_EQ(all.back().action, "token.logout");
    EXPECT_EQ(all.back().reason, "shutdown");
}

TEST_F(TokenLifecycleTest, TheLifecycleThreadIsWokenUntilItGoes) {
    auto lifecycle = make(file_pin());
    int woken = 0;
    lifecycle->notify_change();  // nobody listens yet
    lifecycle->on_change([&woken] { ++woken; });
    lifecycle->notify_change();
    lifecycle->on_change(nullptr);
    lifecycle->notify_change();
    EXPECT_EQ(woken, 1);
}

}  // namespace
}  // namespace dkim::test

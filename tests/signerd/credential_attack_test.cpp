// The Service against a compromised dkim-webd and a password guesser (issue 18, findings 2
// and 3, the red team's F2, and API tokens' lifetime): what the web peer may do with the
// credentials it sees at every console login (no user management, no TOTP enrolment at all), the
// lockout through the whole request path, one answer for every wrong secret, and a lockout that
// survives a restart of the service.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "fake_gate.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

class CredentialAttackTest : public ::testing::Test {
  protected:
    CredentialAttackTest() {
        const auto now = h.clock.now();
        EXPECT_TRUE(h.engine.directory().add_user(
            local, "erin",
            static_cast<jit::RoleSet>(static_cast<unsigned>(jit::Role::admin) |
                                      static_cast<unsigned>(jit::Role::requester)),
            "erin-password-123", now));
        auto enrolment = h.engine.directory().enrol_totp(local, "erin", now);
        erin_secret = base32_decode(enrolment->secret_base32);
        EXPECT_TRUE(h.engine.directory().confirm_totp(user("erin", {jit::Role::admin}), "erin",
                                                      totp_at(erin_secret, now - 30s), now));
        h.people["erin"] = Person{"erin", "erin-password-123", erin_secret};
    }

    // What webd holds after bob's console login: his password and a fresh code.
    ipc::Credentials login_of(const std::string& name) { return h.password_of(name, true); }

    std::string totp_secret_of(const std::string& name) {
        const auto state = h.engine.store().load();
        for (const auto& u : state->users) {
            if (u.name == name) {
                return u.totp_secret;
            }
        }
        return "";
    }

    // An admin grant for erin (quorum 2: bob and carol approve).
    void admin_grant_for_erin() {
        ipc::ElevationRequest r;
        r.auth = h.password_of("erin");
        r.operation = "admin";
        r.domain = "*";
        r.duration_seconds = 1800;
        r.reason = "CHG-11 reset bob's second factor";
        auto filed = h.call(h.admin_peer, r);
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(filed)) << error_message(filed);
        const auto id = std::get<ipc::OkReply>(filed).id;
        for (const char* approver : {"bob", "carol"}) {
            auto approved = h.decide(approver, "approve", id);
            ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(approved)) << error_message(approved);
        }
    }

    FakeGate gate;
    SignerdHarness h{gate, file_pin_options()};
    const jit::Actor local{
        jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
    std::string erin_secret;
};

TEST_F(CredentialAttackTest, WebdCannotReplaceAConfirmedTotp) {
    const std::string before = totp_secret_of("bob");
    // The finding: password + one code re-enrolled bob's TOTP through the web peer.
    auto reenrol = h.call(h.web_peer, ipc::TotpEnrol{login_of("bob"), ""});
    EXPECT_EQ(error_code(reenrol), "forbidden") << error_message(reenrol);
    auto for_bob = h.call(h.web_peer, ipc::TotpEnrol{login_of("bob"), "bob"});
    EXPECT_EQ(error_code(for_bob), "forbidden");
    // Not even with an admin's login and an admin grant: never through webd.
    admin_grant_for_erin();
    auto by_admin = h.call(h.web_peer, ipc::TotpEnrol{h.password_of("erin", true), "bob"});
    EXPECT_EQ(error_code(by_admin), "forbidden") << error_message(by_admin);
    EXPECT_EQ(totp_secret_of("bob"), before) << "bob's second factor is unchanged";
    EXPECT_TRUE(h.engine.directory().find("bob")->totp_confirmed);
    // bob himself at the root CLI cannot either (he is no admin): a lost phone is an admin's
    // reset.
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::TotpEnrol{login_of("bob"), ""})), "forbidden");
    EXPECT_EQ(totp_secret_of("bob"), before);
}

TEST_F(CredentialAttackTest, TheLocalOperatorOrAnAdminUnderAGrantResetsATotp) {
    const std::string before = totp_secret_of("bob");
    // An admin without an admin grant: refused.
    auto no_grant = h.call(h.admin_peer, ipc::TotpEnrol{h.password_of("erin", true), "bob"});
    EXPECT_EQ(error_code(no_grant), "forbidden") << error_message(no_grant);
    admin_grant_for_erin();
    auto reset = h.call(h.admin_peer, ipc::TotpEnrol{h.password_of("erin", true), "bob"});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(reset)) << error_message(reset);
    EXPECT_NE(totp_secret_of("bob"), before);
    EXPECT_FALSE(h.engine.directory().find("bob")->totp_confirmed);
    auto log = h.engine.journal().store().audit_records(1, 10'000);
    ASSERT_TRUE(log);
    bool recorded = false;
    for (const auto& r : *log) {
        recorded |= r.action == "totp.enrol" && r.actor == "erin" &&
                    r.detail.find("replaces a confirmed TOTP") != std::string::npos;
    }
    EXPECT_TRUE(recorded) << "the reset is on the audit log, by whom";
    // The local operator (root, no credentials).
    auto by_root = h.call(h.admin_peer, ipc::TotpEnrol{{}, "carol"});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(by_root)) << error_message(by_root);
}

// Refusals of the web peer are on the audit log, naming whose login webd used.
bool refusal_recorded(JitEngine& engine, const std::string& actor, const std::string& action) {
    auto log = engine.journal().store().audit_records(1, 10'000);
    EXPECT_TRUE(log);
    return log && std::any_of(log->begin(), log->end(), [&](const jit::AuditRecord& r) {
               return r.actor == actor && r.action == action && r.outcome == "refused" &&
                      r.detail.find("from peer web") != std::string::npos;
           });
}

// Red team, finding F2 [A]: erin (admin) logs in at the console under an approved admin grant;
// webd adds an approver whose password it chose, enrols and confirms its TOTP, and after the
// grant ends approves alone as that user. User management is the admin peer's only.
TEST_F(CredentialAttackTest, WebdManagesNoUsersNotEvenWithAnAdminsLoginUnderAGrant) {
    admin_grant_for_erin();
    auto add = h.call(h.web_peer, ipc::UserAdd{h.password_of("erin", true), "mallory", "approver",
                                               "webd-chose-this-one"});
    EXPECT_EQ(error_code(add), "forbidden") << error_message(add);
    EXPECT_FALSE(h.engine.directory().find("mallory")) << "no user was added";
    EXPECT_TRUE(refusal_recorded(h.engine, "erin", "user.add"));
    // Nor disable an approver, nor enable a disabled one.
    auto disable = h.call(h.web_peer, ipc::UserSetDisabled{h.password_of("erin"), "carol", true});
    EXPECT_EQ(error_code(disable), "forbidden") << error_message(disable);
    EXPECT_FALSE(h.engine.directory().find("carol")->disabled);
    ASSERT_TRUE(h.engine.directory().set_disabled(local, "bob", true, h.clock.now()));
    auto enable = h.call(h.web_peer, ipc::UserSetDisabled{h.password_of("erin"), "bob", false});
    EXPECT_EQ(error_code(enable), "forbidden") << error_message(enable);
    EXPECT_TRUE(h.engine.directory().find("bob")->disabled);
    EXPECT_TRUE(refusal_recorded(h.engine, "erin", "user.enable"));
    // Nor enrol a TOTP for anybody: not for a user it made, not for itself.
    auto enrol = h.call(h.web_peer, ipc::TotpEnrol{h.password_of("alice"), ""});
    EXPECT_EQ(error_code(enrol), "forbidden") << error_message(enrol);
    EXPECT_TRUE(refusal_recorded(h.engine, "alice", "totp.enrol"));
    EXPECT_NE(h.metrics.render({}).find("dkim_signerd_refusals_total{reason=\"peer\"} 4\n"),
              std::string::npos)
        << "each refusal of the peer is counted";
    // The control: the same admin at the root CLI, under the same grant.
    auto at_cli = h.call(h.admin_peer, ipc::UserAdd{h.password_of("erin", true), "mallory",
                                                    "approver", "chosen-at-the-cli"});
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(at_cli)) << error_message(at_cli);
    auto enabled = h.call(h.admin_peer, ipc::UserSetDisabled{h.password_of("erin"), "bob", false});
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(enabled)) << error_message(enabled);
}

// Red team, finding F2 [B]: root resets bob's TOTP at the CLI (lost phone); before bob confirms
// the new one, webd (which saw bob's password at a login) enrols a TOTP of its own for him.
TEST_F(CredentialAttackTest, WebdCannotTakeOverATotpResetByRoot) {
    auto reset = h.call(h.admin_peer, ipc::TotpEnrol{{}, "bob"});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(reset)) << error_message(reset);
    const std::string handed_to_bob = totp_secret_of("bob");
    EXPECT_FALSE(h.engine.directory().find("bob")->totp_confirmed);
    auto again = h.call(h.web_peer, ipc::TotpEnrol{h.password_of("bob"), ""});
    EXPECT_EQ(error_code(again), "forbidden") << error_message(again);
    EXPECT_EQ(totp_secret_of("bob"), handed_to_bob) << "the pending secret is still root's";
    EXPECT_TRUE(refusal_recorded(h.engine, "bob", "totp.enrol"));
    // webd cannot confirm it without the secret; bob can, also through the console (confirming
    // needs a code of the secret only bob was given).
    auto guessed = h.call(h.web_peer, ipc::TotpConfirm{h.password_of("bob"), "", "000000"});
    EXPECT_EQ(error_code(guessed), "unauthenticated");
    h.clock.advance(30s);
    auto confirmed = h.call(h.web_peer, ipc::TotpConfirm{h.password_of("bob"), "",
                                                         totp_at(handed_to_bob, h.clock.now())});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(confirmed)) << error_message(confirmed);
    EXPECT_TRUE(h.engine.directory().find("bob")->totp_confirmed);
    EXPECT_EQ(totp_secret_of("bob"), handed_to_bob);
}

TEST_F(CredentialAttackTest, AFirstEnrolmentIsAtTheCliNeverThroughWebd) {
    ASSERT_TRUE(h.engine.directory().add_user(local, "dave",
                                              static_cast<jit::RoleSet>(jit::Role::approver),
                                              "dave-password-123", h.clock.now()));
    h.people["dave"] = Person{"dave", "dave-password-123", ""};
    // webd sees dave's password at his first console login: it cannot give him a second factor
    // it holds (the design limit "a first TOTP enrolment goes through webd" is gone).
    auto first = h.call(h.web_peer, ipc::TotpEnrol{h.password_of("dave"), ""});
    EXPECT_EQ(error_code(first), "forbidden") << error_message(first);
    EXPECT_TRUE(totp_secret_of("dave").empty());
    auto other = h.call(h.web_peer, ipc::TotpEnrol{h.password_of("alice"), "dave"});
    EXPECT_EQ(error_code(other), "forbidden");
    // At the CLI (the admin peer), dave enrols himself with his password.
    auto at_cli = h.call(h.admin_peer, ipc::TotpEnrol{h.password_of("dave"), ""});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(at_cli)) << error_message(at_cli);
    EXPECT_FALSE(totp_secret_of("dave").empty());
}

TEST_F(CredentialAttackTest, WebdMakesNoTokensForOtherUsers) {
    admin_grant_for_erin();
    // An admin under an admin grant, logged in at the console: webd holds erin's password and
    // code, and asks for a token for bob. Refused: through webd a token is for oneself.
    auto for_bob =
        h.call(h.web_peer, ipc::ApiTokenCreate{h.password_of("erin", true), "bob", "x", 0});
    EXPECT_EQ(error_code(for_bob), "forbidden") << error_message(for_bob);
    // The same request from the root CLI works (the admin's power, under the grant).
    auto at_cli =
        h.call(h.admin_peer, ipc::ApiTokenCreate{h.password_of("erin", true), "bob", "x", 0});
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(at_cli)) << error_message(at_cli);
    // A session token webd holds cannot mint anything.
    ipc::SessionCreate create{login_of("bob"), 600};
    auto made = h.call(h.web_peer, create);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(made)) << error_message(made);
    ipc::Credentials session;
    session.token = std::get<ipc::OkReply>(made).secret;
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::ApiTokenCreate{session, "", "x", 0})),
              "unauthenticated");
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::TotpEnrol{session, ""})), "unauthenticated");
}

TEST_F(CredentialAttackTest, ApiTokensExpireAfterNinetyDaysUnlessNeverIsAskedFor) {
    auto by_default = h.call(h.web_peer, ipc::ApiTokenCreate{h.password_of("alice"), "", "ci", 0});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(by_default)) << error_message(by_default);
    const auto created = h.clock.now();
    ipc::Credentials token;
    token.token = std::get<ipc::OkReply>(by_default).secret;
    auto never = h.call(h.admin_peer, ipc::ApiTokenCreate{h.password_of("alice"), "", "archive",
                                                          ipc::kApiTokenNeverExpires});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(never)) << error_message(never);
    ipc::Credentials forever;
    forever.token = std::get<ipc::OkReply>(never).secret;
    EXPECT_EQ(
        error_code(h.call(h.web_peer, ipc::ApiTokenCreate{h.password_of("alice"), "", "x", -7})),
        "invalid");
    auto me = h.call(h.web_peer, ipc::WhoAmI{token});
    ASSERT_TRUE(std::holds_alternative<ipc::IdentityReply>(me)) << error_message(me);
    EXPECT_EQ(std::get<ipc::IdentityReply>(me).token_expires_ms,
              to_unix_ms(created + ipc::kApiTokenDefaultTtl));
    h.clock.advance(std::chrono::duration_cast<Duration>(ipc::kApiTokenDefaultTtl));
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::WhoAmI{token})), "unauthenticated")
        << "expired after 90 days";
    EXPECT_TRUE(
        std::holds_alternative<ipc::IdentityReply>(h.call(h.web_peer, ipc::WhoAmI{forever})))
        << "an explicit never does not expire";
}

TEST_F(CredentialAttackTest, AWrongCodeAndAWrongPasswordGetTheSameAnswerThroughTheService) {
    ipc::Credentials wrong_password = login_of("bob");
    wrong_password.password = "not-bobs-password";
    ipc::Credentials wrong_code = login_of("bob");
    wrong_code.totp = "000000";
    ipc::Credentials no_code = h.password_of("bob");
    const auto a = h.call(h.web_peer, ipc::SessionCreate{wrong_password, 600});
    const auto b = h.call(h.web_peer, ipc::SessionCreate{wrong_code, 600});
    const auto c = h.call(h.web_peer, ipc::SessionCreate{no_code, 600});
    // A decision with a session token and a wrong code.
    auto made = h.call(h.web_peer, ipc::SessionCreate{login_of("bob"), 600});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(made)) << error_message(made);
    ipc::Credentials session;
    session.token = std::get<ipc::OkReply>(made).secret;
    session.totp = "000000";
    const auto id = h.request_sign("example.com", "s1", 600);
    const auto d = h.call(h.web_peer, ipc::ElevationDecide{session, "approve", id, "", {}});
    for (const ipc::Reply* r : {&b, &c, &d}) {
        EXPECT_EQ(error_code(*r), error_code(a));
        EXPECT_EQ(error_message(*r), error_message(a));
    }
    EXPECT_EQ(error_code(a), "unauthenticated");
}

TEST_F(CredentialAttackTest, TheLockoutHoldsThroughTheServiceAndARestart) {
    ipc::Credentials wrong = login_of("bob");
    wrong.totp = "000000";  // right password, wrong code: counts like a wrong password
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(error_code(h.call(h.web_peer, ipc::SessionCreate{wrong, 600})),
                  "unauthenticated");
    }
    ipc::Credentials wrong_password = h.password_of("bob");
    wrong_password.password = "not-bobs-password";
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(error_code(h.call(h.web_peer, ipc::WhoAmI{wrong_password})), "unauthenticated");
    }
    const auto locked_at = h.clock.now();
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::SessionCreate{login_of("bob"), 600})),
              "unauthenticated")
        << "locked: the right password and code are refused";
    h.restart();
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::WhoAmI{h.password_of("bob")})), "unauthenticated")
        << "still locked after a restart";
    h.clock.set(locked_at + jit::Directory::kLockout);
    auto after = h.call(h.web_peer, ipc::SessionCreate{login_of("bob"), 600});
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(after)) << error_message(after);
}

}  // namespace
}  // namespace dkim::test

// The Service with a fake token gate and a ManualClock: the sign check, the login
// lifecycle, credentials on every decision, fail-closed behaviour.
// (About 700 lines: one fixture, whose setup — a store, users, a fake token — every case shares;
// the credential attacks and the TokenLifecycle have files of their own.)

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "fake_gate.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

class ServiceTest : public ::testing::Test {
  protected:
    FakeGate gate;
    SignerdHarness h{gate, file_pin_options()};
    const std::string block = header_block("example.com", "s1");

    std::int64_t grant(std::int64_t seconds = 3600,
                       std::optional<std::uint64_t> budget = std::nullopt) {
        const auto id = h.request_sign("example.com", "s1", seconds, budget);
        const auto reply = h.decide("bob", "approve", id);
        EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(reply)) << error_message(reply);
        return std::holds_alternative<ipc::OkReply>(reply) ? std::get<ipc::OkReply>(reply).id : 0;
    }

    // alice asks (through webd) for a key.generate grant on example.com/`selector`; bob approves.
    void grant_key_generate(const std::string& selector, const std::string& reason) {
        ipc::ElevationRequest r;
        r.auth = h.password_of("alice");
        r.operation = "key.generate";
        r.domain = "example.com";
        r.selector = selector;
        r.duration_seconds = 600;
        r.reason = reason;
        auto requested = h.call(h.web_peer, r);
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(requested)) << error_message(requested);
        auto approved = h.decide("bob", "approve", std::get<ipc::OkReply>(requested).id);
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(approved)) << error_message(approved);
    }
};

TEST_F(ServiceTest, LockedUntilApprovedThenSignsAndLogsInOnlyThen) {
    auto locked = h.sign(block);
    EXPECT_EQ(error_code(locked), "locked");
    EXPECT_GT(std::get<ipc::ErrorReply>(locked).request_id, 0) << "a pending request was filed";
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(gate.logins, 0);
    grant();
    EXPECT_TRUE(gate.in) << "login when the first grant becomes active";
    EXPECT_EQ(gate.logins, 1);
    EXPECT_TRUE(gate.last_relogin) << "file PINs may be used to recover a lost session";
    auto signed_reply = h.sign(block);
    ASSERT_TRUE(std::holds_alternative<ipc::SignReply>(signed_reply))
        << error_message(signed_reply);
    EXPECT_EQ(std::get<ipc::SignReply>(signed_reply).signature,
              "sig(example.com/s1," + std::to_string(block.size()) + ")");
}

TEST_F(ServiceTest, TheLockedRequestOfTheRelayCanBeApprovedDirectly) {
    const auto id = std::get<ipc::ErrorReply>(h.sign(block)).request_id;
    EXPECT_EQ(std::get<ipc::ErrorReply>(h.sign(block)).request_id, id)
        << "one pending request per scope";
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(h.decide("bob", "approve", id)));
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
}

// Issue 19: the relay's request for one selector no longer waits for approvers once a grant
// for the whole domain is active: listed as superseded by that grant, not pending, and an
// approval of it is refused before the approver's TOTP code is spent. Also after a restart.
TEST_F(ServiceTest, TheRelaysRequestIsSupersededByAWiderGrantAndListedSo) {
    const auto narrow = std::get<ipc::ErrorReply>(h.sign(block)).request_id;
    ASSERT_GT(narrow, 0);
    EXPECT_EQ(h.service->gauges().pending_requests, 1U);
    const auto wide = h.request_sign("example.com", "*", 600);
    EXPECT_EQ(h.service->gauges().pending_requests, 2U);
    auto approved = h.decide("bob", "approve", wide);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(approved)) << error_message(approved);
    const auto grant = std::get<ipc::OkReply>(approved).id;
    EXPECT_NE(std::get<ipc::OkReply>(approved).message.find("supersedes pending request " +
                                                            std::to_string(narrow)),
              std::string::npos)
        << std::get<ipc::OkReply>(approved).message;
    EXPECT_EQ(h.service->gauges().pending_requests, 0U) << "no request left for approvers";
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));

    for (int pass = 0; pass < 2; ++pass) {
        SCOPED_TRACE(pass == 0 ? "before the restart" : "after the restart");
        const auto listed =
            std::get<ipc::RequestsReply>(h.call(h.admin_peer, ipc::ElevationList{{}, false}));
        const auto it = std::find_if(listed.requests.begin(), listed.requests.end(),
                                     [&](const ipc::RequestView& v) { return v.id == narrow; });
        ASSERT_NE(it, listed.requests.end());
        EXPECT_EQ(it->state, "superseded");
        EXPECT_EQ(it->superseded_by, grant);
        EXPECT_EQ(it->decided_by, "signerd");
        EXPECT_TRUE(it->filed_by_signer);
        EXPECT_NE(it->decision_reason.find("grant " + std::to_string(grant)), std::string::npos);
        const auto only_pending =
            std::get<ipc::RequestsReply>(h.call(h.admin_peer, ipc::ElevationList{{}, true}));
        EXPECT_TRUE(only_pending.requests.empty());

        ipc::Credentials carol_code = h.password_of("carol", true);
        auto refused =
            h.call(h.web_peer, ipc::ElevationDecide{carol_code, "approve", narrow, "", {}});
        EXPECT_EQ(error_code(refused), "conflict");
        EXPECT_NE(error_message(refused).find("superseded"), std::string::npos)
            << error_message(refused);
        // Her code was not spent on it.
        const auto other = h.request_sign("example.org", "s" + std::to_string(pass + 1), 600);
        auto same_code =
            h.call(h.web_peer, ipc::ElevationDecide{carol_code, "approve", other, "", {}});
        EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(same_code)) << error_message(same_code);
        h.restart();
    }
}

TEST_F(ServiceTest, RevokeLogsOutBeforeItIsAcknowledged) {
    const auto g = grant();
    ASSERT_TRUE(gate.in);
    auto reply =
        h.call(h.admin_peer, ipc::GrantRevoke{h.password_of("carol", true), g, "incident"});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(reply)) << error_message(reply);
    EXPECT_FALSE(gate.in) << "logged out before the reply";
    EXPECT_EQ(gate.logouts, 1);
    EXPECT_EQ(gate.checkpoints, 1) << "a checkpoint of the chain head while still logged in";
    EXPECT_EQ(error_code(h.sign(block)), "locked");
}

TEST_F(ServiceTest, ExpiryEndsSigningAtOnceAndTheNextTickLogsOut) {
    grant(600);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
    EXPECT_EQ(h.service->next_tick(), h.clock.now() + 1s)
        << "the lifecycle wakes at least every second";
    h.clock.advance(600s);
    EXPECT_EQ(error_code(h.sign(header_block("example.com", "s1", SigningAlgorithm::rsa_sha256,
                                             Canon::relaxed, h.clock.now()))),
              "locked")
        << "expiry is checked on the signature itself";
    EXPECT_TRUE(gate.in);
    h.service->tick();
    EXPECT_FALSE(gate.in);
}

TEST_F(ServiceTest, NextTickIsTheGrantsExpiryWhenSooner) {
    grant(1);
    const auto expires = h.engine.authority().grants().front().expires;
    // First the time its renewal is due (sign's renew_before: 20% of the second before the
    // end), which the tick files; then its expiry.
    EXPECT_EQ(h.service->next_tick(), expires - 200ms);
    h.clock.advance(800ms);
    h.service->tick();
    EXPECT_EQ(h.service->next_tick(), expires);
}

TEST_F(ServiceTest, SpendingTheLastUseLogsOut) {
    grant(3600, 2);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
    EXPECT_TRUE(gate.in);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(error_code(h.sign(block)), "locked");
    EXPECT_EQ(gate.signatures, 2);
}

TEST_F(ServiceTest, OnlyTheDkimSignatureThatTheGrantCoversIsSigned) {
    grant();
    EXPECT_EQ(error_code(h.sign(header_block("example.org", "s1"), "example.com", "s1")),
              "forbidden")
        << "d= differs from the request";
    EXPECT_EQ(error_code(h.sign(header_block("example.com", "s2"), "example.com", "s1")),
              "forbidden");
    EXPECT_EQ(error_code(h.sign(block, "example.com", "s1", "ed25519-sha256")), "forbidden")
        << "a= differs";
    EXPECT_EQ(error_code(h.sign("from:a@example.com\r\nsubject:hi")), "invalid")
        << "no DKIM-Signature";
    std::string signed_b = block;
    signed_b += "AAAA";
    EXPECT_EQ(error_code(h.sign(signed_b)), "invalid") << "b= must be empty";
    EXPECT_EQ(error_code(h.sign(block, "example.com", "s1", "rsa-sha1")), "invalid");
    EXPECT_EQ(error_code(h.sign("")), "invalid");
    EXPECT_EQ(gate.signatures, 0);
    // A signature that covers another domain is not signed even when that domain has a grant.
    const auto other = h.request_sign("example.org", "s1", 600);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(h.decide("bob", "approve", other)));
    EXPECT_EQ(error_code(h.sign(header_block("example.org", "s1"), "example.com", "s1")),
              "forbidden");
    // Simple header canonicalization, folded field: accepted.
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(
        h.sign(header_block("example.com", "s1", SigningAlgorithm::rsa_sha256, Canon::simple))));
}

TEST_F(ServiceTest, PeersMayOnlyDoTheirPart) {
    grant();
    EXPECT_EQ(error_code(h.call(h.web_peer,
                                ipc::SignRequest{"example.com", "s1", "rsa-sha256", block, {}})),
              "forbidden");
    EXPECT_EQ(error_code(h.call(h.admin_peer,
                                ipc::SignRequest{"example.com", "s1", "rsa-sha256", block, {}})),
              "forbidden");
    EXPECT_EQ(error_code(h.call(h.relay_peer, ipc::GrantList{})), "forbidden");
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::GrantList{})), "unauthenticated")
        << "web must forward credentials; only the local admin peer may omit them";
    EXPECT_TRUE(std::holds_alternative<ipc::GrantsReply>(h.call(h.admin_peer, ipc::GrantList{})));
    EXPECT_TRUE(
        std::holds_alternative<ipc::StatusReply>(h.call(h.relay_peer, ipc::StatusRequest{})));
}

TEST_F(ServiceTest, PublicKeysAreReadableWithoutAGrant) {
    const auto reply = h.call(h.relay_peer, ipc::PublicKeyRequest{"Example.COM", "SEL"});
    ASSERT_TRUE(std::holds_alternative<ipc::PublicKeyReply>(reply));
    EXPECT_EQ(std::get<ipc::PublicKeyReply>(reply).key_type, "ed25519");
    EXPECT_EQ(std::get<ipc::PublicKeyReply>(reply).key.size(), 32u);
    EXPECT_EQ(error_code(h.call(h.relay_peer, ipc::PublicKeyRequest{"example.com", "other"})),
              "not_found");
    EXPECT_EQ(error_code(h.call(h.relay_peer, ipc::PublicKeyRequest{"exa mple.com", "sel"})),
              "invalid");
}

TEST_F(ServiceTest, DecisionsNeedTheApproversTotpCodeOnce) {
    const auto id = h.request_sign("example.com", "s1", 600);
    auto no_code = h.password_of("bob");
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::ElevationDecide{no_code, "approve", id, "", {}})),
              "unauthenticated");
    auto wrong_password = h.password_of("bob", true);
    wrong_password.password = "not-bobs-password";
    EXPECT_EQ(
        error_code(h.call(h.web_peer, ipc::ElevationDecide{wrong_password, "approve", id, "", {}})),
        "unauthenticated");
    auto good = h.password_of("bob", true);
    const auto replay = good;
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(
        h.call(h.web_peer, ipc::ElevationDecide{good, "approve", id, "", {}})));
    const auto id2 = h.request_sign("example.com", "s2", 600);
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::ElevationDecide{replay, "approve", id2, "", {}})),
              "unauthenticated")
        << "a TOTP code is accepted once";
    // The local root operator is no approver.
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::ElevationDecide{{}, "approve", id2, "", {}})),
              "forbidden");
    // A requester cannot approve even with valid credentials.
    auto requester = h.password_of("alice");
    EXPECT_NE(
        error_code(h.call(h.web_peer, ipc::ElevationDecide{requester, "approve", id2, "", {}})),
        "");
}

TEST_F(ServiceTest, ApiTokensComeFromPasswordsAndWorkForRequests) {
    auto made = h.call(h.web_peer, ipc::ApiTokenCreate{h.password_of("alice"), "", "ci", 0});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(made)) << error_message(made);
    const std::string token = std::get<ipc::OkReply>(made).secret;
    ASSERT_EQ(token.rfind("dkt_", 0), 0U);
    ipc::Credentials by_token;
    by_token.token = token;
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::ApiTokenCreate{by_token, "", "again", 0})),
              "unauthenticated")
        << "a token cannot mint tokens";
    ipc::ElevationRequest r;
    r.auth = by_token;
    r.operation = "sign";
    r.domain = "example.com";
    r.duration_seconds = 600;
    r.reason = "CHG-9";
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(h.call(h.web_peer, r)));
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::UserAdd{by_token, "mallory", "admin", ""})),
              "forbidden");
}

TEST_F(ServiceTest, AnUnwritableAuditLogWithholdsSignaturesAndGrants) {
    grant();
    h.engine.store().failing = true;
    auto reply = h.sign(block);
    EXPECT_EQ(error_code(reply), "unavailable");
    EXPECT_NE(error_message(reply).find("audit log"), std::string::npos) << error_message(reply);
    EXPECT_EQ(gate.signatures, 1) << "the token signed, but the signature was not released";
    const auto status = std::get<ipc::StatusReply>(h.call(h.relay_peer, ipc::StatusRequest{}));
    EXPECT_NE(status.audit_failure.find("disk I/O error"), std::string::npos);
    h.engine.store().failing = false;
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
}

TEST_F(ServiceTest, SecretsInRequestsAreWiped) {
    ipc::Request request = ipc::ElevationDecide{h.password_of("bob", true), "approve", 999, "", {}};
    (void)h.service->handle(h.admin_peer, request);
    const auto& decided = std::get<ipc::ElevationDecide>(request);
    EXPECT_TRUE(decided.auth.password.empty());
    EXPECT_TRUE(decided.auth.totp.empty());
    // A first split's PIN (refused here: the custody is not "shares") is wiped all the same.
    ipc::Request split = ipc::PinSplit{{}, "1234", 2, {"bob", "carol"}};
    (void)h.service->handle(h.admin_peer, split);
    EXPECT_TRUE(std::get<ipc::PinSplit>(split).pin.empty());
}

TEST_F(ServiceTest, StateSurvivesARestart) {
    grant(3600, 5);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
    gate.in = false;  // a restarted process starts logged out
    h.restart();
    h.service->tick();
    EXPECT_TRUE(gate.in) << "an active grant restored means login again";
    const auto grants = std::get<ipc::GrantsReply>(h.call(h.admin_peer, ipc::GrantList{{}, true}));
    ASSERT_EQ(grants.grants.size(), 1U);
    EXPECT_EQ(grants.grants[0].uses, 1U);
    h.clock.advance(2h);
    h.restart();
    gate.in = false;
    h.service->tick();
    EXPECT_FALSE(gate.in) << "an expired grant is not revived";
}

TEST_F(ServiceTest, BreakGlassNeedsAnAdminWithTotpAndIsActiveAtOnce) {
    const jit::Actor local{
        jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
    const auto now = h.clock.now();
    ASSERT_TRUE(h.engine.directory().add_user(
        local, "erin", static_cast<jit::RoleSet>(jit::Role::admin), "erin-password-123", now));
    auto enrolment = h.engine.directory().enrol_totp(local, "erin", now);
    const std::string secret = base32_decode(enrolment->secret_base32);
    ASSERT_TRUE(h.engine.directory().confirm_totp(user("erin", {jit::Role::admin}), "erin",
                                                  totp_at(secret, now - 30s), now));
    ipc::ElevationRequest r;
    r.auth.user = "erin";
    r.auth.password = "erin-password-123";
    r.operation = "sign";
    r.domain = "example.com";
    r.duration_seconds = 600;
    r.reason = "INC-9 outage, approvers unreachable";
    r.break_glass = true;
    EXPECT_EQ(error_code(h.call(h.web_peer, r)), "unauthenticated") << "no TOTP code";
    r.auth.password = "erin-password-123";
    r.auth.totp = totp_at(secret, now);
    auto reply = h.call(h.web_peer, r);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(reply)) << error_message(reply);
    EXPECT_NE(std::get<ipc::OkReply>(reply).message.find("BREAK-GLASS"), std::string::npos);
    EXPECT_TRUE(gate.in);
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
    r.auth.user = "alice";
    r.auth.password = h.people["alice"].password;
    EXPECT_EQ(error_code(h.call(h.web_peer, r)), "forbidden") << "requesters cannot break glass";
}

TEST_F(ServiceTest, HopelessDecisionsAreRefusedBeforeTheTotpCodeIsSpent) {
    const auto id = h.request_sign("example.com", "s1", 600);
    auto by_requester = h.decide("alice", "approve", id);
    EXPECT_EQ(error_code(by_requester), "forbidden");
    EXPECT_EQ(std::get<ipc::ErrorReply>(by_requester).rule, "role")
        << "the role is checked before the (missing) TOTP enrolment";
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(h.decide("bob", "approve", id)));
    // carol is too late; her code is not spent, so the same code still works.
    ipc::Credentials carol_code = h.password_of("carol", true);
    auto late = h.call(h.web_peer, ipc::ElevationDecide{carol_code, "approve", id, "", {}});
    EXPECT_EQ(std::get<ipc::ErrorReply>(late).rule, "quorum_met");
    const auto id2 = h.request_sign("example.com", "s2", 600);
    auto same_code = h.call(h.web_peer, ipc::ElevationDecide{carol_code, "approve", id2, "", {}});
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(same_code)) << error_message(same_code);
}

TEST_F(ServiceTest, WhoAmINamesTheUserAndTheSessionToken) {
    ipc::SessionCreate create{h.password_of("bob", true), 600};
    auto made = h.call(h.web_peer, create);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(made)) << error_message(made);
    const std::string token = std::get<ipc::OkReply>(made).secret;
    ipc::Credentials by_token;
    by_token.token = token;
    auto me = h.call(h.web_peer, ipc::WhoAmI{by_token});
    ASSERT_TRUE(std::holds_alternative<ipc::IdentityReply>(me)) << error_message(me);
    const auto& id = std::get<ipc::IdentityReply>(me);
    EXPECT_EQ(id.name, "bob");
    EXPECT_EQ(id.roles, "approver");
    EXPECT_TRUE(id.totp);
    EXPECT_EQ(id.token_kind, "session");
    EXPECT_EQ(id.token_expires_ms, to_unix_ms(h.clock.now() + 600s));

    // The session ends, and its token stops working; the end is on the audit log.
    auto ended = h.call(h.web_peer, ipc::SessionEnd{by_token});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(ended)) << error_message(ended);
    auto log = h.engine.journal().store().audit_records(1, 1000);
    ASSERT_TRUE(log);
    EXPECT_EQ(log->back().action, "session.end");
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::WhoAmI{by_token})), "unauthenticated");
    // A password login has no session to end.
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::SessionEnd{h.password_of("alice")})), "invalid");
}

// Found by the red team (a writer of the cluster's database): a key row in the registry, with a
// record of the writer's own, was listed by KeyList (dns records, the console's DNS page) as a
// key to publish, and a key.generate for that selector answered "already generated" with the
// writer's record. A key's record now comes from the token alone: the planted row has none, and
// generating its selector makes the key in the token.
TEST_F(ServiceTest, ARegistryRowWithoutItsKeyInTheTokenListsNoRecordAndIsGeneratedForReal) {
    jit::KeyRecord planted;
    planted.domain = "example.com";
    planted.selector = "s2";
    planted.algorithm = "ed25519";
    planted.state = jit::KeyState::pending_publish;
    planted.origin = "generated";
    planted.created = h.clock.now();
    planted.dkim_record = "v=DKIM1; k=ed25519; p=ATTACKER";
    h.engine.keys().put(planted);
    auto listed = h.call(h.web_peer, ipc::KeyList{h.password_of("alice")});
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(listed)) << error_message(listed);
    ASSERT_EQ(std::get<ipc::KeysReply>(listed).keys.size(), 1U);
    EXPECT_EQ(std::get<ipc::KeysReply>(listed).keys[0].state, "pending-publish");
    EXPECT_EQ(std::get<ipc::KeysReply>(listed).keys[0].dns_record, "")
        << "no record that the token does not hold";

    ASSERT_NO_FATAL_FAILURE(grant_key_generate("s2", "CHG-10 new selector"));
    auto made = h.call(h.web_peer,
                       ipc::KeyGenerate{h.password_of("alice"), "example.com", "s2", "ed25519"});
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(made)) << error_message(made);
    EXPECT_EQ(gate.generated, 1) << "the key is made in the token";
    const ipc::KeyView& key = std::get<ipc::KeysReply>(made).keys.at(0);
    EXPECT_EQ(key.state, "pending-publish");
    EXPECT_FALSE(key.dns_record.empty());
    EXPECT_EQ(key.dns_record.find("ATTACKER"), std::string::npos) << key.dns_record;
    EXPECT_EQ(h.engine.keys().find("example.com", "s2")->dkim_record, key.dns_record)
        << "the registry holds the token's record now";
}

TEST_F(ServiceTest, KeysAreListedForAnyUserAndGeneratedOnlyUnderAKeyGenerateGrant) {
    gate.add_key("example.com", "s1");
    auto listed = h.call(h.web_peer, ipc::KeyList{h.password_of("alice")});
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(listed)) << error_message(listed);
    ASSERT_EQ(std::get<ipc::KeysReply>(listed).keys.size(), 1U);
    EXPECT_EQ(std::get<ipc::KeysReply>(listed).keys[0].dns_name, "s1._domainkey.example.com");
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::KeyList{})), "unauthenticated");

    ipc::KeyGenerate generate{h.password_of("alice"), "example.com", "s2", "ed25519"};
    auto refused = h.call(h.web_peer, generate);
    EXPECT_EQ(error_code(refused), "forbidden") << "no key.generate grant";
    EXPECT_EQ(gate.keys.size(), 1U);

    ASSERT_NO_FATAL_FAILURE(grant_key_generate("s2", "CHG-9 new selector"));
    EXPECT_TRUE(gate.in) << "a key.generate grant logs the token in";

    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::KeyGenerate{h.password_of("alice"), "example.com",
                                                             "s3", "ed25519"})),
              "forbidden")
        << "the grant names selector s2 only";
    generate.auth = h.password_of("alice");
    auto made = h.call(h.web_peer, generate);
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(made)) << error_message(made);
    EXPECT_EQ(std::get<ipc::KeysReply>(made).keys.at(0).selector, "s2");
    EXPECT_EQ(std::get<ipc::KeysReply>(made).keys.at(0).state, "pending-publish");
    generate.auth = h.password_of("alice");
    auto again = h.call(h.web_peer, generate);
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(again)) << error_message(again);
    EXPECT_EQ(std::get<ipc::KeysReply>(again).message, "already generated; publish its record")
        << "a rerun finds the key it made";
    EXPECT_EQ(gate.generated, 1);
    generate.auth = h.password_of("alice");
    generate.algorithm = "rsa-2048";
    EXPECT_EQ(error_code(h.call(h.web_peer, generate)), "conflict") << "another algorithm";
    generate.auth = h.password_of("alice");
    generate.selector = "s1";
    EXPECT_EQ(error_code(h.call(h.web_peer, generate)), "conflict") << "an active key's name";

    auto log = h.engine.journal().store().audit_records(1, 1000);
    ASSERT_TRUE(log);
    EXPECT_TRUE(std::any_of(log->begin(), log->end(), [](const jit::AuditRecord& a) {
        return a.action == "key.generated" && a.outcome == "ok" && a.actor == "alice";
    }));
}

TEST_F(ServiceTest, AuditVerifyWalksTheChainForAuditorsOnly) {
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::AuditVerify{h.password_of("alice")})),
              "forbidden");
    const auto id = h.request_sign("example.com", "s1", 600);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(h.decide("bob", "approve", id)));
    auto verified = h.call(h.admin_peer, ipc::AuditVerify{});
    ASSERT_TRUE(std::holds_alternative<ipc::AuditVerifyReply>(verified)) << error_message(verified);
    const auto& report = std::get<ipc::AuditVerifyReply>(verified);
    EXPECT_TRUE(report.ok) << report.problem;
    EXPECT_GT(report.records, 3);
    EXPECT_EQ(report.head, jit::to_hex(h.engine.journal().head()));
}

class ApproverPinTest : public ::testing::Test {
  protected:
    static signerd::ServiceOptions approver_mode() {
        signerd::ServiceOptions o;
        o.pin_source = signerd::PinSourceKind::approver;
        return o;
    }
    FakeGate gate;
    SignerdHarness h{gate, approver_mode()};
};

TEST_F(ApproverPinTest, TheActivatingApprovalBringsThePinWhichIsUsedOnce) {
    const auto id = h.request_sign("example.com", "s1", 600);
    EXPECT_EQ(error_code(h.decide("bob", "approve", id)), "invalid") << "no PIN";
    EXPECT_EQ(error_code(h.decide("bob", "approve", id, "9999")), "forbidden") << "wrong PIN";
    EXPECT_EQ(h.engine.authority().find_request(id)->state, jit::RequestState::pending)
        << "a wrong PIN does not approve";
    auto ok = h.decide("bob", "approve", id, "1234");
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(ok)) << error_message(ok);
    EXPECT_TRUE(gate.in);
    EXPECT_FALSE(gate.last_relogin) << "an approver's PIN is never kept for re-login";
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(header_block("example.com", "s1"))));
    h.clock.advance(601s);
    h.service->tick();
    EXPECT_FALSE(gate.in);
    // The next grant needs the PIN again: signerd kept no copy.
    const auto id2 = h.request_sign("example.com", "s1", 600);
    EXPECT_EQ(error_code(h.decide("carol", "approve", id2)), "invalid");
}

// Finding 4 of issue 18: the checkpoints are records of the chain, and the log says which
// must exist (audit_log: signerd_fixture.hpp).
TEST_F(ServiceTest, CheckpointsComeAtTheIntervalWhileLoggedInAndBeforeEveryLogout) {
    grant();
    ASSERT_TRUE(gate.in);
    const auto login = audit_log(h).back();
    EXPECT_EQ(login.action, "token.login");
    EXPECT_NE(login.detail.find("every=300000ms,10000records"), std::string::npos) << login.detail;
    h.clock.advance(4min);
    h.service->tick();
    EXPECT_EQ(gate.checkpoints, 0) << "not due yet";
    h.clock.advance(1min);
    h.service->tick();
    EXPECT_EQ(gate.checkpoints, 1) << "due after checkpoint_interval, even with nothing new";
    auto log = audit_log(h);
    auto periodic = jit::parse_checkpoint_record(log.back());
    ASSERT_TRUE(periodic);
    EXPECT_EQ(periodic->kind, "periodic");
    EXPECT_EQ(periodic->seq, log.back().seq - 1);
    EXPECT_EQ(periodic->head, log[log.size() - 2].hash);
    h.clock.advance(10s);
    h.service->tick();
    EXPECT_EQ(gate.checkpoints, 1);

    h.service->shutdown();
    EXPECT_FALSE(gate.in);
    log = audit_log(h);
    ASSERT_GE(log.size(), 2U);
    EXPECT_EQ(log.back().action, "token.logout");
    const auto before = jit::parse_checkpoint_record(log[log.size() - 2]);
    ASSERT_TRUE(before);
    EXPECT_EQ(before->kind, "logout");
    EXPECT_EQ(log[log.size() - 2].outcome, "ok");
    jit::LogCheckOptions o;
    o.now = h.clock.now();
    o.signature_valid = [](const jit::Checkpoint& c) { return c.signature == "sig"; };
    const auto report = jit::verify_log(log, {}, {}, o);
    EXPECT_TRUE(report.chain.ok) << report.chain.problem;
    EXPECT_EQ(report.checkpoints, 2);
}

TEST_F(ServiceTest, ACheckpointThatCannotBeSignedStillLogsOutAndTheLogSaysSo) {
    const auto g = grant();
    ASSERT_TRUE(gate.in);
    gate.checkpoint_fails = true;
    auto reply =
        h.call(h.admin_peer, ipc::GrantRevoke{h.password_of("carol", true), g, "incident"});
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(reply)) << error_message(reply);
    EXPECT_FALSE(gate.in) << "fail closed: the token does not stay logged in";
    const auto log = audit_log(h);
    ASSERT_GE(log.size(), 2U);
    EXPECT_EQ(log.back().action, "token.logout");
    EXPECT_EQ(log[log.size() - 2].action, "audit.checkpoint");
    EXPECT_EQ(log[log.size() - 2].outcome, "failed");
    EXPECT_NE(log[log.size() - 2].reason.find("CKR_DEVICE_ERROR"), std::string::npos);
    jit::LogCheckOptions o;
    o.now = h.clock.now();
    o.signature_valid = [](const jit::Checkpoint& c) { return c.signature == "sig"; };
    const auto report = jit::verify_log(log, {}, {}, o);
    EXPECT_FALSE(report.chain.ok);
    EXPECT_EQ(report.chain.first_broken, log.back().seq);
    EXPECT_NE(report.chain.problem.find("follows a checkpoint that failed"), std::string::npos)
        << report.chain.problem;
}

// Red-team finding F3: a crash (a signerd.start while the log says the token is logged in)
// is broken until a signed checkpoint covers it; signerd writes a "recovery" one at its next
// login, naming the start record. A forged start after a cut never gets one.
jit::LogReport verify_with_fake_key(SignerdHarness& h) {
    jit::LogCheckOptions o;
    o.now = h.clock.now();
    o.signature_valid = [](const jit::Checkpoint& c) { return c.signature == "sig"; };
    return jit::verify_log(audit_log(h), {}, {}, o);
}

std::int64_t last_start(SignerdHarness& h) {
    const auto log = audit_log(h);
    for (auto it = log.rbegin(); it != log.rend(); ++it) {
        if (it->action == "signerd.start") {
            return it->seq;
        }
    }
    return 0;
}

TEST_F(ServiceTest, AnHonestCrashIsReportedUntilTheNextLoginWritesItsRecoveryCheckpoint) {
    ASSERT_TRUE(h.service->start("test"));
    grant();
    ASSERT_TRUE(gate.in);
    ASSERT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(block)));
    ASSERT_TRUE(verify_with_fake_key(h).chain.ok);
    // kill -9 while logged in: no checkpoint, no token.logout.
    gate.in = false;
    h.restart();
    h.clock.advance(3s);
    ASSERT_TRUE(h.service->start("test"));
    const std::int64_t start = last_start(h);
    EXPECT_NE(audit_log(h).back().detail.find("unclean end"), std::string::npos)
        << audit_log(h).back().detail;
    auto report = verify_with_fake_key(h);
    EXPECT_FALSE(report.chain.ok);
    EXPECT_EQ(report.chain.first_broken, start) << report.chain.problem;
    EXPECT_NE(report.chain.problem.find("no signed checkpoint covers it"), std::string::npos)
        << report.chain.problem;
    // The grant is still active: the next tick logs in, and the recovery follows the login.
    h.service->tick();
    ASSERT_TRUE(gate.in);
    const auto log = audit_log(h);
    ASSERT_GE(log.size(), 2U);
    EXPECT_EQ(log[log.size() - 2].action, "token.login");
    const auto recovery = jit::parse_checkpoint_record(log.back());
    ASSERT_TRUE(recovery);
    EXPECT_EQ(recovery->kind, "recovery");
    EXPECT_EQ(recovery->crash, start);
    report = verify_with_fake_key(h);
    ASSERT_TRUE(report.chain.ok) << report.chain.problem;
    EXPECT_EQ(report.unclean_ends, std::vector<std::int64_t>{start});
    EXPECT_EQ(gate.checkpoints, 1);
    h.clock.advance(5min);
    h.service->tick();
    EXPECT_EQ(gate.checkpoints, 2);
    EXPECT_EQ(jit::parse_checkpoint_record(audit_log(h).back())->kind, "periodic")
        << "recovered: periodic again";
    h.service->shutdown();
    report = verify_with_fake_key(h);
    ASSERT_TRUE(report.chain.ok) << report.chain.problem;
}

TEST_F(ServiceTest, ACrashWithoutAGrantAtRestartStaysReportedUntilALoginRecoversIt) {
    ASSERT_TRUE(h.service->start("test"));
    grant(600);
    ASSERT_TRUE(gate.in);
    gate.in = false;  // kill -9
    h.restart();
    h.clock.advance(1h);  // the grant ended while signerd was down
    ASSERT_TRUE(h.service->start("test"));
    const std::int64_t crash = last_start(h);
    h.service->tick();
    EXPECT_FALSE(gate.in) << "no grant: the PIN is not presented for a recovery";
    auto report = verify_with_fake_key(h);
    EXPECT_FALSE(report.chain.ok);
    EXPECT_EQ(report.chain.first_broken, crash) << report.chain.problem;
    // A clean stop and start while logged out: the unclean end still waits.
    h.service->shutdown();
    h.restart();
    ASSERT_TRUE(h.service->start("test"));
    EXPECT_NE(audit_log(h).back().detail.find("the unclean end at record " + std::to_string(crash) +
                                              " is not yet covered"),
              std::string::npos)
        << audit_log(h).back().detail;
    EXPECT_FALSE(verify_with_fake_key(h).chain.ok);
    // The recovery cannot be signed at the next login: recorded as failed, tried again.
    gate.checkpoint_fails = true;
    grant();
    ASSERT_TRUE(gate.in);
    report = verify_with_fake_key(h);
    EXPECT_FALSE(report.chain.ok);
    EXPECT_EQ(report.failed_checkpoints, 1);
    gate.checkpoint_fails = false;
    h.clock.advance(5min);
    h.service->tick();
    const auto recovery = jit::parse_checkpoint_record(audit_log(h).back());
    ASSERT_TRUE(recovery);
    EXPECT_EQ(recovery->kind, "recovery") << "the due checkpoint is the recovery";
    EXPECT_EQ(recovery->crash, crash);
    report = verify_with_fake_key(h);
    ASSERT_TRUE(report.chain.ok) << report.chain.problem;
    EXPECT_EQ(report.unclean_ends, std::vector<std::int64_t>{crash});
}

TEST_F(ServiceTest, ACleanStopNeedsNoRecovery) {
    ASSERT_TRUE(h.service->start("test"));
    grant();
    h.service->shutdown();
    h.restart();
    ASSERT_TRUE(h.service->start("test"));
    EXPECT_EQ(audit_log(h).back().detail, "test");
    h.service->tick();
    ASSERT_TRUE(gate.in);
    EXPECT_EQ(audit_log(h).back().action, "token.login") << "no recovery checkpoint";
    const auto report = verify_with_fake_key(h);
    ASSERT_TRUE(report.chain.ok) << report.chain.problem;
    EXPECT_TRUE(report.unclean_ends.empty());
}

TEST(JournalTimeTest, RecordTimesFollowTheChainWhateverTheWritersClocks) {
    JitEngine engine;
    jit::AuditRecord r;
    r.actor = "writer";
    r.action = "noise";
    r.time = test_epoch();
    ASSERT_TRUE(engine.journal().write({}, r));
    r.time = test_epoch() - 2s;  // read the clock first, committed second; or a clock step
    std::vector<jit::AuditRecord> written{r};
    ASSERT_TRUE(engine.journal().write({}, written));
    EXPECT_EQ(written.front().time, test_epoch());
    engine.restart();  // the floor is read back from the store
    written = {r};
    ASSERT_TRUE(engine.journal().write({}, written));
    EXPECT_EQ(written.front().time, test_epoch());
    std::vector<jit::AuditRecord> none;
    ASSERT_TRUE(engine.journal().write_checkpoint(
        [&](std::int64_t seq, const jit::ChainHash& head, TimePoint not_before) {
            jit::Checkpoint c;
            c.seq = seq;
            c.head = head;
            c.time = not_before;
            c.kind = "periodic";
            c.every_ms = 1000;
            c.every_records = 10;
            return jit::checkpoint_record(c, "test");
        },
        none));
    EXPECT_EQ(none.front().time, test_epoch()) << "the checkpoint maker is told the floor";
}

}  // namespace
}  // namespace dkim::test

// Passkeys through the Service (issue 22): registration, username-less login, and decisions
// whose WebAuthn assertion is bound to the decision. The assertions come from a software
// authenticator written from the W3C text (soft_authenticator.hpp), not from our own code; the
// verification of Chromium's recorded vectors is tests/appliance/jit/webauthn_test.cpp.
// Each refusal here is one a compromised dkim-webd, a tampering proxy or a phishing page would
// try: the assertion of one decision spent on another, replayed, of another user, another
// origin, without user verification, with a counter going back.

#include <gtest/gtest.h>

#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/jit/challenges.hpp"
#include "fake_gate.hpp"
#include "signerd_fixture.hpp"
#include "soft_authenticator.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

signerd::ServiceOptions passkey_options() {
    signerd::ServiceOptions o = file_pin_options();
    o.webauthn.rp_id = "localhost";
    o.webauthn.origins = {"https://localhost:8443"};
    return o;
}

jit::Policy policy_with_factors(bool totp, bool webauthn) {
    jit::Policy p = jit::Policy::defaults();
    for (const jit::Operation op : jit::kOperations) {
        p.operations[op].accepts_totp = totp;
        p.operations[op].accepts_webauthn = webauthn;
    }
    return p;
}

class PasskeyTest : public ::testing::Test {
  protected:
    explicit PasskeyTest(jit::Policy policy = jit::Policy::defaults())
        : h{gate, passkey_options(), std::move(policy)} {}

    FakeGate gate;
    SignerdHarness h;
    std::map<std::string, SoftAuthenticator> keys;

    template <class Reply>
    static const Reply& expect(const ipc::Reply& reply) {
        static const Reply empty{};
        const auto* r = std::get_if<Reply>(&reply);
        EXPECT_NE(r, nullptr) << error_code(reply) << ": " << error_message(reply);
        return r != nullptr ? *r : empty;
    }

    ipc::PasskeyChallengeReply challenge(const std::string& who, const std::string& purpose,
                                         std::int64_t id = 0, const std::string& reason = "") {
        ipc::PasskeyChallenge r;
        r.auth = h.password_of(who);
        r.purpose = purpose;
        r.id = id;
        r.reason = reason;
        return expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, r));
    }

    // Registers a first passkey for `who`, confirmed with a TOTP code.
    ipc::Reply enrol(const std::string& who) {
        SoftAuthenticator& key = keys[who];
        const auto options = challenge(who, "register");
        const auto made = key.create(options.challenge);
        ipc::PasskeyRegister r;
        r.auth = h.password_of(who, /*with_totp=*/true);
        r.name = "key of " + who;
        r.client_data_json = made.client_data_json;
        r.attestation_object = made.attestation_object;
        return confirmed_at_the_cli(h, who, h.call(h.web_peer, r));
    }

    // `who` decides request `id` with an assertion over the challenge signerd issued for it.
    ipc::Reply decide_with_passkey(const std::string& who, const std::string& action,
                                   std::int64_t id, const std::string& reason = "") {
        const auto options = challenge(who, action, id, reason);
        ipc::ElevationDecide d;
        d.auth = h.password_of(who);
        d.auth.passkey = keys[who].get(options.challenge);
        d.action = action;
        d.id = id;
        d.reason = reason;
        return h.call(h.web_peer, d);
    }

    std::string state_of(std::int64_t request) {
        const auto found = h.engine.authority().find_request(request);
        return found ? std::string(jit::to_string(found->state_at(h.clock.now()))) : "";
    }

    std::vector<jit::AuditRecord> log() {
        auto records = h.engine.journal().store().audit_records(1, 100'000);
        EXPECT_TRUE(records);
        return records ? *records : std::vector<jit::AuditRecord>{};
    }
};

TEST_F(PasskeyTest, ApprovalWithAPasskeyIsRecordedWithTheCredentialAndTheChallenge) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto id = h.request_sign("example.com", "s1", 3600);
    const auto options = challenge("bob", "approve", id);
    // The challenge is 16 random bytes and the SHA-256 of the statement it commits to.
    ASSERT_EQ(options.challenge.size(), 48U);
    const auto digest = crypto::Sha256::hash(options.statement);
    EXPECT_EQ(options.challenge.substr(16), std::string(digest.begin(), digest.end()));
    EXPECT_NE(options.statement.find("action=approve\nid=" + std::to_string(id)),
              std::string::npos);
    EXPECT_NE(options.statement.find("actor=bob"), std::string::npos);
    EXPECT_EQ(options.credentials, std::vector<std::string>{keys["bob"].credential_id});

    ipc::ElevationDecide d;
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["bob"].get(options.challenge);
    d.action = "approve";
    d.id = id;
    const auto ok = expect<ipc::OkReply>(h.call(h.web_peer, d));
    EXPECT_NE(ok.message.find("grant"), std::string::npos);
    EXPECT_EQ(state_of(id), "approved");

    bool found = false;
    for (const auto& r : log()) {
        if (r.action == "elevation.approve" && r.request_id == id) {
            found = true;
            EXPECT_NE(r.detail.find("factor=webauthn"), std::string::npos) << r.detail;
            EXPECT_NE(
                r.detail.find("credential=" + crypto::base64url_encode(keys["bob"].credential_id)),
                std::string::npos);
            EXPECT_NE(r.detail.find("challenge=" + crypto::base64url_encode(options.challenge)),
                      std::string::npos);
            EXPECT_NE(r.detail.find("signature="), std::string::npos);
        }
    }
    EXPECT_TRUE(found);
}

TEST_F(PasskeyTest, TotpApprovalsAreRecordedAsTotp) {
    const auto id = h.request_sign("example.com", "s1", 3600);
    expect<ipc::OkReply>(h.decide("bob", "approve", id));
    bool found = false;
    for (const auto& r : log()) {
        if (r.action == "elevation.approve" && r.request_id == id) {
            found = true;
            EXPECT_NE(r.detail.find("factor=totp"), std::string::npos) << r.detail;
        }
    }
    EXPECT_TRUE(found);
}

// The tampering proxy: the approver approves request A in the console; the request on its way
// names B. signerd rebuilds B's statement, which is not the one A's challenge commits to.
TEST_F(PasskeyTest, AnAssertionForOneRequestDoesNotApproveAnother) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto a = h.request_sign("example.com", "s1", 3600);
    const auto b = h.request_sign("example.org", "s1", 3600);
    const auto options = challenge("bob", "approve", a);
    ipc::ElevationDecide d;
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["bob"].get(options.challenge);
    d.action = "approve";
    d.id = b;
    const auto reply = h.call(h.web_peer, d);
    EXPECT_EQ(error_code(reply), "unauthenticated");
    EXPECT_EQ(state_of(a), "pending");
    EXPECT_EQ(state_of(b), "pending");
    bool recorded = false;
    for (const auto& r : log()) {
        recorded |= r.action == "auth.webauthn" && r.outcome == "refused" &&
                    r.reason.find("another decision") != std::string::npos;
    }
    EXPECT_TRUE(recorded) << "the refusal names why, on the audit log";
    // And the challenge is spent: the same assertion cannot approve A afterwards either.
    d.id = a;
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    EXPECT_EQ(state_of(a), "pending");
}

TEST_F(PasskeyTest, AnApprovalsAssertionDoesNotDenyAndADenialIsBoundToItsReason) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto id = h.request_sign("example.com", "s1", 3600);
    auto options = challenge("bob", "approve", id);
    ipc::ElevationDecide d;
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["bob"].get(options.challenge);
    d.action = "deny";
    d.id = id;
    d.reason = "no";
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    options = challenge("bob", "deny", id, "not this week");
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["bob"].get(options.challenge);
    d.reason = "approved by mistake";  // webd changed the reason
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    EXPECT_EQ(state_of(id), "pending");
    expect<ipc::OkReply>(decide_with_passkey("bob", "deny", id, "not this week"));
    EXPECT_EQ(state_of(id), "denied");
}

TEST_F(PasskeyTest, AReplayedAssertionIsRefused) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto id = h.request_sign("example.com", "s1", 3600);
    const auto options = challenge("bob", "deny", id, "no");
    ipc::ElevationDecide d;
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["bob"].get(options.challenge);
    d.action = "deny";
    d.id = id;
    d.reason = "no";
    // A first attempt that fails for a reason of webd's (the wrong request) spends the challenge:
    const auto other = h.request_sign("example.org", "s1", 3600);
    d.id = other;
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    d.id = id;
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    // A successful one cannot be replayed either.
    const auto options2 = challenge("bob", "deny", id, "no");
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["bob"].get(options2.challenge);
    const auto first = d;
    expect<ipc::OkReply>(h.call(h.web_peer, d));
    const auto again = h.request_sign("example.net", "s1", 3600);
    auto replay = first;
    replay.id = again;
    EXPECT_EQ(error_code(h.call(h.web_peer, replay)), "unauthenticated");
    EXPECT_EQ(state_of(again), "pending");
}

TEST_F(PasskeyTest, AnotherUsersChallengeOrPasskeyIsRefused) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    expect<ipc::PasskeysReply>(enrol("carol"));
    const auto id = h.request_sign("example.com", "s1", 3600);
    // carol's authenticator over bob's challenge, sent as bob: the credential is not bob's.
    auto options = challenge("bob", "approve", id);
    ipc::ElevationDecide d;
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["carol"].get(options.challenge);
    d.action = "approve";
    d.id = id;
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    // bob's assertion over bob's challenge, sent as carol: the challenge is not carol's.
    options = challenge("bob", "approve", id);
    d.auth = h.password_of("carol");
    d.auth.passkey = keys["bob"].get(options.challenge);
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    EXPECT_EQ(state_of(id), "pending");
}

TEST_F(PasskeyTest, WrongOriginMissingUserVerificationAndACounterGoingBackAreRefused) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto id = h.request_sign("example.com", "s1", 3600);
    SoftAuthenticator& key = keys["bob"];
    key.origin = "https://phish.example:8443";  // a phishing page relaying the ceremony
    EXPECT_EQ(error_code(decide_with_passkey("bob", "approve", id)), "unauthenticated");
    key.origin = "https://localhost:8443";
    key.user_verified = false;  // touched, but no PIN or biometrics
    EXPECT_EQ(error_code(decide_with_passkey("bob", "approve", id)), "unauthenticated");
    key.user_verified = true;
    key.counter = 0;  // a clone of the authenticator, behind the original
    EXPECT_EQ(error_code(decide_with_passkey("bob", "approve", id)), "unauthenticated");
    EXPECT_EQ(state_of(id), "pending");
    key.rp_id = "example.com";  // made for another relying party
    EXPECT_EQ(error_code(decide_with_passkey("bob", "approve", id)), "unauthenticated");
    key.rp_id = "localhost";
    // Each counted like a wrong password: the fifth failure locks bob out, whatever he brings.
    EXPECT_FALSE(h.engine.directory().locked_out_at("bob", h.clock.now()));
    key.counter = 1000;
    key.user_present = false;
    EXPECT_EQ(error_code(decide_with_passkey("bob", "approve", id)), "unauthenticated");
    EXPECT_TRUE(h.engine.directory().locked_out_at("bob", h.clock.now()));
    // Locked out: not even a challenge (his password is refused like any other).
    ipc::PasskeyChallenge again;
    again.auth = h.password_of("bob");
    again.purpose = "approve";
    again.id = id;
    EXPECT_EQ(error_code(h.call(h.web_peer, again)), "unauthenticated");
    EXPECT_EQ(state_of(id), "pending");
    std::vector<std::string> reasons;
    for (const auto& r : log()) {
        if (r.action == "auth.webauthn" && r.outcome == "refused") {
            reasons.push_back(r.reason);
        }
    }
    ASSERT_EQ(reasons.size(), 5U);
    EXPECT_NE(reasons[0].find("webauthn origin"), std::string::npos) << reasons[0];
    EXPECT_NE(reasons[1].find("webauthn user_verified"), std::string::npos) << reasons[1];
    EXPECT_NE(reasons[2].find("webauthn counter"), std::string::npos) << reasons[2];
    EXPECT_NE(reasons[3].find("webauthn rp_id"), std::string::npos) << reasons[3];
    EXPECT_NE(reasons[4].find("webauthn user_present"), std::string::npos) << reasons[4];
}

TEST_F(PasskeyTest, UsernamelessLoginMakesASessionAndCountsFailures) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    auto login = [&](bool tamper) {
        const auto options =
            expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, ipc::PasskeyLoginChallenge{}));
        EXPECT_EQ(options.rp_id, "localhost");
        ipc::SessionCreate create;
        create.auth.passkey = keys["bob"].get(options.challenge, jit::passkey_user_handle("bob"));
        if (tamper) {
            create.auth.passkey.signature.back() ^= 1;
        }
        create.ttl_seconds = 600;
        return h.call(h.web_peer, create);
    };
    const auto session = expect<ipc::OkReply>(login(false));
    ipc::WhoAmI who;
    who.auth.token = session.secret;
    who.auth.token_kind = "session";
    const auto me = expect<ipc::IdentityReply>(h.call(h.web_peer, who));
    EXPECT_EQ(me.name, "bob");
    EXPECT_EQ(me.passkeys, 1U);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(error_code(login(true)), "unauthenticated");
    }
    EXPECT_TRUE(h.engine.directory().locked_out_at("bob", h.clock.now()));
    EXPECT_EQ(error_code(login(false)), "unauthenticated") << "a lockout holds for passkeys too";
    // A passkey alone is not a credential for anything but a session.
    const auto options =
        expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, ipc::PasskeyLoginChallenge{}));
    ipc::ElevationList list;
    list.auth.passkey = keys["bob"].get(options.challenge);
    EXPECT_EQ(error_code(h.call(h.web_peer, list)), "unauthenticated");
}

TEST_F(PasskeyTest, ALoginChallengeDoesNotApproveAndADecisionChallengeDoesNotLogIn) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto id = h.request_sign("example.com", "s1", 3600);
    const auto login =
        expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, ipc::PasskeyLoginChallenge{}));
    ipc::ElevationDecide d;
    d.auth = h.password_of("bob");
    d.auth.passkey = keys["bob"].get(login.challenge);
    d.action = "approve";
    d.id = id;
    EXPECT_EQ(error_code(h.call(h.web_peer, d)), "unauthenticated");
    const auto decision = challenge("bob", "approve", id);
    ipc::SessionCreate create;
    create.auth.passkey = keys["bob"].get(decision.challenge);
    EXPECT_EQ(error_code(h.call(h.web_peer, create)), "unauthenticated");
    EXPECT_EQ(state_of(id), "pending");
}

TEST_F(PasskeyTest, ASecondPasskeyNeedsTheConsentOfTheFirstBoundToIt) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    SoftAuthenticator second;
    const auto options = challenge("bob", "register");
    EXPECT_EQ(options.user_handle, jit::passkey_user_handle("bob"));
    EXPECT_EQ(options.credentials, std::vector<std::string>{keys["bob"].credential_id});
    const auto made = second.create(options.challenge);
    ipc::PasskeyRegister r;
    r.name = "spare";
    r.client_data_json = made.client_data_json;
    r.attestation_object = made.attestation_object;
    // A TOTP code no longer adds passkeys once one exists (webd sees every code).
    r.auth = h.password_of("bob", /*with_totp=*/true);
    EXPECT_EQ(error_code(h.call(h.web_peer, r)), "forbidden");
    // Consent for another credential (webd swapped the attestation object) does not fit.
    SoftAuthenticator planted;
    const auto options2 = challenge("bob", "register");
    const auto made2 = second.create(options2.challenge);
    const auto fake = planted.create(options2.challenge);
    ipc::PasskeyChallenge confirm;
    confirm.auth = h.password_of("bob");
    confirm.purpose = "register_confirm";
    confirm.attestation_object = made2.attestation_object;
    const auto consent = expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, confirm));
    r.auth = h.password_of("bob");
    r.auth.passkey = keys["bob"].get(consent.challenge);
    r.client_data_json = fake.client_data_json;
    r.attestation_object = fake.attestation_object;
    EXPECT_EQ(error_code(h.call(h.web_peer, r)), "unauthenticated");
    EXPECT_EQ(h.engine.directory().passkeys("bob").size(), 1U);
    // The consent bound to the right one adds it.
    const auto options3 = challenge("bob", "register");
    const auto made3 = second.create(options3.challenge);
    confirm.auth = h.password_of("bob");
    confirm.attestation_object = made3.attestation_object;
    const auto consent3 = expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, confirm));
    r.auth = h.password_of("bob");
    r.auth.passkey = keys["bob"].get(consent3.challenge);
    r.client_data_json = made3.client_data_json;
    r.attestation_object = made3.attestation_object;
    expect<ipc::PasskeysReply>(h.call(h.web_peer, r));
    EXPECT_EQ(h.engine.directory().passkeys("bob").size(), 2U);
}

TEST_F(PasskeyTest, AFirstPasskeyNeedsATotpCodeAndARegistrationChallengeOfItsOwn) {
    // alice has no TOTP: she cannot add a passkey through webd with her password alone.
    SoftAuthenticator key;
    auto options = challenge("alice", "register");
    auto made = key.create(options.challenge);
    ipc::PasskeyRegister r;
    r.auth = h.password_of("alice");
    r.name = "laptop";
    r.client_data_json = made.client_data_json;
    r.attestation_object = made.attestation_object;
    EXPECT_NE(error_code(h.call(h.web_peer, r)), "");
    EXPECT_TRUE(h.engine.directory().passkeys("alice").empty());
    // bob's registration challenge used by carol: refused.
    options = challenge("bob", "register");
    made = key.create(options.challenge);
    r.auth = h.password_of("carol", true);
    r.client_data_json = made.client_data_json;
    r.attestation_object = made.attestation_object;
    EXPECT_EQ(error_code(h.call(h.web_peer, r)), "invalid");
    // A decision's challenge is not a registration's.
    const auto id = h.request_sign("example.com", "s1", 3600);
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto decision = challenge("bob", "approve", id);
    made = SoftAuthenticator().create(decision.challenge);
    r.auth = h.password_of("carol", true);
    r.client_data_json = made.client_data_json;
    r.attestation_object = made.attestation_object;
    EXPECT_EQ(error_code(h.call(h.web_peer, r)), "invalid");
    EXPECT_TRUE(h.engine.directory().passkeys("carol").empty());
}

// The red team's finding 1: webd sees a TOTP code at every console login; with one of a user who
// has no passkey it registered a passkey of its own, which then approved and signed in as that
// user for good. A first passkey is now pending until root (or an admin under an admin grant)
// confirms it at the CLI, as a first TOTP is enrolled only there.
TEST_F(PasskeyTest, AFirstPasskeyIsPendingUntilConfirmedAtTheCli) {
    SoftAuthenticator webds_key;  // what a compromised webd would register as bob's
    const auto options = challenge("bob", "register");
    const auto made = webds_key.create(options.challenge);
    ipc::PasskeyRegister r;
    r.auth = h.password_of("bob", /*with_totp=*/true);  // the code webd saw at bob's login
    r.name = "not bob's";
    r.client_data_json = made.client_data_json;
    r.attestation_object = made.attestation_object;
    const auto pending = expect<ipc::PasskeysReply>(h.call(h.web_peer, r));
    ASSERT_EQ(pending.passkeys.size(), 1U);
    EXPECT_FALSE(pending.passkeys.front().confirmed);
    // It decides nothing: no decision challenge for a user without a confirmed passkey...
    const auto id = h.request_sign("example.com", "s1", 3600);
    ipc::PasskeyChallenge c;
    c.auth = h.password_of("bob");
    c.purpose = "approve";
    c.id = id;
    EXPECT_EQ(error_code(h.call(h.web_peer, c)), "conflict");
    // ...and signs in as nobody.
    const auto login =
        expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, ipc::PasskeyLoginChallenge{}));
    ipc::SessionCreate create;
    create.auth.passkey = webds_key.get(login.challenge, jit::passkey_user_handle("bob"));
    EXPECT_EQ(error_code(h.call(h.web_peer, create)), "unauthenticated");
    ipc::WhoAmI who{h.password_of("bob")};
    EXPECT_EQ(expect<ipc::IdentityReply>(h.call(h.web_peer, who)).passkeys, 0U);
    // The web peer cannot confirm it, whoever's login it uses.
    ipc::PasskeyConfirm confirm{h.password_of("carol"), "bob", webds_key.credential_id};
    EXPECT_EQ(error_code(h.call(h.web_peer, confirm)), "forbidden");
    EXPECT_FALSE(h.engine.directory().passkeys("bob").front().confirmed);
    // Root at the CLI confirms it (having checked with bob that the id is his); then it works.
    confirm.auth = {};
    expect<ipc::OkReply>(h.call(h.admin_peer, confirm));
    EXPECT_EQ(error_code(h.call(h.admin_peer, confirm)), "conflict") << "once";
    const auto again =
        expect<ipc::PasskeyChallengeReply>(h.call(h.web_peer, ipc::PasskeyLoginChallenge{}));
    create.auth.passkey = webds_key.get(again.challenge, jit::passkey_user_handle("bob"));
    expect<ipc::OkReply>(h.call(h.web_peer, create));
    bool recorded = false;
    for (const auto& rec : log()) {
        recorded |= rec.action == "passkey.confirm" && rec.actor == "local:root";
    }
    EXPECT_TRUE(recorded);
}

TEST_F(PasskeyTest, TheLastPasskeyIsRemovedOnlyAtTheCli) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    ipc::PasskeyRemove remove;
    remove.auth = h.password_of("bob", true);
    remove.credential_id = keys["bob"].credential_id;
    const auto refused = h.call(h.web_peer, remove);
    EXPECT_EQ(error_code(refused), "forbidden");
    EXPECT_EQ(h.engine.directory().passkeys("bob").size(), 1U);
    // Another user's, through webd: refused whoever asks.
    remove.auth = h.password_of("carol", true);
    remove.user = "bob";
    EXPECT_EQ(error_code(h.call(h.web_peer, remove)), "forbidden");
    // The local operator at the CLI.
    remove.auth = {};
    expect<ipc::OkReply>(h.call(h.admin_peer, remove));
    EXPECT_TRUE(h.engine.directory().passkeys("bob").empty());
}

TEST_F(PasskeyTest, PolicyDecidesWhichFactorsADecisionAccepts) {
    SignerdHarness strict{gate, passkey_options(), policy_with_factors(false, true)};
    const auto id = strict.request_sign("example.com", "s1", 3600);
    const auto reply = strict.decide("bob", "approve", id);
    EXPECT_EQ(error_code(reply), "forbidden");
    EXPECT_EQ(std::get<ipc::ErrorReply>(reply).rule, "factor");
    EXPECT_NE(error_message(reply).find("passkey"), std::string::npos);
    ipc::WhoAmI who{strict.password_of("bob")};
    const auto me = expect<ipc::IdentityReply>(strict.call(strict.web_peer, who));
    EXPECT_TRUE(me.permissions.approve.empty()) << "bob has TOTP only; sign wants a passkey";
    ASSERT_FALSE(me.factors.empty());
    EXPECT_EQ(me.factors.front().factors, std::vector<std::string>{"webauthn"});

    SignerdHarness lax{gate, passkey_options(), policy_with_factors(true, false)};
    ipc::PasskeyChallenge c;
    c.auth = lax.password_of("bob");
    c.purpose = "register";
    const auto options = expect<ipc::PasskeyChallengeReply>(lax.call(lax.web_peer, c));
    SoftAuthenticator key;
    const auto made = key.create(options.challenge);
    ipc::PasskeyRegister r;
    r.auth = lax.password_of("bob", true);
    r.name = "key";
    r.client_data_json = made.client_data_json;
    r.attestation_object = made.attestation_object;
    expect<ipc::PasskeysReply>(confirmed_at_the_cli(lax, "bob", lax.call(lax.web_peer, r)));
    const auto id2 = lax.request_sign("example.com", "s1", 3600);
    c.purpose = "approve";
    c.id = id2;
    const auto refused = lax.call(lax.web_peer, c);
    EXPECT_EQ(error_code(refused), "forbidden") << "TOTP only: no challenge is handed out";
}

TEST_F(PasskeyTest, PasskeysAndTheirCountersSurviveARestart) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto id = h.request_sign("example.com", "s1", 3600);
    expect<ipc::OkReply>(decide_with_passkey("bob", "deny", id, "no"));
    const auto before = h.engine.directory().passkeys("bob");
    h.restart();
    const auto after = h.engine.directory().passkeys("bob");
    ASSERT_EQ(after.size(), 1U);
    EXPECT_EQ(after.front().sign_count, before.front().sign_count);
    EXPECT_EQ(after.front().public_key, before.front().public_key);
    EXPECT_TRUE(after.front().last_used);
    // The recorded counter holds after the restart: an older assertion's counter is refused.
    keys["bob"].counter = 1;
    const auto id2 = h.request_sign("example.com", "s1", 3600);
    EXPECT_EQ(error_code(decide_with_passkey("bob", "approve", id2)), "unauthenticated");
}

TEST_F(PasskeyTest, WithoutWebauthnConfiguredNoChallengeIsHandedOut) {
    SignerdHarness off{gate, file_pin_options()};
    EXPECT_EQ(error_code(off.call(off.web_peer, ipc::PasskeyLoginChallenge{})), "invalid");
    EXPECT_EQ(error_code(off.call(off.relay_peer, ipc::PasskeyLoginChallenge{})), "forbidden");
    EXPECT_EQ(error_code(h.call(h.reports_peer, ipc::PasskeyLoginChallenge{})), "forbidden");
}

// The auditor's check (dkim-appliance audit verify): every decision made with a passkey carries
// an assertion that verifies, from the log alone, with the public key of its passkey.register
// record; a record edited or inserted by someone without the authenticator does not.
TEST_F(PasskeyTest, AnAuditorChecksEveryPasskeyDecisionFromTheLogAlone) {
    expect<ipc::PasskeysReply>(enrol("bob"));
    const auto a = h.request_sign("example.com", "s1", 3600);
    const auto b = h.request_sign("example.org", "s1", 3600);
    expect<ipc::OkReply>(decide_with_passkey("bob", "deny", a, "not now"));
    expect<ipc::OkReply>(decide_with_passkey("bob", "approve", b));
    expect<ipc::OkReply>(h.decide("carol", "deny", h.request_sign("example.net", "s1", 60)));
    auto records = log();
    const auto report = jit::check_passkey_decisions(records);
    EXPECT_EQ(report.checked, 2);
    EXPECT_EQ(report.first_bad, 0) << report.problem;

    const auto tampered = [&](auto edit) {
        auto copy = records;
        for (auto& r : copy) {
            if (r.detail.find("factor=webauthn") != std::string::npos &&
                r.action == "elevation.approve") {
                edit(r);
            }
        }
        return jit::check_passkey_decisions(copy);
    };
    // The approval moved to another request: the statement names b.
    auto moved = tampered([&](jit::AuditRecord& r) { r.request_id = a; });
    EXPECT_NE(moved.first_bad, 0);
    EXPECT_NE(moved.problem.find("another decision"), std::string::npos) << moved.problem;
    // Credited to carol: the statement's actor is bob.
    EXPECT_NE(tampered([](jit::AuditRecord& r) { r.actor = "carol"; }).first_bad, 0);
    // A signature that is not bob's authenticator's.
    auto forged = tampered([](jit::AuditRecord& r) {
        const auto at = r.detail.find("signature=") + 10;
        r.detail[at] = r.detail[at] == 'A' ? 'B' : 'A';
    });
    EXPECT_NE(forged.problem.find("does not verify"), std::string::npos) << forged.problem;
    // A statement of another decision with its own hash, but not the challenge's.
    auto restated = tampered([](jit::AuditRecord& r) {
        const auto at = r.detail.find("statement_sha256=") + 17;
        r.detail[at] = r.detail[at] == '0' ? '1' : '0';
    });
    EXPECT_NE(restated.first_bad, 0);
    // A claim of a passkey without its register record.
    auto copy = records;
    copy.erase(
        std::remove_if(copy.begin(), copy.end(),
                       [](const jit::AuditRecord& r) { return r.action == "passkey.register"; }),
        copy.end());
    EXPECT_NE(jit::check_passkey_decisions(copy).problem.find("no passkey.register"),
              std::string::npos);
}

TEST(ChallengeBookTest, AChallengeIsTakenOnceAndExpires) {
    jit::ChallengeBook book;
    const TimePoint now = test_epoch();
    const std::string c = book.issue(jit::ChallengeBook::Purpose::login, "", {}, now);
    EXPECT_EQ(c.size(), 16U);
    EXPECT_TRUE(book.take(c, now));
    EXPECT_FALSE(book.take(c, now)) << "once";
    const std::string late = book.issue(jit::ChallengeBook::Purpose::login, "", {}, now);
    EXPECT_FALSE(book.take(late, now + jit::ChallengeBook::kLifetime)) << "expired";
}

TEST(ChallengeBookTest, AFloodOfChallengesIsBounded) {
    jit::ChallengeBook book;
    const TimePoint now = test_epoch();
    std::vector<std::string> bobs;
    for (std::size_t i = 0; i < 3 * jit::ChallengeBook::kMaxPerUser; ++i) {
        bobs.push_back(book.issue(jit::ChallengeBook::Purpose::decision, "bob", {},
                                  now + std::chrono::milliseconds(i)));
    }
    EXPECT_EQ(book.size(), jit::ChallengeBook::kMaxPerUser);
    EXPECT_TRUE(book.take(bobs.back(), now)) << "the newest stay";
    EXPECT_FALSE(book.take(bobs.front(), now)) << "the oldest go";
    // A flood of login challenges stays in its pool: bob's newest decision challenges stay.
    const std::string kept =
        book.issue(jit::ChallengeBook::Purpose::decision, "bob", {}, now + std::chrono::seconds(1));
    for (std::size_t i = 0; i < 2 * jit::ChallengeBook::kMaxEntries; ++i) {
        (void)book.issue(jit::ChallengeBook::Purpose::login, "", {}, now);
    }
    EXPECT_EQ(book.size(), jit::ChallengeBook::kMaxPerUser + jit::ChallengeBook::kMaxAnonymous);
    EXPECT_TRUE(book.take(kept, now));
    // Many users fill the book up to its bound, no further.
    for (std::size_t i = 0; i < jit::ChallengeBook::kMaxEntries; ++i) {
        (void)book.issue(jit::ChallengeBook::Purpose::decision, "user" + std::to_string(i), {},
                         now);
    }
    EXPECT_LE(book.size(), jit::ChallengeBook::kMaxEntries);
}

TEST(DecisionStatementTest, EveryFieldChangesTheDigestAndNoneRunsIntoTheNext) {
    const jit::DecisionSubject base{"approve", 7, "sign example.com/s1 for *", 3600, 10, "",
                                    "bob",     ""};
    const auto d = jit::decision_digest(base);
    auto changed = [&](auto edit) {
        jit::DecisionSubject s = base;
        edit(s);
        return jit::decision_digest(s) != d;
    };
    EXPECT_TRUE(changed([](auto& s) { s.action = "deny"; }));
    EXPECT_TRUE(changed([](auto& s) { s.id = 8; }));
    EXPECT_TRUE(changed([](auto& s) { s.scope = "sign example.com/* for *"; }));
    EXPECT_TRUE(changed([](auto& s) { s.duration_seconds = 3601; }));
    EXPECT_TRUE(changed([](auto& s) { s.budget = std::nullopt; }));
    EXPECT_TRUE(changed([](auto& s) { s.reason = "x"; }));
    EXPECT_TRUE(changed([](auto& s) { s.actor = "carol"; }));
    EXPECT_TRUE(changed([](auto& s) { s.target = "abc"; }));
    // A reason cannot forge the lines after it.
    jit::DecisionSubject a = base;
    a.reason = "x\"\nactor=carol";
    EXPECT_EQ(jit::decision_statement(a).find("\nactor=carol\n"), std::string::npos);
}

}  // namespace
}  // namespace dkim::test

// PIN custody (issue 23) attacked: a compromised dkim-webd (the "web" peer, which holds every
// console user's session and sees their passwords and TOTP codes), a custodian or approver acting
// against the others, and the relay and reports peers. Each test asserts the secure behaviour.
// The fake gate's PIN is "1234"; each C_Login it is asked for counts (login_calls), as a real
// token's lockout counter would count a wrong one.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "dkim/custody/envelope.hpp"
#include "dkim/custody/shares.hpp"
#include "fake_gate.hpp"
#include "pin_shares_fixture.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

// --- approver custody ---------------------------------------------------------------------------

class PinCustodyAttackApproverTest : public ::testing::Test {
  protected:
    static signerd::ServiceOptions attack_approver_mode() {
        signerd::ServiceOptions o;
        o.pin_source = signerd::PinSourceKind::approver;
        return o;
    }
    ipc::Reply offer(const signerd::Peer& peer, const std::string& who, std::int64_t id) {
        return h.call(peer, ipc::PinKeyOffer{h.password_of(who), "approve", std::to_string(id)});
    }
    FakeGate gate;
    SignerdHarness h{gate, attack_approver_mode()};
};

// A compromised webd holds bob's console session: it can ask for key offers in his name. Holding
// all of his (eight, five minutes each, renewed as they expire) must not keep bob from approving
// at the appliance's CLI (the admin peer), the way round a webd that misbehaves.
TEST_F(PinCustodyAttackApproverTest, KeyOffersHoardedThroughWebdDoNotLockTheApproverOutOfTheCli) {
    const auto id = h.request_sign("example.com", "s1", 600);
    for (std::size_t i = 0; i < signerd::PinCustody::kMaxKeysPerUser; ++i) {
        ASSERT_TRUE(std::holds_alternative<ipc::PinKeyOfferReply>(offer(h.web_peer, "bob", id)));
    }
    EXPECT_EQ(error_code(offer(h.web_peer, "bob", id)), "conflict") << "webd's share is bounded";
    const auto at_the_cli = offer(h.admin_peer, "bob", id);
    EXPECT_TRUE(std::holds_alternative<ipc::PinKeyOfferReply>(at_the_cli))
        << "bob's keys at the CLI are not crowded out by webd's: " << error_message(at_the_cli);
    const auto approved = h.decide("bob", "approve", id, "1234");
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(approved)) << error_message(approved);
    EXPECT_TRUE(gate.in);
}

// Every wrong PIN an approval brings is a C_Login the token counts toward its lockout (a real
// HSM locks the user PIN after a few, some zeroise). An approver, or a webd that captured an
// approver's password and TOTP code at one console approval and seals a PIN of its own choosing
// to a key it asks for in the approver's name (an envelope proves nothing about who sealed it),
// could try again and again: the token locked out, every answer an oracle for a PIN guess.
// signerd stops after TokenLifecycle::kMaxRefusedPins refusals in a row, until it is restarted
// (root at the appliance); the right PIN then works.
TEST_F(PinCustodyAttackApproverTest, WrongApproverPinsStopBeforeTheTokenLocksOut) {
    const auto id = h.request_sign("example.com", "s1", 600);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const auto wrong = h.decide(attempt % 2 == 0 ? "bob" : "carol", "approve", id,
                                    std::to_string(1000 + attempt));
        EXPECT_TRUE(std::holds_alternative<ipc::ErrorReply>(wrong));
    }
    EXPECT_EQ(gate.login_calls, 3) << "each wrong PIN is a C_Login that counts toward the lockout";
    EXPECT_FALSE(gate.in);
    const auto held = h.decide("bob", "approve", id, "1234");
    EXPECT_EQ(error_code(held), "forbidden");
    EXPECT_NE(error_message(held).find("restart"), std::string::npos) << error_message(held);
    EXPECT_EQ(gate.login_calls, 3) << "not even the right PIN is tried before the restart";
    h.restart();
    const auto approved = h.decide("bob", "approve", id, "1234");
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(approved)) << error_message(approved);
    EXPECT_TRUE(gate.in);
}

// The requester cannot approve her own request, even with an envelope someone else was offered:
// she is refused before the envelope is opened, so its key is not used up.
TEST_F(PinCustodyAttackApproverTest, TheRequesterCannotApproveHerOwnRequestWithAnotherOnesPin) {
    const auto id = h.request_sign("example.com", "s1", 600);
    auto bobs = h.seal_pin("bob", "approve", std::to_string(id), "1234");
    ASSERT_TRUE(bobs) << bobs.error();
    const auto own = h.call(h.admin_peer,
                            ipc::ElevationDecide{h.password_of("alice"), "approve", id, "", *bobs});
    EXPECT_EQ(error_code(own), "forbidden") << error_message(own);
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(gate.login_calls, 0);
    const auto approved = h.call(
        h.admin_peer, ipc::ElevationDecide{h.password_of("bob", true), "approve", id, "", *bobs});
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(approved))
        << "bob's key was not used up by alice: " << error_message(approved);
    EXPECT_TRUE(gate.in);
}

// An envelope is single use: once a PIN opened from it logged the token in, the same bytes
// (which webd forwarded, and may have kept) are refused, for the same request or another.
TEST_F(PinCustodyAttackApproverTest, AnEnvelopeIsNotReplayedForAnotherApproval) {
    const auto id = h.request_sign("example.com", "s1", 600);
    auto sealed = h.seal_pin("bob", "approve", std::to_string(id), "1234");
    ASSERT_TRUE(sealed);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(
        h.call(h.admin_peer,
               ipc::ElevationDecide{h.password_of("bob", true), "approve", id, "", *sealed})));
    ASSERT_TRUE(gate.in);
    // The grant ends; a new request; the old envelope replayed for it.
    h.clock.advance(11min);
    h.service->tick();
    ASSERT_FALSE(gate.in);
    const auto next = h.request_sign("example.com", "s1", 600);
    const auto replayed = h.call(h.admin_peer, ipc::ElevationDecide{h.password_of("bob", true),
                                                                    "approve", next, "", *sealed});
    EXPECT_EQ(error_code(replayed), "invalid") << error_message(replayed);
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(gate.login_calls, 1);
}

// Neither the approver's PIN, right or wrong, nor anything of it is in a reply or on the audit
// log.
TEST_F(PinCustodyAttackApproverTest, AWrongPinIsNeitherInTheReplyNorOnTheLog) {
    const auto id = h.request_sign("example.com", "s1", 600);
    const auto wrong = h.decide("bob", "approve", id, "864209");
    EXPECT_EQ(error_code(wrong), "forbidden");
    EXPECT_EQ(error_message(wrong).find("864209"), std::string::npos) << error_message(wrong);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(h.decide("carol", "approve", id, "1234")));
    for (const auto& r : audit_log(h)) {
        const std::string text = jit::canonical_encoding(r);
        EXPECT_EQ(text.find("864209"), std::string::npos) << r.action;
    }
    const auto logins = custody_log(h, "token.login");
    EXPECT_TRUE(std::any_of(logins.begin(), logins.end(), [](const jit::AuditRecord& r) {
        return r.outcome == "failed" && r.reason.find("approver bob") != std::string::npos;
    })) << "the refusal is on the log, naming the approver";
}

// Only people ask for keys and bring PINs: the relay peer (anything that can submit mail) and
// the reports peer (parsing untrusted reports) are refused every PIN request.
TEST_F(PinCustodyAttackApproverTest, TheRelayAndReportsPeersHaveNoPinRequests) {
    const auto id = h.request_sign("example.com", "s1", 600);
    for (const signerd::Peer* peer : {&h.relay_peer, &h.reports_peer}) {
        EXPECT_EQ(error_code(offer(*peer, "bob", id)), "forbidden");
        EXPECT_EQ(error_code(h.call(*peer, ipc::PinStatusRequest{h.password_of("bob")})),
                  "forbidden");
        EXPECT_EQ(error_code(h.call(*peer, ipc::PinShareSubmit{h.password_of("bob"), {}})),
                  "forbidden");
        EXPECT_EQ(error_code(h.call(*peer, ipc::PinLock{{}, "x"})), "forbidden");
        EXPECT_EQ(error_code(h.call(*peer, ipc::PinSplit{{}, "1234", 2, {"bob", "carol"}})),
                  "forbidden");
    }
    EXPECT_FALSE(gate.in);
}

// --- shares custody, 3 of 5 ---------------------------------------------------------------------

class PinCustodyAttackSharesTest : public PinSharesFixture {};

// carol submits bob's share (sealed to her own key, or to his through webd): it is not hers, and
// bob's share counts once however many custodians bring it. Two shares never make a quorum.
TEST_F(PinCustodyAttackSharesTest, AnotherCustodiansShareIsRefusedAndNothingCountsTwice) {
    auto shares = split();
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("bob", shares["bob"])));
    EXPECT_EQ(error_code(submit("carol", shares["bob"])), "forbidden");
    EXPECT_EQ(error_code(submit_as("bob", "carol", shares["bob"])), "forbidden")
        << "a key offered to bob opens nothing for carol";
    EXPECT_EQ(error_code(submit_as("bob", "alice", shares["bob"])), "forbidden")
        << "nor for alice, who is no custodian";
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("dave", shares["dave"])));
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(submit("bob", shares["bob"])));
    EXPECT_EQ(submitted_count(), 2U);
    EXPECT_FALSE(status().ready);
    EXPECT_EQ(custody_log(h, "pin.share.quorum").size(), 0U);
}

// webd forwarded bob's envelope and kept it: replayed (in the same window, after the window, or
// after a quorum and a `pin lock`), it is refused: its key was used.
TEST_F(PinCustodyAttackSharesTest, AForwardedShareEnvelopeIsNotReplayed) {
    auto shares = split();
    auto sealed = h.seal_pin("bob", "share", set_id, shares["bob"], &h.web_peer);
    ASSERT_TRUE(sealed);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(
        h.call(h.web_peer, ipc::PinShareSubmit{h.password_of("bob"), *sealed})));
    h.clock.advance(10min + 1s);
    h.service->tick();
    EXPECT_EQ(submitted_count(), 0U) << "the window ended";
    const auto replayed = h.call(h.web_peer, ipc::PinShareSubmit{h.password_of("bob"), *sealed});
    EXPECT_EQ(error_code(replayed), "forbidden") << error_message(replayed);
    EXPECT_EQ(submitted_count(), 0U);
}

// A custodian (or webd in her name) submitting again does not move the window's end: the window
// counts from the first share, and shares are wiped when it ends whatever came later.
TEST_F(PinCustodyAttackSharesTest, SubmittingAgainDoesNotExtendTheUnlockWindow) {
    auto shares = split();
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("bob", shares["bob"])));
    const auto ends = status().window_ends_ms;
    h.clock.advance(9min);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("bob", shares["bob"])));
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("carol", shares["carol"])));
    EXPECT_EQ(status().window_ends_ms, ends);
    EXPECT_EQ(error_code(submit("dave", "dkimpin1-00000000-3-3-aaaa-00000000")), "forbidden");
    EXPECT_EQ(status().window_ends_ms, ends) << "nor does a refused share";
    h.clock.advance(1min + 1s);
    h.service->tick();
    EXPECT_EQ(submitted_count(), 0U);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("dave", shares["dave"])));
    EXPECT_FALSE(status().ready) << "bob's and carol's were wiped with the window";
}

// The web peer neither locks the PIN away nor splits it: only the appliance's CLI does.
TEST_F(PinCustodyAttackSharesTest, TheWebPeerCannotLockNorResplit) {
    auto shares = split();
    for (const char* who : {"bob", "carol", "dave"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    ASSERT_TRUE(status().ready);
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::PinLock{h.password_of("bob"), "dos"})),
              "forbidden");
    EXPECT_EQ(error_code(
                  h.call(h.web_peer, ipc::PinSplit{h.password_of("bob"), "", 2, {"bob", "carol"}})),
              "forbidden");
    EXPECT_TRUE(status().ready);
    EXPECT_EQ(status().set_id, set_id);
}

// Every submission is on the audit log, refused ones too: one made while the PIN is in memory
// already (a custodian's share, or webd replaying one in a custodian's name) is named as well.
TEST_F(PinCustodyAttackSharesTest, ASubmissionAfterTheQuorumIsRefusedAndAudited) {
    auto shares = split();
    for (const char* who : {"bob", "carol", "dave"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    ASSERT_TRUE(status().ready);
    const auto before = custody_log(h, "pin.share.submit").size();
    EXPECT_EQ(error_code(submit("erin", shares["erin"])), "conflict");
    const auto after = custody_log(h, "pin.share.submit");
    ASSERT_EQ(after.size(), before + 1) << "the refused submission is audited";
    EXPECT_EQ(after.back().actor, "erin");
    EXPECT_EQ(after.back().outcome, "refused");
}

// "Re-splitting (a custodian leaves) needs the quorum" (issue 23). A quorum rebuilds the PIN so
// that the token can sign; the PIN then stays in memory until `pin lock` or a restart, and a
// re-split's reply holds every new share in clear: the caller learns the PIN. So a re-split
// follows its own quorum, within the unlock window after it, not one made hours before to sign.
TEST_F(PinCustodyAttackSharesTest, AResplitLongAfterTheQuorumNeedsAQuorumOfItsOwn) {
    auto shares = split();
    for (const char* who : {"bob", "carol", "dave"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    h.clock.advance(8h);  // a working day of signing later
    const auto resplit = h.call(h.admin_peer, ipc::PinSplit{{}, "", 2, {"erin", "frank"}});
    EXPECT_EQ(error_code(resplit), "conflict") << "no quorum agreed to this re-split";
    EXPECT_NE(error_message(resplit).find("pin lock"), std::string::npos) << error_message(resplit);
    // pin lock, a fresh quorum, and the re-split within the window.
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(
        h.call(h.admin_peer, ipc::PinLock{{}, "a custodian leaves"})));
    for (const char* who : {"carol", "dave", "erin"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    h.clock.advance(5min);
    const auto fresh = h.call(h.admin_peer, ipc::PinSplit{{}, "", 2, {"erin", "frank"}});
    EXPECT_TRUE(std::holds_alternative<ipc::PinSharesReply>(fresh)) << error_message(fresh);
}

// --- sealed custody -----------------------------------------------------------------------------

// A credential holding a PIN the token refuses (the token's PIN was changed without `pin seal`,
// or the credential was swapped): systemd decrypts it once, at signerd's start, so it cannot
// change before the next start. Trying it at every tick (once a second while a grant is active)
// burns the token's PIN retries in seconds: a real HSM locks the user PIN out. Tried once, then
// reported until a restart brings a new credential.
class PinCustodyAttackSealedTest : public ::testing::Test {
  protected:
    static signerd::ServiceOptions attack_sealed_mode(const std::filesystem::path& credential) {
        signerd::ServiceOptions o;
        o.pin_source = signerd::PinSourceKind::sealed;
        o.pin_path = credential;
        return o;
    }
    PinCustodyAttackSealedTest() {
        std::ofstream(credential) << "9999\n";
        ::chmod(credential.c_str(), 0600);
    }
    ~PinCustodyAttackSealedTest() override {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    PinCustodyAttackSealedTest(const PinCustodyAttackSealedTest&) = delete;
    PinCustodyAttackSealedTest& operator=(const PinCustodyAttackSealedTest&) = delete;

    std::filesystem::path dir = make_temp_dir("dkim-sealed-attack");
    std::filesystem::path credential = dir / "pin";
    FakeGate gate;
    SignerdHarness h{gate, attack_sealed_mode(credential)};
};

TEST_F(PinCustodyAttackSealedTest, AWrongSealedPinIsTriedOnceNotAtEveryTick) {
    const auto id = h.request_sign("example.com", "s1", 3600);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(h.decide("bob", "approve", id)));
    for (int tick = 0; tick < 30; ++tick) {
        h.clock.advance(1s);
        h.service->tick();
    }
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(gate.login_calls, 1) << "each try counts toward the token's lockout";
    const auto status =
        std::get<ipc::PinStatusReply>(h.call(h.admin_peer, ipc::PinStatusRequest{}));
    EXPECT_FALSE(status.ready);
    EXPECT_NE(status.missing.find("refused"), std::string::npos) << status.missing;

    // The operator seals the right PIN and restarts signerd: it logs in by itself.
    std::ofstream(credential, std::ios::trunc) << "1234\n";
    h.restart();
    h.service->tick();
    EXPECT_TRUE(gate.in);
    EXPECT_EQ(gate.login_calls, 2);
}

}  // namespace
}  // namespace dkim::test

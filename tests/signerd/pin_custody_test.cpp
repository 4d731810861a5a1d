// PIN custody through the Service (pin_custody.hpp): the approver's PIN sealed end to end to a
// key signerd offered for one request, and the shares mode, 3 of 5: fewer than three refused, a
// wrong share named, two submissions by one custodian counted once, shares expiring, the quorum
// logging the token in, a restart waiting for people again, and a re-split that needs the
// quorum. The fake gate's PIN is "1234".

#include <gtest/gtest.h>

#include <algorithm>

#include "dkim/crypto/base64.hpp"
#include "dkim/custody/envelope.hpp"
#include "dkim/custody/shares.hpp"
#include "fake_gate.hpp"
#include "pin_shares_fixture.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

// A share text's data: between its fourth '-' and its last one (custody/shares.hpp).
std::string data_of(const std::string& share) {
    std::size_t at = 0;
    for (int i = 0; i < 4 && at != std::string::npos; ++i) {
        at = share.find('-', at + 1);
    }
    const std::size_t end = share.rfind('-');
    return at == std::string::npos || end <= at ? share : share.substr(at + 1, end - at - 1);
}

class ApproverEnvelopeTest : public ::testing::Test {
  protected:
    static signerd::ServiceOptions approver_mode() {
        signerd::ServiceOptions o;
        o.pin_source = signerd::PinSourceKind::approver;
        return o;
    }
    FakeGate gate;
    SignerdHarness h{gate, approver_mode()};
};

TEST_F(ApproverEnvelopeTest, TheOfferIsSignedByTheIdentityKeyAndTheEnvelopeOpensOnceForItsRequest) {
    const auto id = h.request_sign("example.com", "s1", 600);
    auto offered =
        h.call(h.web_peer, ipc::PinKeyOffer{h.password_of("bob"), "approve", std::to_string(id)});
    ASSERT_TRUE(std::holds_alternative<ipc::PinKeyOfferReply>(offered)) << error_message(offered);
    const auto& offer = std::get<ipc::PinKeyOfferReply>(offered);
    const auto identity = crypto::base64url_decode(offer.identity);
    const auto signature = crypto::base64url_decode(offer.signature);
    const auto key = crypto::base64url_decode(offer.public_key);
    ASSERT_TRUE(identity && signature && key && identity->size() == 32 && key->size() == 32);
    custody::PublicKey id_key{};
    custody::PublicKey recipient{};
    std::copy(identity->begin(), identity->end(), id_key.begin());
    std::copy(key->begin(), key->end(), recipient.begin());
    auto bytes = [](const std::string& s) {
        return std::span(reinterpret_cast<const unsigned char*>(s.data()), s.size());  // NOLINT
    };
    EXPECT_EQ(offer.statement,
              custody::key_offer_statement("approve", std::to_string(id), "bob", offer.key_id,
                                           recipient, offer.expires_ms));
    EXPECT_TRUE(
        custody::verify_identity_signature(id_key, bytes(offer.statement), bytes(*signature)));
    EXPECT_EQ(offer.fingerprint, custody::fingerprint(id_key));
    const auto status = std::get<ipc::PinStatusReply>(
        h.call(h.web_peer, ipc::PinStatusRequest{h.password_of("bob")}));
    EXPECT_EQ(status.mode, "approver");
    EXPECT_FALSE(status.ready);
    EXPECT_EQ(status.identity_fingerprint, offer.fingerprint);
    EXPECT_NE(status.missing.find("approver's PIN"), std::string::npos) << status.missing;

    // Sealed for another request: the associated data differs, and the key is bound to `id`.
    const auto other = h.request_sign("example.com", "s2", 600);
    auto for_other = h.seal_pin("bob", "approve", std::to_string(other), "1234");
    ASSERT_TRUE(for_other) << for_other.error();
    auto moved = h.call(h.admin_peer, ipc::ElevationDecide{h.password_of("bob", true), "approve",
                                                           id, "", *for_other});
    EXPECT_EQ(error_code(moved), "invalid");
    EXPECT_NE(error_message(moved).find("offered to bob for approve " + std::to_string(other)),
              std::string::npos)
        << error_message(moved);
    EXPECT_FALSE(gate.in);

    // carol cannot use the key offered to bob; the key is then used up.
    auto bobs = h.seal_pin("bob", "approve", std::to_string(id), "1234");
    ASSERT_TRUE(bobs);
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::ElevationDecide{h.password_of("carol", true),
                                                                   "approve", id, "", *bobs})),
              "invalid");
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::ElevationDecide{h.password_of("bob", true),
                                                                   "approve", id, "", *bobs})),
              "invalid")
        << "a key is used once, whoever used it";

    // A key webd made up (unknown id), or an envelope whose bytes changed.
    auto good = h.seal_pin("bob", "approve", std::to_string(id), "1234");
    ASSERT_TRUE(good);
    ipc::PinEnvelope changed = *good;
    changed.envelope[changed.envelope.size() - 3] =
        changed.envelope[changed.envelope.size() - 3] == 'A' ? 'B' : 'A';
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::ElevationDecide{h.password_of("bob", true),
                                                                   "approve", id, "", changed})),
              "invalid");
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(h.engine.authority().find_request(id)->state, jit::RequestState::pending);

    // Expired: five minutes.
    auto late = h.seal_pin("bob", "approve", std::to_string(id), "1234");
    ASSERT_TRUE(late);
    h.clock.advance(5min + 1s);
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::ElevationDecide{h.password_of("bob", true),
                                                                   "approve", id, "", *late})),
              "invalid");

    auto ok = h.decide("bob", "approve", id, "1234");
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(ok)) << error_message(ok);
    EXPECT_TRUE(gate.in);
}

TEST_F(ApproverEnvelopeTest, KeysAreOfferedOnlyToWhoMayDecideAndAreBounded) {
    const auto id = h.request_sign("example.com", "s1", 600);
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::PinKeyOffer{h.password_of("alice"), "approve",
                                                             std::to_string(id)})),
              "forbidden")
        << "the requester does not approve her own request";
    EXPECT_EQ(
        error_code(h.call(h.web_peer, ipc::PinKeyOffer{h.password_of("bob"), "share", "00000000"})),
        "conflict")
        << "no shares in approver custody";
    EXPECT_EQ(
        error_code(h.call(h.web_peer, ipc::PinKeyOffer{h.password_of("bob"), "approve", "7x"})),
        "invalid");
    for (std::size_t i = 0; i < signerd::PinCustody::kMaxKeysPerUser; ++i) {
        EXPECT_TRUE(std::holds_alternative<ipc::PinKeyOfferReply>(h.call(
            h.web_peer, ipc::PinKeyOffer{h.password_of("bob"), "approve", std::to_string(id)})));
    }
    EXPECT_EQ(error_code(h.call(h.web_peer, ipc::PinKeyOffer{h.password_of("bob"), "approve",
                                                             std::to_string(id)})),
              "conflict");
    EXPECT_TRUE(std::holds_alternative<ipc::PinKeyOfferReply>(h.call(
        h.web_peer, ipc::PinKeyOffer{h.password_of("carol"), "approve", std::to_string(id)})))
        << "bob's keys do not crowd out carol's";
}

// --- shares, 3 of 5 ------------------------------------------------------------------------------

class SharesTest : public PinSharesFixture {};

TEST_F(SharesTest, ThreeOfFiveUnlockFewerDoNotAndTheSharesAreWipedAtTheQuorum) {
    EXPECT_NE(status().missing.find("never split"), std::string::npos);
    auto shares = split();
    ASSERT_EQ(shares.size(), 5U);
    EXPECT_EQ(custody_log(h, "pin.split").size(), 1U);
    grant();
    h.service->tick();
    EXPECT_FALSE(gate.in) << "no quorum yet: the grant waits";

    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(submit("bob", shares["bob"])));
    const auto again = submit("bob", shares["bob"]);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(again));
    EXPECT_NE(std::get<ipc::OkReply>(again).message.find("counted already (1 of 3)"),
              std::string::npos);
    EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(submit("carol", shares["carol"])));
    auto s = status();
    EXPECT_FALSE(s.ready);
    EXPECT_NE(s.missing.find("1 more custodian share (2 of 3 submitted)"), std::string::npos)
        << s.missing;
    EXPECT_EQ(std::count_if(s.custodians.begin(), s.custodians.end(),
                            [](const auto& c) { return c.submitted; }),
              2);
    h.service->tick();
    EXPECT_FALSE(gate.in) << "two of three: still locked";

    const auto third = submit("erin", shares["erin"]);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(third)) << error_message(third);
    EXPECT_TRUE(gate.in) << "the quorum logs the token in for the waiting grant";
    EXPECT_TRUE(status().ready);
    EXPECT_EQ(custody_log(h, "pin.share.quorum").size(), 1U);
    const auto wiped = custody_log(h, "pin.share.wipe");
    ASSERT_EQ(wiped.size(), 1U);
    EXPECT_EQ(wiped[0].detail, "3 shares wiped");
    EXPECT_TRUE(std::holds_alternative<ipc::SignReply>(h.sign(header_block("example.com", "s1"))));
    // Nothing of a share is on the log.
    auto log = h.engine.journal().store().audit_records(1, 100'000);
    ASSERT_TRUE(log);
    for (const auto& r : *log) {
        for (const auto& [name, share] : shares) {
            EXPECT_EQ(jit::canonical_encoding(r).find(data_of(share)), std::string::npos)
                << r.action;
        }
    }
}

TEST_F(SharesTest, AWrongShareIsNamedWithoutItsContent) {
    auto shares = split();
    std::string typo = shares["dave"];
    const std::size_t at = typo.size() - 12;  // inside the data
    typo[at] = typo[at] == 'a' ? 'b' : 'a';
    const auto refused = submit("dave", typo);
    EXPECT_EQ(error_code(refused), "forbidden");
    EXPECT_NE(error_message(refused).find("dave's share"), std::string::npos)
        << error_message(refused);
    EXPECT_NE(error_message(refused).find("check digits"), std::string::npos)
        << error_message(refused);
    EXPECT_EQ(error_message(refused).find(data_of(typo).substr(0, 9)), std::string::npos);

    // A well-formed share that is not the one dave was given: carol's.
    const auto hers = submit("dave", shares["carol"]);
    EXPECT_EQ(error_code(hers), "forbidden");
    EXPECT_NE(error_message(hers).find("not the one dave was given"), std::string::npos)
        << error_message(hers);
    // Not a custodian at all.
    EXPECT_EQ(error_code(submit("alice", shares["bob"])), "protocol") << "no key for alice";
    const auto refusals = custody_log(h, "pin.share.submit");
    ASSERT_EQ(refusals.size(), 2U);
    EXPECT_EQ(refusals[0].outcome, "refused");
    EXPECT_EQ(refusals[0].actor, "dave");
    EXPECT_FALSE(status().custodians[2].submitted);
}

TEST_F(SharesTest, SharesExpireAtTheEndOfTheWindow) {
    auto shares = split();
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("bob", shares["bob"])));
    h.clock.advance(5min);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("carol", shares["carol"])));
    EXPECT_EQ(status().window_ends_ms, to_unix_ms(h.clock.now() + 5min))
        << "counted from the first submission";
    h.clock.advance(5min + 1s);
    h.service->tick();
    const auto wiped = custody_log(h, "pin.share.wipe");
    ASSERT_EQ(wiped.size(), 1U);
    EXPECT_NE(wiped[0].detail.find("2 of 3 shares wiped, from bob, carol"), std::string::npos)
        << wiped[0].detail;
    EXPECT_EQ(status().window_ends_ms, 0);
    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit("dave", shares["dave"])));
    EXPECT_FALSE(status().ready) << "one share of a new window";
}

TEST_F(SharesTest, ARestartWaitsForTheCustodiansAgain) {
    auto shares = split();
    grant();
    for (const char* who : {"bob", "dave", "frank"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    EXPECT_TRUE(gate.in);
    gate.in = false;  // the process ends
    h.restart();
    h.service->tick();
    EXPECT_FALSE(gate.in) << "the PIN was only in the old process's memory";
    EXPECT_FALSE(status().ready);
    EXPECT_EQ(status().set_id, set_id) << "the split itself is stored";
    for (const char* who : {"carol", "erin", "bob"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    EXPECT_TRUE(gate.in);
}

TEST_F(SharesTest, AResplitNeedsTheQuorumAndRetiresTheOldShares) {
    auto shares = split();
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::PinSplit{{}, "1234", 3, custodians})),
              "conflict")
        << "a typed PIN does not replace a split";
    const std::vector<std::string> without_frank{"bob", "carol", "dave", "erin"};
    EXPECT_EQ(error_code(h.call(h.admin_peer, ipc::PinSplit{{}, "", 2, without_frank})), "conflict")
        << "no quorum yet";
    EXPECT_EQ(
        error_code(h.call(h.web_peer, ipc::PinSplit{h.password_of("bob"), "", 2, without_frank})),
        "forbidden");
    for (const char* who : {"bob", "carol", "dave"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    const std::string old_set = set_id;
    auto resplit = h.call(h.admin_peer, ipc::PinSplit{{}, "", 2, without_frank});
    ASSERT_TRUE(std::holds_alternative<ipc::PinSharesReply>(resplit)) << error_message(resplit);
    const auto& fresh = std::get<ipc::PinSharesReply>(resplit);
    EXPECT_NE(fresh.set_id, old_set);
    EXPECT_EQ(fresh.shares.size(), 4U);
    set_id = fresh.set_id;

    ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(
        h.call(h.admin_peer, ipc::PinLock{{}, "re-split done"})));
    EXPECT_FALSE(status().ready);
    EXPECT_EQ(error_code(submit("frank", shares["frank"])), "protocol")
        << "frank is no custodian any more: no key for him";
    const auto stale = submit("bob", shares["bob"]);
    EXPECT_EQ(error_code(stale), "forbidden");
    EXPECT_NE(error_message(stale).find("not of the current split"), std::string::npos)
        << error_message(stale);
    grant();
    for (const auto& s : fresh.shares) {
        if (s.custodian == "carol" || s.custodian == "erin") {
            ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(s.custodian, s.share)));
        }
    }
    EXPECT_TRUE(gate.in) << "two of the new four unlock";
}

TEST_F(SharesTest, AFirstSplitOfAPinTheTokenRefusesSplitsNothing) {
    auto reply = h.call(h.admin_peer, ipc::PinSplit{{}, "9999", 3, custodians});
    EXPECT_EQ(error_code(reply), "forbidden");
    EXPECT_NE(error_message(reply).find("nothing was split"), std::string::npos)
        << error_message(reply);
    EXPECT_EQ(error_message(reply).find("9999"), std::string::npos);
    EXPECT_TRUE(status().set_id.empty());
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(custody_log(h, "pin.split").size(), 1U) << "the refusal is audited";
    // The PIN the token accepts is tried, logged out again, and split.
    const int logouts = gate.logouts;
    EXPECT_EQ(split("1234").size(), 5U);
    EXPECT_FALSE(gate.in);
    EXPECT_EQ(gate.logouts, logouts + 1);
}

TEST_F(SharesTest, AQuorumOfAWrongPinIsForgottenAfterTheTokenRefusesIt) {
    auto shares = split("1234");
    gate.user_pin = "5678";  // changed on the token since the split
    grant();
    for (const char* who : {"bob", "carol", "dave"}) {
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(submit(who, shares[who])));
    }
    EXPECT_FALSE(gate.in);
    EXPECT_FALSE(status().ready) << "forgotten: not tried again at every tick";
    const int tries = gate.login_calls;
    h.service->tick();
    h.service->tick();
    EXPECT_EQ(gate.login_calls, tries);
    EXPECT_EQ(custody_log(h, "pin.forget").size(), 1U);
}

}  // namespace
}  // namespace dkim::test

// The red team against signerd's dispatch after issue 20 split the Service into handlers by
// subject: every request type of the protocol, not a hand-picked few, is checked for the peer
// rules (the relay only signs and reads keys and status; the web peer forwards credentials and
// never manages users or enrols TOTP; the reports peer only reads the signing summary, keys and
// status) and for its secrets being wiped whatever the outcome.
// A request type added later is covered without editing this file.

#include <gtest/gtest.h>

#include <utility>
#include <variant>

#include "fake_gate.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

template <class T>
constexpr bool relay_may() {
    return std::is_same_v<T, ipc::SignRequest> || std::is_same_v<T, ipc::PublicKeyRequest> ||
           std::is_same_v<T, ipc::SigningKeysRequest> || std::is_same_v<T, ipc::StatusRequest>;
}

// The signing summary needs no credentials either: the reports and admin peers' uids are theirs.
template <class T>
constexpr bool needs_no_credentials() {
    // A passkey login's challenge is asked for before anyone has signed in (it unlocks nothing:
    // TheLoginChallengeIsTheOnlyRequestWithoutCredentials in passkey_test.cpp).
    return relay_may<T>() || std::is_same_v<T, ipc::SigningSummaryRequest> ||
           std::is_same_v<T, ipc::PasskeyLoginChallenge>;
}

template <class T>
constexpr bool reports_may() {
    return std::is_same_v<T, ipc::SigningSummaryRequest> ||
           std::is_same_v<T, ipc::SigningKeysRequest> || std::is_same_v<T, ipc::PublicKeyRequest> ||
           std::is_same_v<T, ipc::StatusRequest>;
}

template <class T>
constexpr bool cli_only() {
    return std::is_same_v<T, ipc::UserAdd> || std::is_same_v<T, ipc::UserSetDisabled> ||
           std::is_same_v<T, ipc::TotpEnrol>;
}

// Calls f(T{}) for every alternative T of ipc::Request.
template <class F, std::size_t... I>
void for_each_request(F&& f, std::index_sequence<I...>) {
    (f(std::variant_alternative_t<I, ipc::Request>{}), ...);
}
template <class F>
void for_each_request(F&& f) {
    for_each_request(std::forward<F>(f),
                     std::make_index_sequence<std::variant_size_v<ipc::Request>>{});
}

class DispatchAttackTest : public ::testing::Test {
  protected:
    FakeGate gate;
    SignerdHarness h{gate, file_pin_options()};
};

// A compromised relay holding an operator's password (and a fresh TOTP code) still gets
// nothing but signatures, keys and status: every other request type is refused for the peer.
TEST_F(DispatchAttackTest, TheRelayPeerIsRefusedEveryOperatorRequestWhateverItsCredentials) {
    std::size_t checked = 0;
    for_each_request([&](auto request) {
        using T = decltype(request);
        if constexpr (!relay_may<T>()) {
            if constexpr (requires { request.auth; }) {
                request.auth = h.password_of("bob", /*with_totp=*/true);
            }
            const auto reply = h.call(h.relay_peer, request);
            EXPECT_EQ(error_code(reply), "forbidden")
                << "request type #" << ipc::Request(request).index() << ": "
                << error_message(reply);
            ++checked;
        }
    });
    EXPECT_GE(checked, 20U);
}

// The web peer must forward a user's credentials for every operator request: without them,
// each is unauthenticated (only the local admin peer may omit them).
TEST_F(DispatchAttackTest, TheWebPeerWithoutCredentialsIsUnauthenticatedEverywhere) {
    for_each_request([&](auto request) {
        using T = decltype(request);
        if constexpr (!needs_no_credentials<T>()) {
            const auto reply = h.call(h.web_peer, request);
            EXPECT_EQ(error_code(reply), "unauthenticated")
                << "request type #" << ipc::Request(request).index() << ": "
                << error_message(reply);
        }
    });
}

// Issue 21: a compromised dkim-reportd (it parses untrusted reports) holding an approver's
// password and a fresh TOTP code still reads nothing but the signing summary, signing keys,
// public keys and status: every other request type is refused for the peer, and nothing is
// filed, decided or written but the records of what it may read (none).
TEST_F(DispatchAttackTest, TheReportsPeerIsRefusedEverythingButTheSummaryKeysAndStatus) {
    const auto records_before = h.engine.journal().seq();
    std::size_t refused = 0;
    for_each_request([&](auto request) {
        using T = decltype(request);
        if constexpr (!reports_may<T>()) {
            if constexpr (requires { request.auth; }) {
                request.auth = h.password_of("bob", /*with_totp=*/true);
            }
            if constexpr (std::is_same_v<T, ipc::SignRequest>) {
                request = {
                    "example.com", "s1", "rsa-sha256", header_block("example.com", "s1"), {}};
            }
            const auto reply = h.call(h.reports_peer, request);
            EXPECT_EQ(error_code(reply), "forbidden")
                << "request type #" << ipc::Request(request).index() << ": "
                << error_message(reply);
            ++refused;
        }
    });
    EXPECT_GE(refused, 23U);
    EXPECT_EQ(h.engine.journal().seq(), records_before) << "no request filed, nothing written";
    EXPECT_TRUE(h.engine.authority().requests().empty());
    EXPECT_EQ(gate.signatures, 0);
    // What it may read, it reads.
    EXPECT_TRUE(
        std::holds_alternative<ipc::StatusReply>(h.call(h.reports_peer, ipc::StatusRequest{})));
    EXPECT_TRUE(std::holds_alternative<ipc::SigningKeysReply>(
        h.call(h.reports_peer, ipc::SigningKeysRequest{"example.com"})));
    EXPECT_TRUE(std::holds_alternative<ipc::PublicKeyReply>(
        h.call(h.reports_peer, ipc::PublicKeyRequest{"example.com", "s1"})));
    const std::int64_t now = to_unix_ms(h.clock.now()) / 1000;
    EXPECT_TRUE(std::holds_alternative<ipc::SigningSummaryReply>(
        h.call(h.reports_peer, ipc::SigningSummaryRequest{now - 86400, now, ""})));
}

// The signing summary is the reports and admin peers' only: the relay and the web peer (with an
// auditor's or admin's credentials or without) are refused it.
TEST_F(DispatchAttackTest, OnlyTheReportsAndAdminPeersReadTheSigningSummary) {
    const std::int64_t now = to_unix_ms(h.clock.now()) / 1000;
    const ipc::SigningSummaryRequest summary{now - 3600, now, "example.com"};
    for (const auto* peer : {&h.relay_peer, &h.web_peer}) {
        const auto reply = h.call(*peer, summary);
        EXPECT_EQ(error_code(reply), "forbidden") << peer->name << ": " << error_message(reply);
    }
    for (const auto* peer : {&h.reports_peer, &h.admin_peer}) {
        const auto reply = h.call(*peer, summary);
        EXPECT_TRUE(std::holds_alternative<ipc::SigningSummaryReply>(reply))
            << peer->name << ": " << error_message(reply);
    }
}

// Nobody but the relay signs: the web, admin and reports peers are refused SignRequest.
TEST_F(DispatchAttackTest, OnlyTheRelayPeerMayAskForASignature) {
    for (const auto* peer : {&h.web_peer, &h.admin_peer, &h.reports_peer}) {
        ipc::SignRequest r{
            "example.com", "s1", "rsa-sha256", header_block("example.com", "s1"), {}};
        EXPECT_EQ(error_code(h.call(*peer, r)), "forbidden");
    }
}

// User management and TOTP enrolment through the web peer are refused even with an admin's
// valid password and fresh code.
TEST_F(DispatchAttackTest, TheWebPeerNeverManagesUsersOrEnrolsTotp) {
    for_each_request([&](auto request) {
        using T = decltype(request);
        if constexpr (cli_only<T>()) {
            request.auth = h.password_of("bob", /*with_totp=*/true);
            const auto reply = h.call(h.web_peer, request);
            EXPECT_EQ(error_code(reply), "forbidden")
                << "request type #" << ipc::Request(request).index() << ": "
                << error_message(reply);
        }
    });
}

// Every secret a request carries is wiped by handle(), whatever the outcome and the peer.
TEST_F(DispatchAttackTest, EverySecretIsWipedWhateverTheOutcome) {
    for (const auto* peer : {&h.relay_peer, &h.web_peer, &h.admin_peer, &h.reports_peer}) {
        for_each_request([&](auto typed) {
            if constexpr (requires { typed.auth; }) {
                typed.auth.user = "bob";
                typed.auth.password = "SECRET-password";
                typed.auth.token = "SECRET-token";
                typed.auth.totp = "123456";
            }
            if constexpr (requires { typed.password; }) {
                typed.password = "SECRET-new-password";
            }
            if constexpr (requires { typed.pin.clear(); }) {
                typed.pin = "SECRET-pin";  // PinSplit's (ElevationDecide's is sealed)
            }
            if constexpr (requires { typed.code; }) {
                typed.code = "654321";
            }
            if constexpr (requires { typed.private_key; }) {
                typed.private_key = "SECRET-private-key";
            }
            ipc::Request request = typed;
            const std::size_t index = request.index();
            (void)h.service->handle(*peer, request);
            std::visit(
                [&](const auto& r) {
                    if constexpr (requires { r.auth; }) {
                        EXPECT_TRUE(r.auth.password.empty()) << index;
                        EXPECT_TRUE(r.auth.token.empty()) << index;
                        EXPECT_TRUE(r.auth.totp.empty()) << index;
                    }
                    if constexpr (requires { r.password; }) {
                        EXPECT_TRUE(r.password.empty()) << index;
                    }
                    if constexpr (requires { r.pin.clear(); }) {
                        EXPECT_TRUE(r.pin.empty()) << index;
                    }
                    if constexpr (requires { r.code; }) {
                        EXPECT_TRUE(r.code.empty()) << index;
                    }
                    if constexpr (requires { r.private_key; }) {
                        EXPECT_TRUE(r.private_key.empty()) << index;
                    }
                },
                request);
        });
    }
}

}  // namespace
}  // namespace dkim::test

#pragma once
// The shares custody's fixture and the audit log's records (issue 23), shared by
// pin_custody_test.cpp and the red team's pin_custody_attack_test.cpp: signerd in [pin] source =
// "shares" with a 10-minute unlock window over the fake gate (PIN "1234"), five custodians (bob,
// carol, dave, erin, frank), the first split at the CLI, and submissions sealed to keys offered
// through the web peer.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fake_gate.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {

// The audit log's records of one action.
inline std::vector<jit::AuditRecord> custody_log(SignerdHarness& h, const std::string& action) {
    std::vector<jit::AuditRecord> out;
    for (const auto& r : audit_log(h)) {
        if (r.action == action) {
            out.push_back(r);
        }
    }
    return out;
}

class PinSharesFixture : public ::testing::Test {
  protected:
    static signerd::ServiceOptions shares_mode() {
        signerd::ServiceOptions o;
        o.pin_source = signerd::PinSourceKind::shares;
        o.pin_unlock_window = std::chrono::minutes(10);
        return o;
    }
    PinSharesFixture() {
        const jit::Actor local{
            jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
        for (const char* name : {"dave", "erin", "frank"}) {
            Person p{name, std::string(name) + "-password-123", ""};
            EXPECT_TRUE(h.engine.directory().add_user(local, name,
                                                      static_cast<jit::RoleSet>(jit::Role::auditor),
                                                      p.password, h.clock.now()));
            h.people[name] = p;
        }
    }
    // The first split, at the CLI: shares by custodian.
    std::map<std::string, std::string> split(const std::string& pin = "1234") {
        auto reply = h.call(h.admin_peer, ipc::PinSplit{{}, pin, 3, custodians});
        EXPECT_TRUE(std::holds_alternative<ipc::PinSharesReply>(reply)) << error_message(reply);
        std::map<std::string, std::string> out;
        if (const auto* shares = std::get_if<ipc::PinSharesReply>(&reply)) {
            set_id = shares->set_id;
            for (const auto& s : shares->shares) {
                out[s.custodian] = s.share;
            }
        }
        return out;
    }
    // `share` sealed to a key offered to `sealer`, submitted with `submitter`'s credentials.
    ipc::Reply submit_as(const std::string& sealer, const std::string& submitter,
                         const std::string& share) {
        auto sealed = h.seal_pin(sealer, "share", set_id, share, &h.web_peer);
        if (!sealed) {
            return ipc::ErrorReply{ipc::ErrorCode::protocol, sealed.error(), 0, {}};
        }
        return h.call(h.web_peer, ipc::PinShareSubmit{h.password_of(submitter), *sealed});
    }
    ipc::Reply submit(const std::string& who, const std::string& share) {
        return submit_as(who, who, share);
    }
    ipc::PinStatusReply status() {
        return std::get<ipc::PinStatusReply>(h.call(h.admin_peer, ipc::PinStatusRequest{}));
    }
    std::size_t submitted_count() {
        const auto s = status();
        return static_cast<std::size_t>(std::count_if(s.custodians.begin(), s.custodians.end(),
                                                      [](const auto& c) { return c.submitted; }));
    }
    // A sign grant approved by bob (quorum 1): what the quorum's login is for.
    std::int64_t grant() {
        const auto id = h.request_sign("example.com", "s1", 3600);
        EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(h.decide("bob", "approve", id)));
        return id;
    }

    FakeGate gate;
    SignerdHarness h{gate, shares_mode()};
    const std::vector<std::string> custodians{"bob", "carol", "dave", "erin", "frank"};
    std::string set_id;
};

}  // namespace dkim::test

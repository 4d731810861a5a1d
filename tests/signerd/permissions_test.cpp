// WhoAmI's permissions (what the console shows each user) against what the operations allow:
// user by user, every operation is tried and must succeed exactly when the permissions say
// so, under a policy that names approvers by role and by user name.

#include <gtest/gtest.h>

#include <algorithm>

#include "fake_gate.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

jit::Policy policy_with_named_approvers() {
    jit::Policy p = jit::Policy::defaults();
    p.operations[jit::Operation::key_retire].approvers = {"role:admin", "dave"};
    p.operations[jit::Operation::admin].approvers = {"role:admin"};
    return p;
}

bool succeeded(const ipc::Reply& reply) {
    return !std::holds_alternative<ipc::ErrorReply>(reply);
}

class PermissionsTest : public ::testing::Test {
  protected:
    PermissionsTest() {
        // alice (requester), bob and carol (approvers with TOTP) come with the harness.
        add_person("dave", {jit::Role::requester}, true);  // a named key.retire approver
        add_person("erin", {jit::Role::auditor}, false);
        add_person("frank", {jit::Role::admin}, true);
        add_person("gina", {jit::Role::approver}, false);  // no TOTP: cannot decide anything
        add_person("hank", {jit::Role::admin, jit::Role::requester}, false);
    }

    void add_person(const std::string& name, std::initializer_list<jit::Role> roles, bool totp) {
        const jit::Actor local{
            jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
        const jit::Actor self = user(name, roles);
        const auto now = h.clock.now();
        Person p{name, name + "-password-123", ""};
        ASSERT_TRUE(h.engine.directory().add_user(local, name, self.roles, p.password, now));
        if (totp) {
            auto enrolment = h.engine.directory().enrol_totp(local, name, now);
            ASSERT_TRUE(enrolment);
            p.totp_secret = base32_decode(enrolment->secret_base32);
            ASSERT_TRUE(h.engine.directory().confirm_totp(self, name,
                                                          totp_at(p.totp_secret, now - 30s), now));
        }
        h.people[name] = p;
    }

    ipc::Permissions permissions_of(const std::string& name) {
        auto reply = h.call(h.web_peer, ipc::WhoAmI{h.password_of(name)});
        EXPECT_TRUE(std::holds_alternative<ipc::IdentityReply>(reply)) << error_message(reply);
        return std::holds_alternative<ipc::IdentityReply>(reply)
                   ? std::get<ipc::IdentityReply>(reply).permissions
                   : ipc::Permissions{};
    }

    // A pending request of `requester` for `operation`, on a selector of its own (so that no
    // grant of an earlier step covers it).
    std::int64_t file(const std::string& requester, const std::string& operation,
                      bool break_glass = false) {
        ipc::ElevationRequest r;
        r.auth = h.password_of(requester, break_glass);
        r.operation = operation;
        r.domain = operation == "admin" ? "*" : "example.com";
        r.selector = operation == "admin" ? "*" : "p" + std::to_string(++selectors_);
        r.duration_seconds = 600;
        r.reason = "CHG-19 permissions";
        r.break_glass = break_glass;
        auto reply = h.call(h.web_peer, r);
        return std::holds_alternative<ipc::OkReply>(reply) ? std::get<ipc::OkReply>(reply).id : 0;
    }

    // The local operator tidies up: pending requests cancelled, active grants revoked.
    void tidy() {
        const auto now = h.clock.now();
        for (const jit::Request& r : h.engine.authority().requests()) {
            if (r.state_at(now) == jit::RequestState::pending) {
                EXPECT_TRUE(succeeded(
                    h.call(h.admin_peer, ipc::ElevationDecide{{}, "cancel", r.id, "", {}})));
            }
        }
        for (const jit::Grant& g : h.engine.authority().grants()) {
            if (g.active_at(now)) {
                EXPECT_TRUE(succeeded(h.call(h.admin_peer, ipc::GrantRevoke{{}, g.id, "tidy"})));
            }
        }
    }

    FakeGate gate;
    SignerdHarness h{gate, file_pin_options(), policy_with_named_approvers()};
    int selectors_ = 0;
};

TEST_F(PermissionsTest, PermissionsAreWhatTheOperationsAllow) {
    const std::vector<std::string> people = {"alice", "bob",   "carol", "dave",
                                             "erin",  "frank", "gina",  "hank"};
    const std::vector<std::string> operations = {"sign", "key.generate", "key.rotate", "key.retire",
                                                 "admin"};
    for (const std::string& who : people) {
        SCOPED_TRACE(who);
        const ipc::Permissions may = permissions_of(who);

        // Requests, and break-glass.
        const auto own = file(who, "sign");
        EXPECT_EQ(own != 0, may.request);
        tidy();
        EXPECT_EQ(file(who, "sign", true) != 0, may.break_glass);
        tidy();

        // Approve and deny, per operation (alice files; nobody decides their own request).
        for (const std::string& op : operations) {
            SCOPED_TRACE(op);
            const bool approver =
                std::find(may.approve.begin(), may.approve.end(), op) != may.approve.end();
            if (who != "alice") {
                for (const char* action : {"approve", "deny"}) {
                    const auto id = file("alice", op);
                    ASSERT_NE(id, 0);
                    auto decided = h.decide(who, action, id);
                    EXPECT_EQ(succeeded(decided), approver)
                        << action << ": " << error_message(decided);
                    tidy();
                }
            } else {
                EXPECT_FALSE(approver) << "alice may approve nothing";
            }
        }

        // Revoke: grants held by alice and by dave (bob approves them).
        for (const std::string& holder : std::vector<std::string>{"alice", "dave"}) {
            SCOPED_TRACE("grant of " + holder);
            const auto id = file(holder, "sign");
            ASSERT_NE(id, 0);
            ASSERT_TRUE(succeeded(h.decide("bob", "approve", id)));
            const auto grants = h.engine.authority().grants();
            ASSERT_FALSE(grants.empty());
            const auto grant = grants.back().id;
            auto revoked =
                h.call(h.web_peer, ipc::GrantRevoke{h.password_of(who, true), grant, "done"});
            const bool expected =
                may.revoke_any ||
                std::find(may.approve.begin(), may.approve.end(), "sign") != may.approve.end() ||
                (may.revoke_own && who == holder);
            EXPECT_EQ(succeeded(revoked), expected) << error_message(revoked);
            tidy();
        }

        // Cancel another's pending request (one's own: always).
        const auto theirs = file(who == "alice" ? "dave" : "alice", "sign");
        ASSERT_NE(theirs, 0);
        auto cancelled =
            h.call(h.web_peer, ipc::ElevationDecide{h.password_of(who), "cancel", theirs, "", {}});
        EXPECT_EQ(succeeded(cancelled), may.cancel_any) << error_message(cancelled);
        tidy();

        // The audit log and the users.
        EXPECT_EQ(succeeded(h.call(h.web_peer, ipc::AuditShow{h.password_of(who), 1, 10})),
                  may.audit);
        EXPECT_EQ(succeeded(h.call(h.web_peer, ipc::AuditVerify{h.password_of(who)})), may.audit);
        EXPECT_EQ(succeeded(h.call(h.web_peer, ipc::UserList{h.password_of(who)})), may.users);
    }
}

TEST_F(PermissionsTest, EachUserIsToldWhatTheirRolesAndThePolicyAllow) {
    using Ops = std::vector<std::string>;
    EXPECT_EQ(permissions_of("bob").approve, (Ops{"sign", "key.generate", "key.rotate"}));
    EXPECT_EQ(permissions_of("dave").approve, (Ops{"key.retire"})) << "named in the policy";
    EXPECT_EQ(permissions_of("frank").approve, (Ops{"key.retire", "admin"}));
    EXPECT_TRUE(permissions_of("gina").approve.empty()) << "an approver without TOTP";
    const auto requester = permissions_of("alice");
    EXPECT_TRUE(requester.request);
    EXPECT_FALSE(requester.audit || requester.users || requester.revoke_own ||
                 requester.cancel_any);
    const auto auditor = permissions_of("erin");
    EXPECT_TRUE(auditor.audit && auditor.users);
    EXPECT_FALSE(auditor.request || auditor.revoke_any || auditor.cancel_any);
    const auto admin_without_totp = permissions_of("hank");
    EXPECT_TRUE(admin_without_totp.request && admin_without_totp.cancel_any &&
                admin_without_totp.audit && admin_without_totp.users);
    EXPECT_FALSE(admin_without_totp.break_glass || admin_without_totp.revoke_any)
        << "both need a confirmed TOTP enrolment";
    const auto admin = permissions_of("frank");
    EXPECT_TRUE(admin.break_glass && admin.revoke_any && admin.cancel_any);
    EXPECT_FALSE(admin.request);
    // The local operator at the CLI.
    auto local = h.call(h.admin_peer, ipc::WhoAmI{});
    ASSERT_TRUE(std::holds_alternative<ipc::IdentityReply>(local)) << error_message(local);
    const auto& operator_may = std::get<ipc::IdentityReply>(local).permissions;
    EXPECT_TRUE(operator_may.revoke_any && operator_may.cancel_any && operator_may.audit &&
                operator_may.users);
    EXPECT_FALSE(operator_may.request || operator_may.break_glass || !operator_may.approve.empty())
        << "requests and decisions are made by users";
}

}  // namespace
}  // namespace dkim::test

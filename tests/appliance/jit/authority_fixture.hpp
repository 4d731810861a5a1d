#pragma once
// What the Authority's tests (authority_test.cpp, supersession_test.cpp) share: the actors, and a
// fixture with a JIT engine and the moment t0 that its requests and approvals are made at.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "jit_fixture.hpp"

namespace dkim::test {

class AuthorityTest : public ::testing::Test {
  protected:
    static inline const jit::Actor alice = user("alice", {jit::Role::requester});
    static inline const jit::Actor bob = user("bob", {jit::Role::approver});
    static inline const jit::Actor carol = user("carol", {jit::Role::approver});
    static inline const jit::Actor dave = user("dave", {jit::Role::requester, jit::Role::approver});
    static inline const jit::Actor root = user("root-admin", {jit::Role::admin});

    JitEngine engine;
    TimePoint t0 = test_epoch();

    std::int64_t pending(const jit::RequestInput& in, const jit::Actor& who = alice) {
        auto r = engine.authority().request(who, in, t0);
        EXPECT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->request.state, jit::RequestState::pending);
        return r->request.id;
    }
    std::int64_t granted(const jit::RequestInput& in) {
        const auto id = pending(in);
        auto d = engine.authority().approve(bob, id, t0);
        EXPECT_TRUE(d) << d.error().message;
        EXPECT_TRUE(d->grant.has_value());
        return d->grant ? d->grant->id : 0;
    }
    bool can_sign(TimePoint at, const std::string& d = "example.com", const std::string& s = "s1",
                  const std::string& client = "relay") {
        return engine.authority().authorize_sign(client, d, s, at).has_value();
    }
};

inline jit::Refusal::Code code_of(const jit::Outcome<jit::Decision>& d) {
    return d.error().code;
}

}  // namespace dkim::test

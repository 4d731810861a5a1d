// The keys' lifecycle in signerd with a fake token and the real SQLite store: generation,
// activation (rotation), the grace period, retirement with destruction, import; every
// operation refused without its grant; and a crash at every point of a rotation followed by a
// restart and a rerun, which must end in the same state as an uninterrupted run.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "dkim/jit/audit.hpp"
#include "fake_gate.hpp"
#include "signerd_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

// A real Ed25519 PKCS#8 key (RFC 8410 §10.3), so that signerd can read its public half.
const std::string kImportPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n"
    "-----END PRIVATE KEY-----\n";

class KeyLifecycleTest : public ::testing::Test {
  protected:
    FakeGate gate;
    SignerdHarness h{gate, file_pin_options()};

    void SetUp() override { gate.add_key("example.com", "s1"); }

    // alice asks for `operation` on domain/selector, bob approves (and carol, where the
    // policy wants two: key.retire).
    void grant(const std::string& operation, const std::string& selector,
               const std::string& domain = "example.com") {
        ipc::ElevationRequest r;
        r.auth = h.password_of("alice");
        r.operation = operation;
        r.domain = domain;
        r.selector = selector;
        r.duration_seconds = 3600;
        r.reason = "CHG-42 rotation";
        auto requested = h.call(h.web_peer, r);
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(requested)) << error_message(requested);
        const auto id = std::get<ipc::OkReply>(requested).id;
        auto approved = h.decide("bob", "approve", id);
        ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(approved)) << error_message(approved);
        if (std::get<ipc::OkReply>(approved).id == 0) {
            approved = h.decide("carol", "approve", id);
            ASSERT_TRUE(std::holds_alternative<ipc::OkReply>(approved)) << error_message(approved);
        }
    }

    ipc::Reply generate(const std::string& selector, bool rotation = true,
                        const std::string& algorithm = "rsa-2048") {
        return h.call(h.web_peer, ipc::KeyGenerate{h.password_of("alice"), "example.com", selector,
                                                   algorithm, rotation});
    }
    ipc::Reply activate(const std::string& selector, std::int64_t grace = 86400) {
        return h.call(h.web_peer,
                      ipc::KeyActivate{h.password_of("alice"), "example.com", selector, grace});
    }
    ipc::Reply retire(const std::string& selector, bool force = false) {
        return h.call(h.web_peer,
                      ipc::KeyRetire{h.password_of("alice"), "example.com", selector, force});
    }
    std::vector<std::string> signing_selectors() {
        auto reply = h.call(h.relay_peer, ipc::SigningKeysRequest{"example.com"});
        std::vector<std::string> out;
        if (const auto* keys = std::get_if<ipc::SigningKeysReply>(&reply)) {
            for (const auto& k : keys->keys) {
                out.push_back(k.selector);
            }
        }
        return out;
    }
    std::map<std::string, std::string> states() {
        auto reply = h.call(h.web_peer, ipc::KeyList{h.password_of("alice")});
        std::map<std::string, std::string> out;
        if (const auto* keys = std::get_if<ipc::KeysReply>(&reply)) {
            for (const auto& k : keys->keys) {
                out[k.selector] = k.state + (k.managed ? "" : " (unmanaged)");
            }
        }
        return out;
    }
    std::vector<jit::AuditRecord> log() {
        auto records = h.engine.journal().store().audit_records(1, 100'000);
        EXPECT_TRUE(records);
        return records ? *records : std::vector<jit::AuditRecord>{};
    }
    std::size_t count(const std::string& action) {
        const auto all = log();
        return static_cast<std::size_t>(std::count_if(
            all.begin(), all.end(), [&](const jit::AuditRecord& a) { return a.action == action; }));
    }
    std::string sign_with(const std::string& selector) {
        const auto reply =
            h.sign(header_block("example.com", selector, SigningAlgorithm::rsa_sha256,
                                Canon::relaxed, h.clock.now()),
                   "example.com", selector);
        return std::holds_alternative<ipc::SignReply>(reply) ? "signed" : error_code(reply);
    }
};

TEST_F(KeyLifecycleTest, ARotationFromGenerationToRetirement) {
    EXPECT_EQ(states(), (std::map<std::string, std::string>{{"s1", "active (unmanaged)"}}));
    EXPECT_EQ(signing_selectors(), std::vector<std::string>{"s1"});

    grant("key.rotate", "s2");
    auto made = generate("s2");
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(made)) << error_message(made);
    EXPECT_EQ(states()["s2"], "pending-publish");
    EXPECT_EQ(signing_selectors(), std::vector<std::string>{"s1"}) << "not before activation";
    grant("sign", "*");
    EXPECT_EQ(sign_with("s2"), "forbidden") << "a pending key does not sign";

    auto activated = activate("s2", 86400);
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(activated)) << error_message(activated);
    EXPECT_NE(std::get<ipc::KeysReply>(activated).message.find("s1 retiring until"),
              std::string::npos);
    EXPECT_EQ(states(), (std::map<std::string, std::string>{{"s1", "retiring"}, {"s2", "active"}}));
    EXPECT_EQ(signing_selectors(), std::vector<std::string>{"s2"});
    EXPECT_EQ(sign_with("s1"), "signed") << "a relay that still holds s1 may use it";
    EXPECT_EQ(sign_with("s2"), "signed");

    grant("key.retire", "s1");
    auto early = retire("s1");
    EXPECT_EQ(error_code(early), "conflict");
    EXPECT_NE(error_message(early).find("grace period"), std::string::npos);
    EXPECT_TRUE(gate.has_private("example.com", "s1"));

    h.clock.advance(24h);
    grant("key.retire", "s1");
    auto retired = retire("s1");
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(retired)) << error_message(retired);
    EXPECT_FALSE(gate.has_private("example.com", "s1")) << "the private half is destroyed";
    ASSERT_NE(gate.find("example.com", "s1"), nullptr) << "the public half stays";
    EXPECT_EQ(states(), (std::map<std::string, std::string>{{"s1", "retired"}, {"s2", "active"}}));
    grant("sign", "*");
    EXPECT_EQ(sign_with("s1"), "forbidden");
    EXPECT_EQ(sign_with("s2"), "signed");
    EXPECT_EQ(count("key.generated"), 1U);
    EXPECT_EQ(count("key.activated"), 1U);
    EXPECT_EQ(count("key.retired"), 1U);
    EXPECT_EQ(count("key.destroyed"), 1U);

    // The records survive a restart.
    h.restart();
    EXPECT_EQ(states(), (std::map<std::string, std::string>{{"s1", "retired"}, {"s2", "active"}}));
    EXPECT_EQ(signing_selectors(), std::vector<std::string>{"s2"});
}

TEST_F(KeyLifecycleTest, EveryKeyOperationIsRefusedWithoutItsGrant) {
    grant("sign", "*");  // a grant, but of another operation
    EXPECT_EQ(error_code(generate("s2")), "forbidden");
    EXPECT_EQ(error_code(generate("s2", false)), "forbidden");
    EXPECT_EQ(gate.generated, 0);
    grant("key.generate", "s2");
    EXPECT_EQ(error_code(generate("s2", true)), "forbidden")
        << "a rotation's key needs key.rotate, not key.generate";
    auto made = generate("s2", false);
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(made)) << error_message(made);
    EXPECT_EQ(error_code(activate("s2")), "forbidden")
        << "displacing the active s1 is a rotation: key.rotate";
    EXPECT_EQ(states()["s2"], "pending-publish");
    EXPECT_EQ(error_code(retire("s2")), "forbidden");
    EXPECT_EQ(error_code(retire("s1", true)), "forbidden");
    EXPECT_TRUE(gate.has_private("example.com", "s1"));
    EXPECT_EQ(
        error_code(h.call(h.web_peer, ipc::KeyImport{h.password_of("alice"), "example.com", "s9",
                                                     "-----BEGIN PRIVATE KEY-----", ""})),
        "invalid")
        << "not a key: refused before any grant is spent";
    grant("key.rotate", "s2");
    EXPECT_TRUE(std::holds_alternative<ipc::KeysReply>(activate("s2")));
    // A grant names its selector: key.rotate for s2 does not retire s1.
    EXPECT_EQ(error_code(retire("s1", true)), "forbidden");
    const auto all = log();
    EXPECT_TRUE(std::any_of(all.begin(), all.end(), [](const jit::AuditRecord& a) {
        return a.action == "key.activated" && a.actor == "alice";
    }));
}

TEST_F(KeyLifecycleTest, TheFirstKeyOfAKindNeedsNoRotationAndKindsRotateApart) {
    grant("key.generate", "ed1");
    EXPECT_EQ(error_code(generate("ed1", true, "ed25519")), "invalid")
        << "no Ed25519 key signs yet: nothing to rotate";
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(generate("ed1", false, "ed25519")));
    auto activated = activate("ed1");
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(activated)) << error_message(activated);
    EXPECT_EQ(states(),
              (std::map<std::string, std::string>{{"ed1", "active"}, {"s1", "active (unmanaged)"}}))
        << "an Ed25519 key does not displace the RSA key: dual signing";
    EXPECT_EQ(signing_selectors(), (std::vector<std::string>{"ed1", "s1"}));
    auto again = activate("ed1");
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(again)) << error_message(again);
    EXPECT_EQ(std::get<ipc::KeysReply>(again).message, "already active");
}

TEST_F(KeyLifecycleTest, AForcedRetirementStopsACompromisedKeyAtOnce) {
    grant("sign", "*");
    EXPECT_EQ(sign_with("s1"), "signed");
    grant("key.retire", "s1");
    EXPECT_EQ(error_code(retire("s1")), "conflict") << "active: only with force";
    auto forced = retire("s1", true);
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(forced)) << error_message(forced);
    EXPECT_EQ(sign_with("s1"), "forbidden");
    EXPECT_TRUE(signing_selectors().empty());
    const auto all = log();
    EXPECT_TRUE(std::any_of(all.begin(), all.end(), [](const jit::AuditRecord& a) {
        return a.action == "key.retired" && a.detail == "was active; forced";
    }));
}

TEST_F(KeyLifecycleTest, ImportSignsItsTestBlockAndWipesTheKeyBytes) {
    gate.imported_algorithm = "ed25519";
    grant("key.generate", "imp");
    const std::string& pem = kImportPem;
    const std::string block = header_block("example.com", "imp", SigningAlgorithm::ed25519_sha256);
    ipc::Request request = ipc::KeyImport{h.password_of("alice"), "example.com", "imp", pem, block};
    auto reply = h.service->handle(h.web_peer, request);
    ASSERT_TRUE(std::holds_alternative<ipc::KeysReply>(reply)) << error_message(reply);
    EXPECT_EQ(gate.last_import, pem);
    EXPECT_TRUE(std::get<ipc::KeyImport>(request).private_key.empty()) << "wiped";
    const auto& keys = std::get<ipc::KeysReply>(reply);
    EXPECT_EQ(keys.keys.at(0).state, "pending-publish");
    EXPECT_EQ(keys.keys.at(0).origin, "imported");
    EXPECT_EQ(keys.test_signature, "sig(example.com/imp," + std::to_string(block.size()) + ")");

    // The test block must be a signature of the imported key.
    grant("key.generate", "imp2");
    auto wrong = h.call(h.web_peer, ipc::KeyImport{h.password_of("alice"), "example.com", "imp2",
                                                   pem, header_block("example.com", "other")});
    EXPECT_EQ(error_code(wrong), "invalid");
    EXPECT_EQ(gate.find("example.com", "imp2"), nullptr);
}

TEST_F(KeyLifecycleTest, AnImportsTestSignatureIsWithheldWhenItsAuditRecordFails) {
    // Fail closed: the audit log breaks between the token's signature and its record.
    gate.imported_algorithm = "ed25519";
    grant("key.generate", "imp");
    const std::string& pem = kImportPem;
    const std::string block = header_block("example.com", "imp", SigningAlgorithm::ed25519_sha256);
    gate.before_sign = [this] { h.engine.store().failing = true; };
    const auto reply = h.call(
        h.web_peer, ipc::KeyImport{h.password_of("alice"), "example.com", "imp", pem, block});
    h.engine.store().failing = false;
    ASSERT_EQ(error_code(reply), "unavailable") << error_message(reply);
    EXPECT_NE(error_message(reply).find("test signature was withheld"), std::string::npos);
    EXPECT_EQ(gate.signatures, 1) << "the token signed, the signature did not leave";
}

TEST_F(KeyLifecycleTest, AnUnreadableTokenFailsClosed) {
    gate.unreadable = true;
    EXPECT_EQ(error_code(h.call(h.relay_peer, ipc::SigningKeysRequest{"example.com"})),
              "unavailable");
    grant("key.rotate", "s2");
    EXPECT_EQ(error_code(generate("s2")), "unavailable");
    EXPECT_EQ(gate.generated, 0);
}

// --- crashes ------------------------------------------------------------------------------

struct CrashCase {
    const char* name;
    std::string operation;  // the token operation that "dies"
    FakeGate::When when;
};

class KeyLifecycleCrashTest : public KeyLifecycleTest,
                              public ::testing::WithParamInterface<CrashCase> {};

// Runs the rotation s1 -> s2; the crash lands where the parameter says; after it the process
// restarts (everything rebuilt from the store, the token as it was) and the operator reruns
// the step that was interrupted. The end state must be the uninterrupted one.
TEST_P(KeyLifecycleCrashTest, RerunningTheInterruptedStepFinishesIt) {
    gate.crash = FakeGate::CrashPoint{GetParam().operation, GetParam().when};
    const auto run = [&](const std::function<ipc::Reply()>& step) {
        try {
            auto reply = step();
            ASSERT_FALSE(std::holds_alternative<ipc::ErrorReply>(reply)) << error_message(reply);
        } catch (const Crash&) {
            h.restart();  // the process died here; the token keeps what it did
            gate.in = false;
            auto reply = step();  // the operator reruns the same step
            ASSERT_FALSE(std::holds_alternative<ipc::ErrorReply>(reply)) << error_message(reply);
        }
        // And a crash between two steps: restart once more before the next.
        h.restart();
        gate.in = false;
    };
    grant("key.rotate", "s2");
    run([&] { return generate("s2"); });
    EXPECT_EQ(states()["s2"], "pending-publish");
    run([&] { return activate("s2", 3600); });
    h.clock.advance(1h);
    grant("key.retire", "s1");
    run([&] { return retire("s1"); });
    // Rerunning every step once more changes nothing.
    grant("key.rotate", "s2");
    EXPECT_EQ(error_code(generate("s2")), "conflict") << "s2 is active now: no second key";
    EXPECT_EQ(std::get<ipc::KeysReply>(activate("s2")).message, "already active");
    // (The key.retire grant is still active: a second request for it would be refused.)
    EXPECT_NE(std::get<ipc::KeysReply>(retire("s1")).message.find("already retired"),
              std::string::npos);

    EXPECT_EQ(states(), (std::map<std::string, std::string>{{"s1", "retired"}, {"s2", "active"}}));
    EXPECT_EQ(gate.generated, 1) << "exactly one key was made";
    EXPECT_EQ(gate.keys.size(), 2U);
    EXPECT_FALSE(gate.has_private("example.com", "s1"));
    EXPECT_TRUE(gate.has_private("example.com", "s2"));
    EXPECT_EQ(signing_selectors(), std::vector<std::string>{"s2"});
    EXPECT_FALSE(gate.crash) << "the crash point was reached";
    const auto all = log();
    const auto report = jit::verify_chain(all, *h.engine.journal().store().checkpoints());
    EXPECT_TRUE(report.ok) << report.problem;
}

INSTANTIATE_TEST_SUITE_P(
    EveryPoint, KeyLifecycleCrashTest,
    ::testing::Values(
        CrashCase{"BeforeTheTokenGenerates", "generate", FakeGate::When::before},
        CrashCase{"AfterTheTokenGenerated", "generate", FakeGate::When::after},
        CrashCase{"BeforeThePrivateKeyIsDestroyed", "destroy", FakeGate::When::before},
        CrashCase{"AfterThePrivateKeyWasDestroyed", "destroy", FakeGate::When::after}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace dkim::test

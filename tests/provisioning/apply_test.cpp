// apply's configuration (strict, errors with file:line and key) and its plan: what is created,
// rotated, activated, retired, what waits for DNS, and that a realised configuration plans
// nothing.

#include "dkim/provisioning/apply.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "dkim/dmarc/policy.hpp"
#include "dkim/dns/resolver.hpp"

namespace dkim::provisioning {
namespace {

using Action = PlannedStep::Action;
constexpr std::int64_t kApplyNow = 1'795'694'400'000;  // 2026-11-26T12:00:00Z
constexpr std::int64_t kApplyDay = 86'400'000;

KeyStatus ks(const std::string& selector, const std::string& algorithm, const std::string& state,
             bool managed = true, std::int64_t activated = 0, std::int64_t retire_after = 0) {
    KeyStatus k;
    k.selector = selector;
    k.algorithm = algorithm;
    k.state = state;
    k.managed = managed;
    k.activated_ms = activated;
    k.retire_after_ms = retire_after;
    return k;
}

class ApplyTest : public ::testing::Test {
  protected:
    Expected<ApplyConfig, std::string> load(const std::string& text) {
        const auto file = dir_ / "appliance.toml";
        std::ofstream(file) << text;
        return load_apply_config(file.string());
    }
    Plan plan(const std::map<std::string, std::vector<KeyStatus>>& keys,
              std::int64_t now = kApplyNow) {
        return plan_apply(config_, keys, now, [this](const std::string&, const KeyStatus& k) {
            return published_.count(k.selector) != 0;
        });
    }
    static std::vector<std::string> summary(const Plan& p) {
        std::vector<std::string> out;
        for (const auto& s : p.steps) {
            out.push_back(std::string(to_string(s.action)) + " " + s.domain + " " + s.selector +
                          " " + s.algorithm);
        }
        return out;
    }

    std::filesystem::path dir_ = [] {
        std::string pattern = (std::filesystem::temp_directory_path() / "apply-XXXXXX").string();
        return std::filesystem::path(::mkdtemp(pattern.data()));
    }();
    ApplyConfig config_;
    std::set<std::string> published_;
};

constexpr const char* kConfig = R"(
outbound_addresses = ["192.0.2.25"]
dmarc_rua = "mailto:dmarc@example.com"
[rotation]
grace = "2d"
[[domain]]
name = "Example.com"
rotate_after = "180d"
[[domain.key]]
algorithm = "rsa-2048"
[[domain.key]]
algorithm = "ed25519"
selector = "ed1"
)";

TEST_F(ApplyTest, ReadsTheConfiguration) {
    auto c = load(kConfig);
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ(c->grace, std::chrono::hours(48));
    ASSERT_EQ(c->domains.size(), 1U);
    EXPECT_EQ(c->domains[0].name, "example.com");
    EXPECT_EQ(c->domains[0].keys.size(), 2U);
    EXPECT_EQ(c->domains[0].keys[1].selector, "ed1");
    EXPECT_EQ(c->domains[0].rotate_after, std::chrono::hours(24 * 180));
}

TEST_F(ApplyTest, SelectorsMayHoldTheClusterNodesName) {
    // One appliance.toml for every node of a cluster: apply on each completes %n with its name.
    auto c = load(
        "[rotation]\nselector_format = \"%n-s%Y\"\n[[domain]]\nname = \"example.com\"\n"
        "[[domain.key]]\nalgorithm = \"rsa-2048\"\nselector = \"rsa-%n\"\n");
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ(c->selector_format, "%n-s%Y");
    EXPECT_EQ(c->domains[0].keys[0].selector, "rsa-%n");
    EXPECT_FALSE(
        load("[[domain]]\nname = \"example.com\"\n[[domain.key]]\nalgorithm = "
             "\"rsa-2048\"\nselector = \"rsa_%n!\"\n"));
}

TEST_F(ApplyTest, ConfigurationErrorsNameLineAndKey) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"[[domain]]\nname = \"example.com\"\n[[domain.key]]\nalgorithm = \"rsa-1024\"\n",
         "domain[0].key[0].algorithm"},
        {"[[domain]]\nname = \"example.com\"\n[[domain.key]]\nalgorithm = \"rsa-2048\"\n"
         "[[domain.key]]\nalgorithm = \"rsa-4096\"\n",
         "one key per kind"},
        {"[[domain]]\nname = \"example.com\"\n", "at least one [[domain.key]]"},
        {"[[domain]]\nname = \"not a domain\"\n[[domain.key]]\nalgorithm = \"ed25519\"\n",
         "expected a domain name"},
        {"outbound_addresses = [\"mail.example.com\"]\n", "outbound_addresses"},
        {"[rotation]\nselector_format = \"s_%Y\"\n", "selector_format"},
        {"dmarc_ruf = \"dmarc-failures@example.com\"\n", "dmarc_ruf"},
        {"tlsrpt_rua = \"mailto:tls@example.com; x=1\"\n", "tlsrpt_rua"},
        {"dmarc_rua = \"ftp://example.com/\"\n", "dmarc_rua"},
        {"[[domain]]\nname = \"example.com\"\ncolour = \"blue\"\n[[domain.key]]\n"
         "algorithm = \"ed25519\"\n",
         "colour"},
        {"", "nothing to apply"},
    };
    for (const auto& [text, says] : cases) {
        auto c = load(text);
        ASSERT_FALSE(c) << text;
        EXPECT_NE(c.error().find("appliance.toml"), std::string::npos) << c.error();
        EXPECT_NE(c.error().find(says), std::string::npos) << c.error();
    }
    auto c = load("[[domain]]\nname = \"example.com\"\n[[domain.key]]\nalgorithm = \"rsa-1024\"\n");
    EXPECT_NE(c.error().find(":4:"), std::string::npos) << "the line: " << c.error();
}

TEST_F(ApplyTest, FromNothingToTwoActiveKeysThenNothingToDo) {
    config_ = *load(kConfig);
    std::map<std::string, std::vector<KeyStatus>> keys;
    EXPECT_EQ(summary(plan(keys)), (std::vector<std::string>{
                                       "create example.com s2026-11 rsa-2048",
                                       "create example.com ed1 ed25519",
                                   }));
    keys["example.com"] = {ks("s2026-11", "rsa-2048", "pending-publish"),
                           ks("ed1", "ed25519", "pending-publish")};
    auto p = plan(keys);
    EXPECT_FALSE(p.changes()) << "nothing to do until the records are published";
    EXPECT_TRUE(p.waiting());
    published_ = {"s2026-11"};
    EXPECT_EQ(summary(plan(keys)), (std::vector<std::string>{
                                       "activate example.com s2026-11 rsa-2048",
                                       "publish example.com ed1 ed25519",
                                   }));
    keys["example.com"] = {ks("s2026-11", "rsa-2048", "active", true, kApplyNow),
                           ks("ed1", "ed25519", "active", true, kApplyNow)};
    p = plan(keys);
    EXPECT_TRUE(p.steps.empty()) << "the configuration is realised: nothing planned";
    EXPECT_FALSE(p.changes());
    EXPECT_FALSE(p.waiting());
}

TEST_F(ApplyTest, RotatesByAgeAlgorithmOrSelectorAndRetiresAfterTheGracePeriod) {
    config_ = *load(kConfig);
    std::map<std::string, std::vector<KeyStatus>> keys;
    keys["example.com"] = {ks("old", "rsa-2048", "active", true, kApplyNow - 200 * kApplyDay),
                           ks("ed1", "ed25519", "active", true, kApplyNow)};
    EXPECT_EQ(summary(plan(keys)),
              std::vector<std::string>{"rotate example.com s2026-11 rsa-2048"});
    config_.domains[0].keys[0].algorithm = "rsa-3072";
    keys["example.com"][0].activated_ms = kApplyNow;
    EXPECT_EQ(summary(plan(keys)),
              std::vector<std::string>{"rotate example.com s2026-11 rsa-3072"});
    config_.domains[0].keys[1].selector = "ed2";
    config_.domains[0].keys[0].algorithm = "rsa-2048";
    EXPECT_EQ(summary(plan(keys)), std::vector<std::string>{"rotate example.com ed2 ed25519"});

    config_.domains[0].keys[1].selector = "ed1";
    keys["example.com"] = {
        ks("old", "rsa-2048", "retiring", true, kApplyNow - 200 * kApplyDay, kApplyNow + kApplyDay),
        ks("s2026-11", "rsa-2048", "active", true, kApplyNow),
        ks("ed1", "ed25519", "active", true, kApplyNow)};
    auto p = plan(keys);
    EXPECT_EQ(summary(p), std::vector<std::string>{"wait example.com old rsa-2048"});
    EXPECT_FALSE(p.changes());
    EXPECT_EQ(summary(plan(keys, kApplyNow + kApplyDay)),
              std::vector<std::string>{"retire example.com old rsa-2048"});
}

TEST_F(ApplyTest, LeavesUnlistedKeysAloneAndSaysSo) {
    config_ = *load(kConfig);
    config_.domains[0].keys.pop_back();  // RSA only
    std::map<std::string, std::vector<KeyStatus>> keys;
    keys["example.com"] = {ks("s2026-11", "rsa-2048", "active", true, kApplyNow),
                           ks("ed0", "ed25519", "active", false, 0)};
    const auto p = plan(keys);
    ASSERT_EQ(p.steps.size(), 1U);
    EXPECT_EQ(p.steps[0].action, Action::note);
    EXPECT_NE(p.steps[0].detail.find("left alone"), std::string::npos);
    EXPECT_FALSE(p.changes());
}

TEST_F(ApplyTest, AStricterDmarcStageWaitsForTheReportsWhenAsked) {
    config_ = *load(kConfig);
    dns::FakeResolver zone;
    zone.set_txt("example.com", {"v=spf1 ip4:192.0.2.25 -all"});
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=none; rua=mailto:dmarc@example.com"});
    DesiredDomain domain = config_.domains[0];
    domain.dmarc_policy = "quarantine";
    domain.dmarc_pct = 25;
    domain.dmarc_requires_evidence = true;

    // No evidence: fail closed.
    auto steps = dns_policy_steps(config_, domain, zone, kApplyNow / 1000);
    ASSERT_EQ(steps.size(), 1U);
    EXPECT_EQ(steps[0].action, Action::wait);
    EXPECT_NE(steps[0].detail.find("no evidence"), std::string::npos) << steps[0].detail;
    // The reports support staying at none.
    DmarcEvidence evidence{true, "none", "80.0% of known sources' mail aligned"};
    steps = dns_policy_steps(config_, domain, zone, kApplyNow / 1000, nullptr, &evidence);
    ASSERT_EQ(steps.size(), 1U);
    EXPECT_EQ(steps[0].action, Action::wait);
    EXPECT_NE(steps[0].detail.find("they support p=none (80.0%"), std::string::npos)
        << steps[0].detail;
    // They support quarantine at 25 %: publish.
    evidence.next = "quarantine; pct=25";
    steps = dns_policy_steps(config_, domain, zone, kApplyNow / 1000, nullptr, &evidence);
    ASSERT_EQ(steps.size(), 1U);
    EXPECT_EQ(steps[0].action, Action::publish);
    // ...but not reject.
    domain.dmarc_policy = "reject";
    steps = dns_policy_steps(config_, domain, zone, kApplyNow / 1000, nullptr, &evidence);
    EXPECT_EQ(steps.at(0).action, Action::wait);
    // Relaxing never waits.
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=reject; rua=mailto:dmarc@example.com"});
    domain.dmarc_policy = "none";
    steps = dns_policy_steps(config_, domain, zone, kApplyNow / 1000);
    EXPECT_EQ(steps.at(0).action, Action::publish);

    EXPECT_EQ(dmarc_stage_of_next("quarantine; pct=25"), 1);
    EXPECT_EQ(dmarc_stage_of_next("quarantine; pct=100"), 2);
    EXPECT_EQ(dmarc_stage_of_next("quarantine"), 2);
    EXPECT_EQ(dmarc_stage_of_next("reject"), 3);
    EXPECT_EQ(dmarc_stage_of_next("none"), 0);
}

TEST_F(ApplyTest, TheDnsPolicyIsComparedWithWhatIsPublished) {
    config_ = *load(kConfig);
    dns::FakeResolver zone;
    zone.set_txt("example.com", {"v=spf1 ip4:192.0.2.25 -all"});
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=none; rua=mailto:dmarc@example.com"});
    const auto& domain = config_.domains[0];
    EXPECT_EQ(desired_dmarc(config_, domain), "v=DMARC1; p=none; rua=mailto:dmarc@example.com");
    EXPECT_TRUE(dns_policy_steps(config_, domain, zone, kApplyNow / 1000).empty())
        << "published as configured: nothing to do";

    config_.domains[0].dmarc_policy = "quarantine";
    config_.domains[0].dmarc_pct = 25;
    auto steps = dns_policy_steps(config_, config_.domains[0], zone, kApplyNow / 1000);
    ASSERT_EQ(steps.size(), 1U);
    EXPECT_EQ(steps[0].action, Action::publish);
    EXPECT_NE(
        steps[0].detail.find("\"v=DMARC1; p=quarantine; pct=25; rua=mailto:dmarc@example.com\""),
        std::string::npos)
        << steps[0].detail;
    EXPECT_NE(steps[0].detail.find("(published: \"v=DMARC1; p=none"), std::string::npos);

    zone.set_txt("example.com", {"v=spf1 ip4:198.51.100.1 -all"});
    steps = dns_policy_steps(config_, config_.domains[0], zone, kApplyNow / 1000);
    ASSERT_EQ(steps.size(), 2U);
    EXPECT_EQ(steps[1].selector, "SPF");
    EXPECT_NE(steps[1].detail.find("v=spf1 ip4:192.0.2.25 ip4:198.51.100.1 -all"),
              std::string::npos)
        << steps[1].detail;
}

TEST_F(ApplyTest, ReportAddressesArePartOfTheDnsPolicy) {
    const std::string text = kConfig;
    const auto top = text.find("[rotation]");
    auto loaded =
        load(text.substr(0, top) +
             "dmarc_ruf = \"mailto:dmarc-failures@reports.example.net\"\n"
             "tlsrpt_rua = \"mailto:tls@example.com,https://reports.example.net/tlsrpt\"\n" +
             text.substr(top));
    ASSERT_TRUE(loaded) << loaded.error();
    config_ = *loaded;
    EXPECT_EQ(config_.dmarc_ruf, "mailto:dmarc-failures@reports.example.net");
    const auto& domain = config_.domains[0];
    EXPECT_EQ(desired_dmarc(config_, domain),
              "v=DMARC1; p=none; rua=mailto:dmarc@example.com; "
              "ruf=mailto:dmarc-failures@reports.example.net");
    auto psl = dmarc::PublicSuffixList::load();
    ASSERT_TRUE(psl) << psl.error();

    dns::FakeResolver zone;
    zone.set_txt("example.com", {"v=spf1 ip4:192.0.2.25 -all"});
    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=none; rua=mailto:dmarc@example.com"});
    auto steps = dns_policy_steps(config_, domain, zone, kApplyNow / 1000, *psl);
    ASSERT_EQ(steps.size(), 3U) << "DMARC without ruf=, no TLS-RPT, no authorization";
    EXPECT_EQ(steps[0].selector, "_dmarc");
    EXPECT_NE(steps[0].detail.find("ruf=mailto:dmarc-failures@reports.example.net"),
              std::string::npos)
        << steps[0].detail;
    EXPECT_EQ(steps[1].selector, "TLS-RPT");
    EXPECT_NE(
        steps[1].detail.find("_smtp._tls.example.com. IN TXT ( \"v=TLSRPTv1; "
                             "rua=mailto:tls@example.com,https://reports.example.net/tlsrpt\" )"),
        std::string::npos)
        << steps[1].detail;
    EXPECT_EQ(steps[2].selector, "DMARC report");
    EXPECT_NE(steps[2].detail.find("example.com._report._dmarc.reports.example.net. IN TXT"),
              std::string::npos)
        << steps[2].detail;

    zone.set_txt("_dmarc.example.com", {"v=DMARC1; p=none; rua=mailto:dmarc@example.com; "
                                        "ruf=mailto:dmarc-failures@reports.example.net"});
    zone.set_txt("_smtp._tls.example.com",
                 {"v=TLSRPTv1; rua=mailto:tls@example.com,https://reports.example.net/tlsrpt"});
    zone.set_txt("example.com._report._dmarc.reports.example.net", {"v=DMARC1"});
    steps = dns_policy_steps(config_, domain, zone, kApplyNow / 1000, *psl);
    EXPECT_TRUE(steps.empty()) << "published as configured: " << steps.front().detail;
}

}  // namespace
}  // namespace dkim::provisioning

// The RFC 7208 test suite (tests/data/spf, see its README.md): every scenario's zone data
// through dns::FakeResolver, every test through spf::Checker, results (and explanations) as
// the suite expects.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "dkim/dns/resolver.hpp"
#include "dkim/spf/check.hpp"
#include "test_paths.hpp"

namespace dkim::spf {
namespace {

const std::string kSuite = dkim::test::test_data_path("spf/rfc7208-tests.yml").string();

struct SuiteCase {
    std::string name;  // "section/test"
    std::string section;
    YAML::Node test;
    std::shared_ptr<const YAML::Node> zone;
};

std::string record_text(const YAML::Node& value) {
    if (value.IsSequence()) {  // several character-strings of one record
        std::string joined;
        for (const auto& part : value) {
            joined += part.as<std::string>();
        }
        return joined;
    }
    return value.as<std::string>();
}

// Serves one scenario's zonedata as the suite's reference driver does (README.md).
void load_zone(const YAML::Node& zonedata, dns::FakeResolver& resolver) {
    for (const auto& entry : zonedata) {
        const std::string name = entry.first.as<std::string>();
        bool has_txt = false;
        for (const auto& rr : entry.second) {
            if (rr.IsMap() && rr.begin()->first.as<std::string>() == "TXT") {
                has_txt = true;
            }
        }
        std::set<dns::RecordType> answered;  // types with a record before a TIMEOUT
        resolver.set_txt(name, {});
        std::vector<std::string> txt;
        for (const auto& rr : entry.second) {
            if (rr.IsScalar()) {
                ASSERT_EQ(rr.as<std::string>(), "TIMEOUT") << name;
                for (const auto type :
                     {dns::RecordType::a, dns::RecordType::aaaa, dns::RecordType::mx,
                      dns::RecordType::ptr, dns::RecordType::txt}) {
                    if (!answered.count(type)) {
                        resolver.set_status(name, type, dns::LookupStatus::temporary_failure);
                    }
                }
                continue;
            }
            // Copies: the iterator (and the pair it points at) is a temporary.
            const std::string type = rr.begin()->first.as<std::string>();
            const YAML::Node value = rr.begin()->second;
            if (type == "SPF") {
                if (!has_txt && !(value.IsScalar() && value.as<std::string>() == "NONE")) {
                    if (!(value.IsSequence() && value.size() == 0)) {
                        txt.push_back(record_text(value));
                    }
                    answered.insert(dns::RecordType::txt);
                }
            } else if (type == "TXT") {
                if (value.as<std::string>("") != "NONE") {
                    txt.push_back(record_text(value));
                    answered.insert(dns::RecordType::txt);
                }
            } else if (type == "A") {
                resolver.add(name, dns::RecordType::a, value.as<std::string>());
                answered.insert(dns::RecordType::a);
            } else if (type == "AAAA") {
                resolver.add(name, dns::RecordType::aaaa, value.as<std::string>());
                answered.insert(dns::RecordType::aaaa);
            } else if (type == "MX") {
                resolver.add(name, dns::RecordType::mx, value[1].as<std::string>());
                answered.insert(dns::RecordType::mx);
            } else if (type == "PTR") {
                resolver.add(name, dns::RecordType::ptr, value.as<std::string>());
                answered.insert(dns::RecordType::ptr);
            } else if (type == "CNAME") {
                resolver.set_cname(name, value.as<std::string>());
            } else {
                FAIL() << "unknown record type " << type << " at " << name;
            }
        }
        if (!txt.empty()) {
            // set_txt replaces TXT statuses too: keep a TIMEOUT that came first.
            const bool timed_out = !answered.count(dns::RecordType::txt);
            resolver.set_txt(name, txt);
            if (timed_out) {
                resolver.set_status(name, dns::RecordType::txt,
                                    dns::LookupStatus::temporary_failure);
            }
        }
    }
}

std::vector<SuiteCase> load_suite() {
    std::vector<SuiteCase> cases;
    for (const YAML::Node& doc : YAML::LoadAllFromFile(kSuite)) {
        auto zone = std::make_shared<const YAML::Node>(doc["zonedata"]);
        const std::string section = doc["description"].as<std::string>();
        for (const auto& t : doc["tests"]) {
            cases.push_back({section + "/" + t.first.as<std::string>(), section, t.second, zone});
        }
    }
    return cases;
}

std::string lowercase(std::string s) {
    for (char& ch : s) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return s;
}

// Names the case in gtest's messages instead of dumping its bytes.
void PrintTo(const SuiteCase& c, std::ostream* os) {
    *os << c.name;
}

class Rfc7208Suite : public ::testing::TestWithParam<SuiteCase> {};

TEST_P(Rfc7208Suite, Result) {
    const SuiteCase& c = GetParam();
    dns::FakeResolver resolver;
    ASSERT_NO_FATAL_FAILURE(load_zone(*c.zone, resolver));
    Identity id;
    const auto client = net::IpAddress::parse(c.test["host"].as<std::string>());
    ASSERT_TRUE(client) << c.test["host"].as<std::string>();
    id.ip = *client;
    id.helo = c.test["helo"].as<std::string>();
    id.mail_from = c.test["mailfrom"].as<std::string>();
    const Checker checker(resolver, "receiver.example.org");
    const Outcome out = checker.check_mail_from(id, 1'500'000'000);

    std::set<std::string> expected;
    const YAML::Node& result = c.test["result"];
    if (result.IsSequence()) {
        for (const auto& r : result) {
            expected.insert(r.as<std::string>());
        }
    } else {
        expected.insert(result.as<std::string>());
    }
    const std::string got(to_string(out.result));
    EXPECT_TRUE(expected.count(got))
        << c.name << ": " << c.test["description"].as<std::string>("") << "\n  got " << got << " ("
        << out.mechanism << out.problem << "), expected " << YAML::Dump(result);
    if (c.test["explanation"] && out.result == Result::fail) {
        const std::string want = c.test["explanation"].as<std::string>();
        if (want != "DEFAULT") {
            // Ignoring ASCII case: v-macro-ip6 expects the nibbles of %{ir} in the case the
            // client address was written in (pyspf echoes its input); RFC 7208 section 7.4's
            // example has them in lowercase, as we write them.
            EXPECT_EQ(lowercase(out.explanation), lowercase(want)) << c.name;
        }
    }
}

std::string case_name(const ::testing::TestParamInfo<SuiteCase>& info) {
    std::string out = std::to_string(info.index) + "_";
    for (const char ch : info.param.name.substr(info.param.name.find('/') + 1)) {
        out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Rfc7208, Rfc7208Suite, ::testing::ValuesIn(load_suite()), case_name);

TEST(Rfc7208SuiteFile, HasEveryTest) {
    // The suite as copied: 203 tests in 16 scenarios. A loader that silently skipped
    // scenarios would otherwise pass.
    EXPECT_EQ(load_suite().size(), 203U);
}

}  // namespace
}  // namespace dkim::spf

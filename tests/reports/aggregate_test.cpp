// The aggregate report reader on the real samples (tests/data/dmarc-reports; the facts checked
// here were read off the files with Python's ElementTree, not with this parser) and on hostile
// and broken documents.

#include "dkim/reports/aggregate.hpp"

#include <gtest/gtest.h>

#include <numeric>

#include "report_test_support.hpp"

namespace dkim::reports {
namespace {

using testing::aggregate_xml;
using testing::read_bytes;
using testing::sample;

std::uint64_t total(const testing::CollectedAggregate& a) {
    return std::accumulate(
        a.records.begin(), a.records.end(), std::uint64_t{0},
        [](std::uint64_t sum, const AggregateRecord& r) { return sum + r.count; });
}

struct SampleFacts {
    const char* file;
    const char* org_name;
    const char* report_id;
    const char* domain;
    std::size_t records;
    std::uint64_t messages;
    std::int64_t begin;
    std::int64_t end;
};

class AggregateSampleTest : public ::testing::TestWithParam<SampleFacts> {};

TEST_P(AggregateSampleTest, ReadsTheReportsFacts) {
    const SampleFacts& f = GetParam();
    const auto sink = read_bytes(sample(f.file));
    ASSERT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.aggregates.size(), 1U);
    const auto& a = sink.aggregates[0];
    EXPECT_TRUE(a.complete);
    EXPECT_EQ(a.header.org_name, f.org_name);
    EXPECT_EQ(a.header.report_id, f.report_id);
    EXPECT_EQ(a.header.policy.domain, f.domain);
    EXPECT_EQ(a.records.size(), f.records);
    EXPECT_EQ(total(a), f.messages);
    EXPECT_EQ(a.header.begin, f.begin);
    EXPECT_EQ(a.header.end, f.end);
}

INSTANTIATE_TEST_SUITE_P(
    Samples, AggregateSampleTest,
    ::testing::Values(
        SampleFacts{"aggregate/addisonfoods.com_example.com_1536105600_1536191999.xml",
                    "addisonfoods.com", "3ceb5548498640beaeb47327e202b0b9", "example.com", 1, 1,
                    1536105600, 1536191999},
        // <org_name> is empty: the <email>'s domain names the reporter.
        SampleFacts{"aggregate/example.com-1538204542-1538463818.xml", "accurateplastics.com",
                    "example.com:1538463741", "example.com", 1, 1, 1538413632, 1538413632},
        SampleFacts{"aggregate/example.net_example.com_1529366400_1529452799.xml", "example.net",
                    "b043f0e264cf4ea995e93765242f6dfb", "example.com", 1, 1, 1529366400,
                    1529452799},
        SampleFacts{"aggregate/fastmail.com_example.com_1516060800_1516147199_102675056.xml.gz",
                    "FastMail Pty Ltd", "102675056", "indemed.com", 1, 1, 1516060800, 1516147199},
        // Wrapped in an <xs:schema> element that is never closed.
        SampleFacts{"aggregate/ikea.com_example.de_1538690400_1538776800.xml", "ikea.com",
                    "aggr_report_2018_10_05_5bc7e9b4f3e8a", "example.de", 1, 1, 1538690400,
                    1538776800},
        SampleFacts{"aggregate/large-example.com-1711897200-1711983600.xml", "accurateplastics.com",
                    "example.com:1711897200", "example.com", 2286, 2286, 1711897200, 1711983600},
        SampleFacts{"aggregate/old_draft_from_wiki.xml", "acme.com", "9391651994964116463",
                    "example.com", 1, 2, 1335571200, 1335657599},
        SampleFacts{"aggregate/rfc9990-sample.xml", "Sample Reporter", "3v98abbp8ya9n3va8yr8oa3ya",
                    "example.com", 1, 123, 302832000, 302918399},
        SampleFacts{"aggregate/google.com-borschow.com-report.eml", "google.com",
                    "949348866075514174", "borschow.com", 1, 1, 1549929600, 1550015999}),
    [](const ::testing::TestParamInfo<SampleFacts>& param) {
        return "Sample" + std::to_string(param.index);
    });

TEST(AggregateTest, EmptyOrgNameFallsBackToTheEmailDomain) {
    const auto sink = read_bytes(sample("aggregate/example.com-1538204542-1538463818.xml"));
    ASSERT_EQ(sink.aggregates.size(), 1U);
    EXPECT_FALSE(sink.aggregates[0].header.org_name.empty());
}

TEST(AggregateTest, Rfc9990NamespaceAndFields) {
    const auto sink = read_bytes(sample("aggregate/rfc9990-sample.xml"));
    ASSERT_EQ(sink.aggregates.size(), 1U);
    const auto& a = sink.aggregates[0];
    EXPECT_TRUE(a.header.namespaced);
    EXPECT_EQ(a.header.version, "1.0");
    EXPECT_EQ(a.header.generator, "Example DMARC Aggregate Reporter v1.2");
    EXPECT_EQ(a.header.policy.np, "none");
    EXPECT_EQ(a.header.policy.testing, "n");
    EXPECT_EQ(a.header.policy.discovery_method, "treewalk");
    EXPECT_FALSE(a.header.policy.pct.has_value());
    const AggregateRecord& r = a.records.at(0);
    EXPECT_EQ(r.source_ip, "192.0.2.123");
    EXPECT_EQ(r.envelope_from, "example.com");
    ASSERT_EQ(r.dkim.size(), 1U);
    EXPECT_EQ(r.dkim[0].selector, "abc123");
    EXPECT_EQ(r.dkim[0].result, "pass");
    ASSERT_EQ(r.spf.size(), 1U);
    EXPECT_EQ(r.spf[0].result, "fail");
}

TEST(AggregateTest, PrefixedNamespaceIsReadToo) {
    std::string x = aggregate_xml(2);
    // <d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0"> ... with every element prefixed.
    std::string prefixed;
    for (std::size_t i = 0; i < x.size(); ++i) {
        prefixed += x[i];
        if (x[i] == '<' && i + 1 < x.size() && x[i + 1] != '?') {
            if (x[i + 1] == '/') {
                prefixed += '/';
                ++i;
            }
            prefixed += "d:";
        }
    }
    const auto at = prefixed.find("<d:feedback>");
    ASSERT_NE(at, std::string::npos);
    prefixed.replace(at, 12, "<d:feedback xmlns:d=\"urn:ietf:params:xml:ns:dmarc-2.0\">");
    const auto sink = read_bytes(prefixed);
    ASSERT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.aggregates.size(), 1U);
    EXPECT_TRUE(sink.aggregates[0].header.namespaced);
    EXPECT_EQ(sink.aggregates[0].records.size(), 2U);
}

TEST(AggregateTest, UpperCaseResultsAreLowerCasedAndTextTrimmed) {
    const auto sink = read_bytes(sample("invalid/report_with_upper_cased_pass.xml"));
    ASSERT_EQ(sink.aggregates.size(), 1U);
    const auto& a = sink.aggregates[0];
    EXPECT_EQ(a.header.org_name, "example.com");
    const AggregateRecord& r = a.records.at(0);
    EXPECT_EQ(r.disposition, "none");
    EXPECT_EQ(r.dkim_aligned, "pass");
    EXPECT_EQ(r.spf_aligned, "pass");
    EXPECT_EQ(r.dkim.at(0).result, "pass");
    EXPECT_EQ(r.spf.at(0).result, "pass");
    EXPECT_EQ(r.dkim.at(0).human_result, "verify result: all signatures verified");
}

TEST(AggregateTest, BadXmlNamesTheLine) {
    const auto sink = read_bytes(sample("invalid/invalid_xml.xml"));
    EXPECT_TRUE(sink.aggregates.empty());
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find("line 5"), std::string::npos) << sink.errors[0];
}

TEST(AggregateTest, EmptyFileIsAClearError) {
    const auto sink = read_bytes(sample("invalid/empty.xml"));
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find("empty"), std::string::npos) << sink.errors[0];
}

TEST(AggregateTest, RecordsKeepTheirFieldsAndOrder) {
    const auto sink = read_bytes(aggregate_xml(3, 7));
    ASSERT_EQ(sink.aggregates.size(), 1U);
    const auto& records = sink.aggregates[0].records;
    ASSERT_EQ(records.size(), 3U);
    EXPECT_EQ(records[0].source_ip, "192.0.2.2");
    EXPECT_EQ(records[2].source_ip, "192.0.2.4");
    EXPECT_EQ(records[1].count, 7U);
    EXPECT_EQ(records[1].header_from, "example.com");
    EXPECT_EQ(records[1].dkim.at(0).selector, "s1");
    EXPECT_EQ(records[1].spf.at(0).domain, "bounce.example");
}

TEST(AggregateTest, IPv6SourcesAreCanonicalized) {
    std::string x = aggregate_xml(1);
    const auto at = x.find("192.0.2.2");
    x.replace(at, 9, "2001:DB8:0:0::1");
    const auto sink = read_bytes(x);
    ASSERT_EQ(sink.aggregates.size(), 1U);
    EXPECT_EQ(sink.aggregates[0].records[0].source_ip, "2001:db8::1");
}

// --- refused --------------------------------------------------------------------------------

void expect_refused(const std::string& xml, const std::string& why, const Limits& limits = {}) {
    const auto sink = read_bytes(xml, limits);
    EXPECT_TRUE(sink.aggregates.empty());
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find(why), std::string::npos) << sink.errors[0];
}

TEST(AggregateTest, DoctypesAndEntitiesAreRefused) {
    // Billion laughs: never expanded, because no DOCTYPE is read at all.
    std::string laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">";
    for (int i = 1; i < 10; ++i) {
        laughs += "<!ENTITY lol" + std::to_string(i) + " \"";
        for (int j = 0; j < 10; ++j) {
            laughs += "&lol" + (i == 1 ? std::string() : std::to_string(i - 1)) + ";";
        }
        laughs += "\">";
    }
    laughs +=
        "]>\n<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata>"
        "</feedback>";
    expect_refused(laughs, "DOCTYPE");
    expect_refused(
        "<?xml version=\"1.0\"?><!DOCTYPE f [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>",
        "DOCTYPE");
    // An undeclared entity reference is an XML error, not an empty string.
    std::string x = aggregate_xml(1);
    x.replace(x.find("Reporter"), 8, "&x;");
    expect_refused(x, "XML error");
}

TEST(AggregateTest, DepthTextAndRecordCapsAreEnforced) {
    std::string deep = "<feedback>";
    for (int i = 0; i < 40; ++i) {
        deep += "<a>";
    }
    expect_refused(deep, "nested deeper than 32");

    std::string x = aggregate_xml(1);
    x.replace(x.find("Reporter"), 8, std::string(5000, 'R'));
    expect_refused(x, "longer than 4096 bytes");

    Limits limits;
    limits.max_records = 5;
    expect_refused(aggregate_xml(6), "more than 5 records", limits);
    const auto five = read_bytes(aggregate_xml(5), limits);
    EXPECT_EQ(five.aggregates.size(), 1U);
}

TEST(AggregateTest, MissingOrBadFieldsAreNamed) {
    std::string no_id = aggregate_xml(1);
    no_id.replace(no_id.find("<report_id>r-1</report_id>"), 26, "");
    expect_refused(no_id, "report_id");

    std::string bad_ip = aggregate_xml(2);
    bad_ip.replace(bad_ip.find("192.0.2.3"), 9, "192.0.2.999");
    expect_refused(bad_ip, "record 2: <source_ip> '192.0.2.999' is not an IP address");

    std::string bad_count = aggregate_xml(1);
    bad_count.replace(bad_count.find("<count>1</count>"), 16, "<count>-1</count>");
    expect_refused(bad_count, "<count> '-1' is not a count");

    std::string bad_time = aggregate_xml(1);
    bad_time.replace(bad_time.find("1700000000"), 10, "yesterday");
    expect_refused(bad_time, "not a Unix time");

    std::string backwards = aggregate_xml(1);
    backwards.replace(backwards.find("1700000000"), 10, "1800000000");
    expect_refused(backwards, "begins after it ends");

    expect_refused("<?xml version=\"1.0\"?><html><body/></html>", "root element is <html>");

    // Found by the comparison with Mail::DMARC (tests/reports/compare_with_oracles.py).
    std::string no_count = aggregate_xml(1);
    no_count.replace(no_count.find("<count>1</count>"), 16, "");
    expect_refused(no_count, "record 1: <count> is missing");
    std::string two_counts = aggregate_xml(1);
    two_counts.replace(two_counts.find("<count>1</count>"), 16, "<count>7</count><count>2</count>");
    expect_refused(two_counts, "more than one <count>");
    std::string no_result = aggregate_xml(1);
    no_result.replace(no_result.find("<result>pass</result></dkim>"), 21, "");
    expect_refused(no_result, "without its <result>");
}

TEST(AggregateTest, ABrokenReportAfterSomeRecordsIsAbandonedWhole) {
    std::string x = aggregate_xml(4);
    x.resize(x.size() - 20);  // cut inside the last record
    const auto sink = read_bytes(x);
    EXPECT_TRUE(sink.aggregates.empty());  // the sink was told to forget it
    EXPECT_EQ(sink.errors.size(), 1U);
}

}  // namespace
}  // namespace dkim::reports

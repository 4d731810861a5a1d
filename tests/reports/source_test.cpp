// The decompressors and their caps: gzip (one member, trailing bytes ignored, truncation,
// bombs) and zip (stored and deflated members, data descriptors, CRC, member count,
// encryption), on archives made in the test with zlib.

#include "dkim/reports/source.hpp"

#include <gtest/gtest.h>

#include "report_test_support.hpp"

namespace dkim::reports {
namespace {

using testing::aggregate_xml;
using testing::gzip_bytes;
using testing::read_bytes;
using testing::zip_bytes;
using testing::zip_entry;

Expected<std::string, std::string> gunzip_all(const std::string& bytes, const Limits& limits) {
    MemorySource in(bytes);
    auto out = gunzip(in, limits);
    std::string text;
    auto r = read_all(*out, text, std::size_t{1} << 30, "test");
    if (!r) {
        return unexpected(r.error());
    }
    return text;
}

TEST(GzipTest, ReadsOneMemberAndIgnoresTrailingBytes) {
    const std::string text = aggregate_xml(20);
    auto out = gunzip_all(gzip_bytes(text) + "trailing garbage\n\0\0", Limits{});
    ASSERT_TRUE(out) << out.error();
    EXPECT_EQ(*out, text);
}

TEST(GzipTest, TruncatedAndCorruptInputAreErrors) {
    const std::string gz = gzip_bytes(aggregate_xml(50));
    auto truncated = gunzip_all(gz.substr(0, gz.size() / 2), Limits{});
    ASSERT_FALSE(truncated);
    EXPECT_NE(truncated.error().find("truncated"), std::string::npos) << truncated.error();

    std::string corrupt = gz;
    for (std::size_t i = 20; i < 40; ++i) {
        corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
    }
    auto bad = gunzip_all(corrupt, Limits{});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("gzip"), std::string::npos) << bad.error();
}

TEST(GzipTest, DecompressedSizeAndRatioAreCapped) {
    const std::string zeros(std::size_t{8} << 20, '\0');  // 8 MiB that compress ~1000:1
    Limits size_cap;
    size_cap.max_decompressed = std::size_t{2} << 20;
    size_cap.max_ratio = 1'000'000;
    auto big = gunzip_all(gzip_bytes(zeros), size_cap);
    ASSERT_FALSE(big);
    EXPECT_NE(big.error().find("more than 2 MiB once decompressed"), std::string::npos)
        << big.error();

    Limits ratio_cap;
    ratio_cap.max_ratio = 100;
    auto bomb = gunzip_all(gzip_bytes(zeros), ratio_cap);
    ASSERT_FALSE(bomb);
    EXPECT_NE(bomb.error().find("decompression bomb"), std::string::npos) << bomb.error();

    // Real reports compress 10 to 30 times: well inside the default ratio.
    auto report = gunzip_all(gzip_bytes(aggregate_xml(5000)), Limits{});
    EXPECT_TRUE(report);
}

TEST(ZipTest, StoredDeflatedAndDescriptorMembersAreAllRead) {
    const std::string archive = zip_bytes({
        zip_entry("a.xml", aggregate_xml(2, 1, "a"), true, false),
        zip_entry("b.xml", aggregate_xml(3, 1, "b"), false, false),
        zip_entry("c.xml", aggregate_xml(4, 1, "c"), true, true),
    });
    const auto sink = read_bytes(archive);
    ASSERT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.aggregates.size(), 3U);
    EXPECT_EQ(sink.aggregates[0].header.report_id, "a");
    EXPECT_EQ(sink.aggregates[1].records.size(), 3U);
    EXPECT_EQ(sink.aggregates[2].records.size(), 4U);
}

TEST(ZipTest, ABadMemberIsNamedAndTheOthersAreStillRead) {
    const std::string archive = zip_bytes({
        zip_entry("good.xml", aggregate_xml(1, 1, "good"), true, false),
        zip_entry("bad.xml", "<feedback><oops>", true, false),
        zip_entry("also-good.xml", aggregate_xml(1, 1, "also"), true, false),
    });
    const auto sink = read_bytes(archive);
    ASSERT_EQ(sink.aggregates.size(), 2U);
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find("member 'bad.xml'"), std::string::npos) << sink.errors[0];
}

TEST(ZipTest, CrcMismatchEncryptionAndMemberCountAreRefused) {
    auto crc =
        read_bytes(zip_bytes({zip_entry("a.xml", aggregate_xml(1), true, false, false, true)}));
    ASSERT_FALSE(crc.errors.empty());
    EXPECT_NE(crc.errors[0].find("CRC-32 mismatch"), std::string::npos) << crc.errors[0];

    auto encrypted =
        read_bytes(zip_bytes({zip_entry("a.xml", aggregate_xml(1), true, false, true, false)}));
    ASSERT_FALSE(encrypted.errors.empty());
    EXPECT_NE(encrypted.errors[0].find("encrypted"), std::string::npos) << encrypted.errors[0];

    std::vector<testing::ZipEntry> many;
    for (int i = 0; i < 10; ++i) {
        many.push_back(zip_entry("m" + std::to_string(i) + ".xml",
                                 aggregate_xml(1, 1, "m" + std::to_string(i)), true, false));
    }
    auto too_many = read_bytes(zip_bytes(many));
    EXPECT_EQ(too_many.aggregates.size(), 8U);  // Limits::max_zip_members
    ASSERT_EQ(too_many.errors.size(), 1U);
    EXPECT_NE(too_many.errors[0].find("more than 8 members"), std::string::npos);
}

TEST(ZipTest, AZipBombMemberIsCapped) {
    Limits limits;
    limits.max_decompressed = std::size_t{1} << 20;
    const auto sink = read_bytes(
        zip_bytes({zip_entry("bomb.xml", "<feedback>" + std::string(std::size_t{4} << 20, ' ')),
                   zip_entry("after.xml", aggregate_xml(1))}),
        limits);
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find("more than 1 MiB"), std::string::npos) << sink.errors[0];
}

TEST(ZipTest, GzipInsideZipAndTruncatedArchives) {
    const auto nested =
        read_bytes(zip_bytes({zip_entry("a.xml.gz", gzip_bytes(aggregate_xml(2)), false, false)}));
    ASSERT_TRUE(nested.errors.empty()) << nested.errors.front();
    EXPECT_EQ(nested.aggregates.size(), 1U);

    const std::string archive = zip_bytes({zip_entry("a.xml", aggregate_xml(30), true, false)});
    const auto cut = read_bytes(archive.substr(0, archive.size() / 3));
    EXPECT_TRUE(cut.aggregates.empty());
    ASSERT_FALSE(cut.errors.empty());
    EXPECT_NE(cut.errors[0].find("truncated"), std::string::npos) << cut.errors[0];
}

}  // namespace
}  // namespace dkim::reports

// Hostile reports that cost far more to read than they weigh (issue 21's red team): each one is
// what anyone can mail to a report address, and each was measured against the parsers before
// they were capped (`dkim-appliance reports parse`, /usr/bin/time):
// - one XML attribute value of 500 MiB, gzip'd to 2.2 MiB: 22 s and 1.05 GB (dkim-reportd runs
//   with MemoryMax=1G: killed, and the reporter's MTA retries);
// - 31 MiB of JSON "0,": 9.6 s and 833 MB;
// - the caps per gzip stream and zip member (512 MiB, a ratio of 1000 past 1 MiB) multiply with
//   nesting: 64 attachments, each a zip of 8 members, each 512 MiB.

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

#include "report_test_support.hpp"

namespace dkim::reports {
namespace {

using testing::aggregate_xml;
using testing::read_bytes;
using testing::zip_bytes;
using testing::zip_entry;

// gzip at zlib's fastest level: a ratio near 230, under the reader's 1000.
std::string attack_fast_gzip(const std::string& data) {
    z_stream z{};
    deflateInit2(&z, 1, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&z, static_cast<uLong>(data.size())) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = static_cast<uInt>(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

// White space with a number every 64 bytes: compresses well, but under the ratio cap.
std::string attack_padding(std::size_t size) {
    std::string out;
    for (std::size_t i = 0; out.size() < size; ++i) {
        out += std::string(58, ' ') + std::to_string(i % 100000) + "\n";
    }
    return out;
}

bool attack_error_contains(const testing::CollectingSink& sink, const std::string& text) {
    for (const auto& e : sink.errors) {
        if (e.find(text) != std::string::npos) {
            return true;
        }
    }
    return false;
}

TEST(ReportResourceAttackTest, OneHugeXmlTokenIsRefusedAtTheParsersMemoryCap) {
    const std::string head = "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name a=\"";
    std::string attribute = head;
    attribute.append(std::size_t{40} << 20, 'x');
    attribute += "\"/></report_metadata></feedback>";
    const std::string gz = attack_fast_gzip(attribute);
    ASSERT_LT(gz.size(), std::size_t{1} << 20);
    auto sink = read_bytes(gz);
    EXPECT_TRUE(sink.aggregates.empty());
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_TRUE(attack_error_contains(sink, "XML parser needs more than 16 MiB")) << sink.errors[0];

    std::string comment = "<?xml version=\"1.0\"?>\n<feedback><!--";
    comment.append(std::size_t{40} << 20, 'x');
    comment += "--></feedback>";
    sink = read_bytes(attack_fast_gzip(comment));
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_TRUE(attack_error_contains(sink, "XML parser needs more than 16 MiB")) << sink.errors[0];

    // Long text between tags is handed on in pieces: refused by max_text, not by memory.
    std::string text = "<feedback><report_metadata><org_name>";
    text.append(std::size_t{40} << 20, 'x');
    text += "</org_name></report_metadata></feedback>";
    sink = read_bytes(attack_fast_gzip(text));
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_TRUE(attack_error_contains(sink, "longer than 4096 bytes")) << sink.errors[0];

    // The cap is for one parser at a time: real reports, many in a row, still read.
    const std::string report = aggregate_xml(2000);
    for (int i = 0; i < 3; ++i) {
        sink = read_bytes(testing::gzip_bytes(report));
        ASSERT_EQ(sink.aggregates.size(), 1U);
        EXPECT_EQ(sink.aggregates[0].records.size(), 2000U);
        EXPECT_TRUE(sink.errors.empty());
    }
}

TEST(ReportResourceAttackTest, AJsonDocumentOfMillionsOfValuesIsRefusedAtItsMemoryCap) {
    std::string json = "{\"organization-name\":\"x\",\"policies\":[";
    for (std::size_t i = 0; i < (std::size_t{30} << 20) / 1024; ++i) {
        for (int j = 0; j < 512; ++j) {
            json += "0,";
        }
    }
    json += "0]}";
    const std::string gz = attack_fast_gzip(json);
    auto sink = read_bytes(gz);
    EXPECT_TRUE(sink.tls_reports.empty());
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_TRUE(attack_error_contains(sink, "MiB once parsed")) << sink.errors[0];
}

TEST(ReportResourceAttackTest, WhatOneInputDecompressesIsCappedAllPartsTogether) {
    Limits limits;
    limits.max_decompressed = std::size_t{8} << 20;
    // Eight members, each 3 MiB (under the member cap and the ratio): 24 MiB in all.
    std::string padded = aggregate_xml(1);
    padded.insert(padded.find("<policy_published>"), std::size_t{3} << 20, ' ');
    std::vector<testing::ZipEntry> members;
    for (int i = 0; i < 8; ++i) {
        std::string xml = padded;
        const auto at = xml.find("r-1");
        xml.replace(at, 3, "r-" + std::to_string(i));
        members.push_back(zip_entry("m" + std::to_string(i) + ".xml", xml));
    }
    const std::string zip = zip_bytes(members);
    auto sink = read_bytes(zip, limits);
    EXPECT_EQ(sink.aggregates.size(), 2U);  // 6 MiB read, the third member crosses 8 MiB
    EXPECT_TRUE(attack_error_contains(sink, "more than 8 MiB decompressed from one input"))
        << (sink.errors.empty() ? "" : sink.errors[0]);

    // Members abandoned early (an XML error at once) are inflated to be skipped: counted too.
    std::vector<testing::ZipEntry> broken;
    for (int i = 0; i < 8; ++i) {
        broken.push_back(zip_entry("b" + std::to_string(i) + ".xml",
                                   "<feedback></nope>" + attack_padding(std::size_t{3} << 20), true,
                                   true));
    }
    sink = read_bytes(zip_bytes(broken), limits);
    EXPECT_TRUE(attack_error_contains(sink, "more than 8 MiB decompressed from one input"))
        << ::testing::PrintToString(sink.errors);

    // Each message of an mbox has a budget of its own.
    std::string mbox;
    for (int i = 0; i < 3; ++i) {
        std::string xml = padded;
        xml.replace(xml.find("r-1"), 3, "mbox-" + std::to_string(i));
        const std::string gz = testing::gzip_bytes(xml);
        static const char* const kB64 =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        std::string b64;
        for (std::size_t j = 0; j < gz.size(); j += 3) {
            std::uint32_t v = std::uint32_t{static_cast<unsigned char>(gz[j])} << 16;
            if (j + 1 < gz.size())
                v |= std::uint32_t{static_cast<unsigned char>(gz[j + 1])} << 8;
            if (j + 2 < gz.size())
                v |= std::uint32_t{static_cast<unsigned char>(gz[j + 2])};
            b64 += kB64[(v >> 18) & 63];
            b64 += kB64[(v >> 12) & 63];
            b64 += j + 1 < gz.size() ? kB64[(v >> 6) & 63] : '=';
            b64 += j + 2 < gz.size() ? kB64[v & 63] : '=';
            if ((j / 3 + 1) % 19 == 0)
                b64 += '\n';
        }
        mbox +=
            "From reporter@example.net Mon Jan  1 00:00:00 2024\n"
            "From: reporter@example.net\nTo: rua@example.com\nSubject: Report\n"
            "MIME-Version: 1.0\nContent-Type: application/gzip; name=\"r.xml.gz\"\n"
            "Content-Disposition: attachment; filename=\"r.xml.gz\"\n"
            "Content-Transfer-Encoding: base64\n\n" +
            b64 + "\n\n";
    }
    limits.max_decompressed = std::size_t{4} << 20;
    sink = read_bytes(mbox, limits);
    EXPECT_EQ(sink.aggregates.size(), 3U);
    EXPECT_TRUE(sink.errors.empty()) << (sink.errors.empty() ? "" : sink.errors[0]);
}

TEST(ReportResourceAttackTest, AnMboxOfEmptyMessagesStopsAfterTenThousandProblems) {
    // 28 MiB of these (4 million messages) took 108 s before; a report mail that starts with
    // "From " reaches dkim-reportd from relayd as it came, and is read as an mbox.
    std::string mbox;
    for (int i = 0; i < 200'000; ++i) {
        mbox += "From a\n";
    }
    const auto sink = read_bytes(mbox);
    ASSERT_EQ(sink.errors.size(), 10'001U);
    EXPECT_NE(sink.errors.back().find("the rest of the mbox is not read"), std::string::npos)
        << sink.errors.back();
}

TEST(ReportResourceAttackTest, AMailOfTooManyPartsOrFieldsIsRefusedUnparsed) {
    // GMime builds every part before the walk counts them: 400,000 empty parts took 540 MB.
    std::string mail =
        "From: a@example.net\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=b\n\n";
    for (int i = 0; i < 400'000; ++i) {
        mail += "--b\n\nx\n";
    }
    mail += "--b--\n";
    auto sink = read_bytes(mail);
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find("lines that may begin MIME parts"), std::string::npos)
        << sink.errors[0];

    // 4 million header fields (29 MB) took 2.1 GB and 12 s.
    mail = "From: a@example.net\n";
    for (int i = 0; i < 30'000; ++i) {
        mail += "X-A: x\n";
    }
    mail += "MIME-Version: 1.0\n\nbody\n";
    sink = read_bytes(mail);
    ASSERT_EQ(sink.errors.size(), 1U);
    EXPECT_NE(sink.errors[0].find("more than 20000 lines that may be header fields"),
              std::string::npos)
        << sink.errors[0];

    // A report mail as reporters send it still reads.
    sink = read_bytes(testing::sample("failure/domain.de-failure-report.eml"));
    EXPECT_EQ(sink.failures.size(), 1U);
    EXPECT_TRUE(sink.errors.empty());
}

}  // namespace
}  // namespace dkim::reports

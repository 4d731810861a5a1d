#pragma once
// What the report parser tests share: a sink that keeps everything it is given, gzip and zip
// archives made here with zlib (so each test says exactly which bytes it feeds), and the sample
// files in tests/data/dmarc-reports.

#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dkim/reports/reader.hpp"
#include "test_paths.hpp"

namespace dkim::reports::testing {

struct CollectedAggregate {
    AggregateHeader header;
    std::vector<AggregateRecord> records;
    bool complete = false;
};

class CollectingSink final : public ReportSink {
  public:
    void header(const AggregateHeader& h) override { aggregates.push_back({h, {}, false}); }
    void record(const AggregateRecord& r) override { aggregates.back().records.push_back(r); }
    void aggregate_end() override { aggregates.back().complete = true; }
    void aggregate_abandoned() override { aggregates.pop_back(); }
    void failure(const FailureReport& r) override { failures.push_back(r); }
    void tls(const TlsReport& r) override { tls_reports.push_back(r); }
    void error(const std::string& where, const std::string& reason) override {
        errors.push_back(where + ": " + reason);
    }

    std::vector<CollectedAggregate> aggregates;
    std::vector<FailureReport> failures;
    std::vector<TlsReport> tls_reports;
    std::vector<std::string> errors;
};

inline std::string sample(const std::string& relative) {
    std::ifstream in(dkim::test::test_data_path("dmarc-reports/" + relative), std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// gzip (window bits 31) or raw deflate (-15) of `data`.
inline std::string deflate_bytes(const std::string& data, int window_bits) {
    z_stream z{};
    deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY);
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

inline std::string gzip_bytes(const std::string& data) {
    return deflate_bytes(data, 31);
}

struct ZipEntry {
    std::string name;
    std::string data;
    bool deflate = true;
    bool descriptor = false;  // sizes and CRC after the data (general purpose flag bit 3)
    bool encrypted = false;
    bool corrupt_crc = false;
};

inline ZipEntry zip_entry(std::string name, std::string data, bool deflate = true,
                          bool descriptor = false, bool encrypted = false,
                          bool corrupt_crc = false) {
    ZipEntry e;
    e.name = std::move(name);
    e.data = std::move(data);
    e.deflate = deflate;
    e.descriptor = descriptor;
    e.encrypted = encrypted;
    e.corrupt_crc = corrupt_crc;
    return e;
}

inline void put16(std::string& s, std::uint32_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>((v >> 8) & 0xff);
}
inline void put32(std::string& s, std::uint32_t v) {
    put16(s, v & 0xffff);
    put16(s, v >> 16);
}

// A zip archive (local headers, then a central directory the reader does not need).
inline std::string zip_bytes(const std::vector<ZipEntry>& entries) {
    std::string out;
    std::string central;
    for (const ZipEntry& e : entries) {
        const std::string body = e.deflate ? deflate_bytes(e.data, -15) : e.data;
        std::uint32_t crc = static_cast<std::uint32_t>(crc32(
            0, reinterpret_cast<const Bytef*>(e.data.data()), static_cast<uInt>(e.data.size())));
        if (e.corrupt_crc) {
            crc ^= 1;
        }
        const std::uint32_t offset = static_cast<std::uint32_t>(out.size());
        const std::uint16_t flags = (e.descriptor ? 0x0008 : 0) | (e.encrypted ? 0x0001 : 0);
        put32(out, 0x04034b50);
        put16(out, 20);
        put16(out, flags);
        put16(out, e.deflate ? 8 : 0);
        put16(out, 0);
        put16(out, 0);
        put32(out, e.descriptor ? 0 : crc);
        put32(out, e.descriptor ? 0 : static_cast<std::uint32_t>(body.size()));
        put32(out, e.descriptor ? 0 : static_cast<std::uint32_t>(e.data.size()));
        put16(out, static_cast<std::uint32_t>(e.name.size()));
        put16(out, 0);
        out += e.name;
        out += body;
        if (e.descriptor) {
            put32(out, 0x08074b50);
            put32(out, crc);
            put32(out, static_cast<std::uint32_t>(body.size()));
            put32(out, static_cast<std::uint32_t>(e.data.size()));
        }
        put32(central, 0x02014b50);
        put16(central, 20);
        put16(central, 20);
        put16(central, flags);
        put16(central, e.deflate ? 8 : 0);
        put32(central, 0);
        put32(central, crc);
        put32(central, static_cast<std::uint32_t>(body.size()));
        put32(central, static_cast<std::uint32_t>(e.data.size()));
        put16(central, static_cast<std::uint32_t>(e.name.size()));
        put32(central, 0);
        put16(central, 0);
        put16(central, 0);
        put32(central, 0);
        put32(central, offset);
        central += e.name;
    }
    const auto central_offset = static_cast<std::uint32_t>(out.size());
    out += central;
    put32(out, 0x06054b50);
    put32(out, 0);
    put16(out, static_cast<std::uint32_t>(entries.size()));
    put16(out, static_cast<std::uint32_t>(entries.size()));
    put32(out, static_cast<std::uint32_t>(central.size()));
    put32(out, central_offset);
    put16(out, 0);
    return out;
}

// A small aggregate report: `records` records from 192.0.2.1, .2, ... each counted `count`.
inline std::string aggregate_xml(int records, int count = 1, const std::string& report_id = "r-1") {
    std::string x =
        "<?xml version=\"1.0\"?>\n<feedback>\n<report_metadata><org_name>Reporter</org_name>"
        "<email>dmarc@reporter.example</email><report_id>" +
        report_id +
        "</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range>"
        "</report_metadata>\n<policy_published><domain>example.com</domain><adkim>r</adkim>"
        "<aspf>r</aspf><p>none</p></policy_published>\n";
    for (int i = 1; i <= records; ++i) {
        x += "<record><row><source_ip>192.0.2." + std::to_string(i % 250 + 1) +
             "</source_ip><count>" + std::to_string(count) +
             "</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>"
             "fail</spf></policy_evaluated></row><identifiers><header_from>example.com"
             "</header_from></identifiers><auth_results><dkim><domain>example.com</domain>"
             "<selector>s1</selector><result>pass</result></dkim><spf><domain>bounce.example"
             "</domain><result>pass</result></spf></auth_results></record>\n";
    }
    x += "</feedback>\n";
    return x;
}

// `report` (XML, JSON, gzip...) as the attachment of a report mail from `from`: what relayd and
// the CLI hand to dkim-reportd with an authenticated reporter (its DKIM signature is not
// checked there).
inline std::string report_mail(const std::string& report,
                               const std::string& from = "noreply@reporter.example") {
    static const char* const kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string base64;
    for (std::size_t i = 0; i < report.size(); i += 3) {
        std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(report[i])) << 16;
        if (i + 1 < report.size()) {
            n |= static_cast<std::uint32_t>(static_cast<unsigned char>(report[i + 1])) << 8;
        }
        if (i + 2 < report.size()) {
            n |= static_cast<unsigned char>(report[i + 2]);
        }
        base64 += kAlphabet[(n >> 18) & 63];
        base64 += kAlphabet[(n >> 12) & 63];
        base64 += i + 1 < report.size() ? kAlphabet[(n >> 6) & 63] : '=';
        base64 += i + 2 < report.size() ? kAlphabet[n & 63] : '=';
        if (base64.size() % 78 == 76) {
            base64 += "\r\n";
        }
    }
    return "From: " + from +
           "\r\nTo: dmarc-reports@example.com\r\nSubject: Report domain: example.com\r\n"
           "MIME-Version: 1.0\r\nContent-Type: application/octet-stream; name=report\r\n"
           "Content-Disposition: attachment; filename=report\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n" +
           base64 + "\r\n";
}

inline CollectingSink read_bytes(const std::string& bytes, const Limits& limits = {}) {
    CollectingSink sink;
    MemorySource source(bytes);
    read_reports(source, "input", sink, limits);
    return sink;
}

}  // namespace dkim::reports::testing

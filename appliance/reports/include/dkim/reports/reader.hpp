#pragma once
// Every report in one input, whatever wraps it: the input's content is sniffed by its bytes
// (never by a declared type or file name) and unwrapped: gzip (one member; trailing bytes
// ignored), zip (each member), a mail (MIME, by GMime: each attachment, and an RFC 6591
// failure report with its reported message's header), an mbox of mails, bare XML (aggregate
// report) or bare JSON (TLS report). Each report goes to the sink as it is read; each that
// cannot be read goes to the sink as an error naming where it was (file, message, member) and
// why, and the rest of the input is still read.

#include <cstddef>
#include <string>

#include "dkim/reports/aggregate.hpp"
#include "dkim/reports/model.hpp"
#include "dkim/reports/source.hpp"

namespace dkim::reports {

class ReportSink : public AggregateSink {
  public:
    // After header() and every record(): the aggregate report is complete.
    virtual void aggregate_end() = 0;
    // After header() (and perhaps records), the report turned out unreadable: forget it. The
    // error follows.
    virtual void aggregate_abandoned() = 0;
    virtual void failure(const FailureReport& report) = 0;
    virtual void tls(const TlsReport& report) = 0;
    // `where`: "reports.zip: member 'a.xml'", "mbox message 3", ...
    virtual void error(const std::string& where, const std::string& reason) = 0;
};

struct ReadCounts {
    std::size_t reports = 0;
    std::size_t errors = 0;
};

// What the first bytes say an input is (the first kSniffBytes of it are looked at).
inline constexpr std::size_t kSniffBytes = 512;
enum class ContentKind : std::uint8_t { xml, json, gzip, zip, mail, mbox, empty, unknown };
ContentKind sniff(std::string_view prefix);
std::string_view to_string(ContentKind kind);

ReadCounts read_reports(ByteSource& input, const std::string& where, ReportSink& sink,
                        const Limits& limits);

}  // namespace dkim::reports

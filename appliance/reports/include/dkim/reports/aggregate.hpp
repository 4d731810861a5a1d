#pragma once
// DMARC aggregate reports (RFC 7489 Appendix C; RFC 9990 with or without its namespace, and the
// older drafts some reporters still send) read as a stream: the header once, then each record,
// so a report of any size costs the same memory. Element names are matched without their
// namespace prefix; unknown elements (RFC 9990 <extension>s among them) are skipped.
//
// Hostile input: a DOCTYPE (and so any entity, internal or external) is refused outright;
// depth, text length and record count are capped (Limits). Result keywords are lower-cased
// ("Pass" is read as "pass"), text fields trimmed.

#include <string>

#include "dkim/expected.hpp"
#include "dkim/reports/model.hpp"
#include "dkim/reports/source.hpp"

namespace dkim::reports {

class AggregateSink {
  public:
    virtual ~AggregateSink() = default;
    // Once, before the first record (or at the end of a report without records).
    virtual void header(const AggregateHeader& header) = 0;
    virtual void record(const AggregateRecord& record) = 0;
};

// Reads one aggregate report to its end. On error the sink may have seen part of the report:
// the caller discards it (the report is refused as a whole). The error names the element and
// the line when the document is at fault.
Expected<void, std::string> parse_aggregate(ByteSource& xml, AggregateSink& sink,
                                            const Limits& limits);

}  // namespace dkim::reports

#pragma once
// Reports as JSON text, the shape `dkim-appliance reports parse --json` prints (one object per
// report, one per line) and the report daemon's API returns. An aggregate report is written in
// pieces (head, each record, tail) so that it can be streamed.

#include <string>

#include "dkim/reports/model.hpp"

namespace dkim::reports::json {

// {"kind":"aggregate","org_name":...,"policy":{...},"records":[    (records follow)
void aggregate_head(std::string& out, const AggregateHeader& header);
// {"source_ip":...} (the caller writes the commas between records)
void aggregate_record(std::string& out, const AggregateRecord& record);
// ]}
void aggregate_tail(std::string& out);

void failure(std::string& out, const FailureReport& report);
void tls(std::string& out, const TlsReport& report);

}  // namespace dkim::reports::json

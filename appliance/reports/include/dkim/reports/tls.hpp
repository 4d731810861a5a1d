#pragma once
// SMTP TLS reports (RFC 8460 §4): one JSON document, read whole (it is capped by
// Limits::max_json; reports are small next to aggregate ones), nesting capped by
// Limits::max_depth.

#include <optional>
#include <string>
#include <string_view>

#include "dkim/expected.hpp"
#include "dkim/reports/model.hpp"

namespace dkim::reports {

Expected<TlsReport, std::string> parse_tls_report(std::string_view json, const Limits& limits);

// "2024-01-09T00:00:00Z", "2024-01-09T02:00:00.5+02:00" (RFC 3339 §5.6 date-time) as Unix
// seconds (fractions dropped).
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

}  // namespace dkim::reports

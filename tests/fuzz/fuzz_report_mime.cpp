// libFuzzer target: report mails, mboxes and failure reports (RFC 6591 / RFC 5965 fields, and
// the plain-text variant), walked by GMime and the report reader, which sniffs and unwraps every
// attachment. Properties: every report or error reaches the sink well formed and within the
// caps, and an input always ends in at least one report or one error.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dkim/reports/reader.hpp"
#include "fuzz_report_support.hpp"
#include "mime.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const auto limits = dkim::reports::fuzzing::small_limits();
    // As a whole input (mail, mbox, or whatever the bytes are).
    {
        dkim::reports::fuzzing::CheckingSink sink(limits);
        dkim::reports::MemorySource source(bytes);
        const auto counts = dkim::reports::read_reports(source, "input", sink, limits);
        if (counts.reports + counts.errors == 0 || counts.reports != sink.reports ||
            counts.errors != sink.errors) {
            std::abort();
        }
    }
    // As the body of a feedback-report part.
    dkim::reports::FailureReport report;
    if (dkim::reports::mime::read_feedback_fields(bytes, report)) {
        if (report.feedback_type.empty() && report.auth_failure.empty()) {
            std::abort();
        }
    }
    return 0;
}

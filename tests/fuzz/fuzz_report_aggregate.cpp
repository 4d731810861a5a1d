// libFuzzer target: DMARC aggregate report XML (RFC 7489 Appendix C, RFC 9990) from anyone.
// The first byte picks the size of the pieces the rest arrives in. Properties: the reader ends
// with a report or an error (never both, never neither), everything it hands on is within the
// caps, and the outcome does not depend on how the bytes were split.
#include <cstdint>
#include <cstdlib>

#include "dkim/reports/aggregate.hpp"
#include "fuzz_report_support.hpp"

namespace {

class Recorder final : public dkim::reports::AggregateSink {
  public:
    explicit Recorder(dkim::reports::fuzzing::CheckingSink& check) : check_(check) {}
    void header(const dkim::reports::AggregateHeader& h) override {
        started = true;
        check_.header(h);
    }
    void record(const dkim::reports::AggregateRecord& r) override { check_.record(r); }
    bool started = false;

  private:
    dkim::reports::fuzzing::CheckingSink& check_;
};

std::string run(std::string_view xml, std::size_t piece, const dkim::reports::Limits& limits) {
    dkim::reports::fuzzing::CheckingSink check(limits);
    Recorder recorder(check);
    dkim::reports::fuzzing::PiecewiseSource source(xml, piece);
    const auto result = dkim::reports::parse_aggregate(source, recorder, limits);
    if (result) {
        if (!recorder.started) {
            std::abort();  // success means a report
        }
        check.aggregate_end();
    } else {
        if (result.error().empty()) {
            std::abort();
        }
        if (recorder.started) {
            check.aggregate_abandoned();
        }
        check.summary += "error";
    }
    return check.summary;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const auto limits = dkim::reports::fuzzing::small_limits();
    const std::string_view xml(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::string whole = run(xml, xml.size() + 1, limits);
    const std::string pieces = run(xml, 1 + data[0] % 97, limits);
    if (whole != pieces) {
        std::abort();
    }
    return 0;
}

#pragma once
// What the report fuzz targets share: small caps (so that a few KiB of input can reach every
// cap), a source that hands bytes out in pieces of a size the input chooses (the readers must
// not care how the bytes arrive), and a sink that counts and checks what it is given.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "dkim/reports/reader.hpp"

namespace dkim::reports::fuzzing {

inline Limits small_limits() {
    Limits l;
    l.max_input = 1 << 20;
    l.max_decompressed = 1 << 20;
    l.max_ratio = 200;
    l.max_zip_members = 4;
    l.max_depth = 16;
    l.max_text = 512;
    l.max_records = 200;
    l.max_mime_parts = 16;
    l.max_mime_depth = 4;
    l.max_json = 64 << 10;
    return l;
}

class PiecewiseSource final : public ByteSource {
  public:
    PiecewiseSource(std::string_view bytes, std::size_t piece)
        : bytes_(bytes), piece_(piece == 0 ? 1 : piece) {}
    Expected<std::size_t, std::string> read(char* out, std::size_t size) override {
        const std::size_t n = std::min<std::size_t>({size, piece_, bytes_.size()});
        std::memcpy(out, bytes_.data(), n);
        bytes_.remove_prefix(n);
        return n;
    }

  private:
    std::string_view bytes_;
    std::size_t piece_;
};

// Every report's invariants: what a parser hands on is within the caps and well formed.
class CheckingSink final : public ReportSink {
  public:
    explicit CheckingSink(const Limits& limits) : limits_(limits) {}

    void header(const AggregateHeader& h) override {
        if (open_ || h.report_id.empty() || h.org_name.empty() || h.begin > h.end ||
            h.policy.domain.empty()) {
            std::abort();
        }
        open_ = true;
        records_ = 0;
    }
    void record(const AggregateRecord& r) override {
        if (!open_ || ++records_ > limits_.max_records || r.source_ip.empty()) {
            std::abort();
        }
        summary += r.source_ip + ":" + std::to_string(r.count) + ";";
    }
    void aggregate_end() override {
        if (!open_) {
            std::abort();
        }
        open_ = false;
        ++reports;
        summary += "end;";
    }
    void aggregate_abandoned() override {
        if (!open_) {
            std::abort();
        }
        open_ = false;
        summary += "abandoned;";
    }
    void failure(const FailureReport& f) override {
        if (open_ || (f.feedback_type.empty() && f.auth_failure.empty())) {
            std::abort();
        }
        ++reports;
        summary += "failure;";
    }
    void tls(const TlsReport& t) override {
        if (open_ || t.begin > t.end || (t.org_name.empty() && t.report_id.empty())) {
            std::abort();
        }
        ++reports;
        summary += "tls;";
    }
    void error(const std::string& where, const std::string& reason) override {
        if (open_ || where.empty() || reason.empty()) {
            std::abort();
        }
        ++errors;
        summary += "error;";
    }

    std::size_t reports = 0;
    std::size_t errors = 0;
    std::string summary;

  private:
    const Limits& limits_;
    bool open_ = false;
    std::size_t records_ = 0;
};

}  // namespace dkim::reports::fuzzing

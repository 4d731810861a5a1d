// DMARC aggregate reports (issue 21): parsing and importing a large report and many small ones,
// and the console's dashboard query over a year of reports for 50 domains. Figures only;
// run-reports-bench compares the import with Mail::DMARC's parser on the same files in one run.
//
//   bench_reports                                   every benchmark
//   bench_reports --benchmark_filter=import/90000   one (run-reports-bench times its memory)

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include "dkim/reports/aggregate.hpp"
#include "store.hpp"

namespace {

using dkim::reportd::kDay;
using dkim::reportd::ReportStore;

// A report of `records` records in the shape large reporters send (one DKIM and one SPF
// result each, IPv4 and IPv6 sources), about 560 bytes a record.
std::string make_report(std::size_t records, const std::string& domain, std::int64_t day,
                        const std::string& id, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::string x =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <report_metadata>\n"
        "    <org_name>bench.example</org_name>\n    <email>dmarc@bench.example</email>\n"
        "    <report_id>" +
        id + "</report_id>\n    <date_range>\n      <begin>" + std::to_string(day * kDay) +
        "</begin>\n      <end>" + std::to_string(day * kDay + kDay - 1) +
        "</end>\n    </date_range>\n  </report_metadata>\n  <policy_published>\n"
        "    <domain>" +
        domain +
        "</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>none</p>\n"
        "    <sp>none</sp>\n    <pct>100</pct>\n  </policy_published>\n";
    for (std::size_t i = 0; i < records; ++i) {
        const auto r = static_cast<std::uint32_t>(rng());
        const std::string ip =
            (r & 7) == 0 ? "2001:db8:" + std::to_string(r % 9000 + 1000) +
                               "::" + std::to_string(i % 9000 + 1)
                         : std::to_string(r >> 24 & 0xff) + "." + std::to_string(r >> 16 & 0xff) +
                               "." + std::to_string(r >> 8 & 0xff) + "." + std::to_string(i & 0xff);
        const bool pass = (r & 3) != 0;
        x += "  <record>\n    <row>\n      <source_ip>" + ip + "</source_ip>\n      <count>" +
             std::to_string(1 + r % 40) +
             "</count>\n      <policy_evaluated>\n        <disposition>none</disposition>\n"
             "        <dkim>" +
             (pass ? "pass" : "fail") + "</dkim>\n        <spf>" + (pass ? "pass" : "fail") +
             "</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n"
             "      <header_from>" +
             domain +
             "</header_from>\n    </identifiers>\n    <auth_results>\n      <dkim>\n"
             "        <domain>" +
             domain + "</domain>\n        <selector>s" + std::to_string(r % 2) +
             "</selector>\n        <result>" + (pass ? "pass" : "fail") +
             "</result>\n      </dkim>\n      <spf>\n        <domain>" + domain +
             "</domain>\n        <scope>mfrom</scope>\n        <result>" +
             (pass ? "pass" : "softfail") +
             "</result>\n      </spf>\n    </auth_results>\n"
             "  </record>\n";
    }
    x += "</feedback>\n";
    return x;
}

class CountingSink final : public dkim::reports::AggregateSink {
  public:
    void header(const dkim::reports::AggregateHeader&) override {}
    void record(const dkim::reports::AggregateRecord& r) override {
        ++records;
        messages += r.count;
    }
    std::size_t records = 0;
    std::uint64_t messages = 0;
};

std::filesystem::path scratch(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("bench-reports-" + std::to_string(::getpid()) + "-" + name);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// Parsing only (the parser's own speed).
void BM_Parse(benchmark::State& state) {
    const auto records = static_cast<std::size_t>(state.range(0));
    const std::string report = make_report(records, "example.com", 19700, "parse", 1);
    for (auto _ : state) {
        dkim::reports::MemorySource source(report);
        CountingSink sink;
        auto ok = dkim::reports::parse_aggregate(source, sink, dkim::reports::Limits{});
        benchmark::DoNotOptimize(ok);
        if (sink.records != records) {
            state.SkipWithError("wrong record count");
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(records));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(report.size()));
    state.counters["report_MB"] = static_cast<double>(report.size()) / 1e6;
}
BENCHMARK(BM_Parse)->Name("parse")->Arg(90000)->Unit(benchmark::kMillisecond);

// What dkim-reportd does with a submission: store it durably, read it, store its rows.
void BM_Import(benchmark::State& state) {
    const auto records = static_cast<std::size_t>(state.range(0));
    const std::string report = make_report(records, "example.com", 19700, "import", 2);
    const auto dir = scratch("import");
    int round = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto store = ReportStore::open((dir / ("r" + std::to_string(round++) + ".db")).string());
        state.ResumeTiming();
        const auto result =
            (*store)->submit(19700 * kDay, "bench", report, dkim::reports::Limits{});
        if (!result || result->reports != 1) {
            state.SkipWithError("not imported");
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(records));
    state.counters["report_MB"] = static_cast<double>(report.size()) / 1e6;
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Import)
    ->Name("import")
    ->Arg(9000)
    ->Arg(90000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

// 10,000 small reports (10 records each), one submission each, into one store.
void BM_ImportMany(benchmark::State& state) {
    const std::size_t reports = 10000;
    std::vector<std::string> files;
    for (std::size_t i = 0; i < reports; ++i) {
        files.push_back(make_report(10, "example.com", 19700 + static_cast<std::int64_t>(i % 30),
                                    "many-" + std::to_string(i), static_cast<std::uint32_t>(i)));
    }
    const auto dir = scratch("many");
    int round = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto store = ReportStore::open((dir / ("m" + std::to_string(round++) + ".db")).string());
        state.ResumeTiming();
        // As `reports import` sends them: 200 files a batch, one durable commit each.
        for (std::size_t at = 0; at < files.size(); at += 200) {
            std::vector<dkim::reportd::Submission> parts;
            for (std::size_t i = at; i < std::min(files.size(), at + 200); ++i) {
                parts.push_back({"bench", files[i], {}});
            }
            benchmark::DoNotOptimize(
                (*store)->submit_batch(19700 * kDay, parts, dkim::reports::Limits{}));
        }
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(reports * 10));
    state.counters["reports"] = static_cast<double>(reports);
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ImportMany)->Name("import_many")->Unit(benchmark::kMillisecond)->Iterations(1);

// The dashboard's reads for one domain over a year, in a store holding a year of reports for
// 50 domains (two reporters a day each, 20 records a report: 730,000 records).
void BM_DashboardYear(benchmark::State& state) {
    static const auto dir = scratch("dashboard");
    static std::unique_ptr<ReportStore> store = [] {
        auto s = ReportStore::open((dir / "year.db").string(), /*durable=*/false);
        for (int d = 0; d < 50; ++d) {
            const std::string domain = "domain" + std::to_string(d) + ".example";
            for (int day = 0; day < 365; ++day) {
                for (int reporter = 0; reporter < 2; ++reporter) {
                    const std::string report = make_report(
                        20, domain, 19700 + day,
                        domain + "-" + std::to_string(day) + "-" + std::to_string(reporter),
                        static_cast<std::uint32_t>(d * 1000 + day * 2 + reporter));
                    (void)(*s)->submit((19700 + day) * kDay, "bench", report,
                                       dkim::reports::Limits{});
                }
            }
        }
        return std::move(*s);
    }();
    for (auto _ : state) {
        const auto daily = store->daily("domain7.example", 19700, 19700 + 364);
        const auto selectors = store->selector_days(19700, 19700 + 364, "domain7.example");
        const auto sources = store->sources("domain7.example", 19700, 19700 + 364);
        if (daily.size() != 365 || selectors.empty() || sources.empty()) {
            state.SkipWithError("the store is not what it should be");
        }
        benchmark::DoNotOptimize(sources.data());
    }
}
BENCHMARK(BM_DashboardYear)->Name("dashboard_year_50_domains")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

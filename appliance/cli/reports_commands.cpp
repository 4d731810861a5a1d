// dkim-appliance reports parse: what DMARC aggregate, DMARC failure and SMTP TLS report files
// hold, read by the same parsers the report daemon uses, without storing anything.
//
// The files come from anyone on the internet. They are opened first; then, when the CLI runs
// as root, it gives root up (to `nobody`, with no_new_privs) before the first byte is parsed.
//
// Exit codes: 0 every file read; 2 some file (or some report in one) could not be read (the
// others are still read and printed); 1 failed otherwise.

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "dkim/reports/json.hpp"
#include "dkim/reports/reader.hpp"

namespace dkim::cli {
namespace {

struct ParseArgs {
    std::vector<std::string> files;
    bool json = false;
};

// Gives root up before parsing: the parsers then run as `nobody`, and cannot regain it.
Expected<void, std::string> drop_root() {
    if (geteuid() != 0) {
        return {};
    }
    const passwd* nobody = getpwnam("nobody");
    const uid_t uid = nobody != nullptr ? nobody->pw_uid : 65534;
    const gid_t gid = nobody != nullptr ? nobody->pw_gid : 65534;
    if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0) {
        return unexpected(std::string("could not give up root before parsing"));
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return unexpected(std::string("could not set no_new_privs"));
    }
    return {};
}

std::string day(std::int64_t t) {
    const std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &tm);
    return text;
}

// Prints reports as they are read: JSON lines, or one summary line each. An aggregate report's
// JSON is kept in a temporary file until it is complete (a 50 MB report costs no memory, and
// one that turns out broken prints nothing).
class PrintingSink final : public reports::ReportSink {
  public:
    explicit PrintingSink(bool json) : json_(json) {}

    void header(const reports::AggregateHeader& h) override {
        header_ = h;
        records_ = 0;
        messages_ = 0;
        buffer_.clear();
        spill_.reset();
        if (json_) {
            reports::json::aggregate_head(buffer_, h);
        }
    }
    void record(const reports::AggregateRecord& r) override {
        ++records_;
        messages_ += r.count;
        if (!json_) {
            return;
        }
        if (records_ > 1) {
            buffer_ += ',';
        }
        reports::json::aggregate_record(buffer_, r);
        if (buffer_.size() >= kSpillAt) {
            spill();
        }
    }
    void aggregate_end() override {
        if (!json_) {
            std::cout << "aggregate  " << header_.org_name << "  report " << header_.report_id
                      << "  domain " << header_.policy.domain << "  " << day(header_.begin)
                      << " .. " << day(header_.end) << " UTC  " << records_ << " records, "
                      << messages_ << " messages\n";
            return;
        }
        reports::json::aggregate_tail(buffer_);
        if (spill_) {
            spill();
            std::rewind(spill_.get());
            char chunk[65536];
            std::size_t n = 0;
            std::cout.flush();
            while ((n = std::fread(chunk, 1, sizeof chunk, spill_.get())) > 0) {
                std::cout.write(chunk, static_cast<std::streamsize>(n));
            }
            spill_.reset();
        } else {
            std::cout << buffer_;
        }
        std::cout << '\n';
        buffer_.clear();
    }
    void aggregate_abandoned() override {
        buffer_.clear();
        spill_.reset();
    }
    void failure(const reports::FailureReport& r) override {
        if (!json_) {
            std::cout << "failure    " << (r.reporter.empty() ? "(unknown reporter)" : r.reporter)
                      << "  domain " << r.reported_domain << "  source " << r.source_ip
                      << "  auth-failure " << r.auth_failure << "\n";
            return;
        }
        std::string line;
        reports::json::failure(line, r);
        std::cout << line << '\n';
    }
    void tls(const reports::TlsReport& r) override {
        if (!json_) {
            std::uint64_t ok = 0;
            std::uint64_t failed = 0;
            for (const auto& p : r.policies) {
                ok += p.successful;
                failed += p.failed;
            }
            std::cout << "tls        " << r.org_name << "  report " << r.report_id << "  "
                      << day(r.begin) << " .. " << day(r.end) << " UTC  " << r.policies.size()
                      << " policies, " << ok << " sessions succeeded, " << failed << " failed\n";
            return;
        }
        std::string line;
        reports::json::tls(line, r);
        std::cout << line << '\n';
    }
    void error(const std::string& where, const std::string& reason) override {
        std::cout.flush();
        std::cerr << "dkim-appliance: " << where << ": " << reason << "\n";
    }

  private:
    static constexpr std::size_t kSpillAt = std::size_t{1} << 20;

    struct FileCloser {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };

    void spill() {
        if (!spill_) {
            spill_.reset(std::tmpfile());
            if (!spill_) {
                return;  // no temporary file: keep it in memory
            }
        }
        std::fwrite(buffer_.data(), 1, buffer_.size(), spill_.get());
        buffer_.clear();
    }

    bool json_;
    reports::AggregateHeader header_;
    std::size_t records_ = 0;
    std::uint64_t messages_ = 0;
    std::string buffer_;
    std::unique_ptr<std::FILE, FileCloser> spill_;
};

int run_parse(const ParseArgs& args) {
    const reports::Limits limits;
    PrintingSink sink(args.json);
    bool failed = false;
    std::vector<int> fds;
    for (const std::string& file : args.files) {
        const int fd = file == "-" ? STDIN_FILENO : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            sink.error(file, std::string("cannot open: ") + std::strerror(errno));
            failed = true;
        }
        fds.push_back(fd);
    }
    if (auto dropped = drop_root(); !dropped) {
        return fail(dropped.error());
    }
    for (std::size_t i = 0; i < args.files.size(); ++i) {
        if (fds[i] < 0) {
            continue;
        }
        reports::FileSource source(fds[i], limits.max_input);
        const auto counts = reports::read_reports(source, args.files[i], sink, limits);
        failed = failed || counts.errors > 0;
        if (fds[i] != STDIN_FILENO) {
            ::close(fds[i]);
        }
    }
    std::cout.flush();
    return failed ? kUsage : 0;
}

}  // namespace

void add_reports_commands(CLI::App& app, int& exit_code) {
    CLI::App* reports = app.add_subcommand("reports", "DMARC and SMTP TLS reports");
    reports->require_subcommand(1);

    auto parse_args = std::make_shared<ParseArgs>();
    CLI::App* parse = reports->add_subcommand(
        "parse",
        "Print what report files hold (aggregate, failure, TLS; bare, gzip, zip, mail, mbox), "
        "storing nothing; exit 2 if any could not be read");
    parse->add_option("files", parse_args->files, "report files ('-' for standard input)")
        ->required();
    parse->add_flag("--json", parse_args->json, "one JSON object per report, one per line");
    parse->callback([&exit_code, parse_args] { exit_code = run_parse(*parse_args); });
}

}  // namespace dkim::cli

// dkim-appliance reports parse | import | findings.
//
// parse: what DMARC aggregate, DMARC failure and SMTP TLS report files hold, read by the same
// parsers the report daemon uses, without storing anything. The files come from anyone on the
// internet. They are opened first; then, when the CLI runs as root, it gives root up (to
// `nobody`, with no_new_privs) before the first byte is parsed.
//
// import: files, maildirs and mboxes handed to dkim-reportd, which stores and reads them (the
// CLI parses no report). A file that is one mail message goes with its authenticated reporter
// when it has one (reports_reporter.hpp: the From domain, by an aligned DKIM signature that
// verified; DNS lookups unless --no-verify). findings: what dkim-reportd makes of the reports and
// signerd's record.
//
// Exit codes: 0 done; 2 some file (or some report in one) could not be read or imported (the
// others still are); 1 failed otherwise (dkim-reportd unreachable, say).

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <system_error>

#include "commands.hpp"
#include "dkim/reports/channel.hpp"
#include "dkim/reports/json.hpp"
#include "dkim/reports/reader.hpp"
#include "reports_reporter.hpp"

namespace dkim::cli {
namespace {

struct ReportParseArgs {
    std::vector<std::string> files;
    bool json = false;
};

// Gives root up before parsing: the parsers then run as `nobody`, and cannot regain it.
Expected<void, std::string> drop_root() {
    if (geteuid() != 0) {
        return {};
    }
    passwd entry{};
    passwd* nobody = nullptr;
    std::array<char, 4096> buffer{};
    if (getpwnam_r("nobody", &entry, buffer.data(), buffer.size(), &nobody) != 0) {
        nobody = nullptr;
    }
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

// Text from a report (anyone on the internet wrote it) as it may reach a terminal: C0 controls,
// DEL and C1 controls (U+0080..U+009F, in UTF-8 C2 80..C2 9F; CSI is U+009B) become '?', so that
// no escape sequence in an org_name, a report id, a domain or a finding's summary moves the
// cursor, retitles the window or rewrites what was printed before. The rest of UTF-8 is kept.
std::string shown(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto u = static_cast<unsigned char>(s[i]);
        if (u == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
            out += '?';
            ++i;
        } else if (u < 0x20 || u == 0x7f) {
            out += '?';
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string day(std::int64_t t) {
    const std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    if (gmtime_r(&tt, &tm) == nullptr) {
        return "?";
    }
    char text[32];
    if (std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &tm) == 0) {
        return "?";
    }
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
            std::cout << "aggregate  " << shown(header_.org_name) << "  report "
                      << shown(header_.report_id) << "  domain " << shown(header_.policy.domain)
                      << "  " << day(header_.begin) << " .. " << day(header_.end) << " UTC  "
                      << records_ << " records, " << messages_ << " messages\n";
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
            std::cout << "failure    "
                      << (r.reporter.empty() ? "(unknown reporter)" : shown(r.reporter))
                      << "  domain " << shown(r.reported_domain) << "  source "
                      << shown(r.source_ip) << "  auth-failure " << shown(r.auth_failure) << "\n";
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
            std::cout << "tls        " << shown(r.org_name) << "  report " << shown(r.report_id)
                      << "  " << day(r.begin) << " .. " << day(r.end) << " UTC  "
                      << r.policies.size() << " policies, " << ok << " sessions succeeded, "
                      << failed << " failed\n";
            return;
        }
        std::string line;
        reports::json::tls(line, r);
        std::cout << line << '\n';
    }
    void error(const std::string& where, const std::string& reason) override {
        std::cout.flush();
        std::cerr << "dkim-appliance: " << shown(where) << ": " << shown(reason) << "\n";
    }

  private:
    static constexpr std::size_t kSpillAt = std::size_t{1} << 20;

    struct FileCloser {
        void operator()(std::FILE* f) const {
            (void)std::fclose(f);  // NOLINT(cppcoreguidelines-owning-memory): the deleter
        }
    };

    void spill() {
        if (!spill_) {
            spill_.reset(std::tmpfile());  // NOLINT(cppcoreguidelines-owning-memory): owned here
            if (!spill_) {
                return;  // no temporary file: keep it in memory
            }
        }
        if (std::fwrite(buffer_.data(), 1, buffer_.size(), spill_.get()) != buffer_.size()) {
            return;  // the disk is full: keep it in memory
        }
        buffer_.clear();
    }

    bool json_;
    reports::AggregateHeader header_;
    std::size_t records_ = 0;
    std::uint64_t messages_ = 0;
    std::string buffer_;
    std::unique_ptr<std::FILE, FileCloser> spill_;
};

int run_report_parse(const ReportParseArgs& args) {
    const reports::Limits limits;
    PrintingSink sink(args.json);
    bool failed = false;
    std::vector<int> fds;
    for (const std::string& file : args.files) {
        const int fd = file == "-" ? STDIN_FILENO : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            sink.error(file, "cannot open: " + std::generic_category().message(errno));
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

constexpr const char* kReportdSocket = "/run/dkim-appliance/reportd.sock";
constexpr std::uintmax_t kMaxImport = std::uintmax_t{64} << 20;

struct ReportImportArgs {
    std::vector<std::string> paths;
    std::string socket = kReportdSocket;
    bool json = false;
    ReporterArgs reporter;
};

// The files an import path names: a file; a maildir's messages (cur/ and new/); or a folder's
// regular files (not recursively).
std::vector<std::filesystem::path> files_of(const std::filesystem::path& path,
                                            std::vector<std::string>& problems) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<fs::path> out;
    if (fs::is_regular_file(path, ec)) {
        // A file named on the command line is the operator's choice: its link is resolved here.
        out.push_back(fs::canonical(path, ec));
        if (ec) {
            out.back() = path;
        }
        return out;
    }
    if (!fs::is_directory(path, ec)) {
        problems.push_back(path.string() + ": no such file or folder");
        return out;
    }
    std::vector<fs::path> folders;
    if (fs::is_directory(path / "cur", ec) || fs::is_directory(path / "new", ec)) {
        folders = {path / "cur", path / "new"};
    } else {
        folders = {path};
    }
    for (const fs::path& folder : folders) {
        for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
            // A folder's entries are mail, written by whoever delivers it: a symbolic link
            // there is not followed (root would read what it points at, /etc/shadow say, into
            // dkim-reportd's store). read_import() opens them with O_NOFOLLOW too.
            std::error_code link_ec;
            if (it->is_symlink(link_ec)) {
                problems.push_back(it->path().string() + ": a symbolic link, not followed");
                continue;
            }
            if (it->is_regular_file(ec)) {
                out.push_back(it->path());
            }
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

// A file's bytes, opened without following a symbolic link (one swapped in after the listing)
// and only when it is a regular file (not a FIFO that would block the import).
bool read_import(const std::filesystem::path& file, std::ostringstream& out) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        return false;
    }
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    char chunk[65536];
    while (ok) {
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        out.write(chunk, n);
    }
    ::close(fd);
    return ok;
}

// Files go to dkim-reportd in batches (one durable commit each): at most this many files or
// bytes a batch.
constexpr std::size_t kBatchFiles = 200;
constexpr std::size_t kBatchBytes = std::size_t{16} << 20;

struct ImportTotals {
    std::size_t files = 0;
    std::size_t stored = 0;
    std::size_t duplicates = 0;
    std::vector<std::string> problems;
};

// Sends one batch; false when dkim-reportd cannot be reached or refuses the CLI (the rest of the
// import is pointless then).
// `reporters`: one per file, "" for none; "reporters" goes only when one is named.
bool send_batch(reports::channel::Client& client, const std::vector<std::filesystem::path>& files,
                const std::vector<std::string>& contents, const std::vector<std::string>& reporters,
                bool json, ImportTotals& totals, std::string& fatal) {
    reports::channel::Message request;
    request.json["op"] = "submit";
    request.json["origin"] = "import";
    boost::json::array sizes;
    boost::json::array origins;
    boost::json::array vouched;
    bool any_reporter = false;
    for (std::size_t i = 0; i < files.size(); ++i) {
        sizes.push_back(static_cast<std::int64_t>(contents[i].size()));
        origins.push_back(boost::json::value("import " + files[i].string()));
        vouched.push_back(boost::json::value(reporters[i]));
        any_reporter = any_reporter || !reporters[i].empty();
        request.body += contents[i];
    }
    request.json["parts"] = std::move(sizes);
    request.json["origins"] = std::move(origins);
    if (any_reporter) {
        request.json["reporters"] = std::move(vouched);
    }
    auto answer = client.call(request);
    if (!answer) {
        fatal = answer.error();
        return false;
    }
    const auto& j = answer->json;
    if (!j.contains("ok") || !j.at("ok").is_bool() || !j.at("ok").as_bool()) {
        fatal = "dkim-reportd: " + reports::channel::string_member(j, "error");
        return false;
    }
    const auto* results = j.if_contains("results");
    if (results == nullptr || !results->is_array() || results->as_array().size() != files.size()) {
        fatal = "dkim-reportd: an answer without one result per file";
        return false;
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
        const auto& r = results->as_array()[i];
        if (!r.is_object()) {
            continue;
        }
        const auto& o = r.as_object();
        const auto n = static_cast<std::size_t>(reports::channel::int_member(o, "reports"));
        const auto d = static_cast<std::size_t>(reports::channel::int_member(o, "duplicates"));
        ++totals.files;
        totals.stored += n;
        totals.duplicates += d;
        if (json) {
            boost::json::object line = o;
            line["file"] = files[i].string();
            if (!reporters[i].empty()) {
                line["reporter"] = reporters[i];
            }
            std::cout << boost::json::serialize(line) << "\n";
        } else {
            std::cout << files[i].string() << ": " << n << " reports stored, " << d
                      << " already stored"
                      << (reporters[i].empty() ? std::string() : ", reporter=" + reporters[i])
                      << "\n";
        }
        if (const auto* errors = o.if_contains("errors"); errors != nullptr && errors->is_array()) {
            for (const auto& e : errors->as_array()) {
                if (e.is_string()) {
                    totals.problems.push_back(files[i].string() + ": " +
                                              std::string(e.as_string()));
                }
            }
        }
    }
    return true;
}

int run_report_import(const ReportImportArgs& args) {
    auto check = ReporterCheck::open(args.reporter);
    if (!check) {
        return fail(check.error());
    }
    reports::channel::Client client(args.socket);
    ImportTotals totals;
    std::vector<std::filesystem::path> batch;
    std::vector<std::string> contents;
    std::vector<std::string> reporters;
    std::size_t batch_bytes = 0;
    std::string fatal;
    const auto flush = [&] {
        if (batch.empty()) {
            return true;
        }
        const bool sent = send_batch(client, batch, contents, reporters, args.json, totals, fatal);
        batch.clear();
        contents.clear();
        reporters.clear();
        batch_bytes = 0;
        return sent;
    };
    for (const std::string& p : args.paths) {
        for (const std::filesystem::path& file : files_of(p, totals.problems)) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(file, ec);
            if (ec || size == 0) {
                totals.problems.push_back(file.string() + ": empty or unreadable");
                continue;
            }
            if (size > kMaxImport) {
                totals.problems.push_back(file.string() + ": larger than 64 MiB");
                continue;
            }
            std::ostringstream bytes;
            if (!read_import(file, bytes)) {
                totals.problems.push_back(file.string() + ": cannot read (or not a regular file)");
                continue;
            }
            if (!batch.empty() &&
                (batch.size() >= kBatchFiles || batch_bytes + size > kBatchBytes)) {
                if (!flush()) {
                    return fail(fatal);
                }
            }
            batch.push_back(file);
            contents.push_back(std::move(bytes).str());
            reporters.push_back((*check)->reporter(contents.back()));
            batch_bytes += size;
        }
    }
    if (!flush()) {
        return fail(fatal);
    }
    std::cout.flush();
    for (const std::string& p : totals.problems) {
        std::cerr << "dkim-appliance: " << shown(p) << "\n";
    }
    if (!args.json) {
        std::cout << totals.files << " files imported: " << totals.stored << " reports stored, "
                  << totals.duplicates << " already stored, " << totals.problems.size()
                  << " problems\n";
    }
    return totals.problems.empty() ? 0 : kUsage;
}

struct ReportFindingsArgs {
    std::string socket = kReportdSocket;
    std::string domain;
    int days = 14;
    bool json = false;
};

int run_report_findings(const ReportFindingsArgs& args) {
    reports::channel::Client client(args.socket);
    reports::channel::Message request;
    request.json["op"] = "findings";
    if (!args.domain.empty()) {
        request.json["domain"] = args.domain;
    }
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    request.json["until"] = now;
    request.json["from"] = now - std::int64_t{args.days} * 86400;
    auto answer = client.call(request);
    if (!answer) {
        return fail(answer.error());
    }
    const auto& j = answer->json;
    if (!j.contains("ok") || !j.at("ok").is_bool() || !j.at("ok").as_bool()) {
        return fail("dkim-reportd: " + reports::channel::string_member(j, "error"));
    }
    const auto* findings = j.if_contains("findings");
    if (findings == nullptr || !findings->is_array()) {
        return fail("dkim-reportd: an answer without findings");
    }
    for (const auto& f : findings->as_array()) {
        if (!f.is_object()) {
            continue;
        }
        if (args.json) {
            std::cout << boost::json::serialize(f) << "\n";
            continue;
        }
        const auto& o = f.as_object();
        std::cout << shown(reports::channel::string_member(o, "severity")) << "  "
                  << shown(reports::channel::string_member(o, "kind")) << "  "
                  << shown(reports::channel::string_member(o, "summary")) << "\n";
    }
    if (!args.json && findings->as_array().empty()) {
        std::cout << "no findings\n";
    }
    return 0;
}

}  // namespace

void add_reports_commands(CLI::App& app, int& exit_code) {
    CLI::App* reports = app.add_subcommand("reports", "DMARC and SMTP TLS reports");
    reports->require_subcommand(1);

    auto parse_args = std::make_shared<ReportParseArgs>();
    CLI::App* parse = reports->add_subcommand(
        "parse",
        "Print what report files hold (aggregate, failure, TLS; bare, gzip, zip, mail, mbox), "
        "storing nothing; exit 2 if any could not be read");
    parse->add_option("files", parse_args->files, "report files ('-' for standard input)")
        ->required();
    parse->add_flag("--json", parse_args->json, "one JSON object per report, one per line");
    parse->callback([&exit_code, parse_args] { exit_code = run_report_parse(*parse_args); });

    auto import_args = std::make_shared<ReportImportArgs>();
    CLI::App* import = reports->add_subcommand(
        "import",
        "Hand report files, maildirs and mboxes to dkim-reportd, which stores and reads them; "
        "exit 2 if any could not be imported");
    import->add_option("paths", import_args->paths, "files, maildirs (cur/, new/) or folders")
        ->required();
    import->add_option("--reportd-socket", import_args->socket, "dkim-reportd's socket")
        ->capture_default_str();
    import->add_flag("--json", import_args->json, "one JSON object per file, one per line");
    add_reporter_options(import, import_args->reporter);
    import->callback([&exit_code, import_args] { exit_code = run_report_import(*import_args);
});

auto findings_args = std::make_shared<ReportFindingsArgs>();
CLI::App* findings = reports->add_subcommand(
    "findings", "What the reports and signerd's signing record mean (dkim-reportd)");
findings->add_option("--domain", findings_args->domain, "one domain only");
findings->add_option("--days", findings_args->days, "the last this many days")
    ->check(CLI::Range(1, 400))
    ->capture_default_str();
findings->add_option("--reportd-socket", findings_args->socket, "dkim-reportd's socket")
    ->capture_default_str();
findings->add_flag("--json", findings_args->json, "one JSON object per finding, one per line");
findings->callback([&exit_code, findings_args] {
    exit_code = run_report_findings(*findings_args);
});
}  // namespace dkim::cli

}  // namespace dkim::cli

#include "dkim/reports/reader.hpp"

#include <array>

#include "dkim/reports/tls.hpp"
#include "mime.hpp"
#include "text.hpp"

namespace dkim::reports {

namespace {

constexpr std::size_t kMaxNesting = 4;  // mail > zip > gzip > xml is three
// Problems named for one input before the rest of an mbox is left unread: 28 MiB of "From a"
// lines (4 million empty messages, each parsed and named) took 108 s, and dkim-reportd kept
// every problem's text (relayd hands it a report mail's bytes as they came, so a mail that
// starts with "From " is read as an mbox).
constexpr std::size_t kMaxProblems = 10'000;

bool field_name_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != ':';
}

// "Received: ...", "Return-Path: ...": the start of an RFC 5322 header.
bool looks_like_header(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size() && field_name_char(s[i])) {
        ++i;
    }
    return i > 0 && i < s.size() && s[i] == ':';
}

// Sends an aggregate report to the sink, or abandons it on error.
class AggregateRelay final : public AggregateSink {
  public:
    explicit AggregateRelay(ReportSink& sink) : sink_(sink) {}
    void header(const AggregateHeader& h) override {
        started_ = true;
        sink_.header(h);
    }
    void record(const AggregateRecord& r) override { sink_.record(r); }
    bool started() const { return started_; }

  private:
    ReportSink& sink_;
    bool started_ = false;
};

class Reader {
  public:
    Reader(ReportSink& sink, const Limits& limits) : sink_(sink), limits_(limits) {}

    void input(ByteSource& source, const std::string& where, std::size_t nesting) {
        std::string prefix(kSniffBytes, '\0');
        std::size_t got = 0;
        while (got < prefix.size()) {
            auto n = source.read(prefix.data() + got, prefix.size() - got);
            if (!n) {
                return error(where, n.error());
            }
            if (*n == 0) {
                break;
            }
            got += *n;
        }
        prefix.resize(got);
        const ContentKind kind = sniff(prefix);
        PrefixedSource whole(std::move(prefix), source);
        if (nesting > kMaxNesting) {
            return error(where,
                         "containers nested more than " + std::to_string(kMaxNesting) + " deep");
        }
        switch (kind) {
            case ContentKind::xml: return aggregate(whole, where);
            case ContentKind::json: return tls(whole, where);
            case ContentKind::gzip: {
                auto inner = gunzip(whole, limits_);
                return input(*inner, where + " (gzip)", nesting + 1);
            }
            case ContentKind::zip: return zip(whole, where, nesting);
            case ContentKind::mail: return mail(whole, where, nesting);
            case ContentKind::mbox: return mbox(whole, where, nesting);
            case ContentKind::empty: return error(where, "empty");
            case ContentKind::unknown:
                return error(where,
                             "not a report: neither XML, JSON, gzip, zip, a mail nor an mbox");
        }
    }

    ReadCounts counts() const { return counts_; }

  private:
    void error(const std::string& where, const std::string& reason) {
        ++counts_.errors;
        sink_.error(where, reason);
    }

    void aggregate(ByteSource& xml, const std::string& where) {
        AggregateRelay relay(sink_);
        auto parsed = parse_aggregate(xml, relay, limits_);
        if (!parsed) {
            if (relay.started()) {
                sink_.aggregate_abandoned();
            }
            return error(where, parsed.error());
        }
        ++counts_.reports;
        sink_.aggregate_end();
    }

    void tls(ByteSource& json, const std::string& where) {
        std::string text;
        auto all = read_all(json, text, limits_.max_json, "TLS report");
        if (!all) {
            return error(where, all.error());
        }
        auto report = parse_tls_report(text, limits_);
        if (!report) {
            return error(where, report.error());
        }
        ++counts_.reports;
        sink_.tls(*report);
    }

    void zip(ByteSource& archive, const std::string& where, std::size_t nesting) {
        ZipReader reader(archive, limits_);
        std::size_t members = 0;
        for (;;) {
            auto more = reader.next();
            if (!more) {
                return error(where, more.error());
            }
            if (!*more) {
                break;
            }
            ++members;
            input(reader.member(), where + ": member '" + text::printable(reader.name()) + "'",
                  nesting + 1);
        }
        if (members == 0) {
            error(where, "empty zip archive");
        }
    }

    void mail(ByteSource& source, const std::string& where, std::size_t nesting) {
        std::string message;
        auto all = read_all(source, message, limits_.max_input, "mail");
        if (!all) {
            return error(where, all.error());
        }
        mail_text(message, where, nesting);
    }

    void mail_text(std::string_view message, const std::string& where, std::size_t nesting) {
        auto content = mime::walk(message, limits_);
        if (!content) {
            return error(where, content.error());
        }
        const std::size_t before = counts_.reports;
        for (const FailureReport& f : content->failures) {
            ++counts_.reports;
            sink_.failure(f);
        }
        for (const mime::Attachment& a : content->attachments) {
            MemorySource bytes(a.bytes);
            input(bytes, where + ": attachment '" + text::printable(a.name) + "'", nesting + 1);
        }
        for (const std::string& p : content->problems) {
            error(where, p);
        }
        if (counts_.reports == before && content->attachments.empty()) {
            error(where, "no report in the message (no attachment, no feedback report)");
        }
    }

    // mboxo/mboxrd: messages start at lines "From " (the first one at the start of the file).
    void mbox(ByteSource& source, const std::string& where, std::size_t nesting) {
        std::string pending;
        std::string message;
        std::size_t index = 0;
        bool over = false;
        std::array<char, 64 * 1024> chunk{};
        bool stopped = false;
        auto flush = [&] {
            if (index > 0 && !stopped && counts_.errors >= kMaxProblems) {
                stopped = true;
                error(where, "more than " + std::to_string(kMaxProblems) +
                                 " problems: the rest of the mbox is not read");
            }
            if (index > 0 && !stopped) {
                const std::string name = where + ": message " + std::to_string(index);
                if (over) {
                    error(name,
                          "mail: more than " + std::to_string(limits_.max_input >> 20) + " MiB");
                } else {
                    const DecompressionBudget each(limits_.max_decompressed);
                    mail_text(message, name, nesting + 1);
                }
            }
            message.clear();
            over = false;
            ++index;
        };
        auto line = [&](std::string_view l) {
            if (l.starts_with("From ")) {
                flush();
                return;
            }
            if (l.starts_with(">From ") || l.starts_with(">>From ")) {
                l.remove_prefix(1);  // mboxrd quoting
            }
            if (message.size() + l.size() > limits_.max_input) {
                over = true;
                return;
            }
            message += l;
        };
        for (;;) {
            auto n = source.read(chunk.data(), chunk.size());
            if (!n) {
                flush();
                return error(where, n.error());
            }
            if (*n == 0) {
                break;
            }
            if (stopped) {
                return;
            }
            pending.append(chunk.data(), *n);
            std::size_t at = 0;
            for (auto eol = pending.find('\n'); eol != std::string::npos;
                 eol = pending.find('\n', at)) {
                line(std::string_view(pending).substr(at, eol + 1 - at));
                at = eol + 1;
            }
            pending.erase(0, at);
            if (pending.size() > limits_.max_input) {
                return error(where, "a line longer than the input cap");
            }
        }
        if (!pending.empty()) {
            line(pending);
        }
        flush();
    }

    ReportSink& sink_;
    const Limits& limits_;
    ReadCounts counts_;
};

}  // namespace

ContentKind sniff(std::string_view p) {
    if (p.size() >= 2 && static_cast<unsigned char>(p[0]) == 0x1f &&
        static_cast<unsigned char>(p[1]) == 0x8b) {
        return ContentKind::gzip;
    }
    if (p.starts_with(std::string_view("PK\x03\x04", 4)) ||
        p.starts_with(std::string_view("PK\x05\x06", 4))) {
        return ContentKind::zip;
    }
    if (p.starts_with("\xfe\xff") || p.starts_with("\xff\xfe")) {
        return ContentKind::xml;  // UTF-16 with a byte order mark: expat reads it
    }
    if (p.starts_with("From ")) {
        return ContentKind::mbox;
    }
    if (p.starts_with("\xef\xbb\xbf")) {
        p.remove_prefix(3);
    }
    const std::string_view body = text::trim(p);
    if (body.empty()) {
        return p.empty() ? ContentKind::empty : ContentKind::unknown;
    }
    if (body.front() == '<') {
        return ContentKind::xml;
    }
    if (body.front() == '{') {
        return ContentKind::json;
    }
    if (looks_like_header(p)) {
        return ContentKind::mail;
    }
    return ContentKind::unknown;
}

std::string_view to_string(ContentKind kind) {
    switch (kind) {
        case ContentKind::xml: return "xml";
        case ContentKind::json: return "json";
        case ContentKind::gzip: return "gzip";
        case ContentKind::zip: return "zip";
        case ContentKind::mail: return "mail";
        case ContentKind::mbox: return "mbox";
        case ContentKind::empty: return "empty";
        case ContentKind::unknown: return "unknown";
    }
    return "unknown";
}

ReadCounts read_reports(ByteSource& input, const std::string& where, ReportSink& sink,
                        const Limits& limits) {
    // What one input may decompress, all its parts together (an mbox: each of its messages).
    const DecompressionBudget budget(limits.max_decompressed);
    Reader reader(sink, limits);
    reader.input(input, where, 0);
    return reader.counts();
}

}  // namespace dkim::reports

#include "dkim/reports/tls.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <new>

#include "text.hpp"

namespace dkim::reports {

namespace {

namespace bj = boost::json;

// Memory for a parsed document, refused (std::bad_alloc) past a cap.
class CappedResource final : public bj::memory_resource {
  public:
    explicit CappedResource(std::size_t cap) : cap_(cap) {}

  private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        if (bytes > cap_ - used_) {
            throw std::bad_alloc();
        }
        void* p = ::operator new(bytes, std::align_val_t(align));
        used_ += bytes;
        return p;
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
        ::operator delete(p, std::align_val_t(align));
        used_ -= bytes;
    }
    bool do_is_equal(const bj::memory_resource& other) const noexcept override {
        return this == &other;
    }

    std::size_t cap_;
    std::size_t used_ = 0;
};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, std::int64_t m, std::int64_t d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const std::int64_t yoe = y - era * 400;
    const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool digits(std::string_view s, std::size_t at, std::size_t n, unsigned& out) {
    if (at + n > s.size()) {
        return false;
    }
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        out = out * 10 + static_cast<unsigned>(s[i] - '0');
    }
    return true;
}

class TlsReader {
  public:
    Expected<TlsReport, std::string> read(const bj::value& document) {
        const bj::object* root = document.if_object();
        if (root == nullptr) {
            return unexpected(std::string("a TLS report is a JSON object"));
        }
        TlsReport report;
        report.org_name = string_field(*root, "organization-name", true);
        report.report_id = string_field(*root, "report-id", true);
        report.contact_info = string_field(*root, "contact-info", false);
        const bj::object* range = object_field(*root, "date-range", true);
        if (range != nullptr) {
            report.begin = time_field(*range, "start-datetime");
            report.end = time_field(*range, "end-datetime");
        }
        const bj::array* policies = array_field(*root, "policies", true);
        if (policies != nullptr) {
            for (const bj::value& p : *policies) {
                if (!error_.empty()) {
                    break;
                }
                report.policies.push_back(policy(p));
            }
        }
        if (error_.empty() && report.begin > report.end) {
            error_ = "date-range starts after it ends";
        }
        if (!error_.empty()) {
            return unexpected(error_);
        }
        return report;
    }

  private:
    void fail(std::string message) {
        if (error_.empty()) {
            error_ = std::move(message);
        }
    }

    const bj::value* field(const bj::object& o, std::string_view name, bool required) {
        const bj::value* v = o.if_contains(name);
        if (v == nullptr && required) {
            fail("\"" + std::string(name) + "\" is missing");
        }
        return v;
    }

    std::string string_field(const bj::object& o, std::string_view name, bool required) {
        const bj::value* v = field(o, name, required);
        if (v == nullptr) {
            return {};
        }
        if (!v->is_string()) {
            fail("\"" + std::string(name) + "\" is not a string");
            return {};
        }
        return std::string(text::trim(std::string_view(v->get_string())));
    }

    const bj::object* object_field(const bj::object& o, std::string_view name, bool required) {
        const bj::value* v = field(o, name, required);
        if (v != nullptr && !v->is_object()) {
            fail("\"" + std::string(name) + "\" is not an object");
            return nullptr;
        }
        return v == nullptr ? nullptr : &v->get_object();
    }

    const bj::array* array_field(const bj::object& o, std::string_view name, bool required) {
        const bj::value* v = field(o, name, required);
        if (v != nullptr && !v->is_array()) {
            fail("\"" + std::string(name) + "\" is not an array");
            return nullptr;
        }
        return v == nullptr ? nullptr : &v->get_array();
    }

    std::uint64_t count_field(const bj::object& o, std::string_view name) {
        const bj::value* v = field(o, name, false);
        if (v == nullptr) {
            return 0;
        }
        if (v->is_uint64()) {
            return v->get_uint64();
        }
        if (v->is_int64() && v->get_int64() >= 0) {
            return static_cast<std::uint64_t>(v->get_int64());
        }
        fail("\"" + std::string(name) + "\" is not a count");
        return 0;
    }

    std::int64_t time_field(const bj::object& o, std::string_view name) {
        const std::string text = string_field(o, name, true);
        if (!error_.empty()) {
            return 0;
        }
        const auto t = parse_rfc3339(text);
        if (!t) {
            fail("\"" + std::string(name) + "\" '" + text::printable(text) +
                 "' is not an RFC 3339 date-time");
            return 0;
        }
        return *t;
    }

    // "policy-string" and "mx-host" are arrays of strings; some reporters write one string.
    std::vector<std::string> strings(const bj::object& o, std::string_view name) {
        std::vector<std::string> out;
        const bj::value* v = field(o, name, false);
        if (v == nullptr) {
            return out;
        }
        if (v->is_string()) {
            out.emplace_back(v->get_string());
            return out;
        }
        if (!v->is_array()) {
            fail("\"" + std::string(name) + "\" is not a list of strings");
            return out;
        }
        for (const bj::value& s : v->get_array()) {
            if (!s.is_string()) {
                fail("\"" + std::string(name) + "\" is not a list of strings");
                return out;
            }
            out.emplace_back(s.get_string());
        }
        return out;
    }

    TlsPolicy policy(const bj::value& value) {
        TlsPolicy out;
        const bj::object* entry = value.if_object();
        if (entry == nullptr) {
            fail("a \"policies\" entry is not an object");
            return out;
        }
        if (const bj::object* p = object_field(*entry, "policy", true)) {
            out.policy_type = text::lower(string_field(*p, "policy-type", true));
            out.policy_strings = strings(*p, "policy-string");
            out.policy_domain = text::lower(string_field(*p, "policy-domain", true));
            out.mx_hosts = strings(*p, "mx-host");
        }
        if (const bj::object* s = object_field(*entry, "summary", true)) {
            out.successful = count_field(*s, "total-successful-session-count");
            out.failed = count_field(*s, "total-failure-session-count");
        }
        if (const bj::array* details = array_field(*entry, "failure-details", false)) {
            for (const bj::value& d : *details) {
                const bj::object* o = d.if_object();
                if (o == nullptr) {
                    fail("a \"failure-details\" entry is not an object");
                    break;
                }
                TlsFailureDetail f;
                f.result_type = text::lower(string_field(*o, "result-type", true));
                f.sending_mta_ip = string_field(*o, "sending-mta-ip", false);
                f.receiving_mx_hostname =
                    text::lower(string_field(*o, "receiving-mx-hostname", false));
                f.receiving_mx_helo = string_field(*o, "receiving-mx-helo", false);
                f.receiving_ip = string_field(*o, "receiving-ip", false);
                f.failed_session_count = count_field(*o, "failed-session-count");
                f.additional_information = string_field(*o, "additional-information", false);
                f.failure_reason_code = string_field(*o, "failure-reason-code", false);
                out.failures.push_back(std::move(f));
            }
        }
        return out;
    }

    std::string error_;
};

}  // namespace

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
    unsigned year = 0;
    unsigned month = 0;
    unsigned day = 0;
    unsigned hour = 0;
    unsigned minute = 0;
    unsigned second = 0;
    if (!digits(s, 0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, month) ||
        s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
        !digits(s, 17, 2, second)) {
        return std::nullopt;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }
    std::size_t at = 19;
    if (at < s.size() && s[at] == '.') {
        ++at;
        const std::size_t first = at;
        while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
            ++at;
        }
        if (at == first) {
            return std::nullopt;
        }
    }
    std::int64_t offset = 0;
    if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
        ++at;
    } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
        unsigned oh = 0;
        unsigned om = 0;
        if (!digits(s, at + 1, 2, oh) || at + 3 >= s.size() || s[at + 3] != ':' ||
            !digits(s, at + 4, 2, om) || oh > 23 || om > 59) {
            return std::nullopt;
        }
        offset = (s[at] == '+' ? 1 : -1) * static_cast<std::int64_t>(oh * 3600 + om * 60);
        at += 6;
    } else {
        return std::nullopt;
    }
    if (at != s.size()) {
        return std::nullopt;
    }
    const std::int64_t days = days_from_civil(year, month, day);
    return days * 86400 + hour * 3600 + minute * 60 + std::min(second, 59U) - offset;
}

Expected<TlsReport, std::string> parse_tls_report(std::string_view text, const Limits& limits) {
    if (text.size() > limits.max_json) {
        return unexpected("TLS report larger than " + std::to_string(limits.max_json >> 20) +
                          " MiB");
    }
    bj::parse_options options;
    options.max_depth = limits.max_depth;
    boost::system::error_code ec;
    // The document's values cost tens of bytes each: 32 MiB of "0," is 16 million of them, near
    // 800 MB (the parser's stack holds an array's values until it closes, then the array). Both
    // together are capped at eight times the text and 1 MiB (a real report, names and strings
    // mostly, needs about twice its size).
    const std::size_t cap = text.size() * 8 + (std::size_t{1} << 20);
    CappedResource capped(cap);
    bj::monotonic_resource arena(1024, bj::storage_ptr(&capped));
    bj::value document;
    try {
        bj::parser parser(bj::storage_ptr(&capped), options);
        parser.reset(bj::storage_ptr(&arena));
        parser.write(text, ec);
        if (!ec) {
            document = parser.release();
        }
    } catch (const std::bad_alloc&) {
        return unexpected("TLS report needs more than " + std::to_string(cap >> 20) +
                          " MiB once parsed (too many JSON values)");
    }
    if (ec) {
        return unexpected("JSON error: " + ec.message());
    }
    TlsReader reader;
    return reader.read(document);
}

}  // namespace dkim::reports

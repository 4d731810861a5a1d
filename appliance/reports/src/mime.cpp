#include "mime.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <mutex>

#include "dkim/net/ip_address.hpp"
#include "text.hpp"

namespace dkim::reports::mime {

namespace {

// Lines starting "--" allowed per MIME part walked (text may have such lines of its own).
constexpr std::size_t kBoundaryLinesPerPart = 64;
// Lines of the form "Name: ..." in one message, header fields or not (a report mail has a few
// hundred).
constexpr std::size_t kMaxFieldLines = 20'000;

void init_gmime() {
    static std::once_flag once;
    std::call_once(once, [] { g_mime_init(); });
}

// g_object_unref on scope exit.
template <class T>
class Ref {
  public:
    explicit Ref(T* object) : object_(object) {}
    ~Ref() {
        if (object_ != nullptr) {
            g_object_unref(object_);
        }
    }
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    T* get() const { return object_; }
    explicit operator bool() const { return object_ != nullptr; }

  private:
    T* object_;
};

std::string header(GMimeObject* object, const char* name) {
    const char* value = g_mime_object_get_header(object, name);
    return value == nullptr ? std::string() : std::string(text::trim(value));
}

bool is_type(GMimeContentType* type, const char* media, const char* subtype) {
    return type != nullptr && g_mime_content_type_is_type(type, media, subtype);
}

std::string type_text(GMimeContentType* type) {
    if (type == nullptr) {
        return "application/octet-stream";
    }
    char* mime_type = g_mime_content_type_get_mime_type(type);
    std::string out = mime_type != nullptr ? mime_type : "";
    g_free(mime_type);
    return text::lower(out);
}

// The decoded content of a leaf part.
std::string decoded(GMimePart* part) {
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    if (content == nullptr) {
        return {};
    }
    Ref<GMimeStream> out(g_mime_stream_mem_new());
    g_mime_data_wrapper_write_to_stream(content, out.get());
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));
    return bytes == nullptr ? std::string()
                            : std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

void original_headers_from_message(GMimeMessage* message, FailureReport& report) {
    auto* object = GMIME_OBJECT(message);
    report.original_from = header(object, "From");
    report.original_subject = header(object, "Subject");
    report.original_message_id = header(object, "Message-ID");
    report.original_date = header(object, "Date");
}

// "Name: value" fields of a header block (folded lines joined), in order.
std::vector<std::pair<std::string, std::string>> fields(std::string_view text) {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t at = 0;
    while (at < text.size()) {
        auto eol = text.find('\n', at);
        if (eol == std::string_view::npos) {
            eol = text.size();
        }
        std::string_view line = text.substr(at, eol - at);
        at = eol + 1;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
            if (!out.empty()) {
                out.back().second += ' ';
                out.back().second += text::trim(line);
            }
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0 ||
            line.substr(0, colon).find_first_of(" \t") != std::string_view::npos) {
            continue;
        }
        out.emplace_back(text::lower(line.substr(0, colon)),
                         std::string(text::trim(line.substr(colon + 1))));
    }
    return out;
}

struct Walk {
    const Limits& limits;
    MailContent content;
    std::size_t parts = 0;
    bool original_seen = false;

    void object(GMimeObject* object, std::size_t depth) {
        if (++parts > limits.max_mime_parts) {
            if (parts == limits.max_mime_parts + 1) {
                content.problems.push_back("more than " + std::to_string(limits.max_mime_parts) +
                                           " MIME parts: the rest were skipped");
            }
            return;
        }
        if (depth > limits.max_mime_depth) {
            content.problems.push_back("MIME parts nested deeper than " +
                                       std::to_string(limits.max_mime_depth) + ": skipped");
            return;
        }
        if (GMIME_IS_MULTIPART(object)) {
            auto* multipart = GMIME_MULTIPART(object);
            const int count = g_mime_multipart_get_count(multipart);
            for (int i = 0; i < count; ++i) {
                this->object(g_mime_multipart_get_part(multipart, i), depth + 1);
            }
            return;
        }
        GMimeContentType* type = g_mime_object_get_content_type(object);
        if (GMIME_IS_MESSAGE_PART(object)) {
            GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
            if (inner == nullptr) {
                return;
            }
            if (!content.failures.empty() && !original_seen) {
                // The third part of a failure report: the reported message.
                original_headers_from_message(inner, content.failures.back());
                original_seen = true;
                return;
            }
            // A forwarded report mail: walk it too.
            if (GMimeObject* body = g_mime_message_get_mime_part(inner)) {
                this->object(body, depth + 1);
            }
            return;
        }
        if (!GMIME_IS_PART(object)) {
            return;
        }
        auto* part = GMIME_PART(object);
        if (is_type(type, "message", "feedback-report")) {
            FailureReport report;
            if (read_feedback_fields(decoded(part), report)) {
                content.failures.push_back(std::move(report));
                original_seen = false;
            }
            return;
        }
        if (is_type(type, "text", "rfc822-headers")) {
            if (!content.failures.empty() && !original_seen) {
                FailureReport& r = content.failures.back();
                for (const auto& [name, value] : fields(decoded(part))) {
                    if (name == "from") {
                        r.original_from = value;
                    } else if (name == "subject") {
                        r.original_subject = value;
                    } else if (name == "message-id") {
                        r.original_message_id = value;
                    } else if (name == "date") {
                        r.original_date = value;
                    }
                }
                original_seen = true;
            }
            return;
        }
        const char* filename = g_mime_part_get_filename(part);
        const bool text_part = is_type(type, "text", "plain") || is_type(type, "text", "html");
        if (text_part && filename == nullptr) {
            // Some reporters send the failure report's fields in plain text.
            if (is_type(type, "text", "plain") && content.failures.empty()) {
                FailureReport report;
                if (read_feedback_fields(decoded(part), report)) {
                    report.plain_text = true;
                    content.failures.push_back(std::move(report));
                    original_seen = false;
                }
            }
            return;
        }
        Attachment a;
        a.name = filename != nullptr ? std::string(filename) : type_text(type);
        a.bytes = decoded(part);
        if (!a.bytes.empty()) {
            content.attachments.push_back(std::move(a));
        }
    }
};

}  // namespace

bool read_feedback_fields(std::string_view text, FailureReport& r) {
    for (const auto& [name, value] : fields(text)) {
        if (name == "feedback-type") {
            r.feedback_type = text::lower(value);
        } else if (name == "user-agent") {
            r.user_agent = value;
        } else if (name == "version") {
            r.version = value;
        } else if (name == "original-mail-from") {
            r.original_mail_from = value;
        } else if (name == "original-rcpt-to") {
            if (!r.original_rcpt_to.empty()) {
                r.original_rcpt_to += ", ";
            }
            r.original_rcpt_to += value;
        } else if (name == "arrival-date" || name == "received-date") {
            r.arrival_date_text = value;
        } else if (name == "source-ip") {
            const auto ip = net::IpAddress::parse(value);
            r.source_ip = ip ? ip->to_string() : value;
        } else if (name == "reported-domain") {
            r.reported_domain = text::lower(value);
        } else if (name == "reported-uri") {
            r.reported_uri = value;
        } else if (name == "auth-failure") {
            r.auth_failure = text::lower(value);
        } else if (name == "authentication-results") {
            r.authentication_results = value;
        } else if (name == "delivery-result") {
            r.delivery_result = text::lower(value);
        } else if (name == "identity-alignment") {
            r.identity_alignment = text::lower(value);
        } else if (name == "dkim-domain") {
            r.dkim_domain = text::lower(value);
        } else if (name == "dkim-selector") {
            r.dkim_selector = text::lower(value);
        } else if (name == "dkim-identity") {
            r.dkim_identity = value;
        } else if (name == "spf-dns") {
            r.spf_dns = value;
        }
    }
    if (!r.arrival_date_text.empty()) {
        init_gmime();
        GDateTime* date = g_mime_utils_header_decode_date(r.arrival_date_text.c_str());
        if (date != nullptr) {
            r.arrival_date = g_date_time_to_unix(date);
            g_date_time_unref(date);
        }
    }
    return !r.feedback_type.empty() || !r.auth_failure.empty();
}

Expected<MailContent, std::string> walk(std::string_view message, const Limits& limits) {
    // GMime builds every part and header field of a message before the walk (and
    // max_mime_parts) sees one: 400,000 empty parts (2.8 MB) took 540 MB and 4 s, 4 million
    // header fields (29 MB) 2.1 GB and 12 s, so a 32 MiB report mail would take gigabytes.
    // Parts begin at lines "--boundary", fields at lines "Name:": a message with more such
    // lines than a report could need is refused unparsed.
    const std::size_t max_delimiters = kBoundaryLinesPerPart * (limits.max_mime_parts + 1);
    std::size_t delimiters = 0;
    std::size_t fields_seen = 0;
    for (std::size_t at = 0; at < message.size();) {
        auto eol = message.find('\n', at);
        if (eol == std::string_view::npos) {
            eol = message.size();
        }
        const std::string_view line = message.substr(at, eol - at);
        at = eol + 1;
        if (line.starts_with("--")) {
            if (++delimiters > max_delimiters) {
                return unexpected("more than " + std::to_string(max_delimiters) +
                                  " lines that may begin MIME parts (a message of that many "
                                  "parts?)");
            }
            continue;
        }
        const auto colon = line.find(':');
        if (colon != std::string_view::npos && colon > 0 &&
            std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(colon),
                        [](char c) { return c > ' ' && c < 0x7f; }) &&
            ++fields_seen > kMaxFieldLines) {
            return unexpected("more than " + std::to_string(kMaxFieldLines) +
                              " lines that may be header fields");
        }
    }
    init_gmime();
    Ref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
    Ref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
    Ref<GMimeMessage> parsed(g_mime_parser_construct_message(parser.get(), nullptr));
    if (!parsed) {
        return unexpected(std::string("not a mail message (MIME parser refused it)"));
    }
    Walk walk{limits, {}, 0, false};
    if (GMimeObject* body = g_mime_message_get_mime_part(parsed.get())) {
        walk.object(body, 0);
    }
    auto* object = GMIME_OBJECT(parsed.get());
    for (FailureReport& r : walk.content.failures) {
        r.reporter = header(object, "From");
        r.report_message_id = header(object, "Message-ID");
    }
    return std::move(walk.content);
}

}  // namespace dkim::reports::mime

#include "dkim/reports/aggregate.hpp"

#include <expat.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dkim/net/ip_address.hpp"
#include "text.hpp"

namespace dkim::reports {

namespace {

constexpr std::size_t kXmlChunk = 64 * 1024;
constexpr std::string_view kDmarc2Namespace = "urn:ietf:params:xml:ns:dmarc-2.0";

// Element names without a namespace prefix ("dmarc:record" is "record").
std::string_view local_name(const XML_Char* name) {
    std::string_view n(name);
    const auto colon = n.rfind(':');
    return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

// A non-negative decimal integer (surrounding white space already trimmed).
std::optional<std::uint64_t> unsigned_value(std::string_view text, std::uint64_t max) {
    std::uint64_t v = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc{} || ptr != end || v > max) {
        return std::nullopt;
    }
    return v;
}

// Expat keeps a token (a tag with its attributes, a comment, a processing instruction) whole in
// its buffer until it ends, doubling the buffer as it grows: a 500 MiB attribute value (2 MiB
// gzip'd) took 1 GB. Its memory is capped: a report's tokens are short, and text between tags is
// handed on in pieces whatever its length.
constexpr std::size_t kXmlMemory = std::size_t{16} << 20;

// What the parser on this thread holds (each block carries its size in front).
struct XmlMemory {
    std::size_t used = 0;
    bool refused = false;
};
thread_local XmlMemory xml_memory;

struct XmlMemoryScope {
    XmlMemoryScope() { xml_memory = {}; }
    ~XmlMemoryScope() { xml_memory = {}; }
    XmlMemoryScope(const XmlMemoryScope&) = delete;
    XmlMemoryScope& operator=(const XmlMemoryScope&) = delete;
};

constexpr std::size_t kXmlHeader = alignof(std::max_align_t);

void* xml_malloc(std::size_t size) {
    if (size > kXmlMemory - xml_memory.used) {
        xml_memory.refused = true;
        return nullptr;
    }
    auto* block = static_cast<unsigned char*>(std::malloc(size + kXmlHeader));
    if (block == nullptr) {
        return nullptr;
    }
    std::memcpy(block, &size, sizeof size);
    xml_memory.used += size;
    return block + kXmlHeader;
}

void xml_free(void* p) {
    if (p == nullptr) {
        return;
    }
    auto* block = static_cast<unsigned char*>(p) - kXmlHeader;
    std::size_t size = 0;
    std::memcpy(&size, block, sizeof size);
    xml_memory.used -= size;
    std::free(block);
}

void* xml_realloc(void* p, std::size_t size) {
    if (p == nullptr) {
        return xml_malloc(size);
    }
    auto* block = static_cast<unsigned char*>(p) - kXmlHeader;
    std::size_t old = 0;
    std::memcpy(&old, block, sizeof old);
    if (size > old && size - old > kXmlMemory - xml_memory.used) {
        xml_memory.refused = true;
        return nullptr;
    }
    auto* grown = static_cast<unsigned char*>(std::realloc(block, size + kXmlHeader));
    if (grown == nullptr) {
        return nullptr;
    }
    std::memcpy(grown, &size, sizeof size);
    xml_memory.used = xml_memory.used - old + size;
    return grown + kXmlHeader;
}

constexpr std::uint64_t kMaxTime = std::uint64_t{1} << 40;   // far beyond any real date
constexpr std::uint64_t kMaxCount = std::uint64_t{1} << 53;  // exact in a JSON number

class AggregateReader {
  public:
    AggregateReader(AggregateSink& sink, const Limits& limits) : sink_(sink), limits_(limits) {}

    Expected<void, std::string> run(ByteSource& xml) {
        const XML_Memory_Handling_Suite memory{&xml_malloc, &xml_realloc, &xml_free};
        XmlMemoryScope scope;
        XML_Parser parser = XML_ParserCreate_MM(nullptr, &memory, nullptr);
        if (parser == nullptr) {
            return unexpected(std::string("out of memory (XML parser)"));
        }
        parser_ = parser;
        XML_SetUserData(parser, this);
        XML_SetElementHandler(parser, &AggregateReader::on_start, &AggregateReader::on_end);
        XML_SetCharacterDataHandler(parser, &AggregateReader::on_text);
        XML_SetStartDoctypeDeclHandler(parser, &AggregateReader::on_doctype);
        XML_SetEntityDeclHandler(parser, &AggregateReader::on_entity);
        XML_SetExternalEntityRefHandler(parser, &AggregateReader::on_external_entity);
        XML_SetParamEntityParsing(parser, XML_PARAM_ENTITY_PARSING_NEVER);
        auto result = feed(xml);
        if (!result && xml_memory.refused) {
            result = unexpected("XML parser needs more than " + std::to_string(kXmlMemory >> 20) +
                                " MiB (one name, attribute or comment of megabytes?)");
        }
        XML_ParserFree(parser);
        parser_ = nullptr;
        return result;
    }

  private:
    Expected<void, std::string> feed(ByteSource& xml) {
        std::size_t total = 0;
        for (;;) {
            void* buffer = XML_GetBuffer(parser_, kXmlChunk);
            if (buffer == nullptr) {
                return unexpected(std::string("out of memory (XML buffer)"));
            }
            auto n = xml.read(static_cast<char*>(buffer), kXmlChunk);
            if (!n) {
                return unexpected(std::move(n).error());
            }
            total += *n;
            const bool last = *n == 0;
            if (XML_ParseBuffer(parser_, static_cast<int>(*n), last ? 1 : 0) != XML_STATUS_OK) {
                if (feedback_done_ && error_.empty()) {
                    break;  // stopped at </feedback>: what follows it is not read
                }
                if (!error_.empty()) {
                    return unexpected(error_);
                }
                if (total == 0) {
                    return unexpected(std::string("empty document"));
                }
                return unexpected("XML error at line " +
                                  std::to_string(XML_GetCurrentLineNumber(parser_)) + ": " +
                                  XML_ErrorString(XML_GetErrorCode(parser_)));
            }
            if (last) {
                break;
            }
        }
        if (!header_sent_) {
            return unexpected(std::string("not a DMARC aggregate report (no <feedback>)"));
        }
        return {};
    }

    void fail(std::string message) {
        if (error_.empty()) {
            error_ = std::move(message) + " (line " +
                     std::to_string(XML_GetCurrentLineNumber(parser_)) + ")";
        }
        XML_StopParser(parser_, XML_FALSE);
    }

    std::string_view parent(std::size_t up = 1) const {
        return stack_.size() > up ? std::string_view(stack_[stack_.size() - 1 - up])
                                  : std::string_view();
    }

    static void XMLCALL on_doctype(void* self, const XML_Char*, const XML_Char*, const XML_Char*,
                                   int) {
        static_cast<AggregateReader*>(self)->fail("a DOCTYPE is not allowed in a report");
    }
    static void XMLCALL on_entity(void* self, const XML_Char*, int, const XML_Char*, int,
                                  const XML_Char*, const XML_Char*, const XML_Char*,
                                  const XML_Char*) {
        static_cast<AggregateReader*>(self)->fail("entity declarations are not allowed");
    }
    static int XMLCALL on_external_entity(XML_Parser, const XML_Char*, const XML_Char*,
                                          const XML_Char*, const XML_Char*) {
        return XML_STATUS_ERROR;
    }
    static void XMLCALL on_start(void* self, const XML_Char* name, const XML_Char** attributes) {
        static_cast<AggregateReader*>(self)->start(local_name(name), attributes);
    }
    static void XMLCALL on_end(void* self, const XML_Char* name) {
        static_cast<AggregateReader*>(self)->end(local_name(name));
    }
    static void XMLCALL on_text(void* self, const XML_Char* text, int length) {
        auto* r = static_cast<AggregateReader*>(self);
        const std::string_view chunk(text, static_cast<std::size_t>(length));
        if (r->text_.empty() && text::trim(chunk).empty()) {
            return;  // white space between elements (trimmed from values anyway)
        }
        if (r->text_.size() + static_cast<std::size_t>(length) > r->limits_.max_text) {
            r->fail("text of <" + (r->stack_.empty() ? std::string() : r->stack_.back()) +
                    "> longer than " + std::to_string(r->limits_.max_text) + " bytes");
            return;
        }
        r->text_.append(text, static_cast<std::size_t>(length));
    }

    void start(std::string_view name, const XML_Char** attributes) {
        if (stack_.size() + (wrapped_ ? 1 : 0) >= limits_.max_depth) {
            fail("elements nested deeper than " + std::to_string(limits_.max_depth));
            return;
        }
        text_.clear();
        if (stack_.empty() && !wrapped_ && name == "schema") {
            // Some reporters wrap <feedback> in an <xs:schema> element (never closed): the
            // report is the <feedback> inside it.
            wrapped_ = true;
            return;
        }
        if (stack_.empty()) {
            if (name != "feedback") {
                fail("not a DMARC aggregate report (the root element is <" + std::string(name) +
                     ">, not <feedback>)");
                return;
            }
            for (const XML_Char** a = attributes; a != nullptr && *a != nullptr; a += 2) {
                if (std::string_view(a[0]).starts_with("xmlns") && a[1] == kDmarc2Namespace) {
                    header_.namespaced = true;
                }
            }
        }
        stack_.emplace_back(name);
        if (stack_.size() == 2 && name == "record") {
            if (!send_header()) {
                return;
            }
            if (++records_ > limits_.max_records) {
                fail("more than " + std::to_string(limits_.max_records) + " records");
                return;
            }
            record_ = AggregateRecord{};
            have_count_ = false;
        } else if (in_record() && name == "reason" && parent() == "policy_evaluated") {
            record_.reasons.emplace_back();
        } else if (in_record() && parent() == "auth_results") {
            if (name == "dkim") {
                record_.dkim.emplace_back();
            } else if (name == "spf") {
                record_.spf.emplace_back();
            }
        }
    }

    bool in_record() const { return stack_.size() >= 2 && stack_[1] == "record"; }

    void end(std::string_view name) {
        if (stack_.empty()) {
            return;
        }
        const std::string value(text::trim(text_));
        text_.clear();
        if (stack_.size() == 1) {  // </feedback>: the report is complete
            if (send_header()) {
                feedback_done_ = true;
                XML_StopParser(parser_, XML_FALSE);
            }
        } else if (in_record()) {
            record_field(name, value);
            if (stack_.size() == 2) {
                end_record();
            }
        } else if (stack_.size() == 2 && name == "version") {
            header_.version = value;
        } else if (parent() == "report_metadata") {
            metadata_field(name, value);
        } else if (parent() == "date_range" && parent(2) == "report_metadata") {
            date_field(name, value);
        } else if (parent() == "policy_published") {
            policy_field(name, value);
        }
        stack_.pop_back();
    }

    void metadata_field(std::string_view name, const std::string& value) {
        if (name == "org_name") {
            header_.org_name = value;
        } else if (name == "email") {
            header_.email = value;
        } else if (name == "extra_contact_info") {
            header_.extra_contact_info = value;
        } else if (name == "report_id") {
            header_.report_id = value;
        } else if (name == "error") {
            header_.errors.push_back(value);
        } else if (name == "generator") {
            header_.generator = value;
        }
    }

    void date_field(std::string_view name, const std::string& value) {
        if (name != "begin" && name != "end") {
            return;
        }
        const auto t = unsigned_value(value, kMaxTime);
        if (!t) {
            fail("date_range <" + std::string(name) + "> '" + text::printable(value) +
                 "' is not a Unix time");
            return;
        }
        (name == "begin" ? header_.begin : header_.end) = static_cast<std::int64_t>(*t);
        (name == "begin" ? have_begin_ : have_end_) = true;
    }

    void policy_field(std::string_view name, const std::string& value) {
        PolicyPublished& p = header_.policy;
        if (name == "domain") {
            p.domain = text::lower(value);
        } else if (name == "adkim") {
            p.adkim = text::lower(value);
        } else if (name == "aspf") {
            p.aspf = text::lower(value);
        } else if (name == "p") {
            p.p = text::lower(value);
        } else if (name == "sp") {
            p.sp = text::lower(value);
        } else if (name == "np") {
            p.np = text::lower(value);
        } else if (name == "pct") {
            const auto pct = unsigned_value(value, 100);
            if (!value.empty() && !pct) {
                fail("policy_published <pct> '" + text::printable(value) + "' is not 0 to 100");
                return;
            }
            if (pct) {
                p.pct = static_cast<unsigned>(*pct);
            }
        } else if (name == "fo") {
            p.fo = value;
        } else if (name == "testing") {
            p.testing = text::lower(value);
        } else if (name == "discovery_method") {
            p.discovery_method = text::lower(value);
        }
    }

    void record_field(std::string_view name, const std::string& value) {
        const std::string_view up = parent();
        AggregateRecord& r = record_;
        if (up == "row") {
            if (name == "source_ip") {
                r.source_ip = value;
            } else if (name == "count") {
                if (have_count_) {
                    fail("record " + std::to_string(records_) + ": more than one <count>");
                    return;
                }
                have_count_ = true;
                const auto count = unsigned_value(value, kMaxCount);
                if (!count) {
                    fail("record " + std::to_string(records_) + ": <count> '" +
                         text::printable(value) + "' is not a count");
                    return;
                }
                r.count = *count;
            }
        } else if (up == "policy_evaluated") {
            if (name == "disposition") {
                r.disposition = text::lower(value);
            } else if (name == "dkim") {
                r.dkim_aligned = text::lower(value);
            } else if (name == "spf") {
                r.spf_aligned = text::lower(value);
            }
        } else if (up == "reason" && !r.reasons.empty()) {
            if (name == "type") {
                r.reasons.back().type = text::lower(value);
            } else if (name == "comment") {
                r.reasons.back().comment = value;
            }
        } else if (up == "identifiers") {
            if (name == "header_from") {
                r.header_from = text::lower(value);
            } else if (name == "envelope_from") {
                r.envelope_from = text::lower(value);
            } else if (name == "envelope_to") {
                r.envelope_to = text::lower(value);
            }
        } else if (up == "dkim" && parent(2) == "auth_results" && !r.dkim.empty()) {
            DkimResult& d = r.dkim.back();
            if (name == "domain") {
                d.domain = text::lower(value);
            } else if (name == "selector") {
                d.selector = text::lower(value);
            } else if (name == "result") {
                d.result = text::lower(value);
            } else if (name == "human_result") {
                d.human_result = value;
            }
        } else if (up == "spf" && parent(2) == "auth_results" && !r.spf.empty()) {
            SpfResult& s = r.spf.back();
            if (name == "domain") {
                s.domain = text::lower(value);
            } else if (name == "scope") {
                s.scope = text::lower(value);
            } else if (name == "result") {
                s.result = text::lower(value);
            } else if (name == "human_result") {
                s.human_result = value;
            }
        }
    }

    void end_record() {
        if (!error_.empty()) {
            return;
        }
        const std::string where = "record " + std::to_string(records_);
        if (!have_count_) {
            fail(where + ": <count> is missing");
            return;
        }
        const auto no_result = [](const auto& r) { return r.result.empty(); };
        if (std::any_of(record_.dkim.begin(), record_.dkim.end(), no_result) ||
            std::any_of(record_.spf.begin(), record_.spf.end(), no_result)) {
            fail(where + ": a <dkim> or <spf> result without its <result>");
            return;
        }
        const auto ip = net::IpAddress::parse(record_.source_ip);
        if (!ip) {
            fail(where + ": <source_ip> '" + text::printable(record_.source_ip) +
                 "' is not an IP address");
            return;
        }
        record_.source_ip = ip->to_string();
        sink_.record(record_);
    }

    // The header, checked, once: false (and the parser stopped) when it is incomplete.
    bool send_header() {
        if (header_sent_) {
            return true;
        }
        const char* missing = nullptr;
        if (header_.org_name.empty()) {
            // Some reporters leave <org_name> empty; their <email>'s domain names them.
            const auto at = header_.email.rfind('@');
            if (at != std::string::npos && at + 1 < header_.email.size()) {
                header_.org_name = text::lower(std::string_view(header_.email).substr(at + 1));
            }
        }
        if (header_.org_name.empty()) {
            missing = "report_metadata <org_name>";
        } else if (header_.report_id.empty()) {
            missing = "report_metadata <report_id>";
        } else if (!have_begin_ || !have_end_) {
            missing = "report_metadata <date_range>";
        } else if (header_.policy.domain.empty()) {
            missing = "policy_published <domain>";
        }
        if (missing != nullptr) {
            fail(std::string(missing) + " is missing (it must come before the first <record>)");
            return false;
        }
        if (header_.begin > header_.end) {
            fail("date_range begins after it ends");
            return false;
        }
        header_sent_ = true;
        sink_.header(header_);
        return true;
    }

    AggregateSink& sink_;
    const Limits& limits_;
    XML_Parser parser_ = nullptr;
    std::vector<std::string> stack_;
    std::string text_;
    std::string error_;
    AggregateHeader header_;
    AggregateRecord record_;
    std::size_t records_ = 0;
    bool have_begin_ = false;
    bool have_end_ = false;
    bool header_sent_ = false;
    bool have_count_ = false;
    bool wrapped_ = false;        // inside an <xs:schema> wrapper
    bool feedback_done_ = false;  // </feedback> was read
};

}  // namespace

Expected<void, std::string> parse_aggregate(ByteSource& xml, AggregateSink& sink,
                                            const Limits& limits) {
    AggregateReader reader(sink, limits);
    return reader.run(xml);
}

}  // namespace dkim::reports

#pragma once
// RFC 5322 header blocks on raw wire bytes (CRLF line endings, 8-bit bytes kept as they are).
//
// A HeaderBlock owns the bytes of the header section and indexes its fields; it never
// rewrites them, because DKIM signs and verifies the exact bytes. Obsolete syntax that
// RFC 5322 §4 still asks receivers to accept is accepted: white space between a field name
// and its colon (§4.5.3 obs-optional), empty continuation lines in the middle of a field
// are not (they end the header section), duplicate fields are kept in order.
//
// What is refused, with the line number: more than kMaxHeaderFields fields, a line that is
// neither a field nor a continuation
// (no colon), a field name with characters outside %d33-126, a continuation line before the
// first field, and a bare CR or LF (a header line may only end in CRLF, so that we and the
// next hop can never disagree on where one field ends and the next begins).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::mail {

// The most fields a header section may have. Real messages carry tens (a long forwarding
// chain a few hundred); the index costs 16 bytes a field, and a 25 MiB section of "X:" lines
// would be six million of them, each one walked by every lookup.
inline constexpr std::size_t kMaxHeaderFields = 10000;

struct HeaderError {
    std::size_t line = 0;  // 1-based line of the header section
    std::string message;

    std::string to_string() const;
};

class HeaderBlock {
  public:
    HeaderBlock() = default;

    // `text` is the header section: the fields, each ending in CRLF, without the empty line
    // that separates it from the body. A last field without its CRLF (a message that is all
    // header and does not end in a line break) is accepted.
    static Expected<HeaderBlock, HeaderError> parse(std::string text);

    std::size_t size() const { return fields_.size(); }
    bool empty() const { return fields_.empty(); }

    // The whole field as on the wire: name, colon, value, continuation lines and the CRLF
    // that ends it (absent only for an unterminated last field).
    std::string_view raw(std::size_t i) const;
    // The field name as written, without white space before the colon.
    std::string_view name(std::size_t i) const;
    // Everything after the colon, folding and trailing CRLF included.
    std::string_view value(std::size_t i) const;
    // The field's value with continuation CRLFs removed and surrounding white space trimmed:
    // for display and for structured parsers (DKIM-Signature tags), not for hashing.
    std::string unfolded_value(std::size_t i) const;

    // Indexes of fields named `name` (ASCII case-insensitive), in order of appearance.
    std::vector<std::size_t> find_all(std::string_view name) const;
    // The first field named `name`, or size() when there is none.
    std::size_t find_first(std::string_view name) const;

    std::string_view text() const { return text_; }

  private:
    struct Field {
        std::uint32_t begin = 0;        // first byte of the name
        std::uint32_t name_end = 0;     // one past the name (before optional WSP and the colon)
        std::uint32_t value_begin = 0;  // one past the colon
        std::uint32_t end = 0;          // one past the field's CRLF
    };

    std::string text_;
    std::vector<Field> fields_;
};

// ASCII case-insensitive equality, for field names and DKIM tag values.
bool iequals(std::string_view a, std::string_view b);
// ASCII lowercase (field names, domains, selectors); other bytes unchanged.
inline char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
std::string ascii_lowercase(std::string_view s);
// RFC 5234 WSP: SP or HTAB.
inline bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

// Splits a message stream into its header section and body, fed in arbitrary chunks as SMTP
// DATA arrives: the header section is collected (up to max_header_bytes), body bytes are
// handed back to the caller as they come, never buffered here.
class MessageSplitter {
  public:
    explicit MessageSplitter(std::size_t max_header_bytes = std::size_t{1024} * 1024)
        : max_header_bytes_(max_header_bytes) {}

    // Consumes `chunk` and returns the part of it that belongs to the body (empty while the
    // header section is still incomplete): a view into `chunk`. A header section larger than
    // max_header_bytes is an error, and so is feeding after an error.
    Expected<std::string_view, HeaderError> feed(std::string_view chunk);

    // Ends the message. A message without an empty line is all header and has no body
    // (RFC 5322 §3.5: the body is optional).
    Expected<void, HeaderError> finish();

    // True once the empty line that ends the header section has been seen, or finish() ran.
    bool header_complete() const { return state_ == State::body || state_ == State::finished; }

    // Parses the collected header section; once, after header_complete().
    Expected<HeaderBlock, HeaderError> take_header();

  private:
    enum class State { header, body, failed, finished };

    std::size_t max_header_bytes_;
    std::string header_;
    State state_ = State::header;
};

// A whole message already in memory: its parsed header section and a view of its body (empty
// when there is none).
struct SplitMessage {
    HeaderBlock header;
    std::string_view body;
};
Expected<SplitMessage, HeaderError> split_message(std::string_view message);

}  // namespace dkim::mail

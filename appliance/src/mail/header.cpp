#include "dkim/mail/header.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

namespace dkim::mail {
namespace {

// RFC 5322 §3.6.8: ftext = %d33-57 / %d59-126 (printable US-ASCII except colon).
bool is_ftext(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 33 && u <= 126 && u != ':';
}

// The next CR or LF at or after `pos`, or npos. (std::string::find_first_of calls memchr
// on the two-character set once per byte of the text.)
std::size_t find_line_break(std::string_view text, std::size_t pos) {
    for (; pos < text.size(); ++pos) {
        if (text[pos] == '\r' || text[pos] == '\n') {
            return pos;
        }
    }
    return std::string_view::npos;
}

HeaderError error_at(std::size_t line, std::string message) {
    return HeaderError{line, std::move(message)};
}

}  // namespace

std::string HeaderError::to_string() const {
    if (line == 0) {
        return message;
    }
    return "header line " + std::to_string(line) + ": " + message;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

Expected<HeaderBlock, HeaderError> HeaderBlock::parse(std::string text) {
    if (text.size() >= std::numeric_limits<std::uint32_t>::max()) {
        return unexpected(error_at(0, "header section larger than 4 GiB"));
    }
    HeaderBlock block;
    const std::size_t n = text.size();
    std::size_t pos = 0;
    std::size_t line = 1;
    while (pos < n) {
        const char first = text[pos];
        if (is_wsp(first)) {
            return unexpected(error_at(line, "continuation line before the first header field"));
        }
        if (first == '\r' || first == '\n') {
            return unexpected(error_at(line, "empty line inside the header section"));
        }
        if (block.fields_.size() == kMaxHeaderFields) {
            return unexpected(
                error_at(line, "more than " + std::to_string(kMaxHeaderFields) + " header fields"));
        }
        Field field;
        field.begin = static_cast<std::uint32_t>(pos);
        while (pos < n && is_ftext(text[pos])) {
            ++pos;
        }
        field.name_end = static_cast<std::uint32_t>(pos);
        // RFC 5322 §4.5.3 obs-optional: field-name *WSP ":" unstructured CRLF.
        while (pos < n && is_wsp(text[pos])) {
            ++pos;
        }
        if (pos >= n || text[pos] != ':') {
            const std::size_t eol = find_line_break(text, field.begin);
            const std::string_view rest(text.data() + field.begin,
                                        (eol == std::string::npos ? n : eol) - field.begin);
            if (rest.find(':') == std::string_view::npos) {
                return unexpected(error_at(line, "header line without a colon"));
            }
            if (field.name_end == field.begin) {
                return unexpected(error_at(line, "header field with an empty name"));
            }
            return unexpected(error_at(line, "invalid character in header field name"));
        }
        if (field.name_end == field.begin) {
            return unexpected(error_at(line, "header field with an empty name"));
        }
        ++pos;
        field.value_begin = static_cast<std::uint32_t>(pos);
        // The field ends at the first CRLF that is not followed by WSP (a continuation line).
        for (;;) {
            const std::size_t eol = find_line_break(text, pos);
            if (eol == std::string::npos) {
                pos = n;  // an unterminated last line
                break;
            }
            if (text[eol] == '\n') {
                return unexpected(
                    error_at(line, "bare LF in header field (lines must end in CRLF)"));
            }
            if (eol + 1 >= n || text[eol + 1] != '\n') {
                return unexpected(
                    error_at(line, "bare CR in header field (lines must end in CRLF)"));
            }
            pos = eol + 2;
            ++line;
            if (pos < n && is_wsp(text[pos])) {
                continue;
            }
            break;
        }
        field.end = static_cast<std::uint32_t>(pos);
        if (block.fields_.size() == kMaxHeaderFields) {
            return unexpected(
                error_at(line, "more than " + std::to_string(kMaxHeaderFields) + " header fields"));
        }
        block.fields_.push_back(field);
    }
    block.text_ = std::move(text);
    return block;
}

std::string ascii_lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = ascii_lower(c);
    }
    return out;
}

std::string_view HeaderBlock::raw(std::size_t i) const {
    const Field& f = fields_.at(i);
    return std::string_view(text_).substr(f.begin, f.end - f.begin);
}

std::string_view HeaderBlock::name(std::size_t i) const {
    const Field& f = fields_.at(i);
    return std::string_view(text_).substr(f.begin, f.name_end - f.begin);
}

std::string_view HeaderBlock::value(std::size_t i) const {
    const Field& f = fields_.at(i);
    return std::string_view(text_).substr(f.value_begin, f.end - f.value_begin);
}

std::string HeaderBlock::unfolded_value(std::size_t i) const {
    const std::string_view v = value(i);
    std::string out;
    out.reserve(v.size());
    for (std::size_t k = 0; k < v.size(); ++k) {
        if (v[k] == '\r' && k + 1 < v.size() && v[k + 1] == '\n') {
            ++k;
            continue;
        }
        out.push_back(v[k]);
    }
    const auto first = out.find_first_not_of(" \t");
    if (first == std::string::npos) {
        return {};
    }
    const auto last = out.find_last_not_of(" \t");
    return out.substr(first, last - first + 1);
}

std::vector<std::size_t> HeaderBlock::find_all(std::string_view field_name) const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < fields_.size(); ++i) {
        if (iequals(name(i), field_name)) {
            out.push_back(i);
        }
    }
    return out;
}

std::size_t HeaderBlock::find_first(std::string_view field_name) const {
    for (std::size_t i = 0; i < fields_.size(); ++i) {
        if (iequals(name(i), field_name)) {
            return i;
        }
    }
    return fields_.size();
}

Expected<std::string_view, HeaderError> MessageSplitter::feed(std::string_view chunk) {
    switch (state_) {
        case State::body: return chunk;
        case State::failed: return unexpected(error_at(0, "message rejected earlier"));
        case State::finished: return unexpected(error_at(0, "message already finished"));
        case State::header: break;
    }
    const std::size_t old_size = header_.size();
    // Look for the empty line: CRLF CRLF, or CRLF at the very start (no header fields).
    // Start a little before the new bytes so that a separator split across chunks is found.
    header_.append(chunk);
    std::size_t body_start = std::string::npos;
    if (header_.size() >= 2 && header_[0] == '\r' && header_[1] == '\n') {
        body_start = 2;
        header_.clear();
    } else {
        const std::size_t from = old_size >= 3 ? old_size - 3 : 0;
        const std::size_t sep = header_.find("\r\n\r\n", from);
        if (sep != std::string::npos) {
            body_start = sep + 4;
            header_.resize(sep + 2);  // keep the CRLF that ends the last field
        }
    }
    if (header_.size() > max_header_bytes_) {
        state_ = State::failed;
        header_.clear();
        return unexpected(error_at(
            0, "header section longer than " + std::to_string(max_header_bytes_) + " bytes"));
    }
    if (body_start == std::string::npos) {
        return std::string_view{};
    }
    state_ = State::body;
    // body_start counts from the start of the header buffer before truncation; the chunk
    // began at old_size in that buffer.
    return chunk.substr(body_start - old_size);
}

Expected<void, HeaderError> MessageSplitter::finish() {
    if (state_ == State::failed) {
        return unexpected(error_at(0, "message rejected earlier"));
    }
    state_ = State::finished;
    return {};
}

Expected<HeaderBlock, HeaderError> MessageSplitter::take_header() {
    if (!header_complete()) {
        return unexpected(error_at(0, "header section not complete yet"));
    }
    return HeaderBlock::parse(std::exchange(header_, std::string{}));
}

Expected<SplitMessage, HeaderError> split_message(std::string_view message) {
    MessageSplitter splitter(message.size() + 1);
    auto body = splitter.feed(message);
    if (!body) {
        return unexpected(std::move(body).error());
    }
    if (auto done = splitter.finish(); !done) {
        return unexpected(std::move(done).error());
    }
    auto header = splitter.take_header();
    if (!header) {
        return unexpected(std::move(header).error());
    }
    return SplitMessage{std::move(*header), *body};
}

}  // namespace dkim::mail

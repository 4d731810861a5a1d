#include "dkim/smtp/protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>

#include "dkim/dns/name.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::smtp {

namespace {

// RFC 5321 §4.5.3.1: local part 64, domain 255, path 256 octets.
constexpr std::size_t kMaxLocalPart = 64;
constexpr std::size_t kMaxDomain = 255;
constexpr std::size_t kMaxPath = 256;

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_high(char c) {
    return static_cast<unsigned char>(c) >= 0x80;
}
// RFC 5322 atext. (Not std::strchr on the specials: it finds a NUL, the string's own end.)
bool is_atext(char c) {
    return is_alpha(c) || is_digit(c) ||
           std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && mail::iequals(s.substr(0, prefix.size()), prefix);
}

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return out;
}

bool valid_address_literal(std::string_view literal) {
    if (literal.size() < 3 || literal.front() != '[' || literal.back() != ']') {
        return false;
    }
    std::string inner(literal.substr(1, literal.size() - 2));
    if (inner.find('\0') != std::string::npos) {
        return false;  // inet_pton would read the text only up to it
    }
    std::array<unsigned char, 16> buffer{};
    if (starts_with_ci(inner, "IPv6:")) {
        return inet_pton(AF_INET6, inner.c_str() + 5, buffer.data()) == 1;
    }
    return inet_pton(AF_INET, inner.c_str(), buffer.data()) == 1;
}

// Local-part = Dot-string / Quoted-string (RFC 5321 §4.1.2); non-ASCII with SMTPUTF8.
bool valid_local_part(std::string_view local, bool& utf8) {
    if (local.empty() || local.size() > kMaxLocalPart) {
        return false;
    }
    if (local.front() == '"') {
        if (local.size() < 2 || local.back() != '"') {
            return false;
        }
        for (std::size_t i = 1; i + 1 < local.size(); ++i) {
            const char c = local[i];
            if (c == '\\') {
                if (i + 2 >= local.size()) {
                    return false;
                }
                const char next = local[++i];
                if (next < 32 || next > 126) {
                    return false;
                }
                continue;
            }
            if (is_high(c)) {
                utf8 = true;
                continue;
            }
            // qtextSMTP: %d32-33 / %d35-91 / %d93-126
            if (c < 32 || c > 126 || c == '"') {
                return false;
            }
        }
        return true;
    }
    bool previous_dot = true;  // no leading dot
    for (const char c : local) {
        if (c == '.') {
            if (previous_dot) {
                return false;
            }
            previous_dot = true;
            continue;
        }
        previous_dot = false;
        if (is_high(c)) {
            utf8 = true;
            continue;
        }
        if (!is_atext(c)) {
            return false;
        }
    }
    return !previous_dot;
}

// Splits "local@domain" at the last '@' outside a quoted local part.
std::optional<std::size_t> find_at(std::string_view mailbox) {
    bool quoted = false;
    std::optional<std::size_t> at;
    for (std::size_t i = 0; i < mailbox.size(); ++i) {
        const char c = mailbox[i];
        if (quoted && c == '\\') {
            ++i;
            continue;
        }
        if (c == '"') {
            quoted = !quoted;
        } else if (c == '@' && !quoted) {
            at = i;
        }
    }
    return at;
}

Expected<std::vector<Parameter>, SyntaxError> parse_parameters(std::string_view text) {
    std::vector<Parameter> out;
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == ' ') {
            ++i;
            continue;
        }
        const std::size_t end = std::min(text.find(' ', i), text.size());
        const std::string_view item = text.substr(i, end - i);
        i = end;
        const std::size_t eq = item.find('=');
        const std::string_view keyword = item.substr(0, eq);
        if (keyword.empty() || !(is_alpha(keyword[0]) || is_digit(keyword[0])) ||
            !std::all_of(keyword.begin(), keyword.end(),
                         [](char c) { return is_alpha(c) || is_digit(c) || c == '-'; })) {
            return unexpected(SyntaxError{"malformed parameter keyword"});
        }
        Parameter p{upper(keyword), std::nullopt};
        if (eq != std::string_view::npos) {
            const std::string_view value = item.substr(eq + 1);
            if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) {
                    return (c >= 33 && c <= 126 && c != '=') || is_high(c);
                })) {
                return unexpected(SyntaxError{"malformed value for parameter " + p.keyword});
            }
            p.value = std::string(value);
        }
        if (std::any_of(out.begin(), out.end(),
                        [&](const Parameter& q) { return q.keyword == p.keyword; })) {
            return unexpected(SyntaxError{"parameter " + p.keyword + " given twice"});
        }
        out.push_back(std::move(p));
    }
    return out;
}

Expected<Path, SyntaxError> parse_path(std::string_view argument, std::string_view prefix,
                                       bool allow_null) {
    if (!starts_with_ci(argument, prefix)) {
        return unexpected(SyntaxError{"syntax: " + std::string(prefix) + "<address>"});
    }
    std::string_view rest = argument.substr(prefix.size());
    // RFC 5321 has no space here; many clients send one, and refusing it helps nobody.
    while (!rest.empty() && rest.front() == ' ') {
        rest.remove_prefix(1);
    }
    if (rest.empty() || rest.front() != '<') {
        return unexpected(SyntaxError{"the address must be in angle brackets"});
    }
    // The path ends at the first '>' outside a quoted local part.
    std::size_t close = std::string_view::npos;
    bool quoted = false;
    for (std::size_t i = 1; i < rest.size(); ++i) {
        const char c = rest[i];
        if (quoted && c == '\\') {
            ++i;
            continue;
        }
        if (c == '"') {
            quoted = !quoted;
        } else if (c == '>' && !quoted) {
            close = i;
            break;
        }
    }
    if (close == std::string_view::npos) {
        return unexpected(SyntaxError{"the address must be in angle brackets"});
    }
    std::string_view inner = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty() && after.front() != ' ') {
        return unexpected(SyntaxError{"a space must separate the address from parameters"});
    }
    if (inner.size() > kMaxPath) {
        return unexpected(SyntaxError{"the address is longer than 256 octets"});
    }
    Path path;
    auto parameters = parse_parameters(after);
    if (!parameters) {
        return unexpected(parameters.error());
    }
    path.parameters = std::move(*parameters);
    if (inner.empty()) {
        if (!allow_null) {
            return unexpected(SyntaxError{"the null address is not a recipient"});
        }
        return path;
    }
    // A source route ("@a,@b:") must be accepted and is ignored (RFC 5321 §4.1.1.3, C.).
    if (inner.front() == '@') {
        const std::size_t colon = inner.find(':');
        if (colon == std::string_view::npos) {
            return unexpected(SyntaxError{"malformed source route"});
        }
        inner.remove_prefix(colon + 1);
    }
    const auto at = find_at(inner);
    if (!at) {
        // RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted as a recipient.
        if (!allow_null && mail::iequals(inner, "postmaster")) {
            path.address = std::string(inner);
            path.local_part = path.address;
            return path;
        }
        return unexpected(SyntaxError{"the address has no domain"});
    }
    const std::string_view local = inner.substr(0, *at);
    const std::string_view domain = inner.substr(*at + 1);
    bool utf8 = false;
    if (!valid_local_part(local, utf8)) {
        return unexpected(SyntaxError{"malformed local part"});
    }
    if (std::any_of(domain.begin(), domain.end(), is_high)) {
        utf8 = true;
    }
    if (!is_valid_domain(domain, true)) {
        return unexpected(SyntaxError{"malformed domain"});
    }
    path.address = std::string(inner);
    path.local_part = std::string(local);
    path.domain = mail::ascii_lowercase(domain);
    path.utf8 = utf8;
    return path;
}

}  // namespace

Command parse_command(std::string_view line) {
    while (!line.empty() && line.back() == ' ') {
        line.remove_suffix(1);
    }
    const std::size_t space = line.find(' ');
    const std::string_view verb = line.substr(0, space);
    Command command;
    command.verb_text = std::string(verb.substr(0, 16));
    if (space != std::string_view::npos) {
        command.argument = std::string(line.substr(space + 1));
    }
    static constexpr std::pair<std::string_view, Verb> kVerbs[] = {
        {"EHLO", Verb::ehlo}, {"HELO", Verb::helo}, {"MAIL", Verb::mail},
        {"RCPT", Verb::rcpt}, {"DATA", Verb::data}, {"RSET", Verb::rset},
        {"NOOP", Verb::noop}, {"QUIT", Verb::quit}, {"HELP", Verb::help},
        {"VRFY", Verb::vrfy}, {"EXPN", Verb::expn}, {"STARTTLS", Verb::starttls},
        {"AUTH", Verb::auth}, {"BDAT", Verb::bdat},
    };
    for (const auto& [name, value] : kVerbs) {
        if (mail::iequals(verb, name)) {
            command.verb = value;
            break;
        }
    }
    return command;
}

Expected<Path, SyntaxError> parse_mail_from(std::string_view argument) {
    return parse_path(argument, "FROM:", true);
}

Expected<Path, SyntaxError> parse_rcpt_to(std::string_view argument) {
    return parse_path(argument, "TO:", false);
}

bool is_valid_domain(std::string_view domain, bool utf8) {
    if (domain.empty() || domain.size() > kMaxDomain) {
        return false;
    }
    if (domain.front() == '[') {
        return valid_address_literal(domain);
    }
    return dns::is_valid_name(domain, {utf8 ? dns::LabelSyntax::ldh_utf8 : dns::LabelSyntax::ldh});
}

std::optional<std::string> decode_xtext(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            if (i + 2 >= text.size()) {
                return std::nullopt;
            }
            auto hex = [](char h) -> int {
                if (h >= '0' && h <= '9') {
                    return h - '0';
                }
                if (h >= 'A' && h <= 'F') {
                    return h - 'A' + 10;
                }
                return -1;
            };
            const int hi = hex(text[i + 1]);
            const int lo = hex(text[i + 2]);
            if (hi < 0 || lo < 0) {
                return std::nullopt;
            }
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c >= 33 && c <= 126 && c != '=') {
            out.push_back(c);
        } else {
            return std::nullopt;
        }
    }
    return out;
}

// --- LineBuffer ------------------------------------------------------------------------------

LineBuffer::Status LineBuffer::next_line(std::string& line) {
    const std::string_view view(data_);
    const std::size_t end = view.find_first_of("\r\n", pos_);
    if (end == std::string_view::npos) {
        if (view.size() - pos_ > max_line_) {
            return Status::too_long;
        }
        compact();
        return Status::need_more;
    }
    if (view[end] == '\n') {
        return Status::bare_newline;
    }
    if (end + 1 >= view.size()) {
        if (end - pos_ > max_line_) {
            return Status::too_long;
        }
        compact();
        return Status::need_more;  // the CR's LF has not arrived
    }
    if (view[end + 1] != '\n') {
        return Status::bare_newline;
    }
    if (end - pos_ > max_line_) {
        return Status::too_long;
    }
    line.assign(view.substr(pos_, end - pos_));
    pos_ = end + 2;
    return Status::line;
}

void LineBuffer::consume(std::size_t n) {
    pos_ += std::min(n, data_.size() - pos_);
    compact();
}

void LineBuffer::compact() {
    if (pos_ == data_.size()) {
        if (data_.capacity() > 16384) {
            std::string().swap(data_);  // an idle session keeps no large buffer
        } else {
            data_.clear();
        }
        pos_ = 0;
    } else if (pos_ > 4096 && pos_ * 2 > data_.size()) {
        data_.erase(0, pos_);
        pos_ = 0;
    }
}

// --- DataDecoder -----------------------------------------------------------------------------

void DataDecoder::emit(std::string& out, std::string_view bytes, std::size_t max_size) {
    size_ += bytes.size();
    if (!eight_bit_) {
        eight_bit_ = std::any_of(bytes.begin(), bytes.end(), is_high);
    }
    if (oversized_) {
        return;
    }
    if (out.size() + bytes.size() > max_size) {
        oversized_ = true;
        out.clear();
        out.shrink_to_fit();
        return;
    }
    out.append(bytes);
}

DataDecoder::Result DataDecoder::feed(std::string_view input, std::string& out,
                                      std::size_t max_size) {
    std::size_t i = 0;
    const std::size_t n = input.size();
    auto bare = [&]() { return Result{Status::bare_newline, i}; };
    while (i < n) {
        if (pending_cr_) {
            if (input[i] != '\n') {
                return bare();
            }
            pending_cr_ = false;
            ++i;
            if (dot_line_ && line_length_ == 0) {
                // The line was a lone dot: the end of data.
                return Result{Status::done, i};
            }
            emit(out, "\r\n", max_size);
            at_line_start_ = true;
            dot_line_ = false;
            line_length_ = 0;
            continue;
        }
        if (at_line_start_) {
            at_line_start_ = false;
            if (input[i] == '.') {
                // Either the end-of-data line or a stuffed dot: both remove this dot.
                dot_line_ = true;
                ++i;
                continue;
            }
        }
        // Inside a line: copy up to the next CR or LF.
        const std::size_t end = input.find_first_of("\r\n", i);
        const std::size_t stop = end == std::string_view::npos ? n : end;
        if (stop > i) {
            emit(out, input.substr(i, stop - i), max_size);
            line_length_ += stop - i;
            if (line_length_ + (dot_line_ ? 1 : 0) > max_line_) {
                line_too_long_ = true;
            }
            i = stop;
        }
        if (i < n) {
            if (input[i] == '\n') {
                return bare();
            }
            pending_cr_ = true;
            ++i;
        }
    }
    return Result{Status::more, i};
}

void dot_stuff(std::string_view message, std::string& out) {
    out.reserve(out.size() + message.size() + 16);
    std::size_t start = 0;
    while (start < message.size()) {
        if (message[start] == '.') {
            out.push_back('.');
        }
        const std::size_t next = message.find("\r\n.", start);
        if (next == std::string_view::npos) {
            out.append(message.substr(start));
            return;
        }
        out.append(message.substr(start, next + 2 - start));
        start = next + 2;
    }
}

// --- replies ---------------------------------------------------------------------------------

std::string Reply::summary() const {
    std::string s = std::to_string(code);
    if (!enhanced.empty()) {
        s += ' ';
        s += enhanced;
    }
    if (!text.empty()) {
        s += ' ';
        s += text;
    }
    return s;
}

namespace {

// "2.1.5 " at the start of `text` when its class matches `code` (RFC 3463 §2).
std::size_t enhanced_code_length(std::string_view text, int code) {
    std::size_t i = 0;
    if (text.empty() || text[0] != static_cast<char>('0' + code / 100)) {
        return 0;
    }
    i = 1;
    for (int part = 0; part < 2; ++part) {
        if (i >= text.size() || text[i] != '.') {
            return 0;
        }
        ++i;
        const std::size_t digits_start = i;
        while (i < text.size() && is_digit(text[i]) && i - digits_start < 3) {
            ++i;
        }
        if (i == digits_start) {
            return 0;
        }
    }
    if (i < text.size() && text[i] != ' ') {
        return 0;
    }
    return i;
}

}  // namespace

Expected<std::optional<Reply>, std::string> ReplyParser::add_line(std::string_view line) {
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
        line[0] < '2' || line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
        return unexpected(std::string("malformed reply line"));
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (started_ && code != reply_.code) {
        return unexpected(std::string("reply lines with different codes"));
    }
    started_ = true;
    reply_.code = code;
    const bool last = line.size() == 3 || line[3] == ' ';
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
    reply_.lines.emplace_back(text);
    const std::size_t enhanced = enhanced_code_length(text, code);
    if (enhanced > 0) {
        if (reply_.enhanced.empty()) {
            reply_.enhanced = std::string(text.substr(0, enhanced));
        }
        text.remove_prefix(std::min(enhanced + 1, text.size()));
    }
    if (!text.empty()) {
        if (!reply_.text.empty()) {
            reply_.text += "; ";
        }
        reply_.text.append(text.substr(0, 512));
    }
    if (!last) {
        if (reply_.lines.size() > 100) {
            return unexpected(std::string("reply of more than 100 lines"));
        }
        return std::optional<Reply>{};
    }
    Reply done = std::move(reply_);
    reply_ = Reply{};
    started_ = false;
    return std::optional<Reply>{std::move(done)};
}

std::string format_reply(int code, std::string_view enhanced,
                         const std::vector<std::string>& lines) {
    std::string out;
    const std::string code_text = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += code_text;
        out += i + 1 < lines.size() ? '-' : ' ';
        if (!enhanced.empty()) {
            out += enhanced;
            out += ' ';
        }
        out += lines[i];
        out += "\r\n";
    }
    return out;
}

std::string format_reply(int code, std::string_view enhanced, std::string_view text) {
    return format_reply(code, enhanced, std::vector<std::string>{std::string(text)});
}

}  // namespace dkim::smtp

#include "dkim/imap/response.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace dkim::imap {

namespace {

constexpr std::size_t kImapCompactAt = std::size_t{64} << 10;

bool imap_is_digit(char c) {
    return c >= '0' && c <= '9';
}

char imap_upper(char c) {
    return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string imap_upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = imap_upper(c);
    }
    return out;
}

bool imap_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (imap_upper(a[i]) != imap_upper(b[i])) {
            return false;
        }
    }
    return true;
}

// A decimal number of at most `max`, digits only.
std::optional<std::uint64_t> imap_number(std::string_view s, std::uint64_t max) {
    if (s.empty() || s.size() > 20) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (const char c : s) {
        if (!imap_is_digit(c)) {
            return std::nullopt;
        }
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (max - d) / 10) {
            return std::nullopt;
        }
        v = v * 10 + d;
    }
    return v;
}

std::optional<std::uint32_t> imap_nz_number(std::string_view s) {
    const auto v = imap_number(s, std::numeric_limits<std::uint32_t>::max());
    if (!v || *v == 0) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(*v);
}

// The length a line's final "{N}" announces, if it ends with one; an error when N is too big.
Expected<std::optional<std::uint64_t>, std::string> imap_literal_marker(std::string_view line) {
    if (line.empty() || line.back() != '}') {
        return std::optional<std::uint64_t>{};
    }
    const std::size_t open = line.rfind('{');
    if (open == std::string_view::npos) {
        return std::optional<std::uint64_t>{};
    }
    const std::string_view digits = line.substr(open + 1, line.size() - open - 2);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), imap_is_digit)) {
        return std::optional<std::uint64_t>{};
    }
    const auto n = imap_number(digits, std::numeric_limits<std::uint64_t>::max());
    if (!n) {
        return unexpected(std::string("a literal whose length does not fit 64 bits"));
    }
    return std::optional<std::uint64_t>{*n};
}

// Walks the text of a response: atoms, numbers, quoted strings, literals, NIL and lists.
class ImapCursor {
  public:
    ImapCursor(std::string_view text, std::vector<std::string>& literals, const Limits& limits)
        : s_(text), literals_(literals), limits_(limits) {}

    bool at_end() const { return i_ >= s_.size(); }
    char peek() const { return at_end() ? '\0' : s_[i_]; }
    bool eat(char c) {
        if (peek() != c) {
            return false;
        }
        ++i_;
        return true;
    }

    // An atom: up to a space, a parenthesis or the end.
    std::string_view atom() {
        const std::size_t start = i_;
        while (!at_end() && s_[i_] != ' ' && s_[i_] != '(' && s_[i_] != ')' && s_[i_] != '"' &&
               s_[i_] != '{') {
            ++i_;
        }
        return s_.substr(start, i_ - start);
    }

    // A fetch item's name: an atom, with a bracketed section ("BODY[HEADER.FIELDS (A B)]")
    // and a partial origin ("<0>") when present.
    Expected<std::string_view, std::string> item_name() {
        const std::size_t start = i_;
        const auto name_char = [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || imap_is_digit(c) ||
                   c == '.' || c == '-' || c == '_' || c == '$';
        };
        while (!at_end() && name_char(s_[i_])) {
            ++i_;
        }
        if (i_ > start && eat('[')) {
            while (!at_end() && s_[i_] != ']') {
                if (s_[i_] == '\r' || s_[i_] == '\n') {
                    return unexpected(std::string("a fetch item's section is not closed"));
                }
                ++i_;
            }
            if (!eat(']')) {
                return unexpected(std::string("a fetch item's section is not closed"));
            }
            if (eat('<')) {
                while (!at_end() && imap_is_digit(s_[i_])) {
                    ++i_;
                }
                if (!eat('>')) {
                    return unexpected(std::string("a fetch item's origin is not closed"));
                }
            }
        }
        if (i_ == start) {
            return unexpected(std::string("expected a fetch item's name"));
        }
        return s_.substr(start, i_ - start);
    }

    // A string value: a quoted string or a literal (moved out), or NIL (nullopt).
    Expected<std::optional<std::string>, std::string> nstring() {
        if (peek() == '"') {
            auto q = quoted();
            if (!q) {
                return unexpected(std::move(q).error());
            }
            return std::optional<std::string>(std::move(*q));
        }
        if (peek() == '{') {
            auto index = literal();
            if (!index) {
                return unexpected(std::move(index).error());
            }
            return std::optional<std::string>(std::move(literals_[*index]));
        }
        const std::string_view a = atom();
        if (imap_iequals(a, "NIL")) {
            return std::optional<std::string>{};
        }
        return unexpected(std::string("expected a string, a literal or NIL"));
    }

    // Any value, skipped.
    Expected<void, std::string> skip_value(std::size_t depth = 0) {
        if (peek() == '(') {
            if (depth >= limits_.max_depth) {
                return unexpected(std::string("lists nested too deeply"));
            }
            ++i_;
            bool first = true;
            while (!eat(')')) {
                if (at_end()) {
                    return unexpected(std::string("a list is not closed"));
                }
                if (!first && !eat(' ')) {
                    return unexpected(std::string("expected a space between a list's values"));
                }
                first = false;
                if (peek() == ')') {
                    continue;
                }
                if (auto v = skip_value(depth + 1); !v) {
                    return v;
                }
            }
            return {};
        }
        if (peek() == '"') {
            auto q = quoted();
            if (!q) {
                return unexpected(std::move(q).error());
            }
            return {};
        }
        if (peek() == '{') {
            auto index = literal();
            if (!index) {
                return unexpected(std::move(index).error());
            }
            return {};
        }
        // An atom or number, which may carry a section ("BODY[...]" inside BODYSTRUCTURE does
        // not, but flags like \Seen and keywords are atoms).
        if (atom().empty()) {
            return unexpected(std::string("expected a value"));
        }
        return {};
    }

  private:
    Expected<std::string, std::string> quoted() {
        ++i_;  // the opening quote
        std::string out;
        while (true) {
            if (at_end()) {
                return unexpected(std::string("a quoted string is not closed"));
            }
            const char c = s_[i_++];
            if (c == '"') {
                return out;
            }
            if (c == '\r' || c == '\n') {
                return unexpected(std::string("a line end inside a quoted string"));
            }
            if (c == '\\') {
                if (at_end() || (s_[i_] != '\\' && s_[i_] != '"')) {
                    return unexpected(std::string("a quoted string with a bad escape"));
                }
                out.push_back(s_[i_++]);
                continue;
            }
            out.push_back(c);
        }
    }

    // "{N}\r\n" as the reader left it: the index of the literal it stands for.
    Expected<std::size_t, std::string> literal() {
        const std::size_t close = s_.find('}', i_);
        if (close == std::string_view::npos || s_.substr(close + 1, 2) != "\r\n") {
            return unexpected(std::string("a literal marker not at a line's end"));
        }
        const auto n = imap_number(s_.substr(i_ + 1, close - i_ - 1),
                                   std::numeric_limits<std::uint64_t>::max());
        if (!n || next_literal_ >= literals_.size() || literals_[next_literal_].size() != *n) {
            return unexpected(std::string("a literal marker without its literal"));
        }
        i_ = close + 3;
        return next_literal_++;
    }

    std::string_view s_;
    std::size_t i_ = 0;
    std::vector<std::string>& literals_;
    const Limits& limits_;
    std::size_t next_literal_ = 0;
};

}  // namespace

void ResponseReader::feed(std::string_view bytes) {
    buffer_.append(bytes);
}

Expected<std::optional<Response>, std::string> ResponseReader::next() {
    if (error_) {
        return unexpected(*error_);
    }
    const auto fail = [this](std::string why) -> Expected<std::optional<Response>, std::string> {
        error_ = why;
        buffer_.clear();
        consumed_ = 0;
        return unexpected(std::move(why));
    };
    const auto compact = [this] {
        if (consumed_ == buffer_.size()) {
            buffer_.clear();
            consumed_ = 0;
        } else if (consumed_ >= kImapCompactAt) {
            buffer_.erase(0, consumed_);
            consumed_ = 0;
        }
    };
    while (true) {
        if (in_literal_) {
            const std::size_t take = std::min(buffer_.size() - consumed_, literal_left_);
            current_.literals.back().append(buffer_, consumed_, take);
            consumed_ += take;
            literal_left_ -= take;
            if (literal_left_ > 0) {
                compact();
                return std::optional<Response>{};
            }
            in_literal_ = false;
        }
        const std::size_t lf = buffer_.find('\n', consumed_);
        if (lf == std::string::npos) {
            // One byte more than the cap may be the CR before a line feed still to come.
            if (line_bytes_ + (buffer_.size() - consumed_) > limits_.max_line + 1) {
                return fail("a response line longer than " + std::to_string(limits_.max_line) +
                            " bytes");
            }
            compact();
            return std::optional<Response>{};
        }
        std::size_t end = lf;
        if (end > consumed_ && buffer_[end - 1] == '\r') {
            --end;
        }
        const std::string_view segment(buffer_.data() + consumed_, end - consumed_);
        line_bytes_ += segment.size();
        if (line_bytes_ > limits_.max_line) {
            return fail("a response line longer than " + std::to_string(limits_.max_line) +
                        " bytes");
        }
        if (segment.find('\0') != std::string_view::npos) {
            return fail("a NUL byte in a response line");
        }
        current_.text.append(segment);
        consumed_ = lf + 1;
        auto marker = imap_literal_marker(segment);
        if (!marker) {
            return fail(std::move(marker).error());
        }
        if (*marker) {
            if (**marker > limits_.max_literal) {
                return fail("a literal of " + std::to_string(**marker) + " bytes (at most " +
                            std::to_string(limits_.max_literal) + ")");
            }
            if (current_.literals.size() >= limits_.max_literals) {
                return fail("more than " + std::to_string(limits_.max_literals) +
                            " literals in one response");
            }
            current_.text.append("\r\n");
            current_.literals.emplace_back();
            literal_left_ = static_cast<std::size_t>(**marker);
            current_.literals.back().reserve(std::min<std::size_t>(literal_left_, 1 << 20));
            in_literal_ = true;
            continue;
        }
        Response r = std::move(current_);
        current_ = Response{};
        line_bytes_ = 0;
        compact();
        if (r.text.size() >= 2 && r.text[0] == '*' && r.text[1] == ' ') {
            r.kind = Response::Kind::untagged;
            r.text.erase(0, 2);
        } else if (!r.text.empty() && r.text[0] == '+') {
            r.kind = Response::Kind::continuation;
            r.text.erase(0, r.text.size() >= 2 && r.text[1] == ' ' ? 2 : 1);
        } else {
            const std::size_t space = r.text.find(' ');
            if (space == 0 || space == std::string::npos) {
                return fail("a response that is neither tagged, untagged nor a continuation");
            }
            r.kind = Response::Kind::tagged;
            r.tag = r.text.substr(0, space);
            r.text.erase(0, space + 1);
        }
        return std::optional<Response>(std::move(r));
    }
}

Expected<Completion, std::string> parse_completion(const Response& r) {
    if (r.kind != Response::Kind::tagged) {
        return unexpected(std::string("not a tagged response"));
    }
    const std::size_t space = r.text.find(' ');
    Completion c;
    c.status = imap_upper(std::string_view(r.text).substr(0, space));
    if (c.status != "OK" && c.status != "NO" && c.status != "BAD") {
        return unexpected(std::string("a completion that is not OK, NO or BAD"));
    }
    if (space != std::string::npos) {
        c.text = r.text.substr(space + 1);
    }
    return c;
}

std::string untagged_keyword(const Response& r) {
    if (r.kind != Response::Kind::untagged) {
        return "";
    }
    std::string_view s(r.text);
    std::size_t i = 0;
    while (i < s.size() && imap_is_digit(s[i])) {
        ++i;
    }
    if (i > 0) {
        if (i >= s.size() || s[i] != ' ') {
            return "";
        }
        s.remove_prefix(i + 1);
    }
    const std::size_t end = s.find(' ');
    return imap_upper(s.substr(0, end));
}

Expected<std::vector<std::uint32_t>, std::string> parse_search(const Response& r) {
    if (r.kind != Response::Kind::untagged || !r.literals.empty()) {
        return unexpected(std::string("not a SEARCH response"));
    }
    std::string_view s(r.text);
    const std::size_t first = s.find(' ');
    if (!imap_iequals(s.substr(0, first), "SEARCH")) {
        return unexpected(std::string("not a SEARCH response"));
    }
    std::vector<std::uint32_t> out;
    s.remove_prefix(first == std::string_view::npos ? s.size() : first + 1);
    while (!s.empty()) {
        const std::size_t space = s.find(' ');
        const std::string_view token = s.substr(0, space);
        s.remove_prefix(space == std::string_view::npos ? s.size() : space + 1);
        if (token.empty()) {
            continue;  // a trailing or doubled space, as some servers send
        }
        const auto n = imap_nz_number(token);
        if (!n) {
            return unexpected("SEARCH: '" + printable(token, 24) +
                              "' is not a number from 1 to 4294967295");
        }
        out.push_back(*n);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

Expected<std::set<std::string>, std::string> parse_capability(const Response& r) {
    if (r.kind != Response::Kind::untagged || !r.literals.empty()) {
        return unexpected(std::string("not a CAPABILITY response"));
    }
    std::string_view s(r.text);
    const std::size_t first = s.find(' ');
    if (!imap_iequals(s.substr(0, first), "CAPABILITY")) {
        return unexpected(std::string("not a CAPABILITY response"));
    }
    std::set<std::string> out;
    s.remove_prefix(first == std::string_view::npos ? s.size() : first + 1);
    while (!s.empty()) {
        const std::size_t space = s.find(' ');
        const std::string_view token = s.substr(0, space);
        s.remove_prefix(space == std::string_view::npos ? s.size() : space + 1);
        if (!token.empty()) {
            out.insert(imap_upper(token));
        }
    }
    return out;
}

Expected<FetchData, std::string> parse_fetch(Response& r, const Limits& limits) {
    if (r.kind != Response::Kind::untagged) {
        return unexpected(std::string("not a FETCH response"));
    }
    ImapCursor c(r.text, r.literals, limits);
    FetchData out;
    const auto sequence = imap_nz_number(c.atom());
    if (!sequence || !c.eat(' ') || !imap_iequals(c.atom(), "FETCH") || !c.eat(' ') ||
        !c.eat('(')) {
        return unexpected(std::string("not a FETCH response"));
    }
    out.sequence = *sequence;
    bool first = true;
    while (!c.eat(')')) {
        if (c.at_end()) {
            return unexpected(std::string("FETCH: the item list is not closed"));
        }
        if (!first && !c.eat(' ')) {
            return unexpected(std::string("FETCH: expected a space between items"));
        }
        first = false;
        auto name = c.item_name();
        if (!name) {
            return unexpected("FETCH: " + std::move(name).error());
        }
        if (!c.eat(' ')) {
            return unexpected(std::string("FETCH: an item without a value"));
        }
        if (imap_iequals(*name, "UID")) {
            const auto uid = imap_nz_number(c.atom());
            if (!uid) {
                return unexpected(std::string("FETCH: UID is not a number from 1 to 4294967295"));
            }
            out.uid = *uid;
        } else if (imap_iequals(*name, "RFC822.SIZE")) {
            const auto size = imap_number(
                c.atom(), static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
            if (!size) {
                return unexpected(std::string("FETCH: RFC822.SIZE is not a number"));
            }
            out.size = *size;
        } else if (imap_iequals(*name, "BODY[]")) {
            auto body = c.nstring();
            if (!body) {
                return unexpected("FETCH: BODY[]: " + std::move(body).error());
            }
            out.body = std::move(*body);
        } else if (auto skipped = c.skip_value(); !skipped) {
            return unexpected("FETCH: " + std::move(skipped).error());
        }
    }
    if (!c.at_end()) {
        return unexpected(std::string("FETCH: text after the item list"));
    }
    return out;
}

Expected<std::string, std::string> quote_mailbox(std::string_view name) {
    if (name.empty()) {
        return unexpected(std::string("an empty mailbox name"));
    }
    std::string out = "\"";
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) {
            return unexpected(
                std::string("a mailbox name with a control character or a non-ASCII byte (give the "
                            "server's modified UTF-7 form)"));
        }
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

std::string printable(std::string_view text, std::size_t max) {
    std::string out;
    for (const char c : text.substr(0, max)) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u >= 0x7f ? '?' : c);
    }
    if (text.size() > max) {
        out += "...";
    }
    return out;
}

std::string Url::server() const {
    std::string out = implicit_tls ? "imaps://" : "imap://";
    if (host.find(':') != std::string::npos) {
        out += "[" + host + "]";
    } else {
        out += host;
    }
    return out + ":" + std::to_string(port) + "/";
}

Expected<Url, std::string> parse_url(std::string_view url) {
    // Never quote the URL itself in an error: a mistaken one may hold a password.
    Url out;
    std::string_view rest;
    if (url.size() > 8 && imap_iequals(url.substr(0, 8), "imaps://")) {
        out.implicit_tls = true;
        out.port = 993;
        rest = url.substr(8);
    } else if (url.size() > 7 && imap_iequals(url.substr(0, 7), "imap://")) {
        out.implicit_tls = false;
        out.port = 143;
        rest = url.substr(7);
    } else {
        return unexpected(
            std::string("--url: expected imaps://HOST[:PORT]/MAILBOX (or imap:// "
                        "with STARTTLS)"));
    }
    const std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (authority.find('@') != std::string_view::npos) {
        return unexpected(
            std::string("--url: no user or password in the URL; use --user and --password-file"));
    }
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            return unexpected(std::string("--url: an IPv6 address without its ']'"));
        }
        out.host = std::string(authority.substr(1, close - 1));
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                return unexpected(std::string("--url: expected ':PORT' after the address"));
            }
            port = after.substr(1);
        }
        if (out.host.empty() ||
            out.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
            return unexpected(std::string("--url: not an IPv6 address between [ and ]"));
        }
    } else {
        const std::size_t colon = authority.find(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
        }
        if (out.host.empty() ||
            out.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789-._") != std::string::npos) {
            return unexpected(std::string("--url: expected a host name or address"));
        }
    }
    if (authority.size() > 255) {
        return unexpected(std::string("--url: the host is too long"));
    }
    if (!port.empty() || (authority.size() > 0 && authority.back() == ':')) {
        const auto p = imap_number(port, 65535);
        if (!p || *p == 0) {
            return unexpected(std::string("--url: the port is not a number from 1 to 65535"));
        }
        out.port = static_cast<std::uint16_t>(*p);
    }
    if (path.find_first_of("?#;") != std::string_view::npos) {
        return unexpected(std::string(
            "--url: a mailbox path without query, fragment or ';' parameters expected"));
    }
    std::string mailbox;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] != '%') {
            mailbox.push_back(path[i]);
            continue;
        }
        const auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') {
                return c - '0';
            }
            c = imap_upper(c);
            return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        };
        if (i + 2 >= path.size()) {
            return unexpected(std::string("--url: a '%' without two hex digits"));
        }
        const int hi = hex(path[i + 1]);
        const int lo = hex(path[i + 2]);
        if (hi < 0 || lo < 0) {
            return unexpected(std::string("--url: a '%' without two hex digits"));
        }
        mailbox.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    if (!mailbox.empty()) {
        if (auto quoted = quote_mailbox(mailbox); !quoted) {
            return unexpected("--url: " + std::move(quoted).error());
        }
        out.mailbox = std::move(mailbox);
    }
    return out;
}

Expected<AfterStore, std::string> parse_after_store(std::string_view text) {
    AfterStore out;
    if (text == "seen") {
        out.action = AfterStore::Action::seen;
    } else if (text == "delete") {
        out.action = AfterStore::Action::remove;
    } else if (text.substr(0, 5) == "move:") {
        out.action = AfterStore::Action::move;
        out.folder = std::string(text.substr(5));
        if (auto quoted = quote_mailbox(out.folder); !quoted) {
            return unexpected("--after-store move: " + std::move(quoted).error());
        }
    } else {
        return unexpected(std::string("--after-store: expected seen, delete or move:FOLDER"));
    }
    return out;
}

}  // namespace dkim::imap

#pragma once
// What an IMAP server says (RFC 3501/9051), read from bytes a hostile server may send: the
// responses split off a byte stream (each literal taken by its announced length, under caps),
// and the few responses the report fetcher needs parsed (SEARCH, FETCH, CAPABILITY, a command's
// completion). Pure code: no sockets, no TLS; `dkim-appliance reports fetch-imap` drives it over
// libcurl's connection, the unit tests and the fuzz target drive it with bytes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::imap {

struct Limits {
    std::size_t max_line = std::size_t{1} << 20;      // one line's bytes, literals apart
    std::size_t max_literal = std::size_t{64} << 20;  // one literal (a whole message)
    std::size_t max_literals = 16;                    // literals in one response
    std::size_t max_depth = 8;                        // nested parenthesized lists
};

// One response. `text` is the response without its tag and final CRLF, each literal's
// "{N}\r\n" marker kept in place and its bytes in `literals`, in order.
struct Response {
    enum class Kind : std::uint8_t { untagged, tagged, continuation };
    Kind kind = Kind::untagged;
    std::string tag;  // tagged only
    std::string text;
    std::vector<std::string> literals;
};

// Splits a byte stream into responses. feed() takes bytes as they arrive, in any chunks;
// next() gives complete responses in order. An error (a line or literal over the caps, a
// malformed line) is final: the connection is not to be read further.
class ResponseReader {
  public:
    explicit ResponseReader(Limits limits = {}) : limits_(limits) {}

    void feed(std::string_view bytes);
    // The next complete response; nullopt while more bytes are needed; an error when the
    // stream is broken.
    Expected<std::optional<Response>, std::string> next();
    // Bytes fed but not yet part of a response.
    std::size_t pending() const { return buffer_.size() - consumed_; }

  private:
    Limits limits_;
    std::string buffer_;
    std::size_t consumed_ = 0;  // bytes of buffer_ already in earlier responses
    Response current_;
    std::size_t literal_left_ = 0;
    bool in_literal_ = false;
    std::size_t line_bytes_ = 0;  // of current_.text, literals apart
    std::optional<std::string> error_;
};

// A tagged completion: "OK", "NO" or "BAD" and the human-readable rest (with any response code).
struct Completion {
    std::string status;
    std::string text;
};
Expected<Completion, std::string> parse_completion(const Response& r);

// The keyword of an untagged response ("SEARCH", "CAPABILITY", "BYE", "OK", ...), or of one
// with a number first ("FETCH", "EXISTS", "EXPUNGE"), upper-cased; "" when there is none.
std::string untagged_keyword(const Response& r);

// "* SEARCH 3 17 42": the numbers, sorted, without repeats. Each is 1..4294967295.
Expected<std::vector<std::uint32_t>, std::string> parse_search(const Response& r);

// "* CAPABILITY IMAP4rev1 MOVE UIDPLUS ...": the capabilities, upper-cased.
Expected<std::set<std::string>, std::string> parse_capability(const Response& r);

// "* 12 FETCH (UID 42 RFC822.SIZE 1234 BODY[] {1234}\r\n...)": the items the fetcher asks for.
// The body literal is moved out of `r`. Other items (FLAGS, INTERNALDATE, ...) are skipped.
struct FetchData {
    std::uint32_t sequence = 0;
    std::optional<std::uint32_t> uid;
    std::optional<std::uint64_t> size;  // RFC822.SIZE
    std::optional<std::string> body;    // BODY[] (NIL gives none)
};
Expected<FetchData, std::string> parse_fetch(Response& r, const Limits& limits = {});

// A mailbox name as an IMAP quoted string. Names with control characters or 8-bit bytes are
// refused (IMAP wants modified UTF-7 for those; an operator can give the encoded form).
Expected<std::string, std::string> quote_mailbox(std::string_view name);

// At most `max` bytes of server text fit for a terminal: control and 8-bit bytes become '?'.
std::string printable(std::string_view text, std::size_t max = 200);

// imaps://HOST[:PORT]/MAILBOX or imap://HOST[:PORT]/MAILBOX (the mailbox percent-decoded;
// INBOX when the path is empty). No user or password in the URL, no query, no fragment, no
// RFC 5092 parameters.
struct Url {
    bool implicit_tls = true;  // imaps://; imap:// needs STARTTLS
    std::string host;          // as written (an IPv6 address without its brackets)
    std::uint16_t port = 993;
    std::string mailbox = "INBOX";
    std::string server() const;  // "scheme://host:port/" for libcurl
};
Expected<Url, std::string> parse_url(std::string_view url);

// --after-store: seen | delete | move:FOLDER.
struct AfterStore {
    enum class Action : std::uint8_t { seen, remove, move };
    Action action = Action::seen;
    std::string folder;  // move only
};
Expected<AfterStore, std::string> parse_after_store(std::string_view text);

}  // namespace dkim::imap

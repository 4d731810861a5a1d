#pragma once
// SMTP wire syntax (RFC 5321) for both ends of the relay: command lines from untrusted
// clients, the DATA stream, and multi-line replies from the next hop. Pure functions and
// small state machines over bytes; no I/O, so that the fuzz targets and unit tests drive
// them directly.
//
// Line discipline (the defence against SMTP smuggling): a line ends in CRLF and only in
// CRLF. A bare LF or a bare CR anywhere, in a command or in DATA, is a protocol error that
// ends the session: the relay and the next hop must never disagree on where a line, or the
// message, ends.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::smtp {

// --- command lines -------------------------------------------------------------------------

enum class Verb : std::uint8_t {
    ehlo,
    helo,
    mail,
    rcpt,
    data,
    rset,
    noop,
    quit,
    help,
    vrfy,
    expn,
    starttls,
    auth,
    bdat,
    unknown
};

struct Command {
    Verb verb = Verb::unknown;
    std::string verb_text;  // as sent, for "command not recognized" replies
    std::string argument;   // after the verb and one space; may be empty
};

// Splits one command line (without its CRLF). Verbs are case-insensitive.
Command parse_command(std::string_view line);

// An ESMTP parameter of MAIL or RCPT: keyword (upper-cased) and optional value.
struct Parameter {
    std::string keyword;
    std::optional<std::string> value;
};

// A reverse-path or forward-path. `address` is local@domain as written (without brackets),
// empty for the null reverse-path <>; `domain` is the domain part, lower-cased.
struct Path {
    std::string address;
    std::string local_part;
    std::string domain;
    std::vector<Parameter> parameters;
    bool utf8 = false;  // the path holds non-ASCII (needs SMTPUTF8)
};

struct SyntaxError {
    std::string message;  // for a 501 reply: says what is wrong, never echoes much input
};

// "FROM:<a@b> SIZE=10 BODY=8BITMIME" (the argument of MAIL). Accepts a null path <>, refuses
// source routes ("@a,@b:user@c" is accepted and the route ignored, RFC 5321 §4.1.1.3 says it
// MUST be accepted), refuses a path without brackets, a domain that is not a valid name or
// address literal, and parameters that are not keyword[=value].
Expected<Path, SyntaxError> parse_mail_from(std::string_view argument);
// "TO:<a@b>" (the argument of RCPT). "<Postmaster>" without a domain is accepted
// (RFC 5321 §4.5.1); the null path is not.
Expected<Path, SyntaxError> parse_rcpt_to(std::string_view argument);

// RFC 5321 §4.1.2 Domain (dot-separated labels of letters, digits, hyphens, each up to 63,
// total up to 253: dns::is_valid_name), or an address literal [1.2.3.4] / [IPv6:...]. With
// utf8, U-labels (non-ASCII bytes) are allowed too (RFC 6531).
bool is_valid_domain(std::string_view domain, bool utf8 = false);

// Decodes an RFC 3461 xtext (AUTH=, ENVID=) value; nullopt if malformed.
std::optional<std::string> decode_xtext(std::string_view text);

// --- input buffering -----------------------------------------------------------------------

// Bytes received from a peer, and the complete lines in them. Lines are returned without
// their CRLF. A line longer than `max_line` (CRLF excluded) is an error, and so is a bare CR
// or LF; after an error the buffer stays failed.
class LineBuffer {
  public:
    enum class Status : std::uint8_t { line, need_more, too_long, bare_newline };

    explicit LineBuffer(std::size_t max_line = 512) : max_line_(max_line) {}

    void append(std::string_view bytes) { data_.append(bytes); }
    // The next complete line into `line`.
    Status next_line(std::string& line);
    // Unconsumed bytes (for DATA, which takes over the buffer after "354").
    std::string_view pending() const { return std::string_view(data_).substr(pos_); }
    void consume(std::size_t n);
    bool has_pending() const { return pos_ < data_.size(); }
    void set_max_line(std::size_t max_line) { max_line_ = max_line; }

  private:
    void compact();

    std::string data_;
    std::size_t pos_ = 0;
    std::size_t max_line_;
};

// --- DATA ----------------------------------------------------------------------------------

// The DATA stream after "354": removes dot-stuffing and finds the end of data, which is
// CRLF "." CRLF and nothing else (the CRLF before the dot may be the one that ended the DATA
// command). The message bytes go to `out`, in wire form with CRLF line endings and without
// the terminating ".CRLF".
class DataDecoder {
  public:
    enum class Status : std::uint8_t {
        more,          // everything consumed, the end has not come yet
        done,          // the end-of-data line was consumed; `consumed` says how far
        bare_newline,  // a bare CR or LF: the session must end
    };
    struct Result {
        Status status = Status::more;
        std::size_t consumed = 0;  // bytes of the input that belong to DATA
    };

    explicit DataDecoder(std::size_t max_line = 998) : max_line_(max_line) {}

    // Feeds `input`; message bytes are appended to `out` unless the message is already over
    // `max_size` (then they are dropped and oversized() becomes true; reading goes on to the
    // end so that the reply can be given in step with the client).
    Result feed(std::string_view input, std::string& out, std::size_t max_size);

    bool oversized() const { return oversized_; }
    // A line was longer than max_line (CRLF excluded): the message must be refused (the next
    // hop could wrap it, which breaks the signature), but reading goes on to the end.
    bool line_too_long() const { return line_too_long_; }
    // Every byte of the message, including those not kept.
    std::uint64_t size() const { return size_; }
    bool eight_bit() const { return eight_bit_; }

  private:
    void emit(std::string& out, std::string_view bytes, std::size_t max_size);

    std::size_t max_line_;
    std::size_t line_length_ = 0;  // bytes of the current line so far
    bool at_line_start_ = true;    // the previous byte ended a line (or DATA just began)
    bool dot_line_ = false;        // the current line began with a dot (stuffing removed)
    bool pending_cr_ = false;      // a CR whose LF has not arrived
    bool oversized_ = false;
    bool line_too_long_ = false;
    bool eight_bit_ = false;
    std::uint64_t size_ = 0;
};

// Dot-stuffs `message` (CRLF lines) for sending after DATA: every line that begins with a dot
// gets one more. Appends to `out`, not including the end-of-data line.
void dot_stuff(std::string_view message, std::string& out);

// --- replies -------------------------------------------------------------------------------

struct Reply {
    int code = 0;          // 200..599
    std::string enhanced;  // "2.0.0" when the peer sent one (RFC 3463), else empty
    std::string text;      // the lines' texts after code and enhanced code, joined by "; "
    std::vector<std::string> lines;  // each line's text after "NNN-" / "NNN "

    bool positive() const { return code >= 200 && code < 400; }
    bool transient() const { return code >= 400 && code < 500; }
    bool permanent() const { return code >= 500; }
    // "250 2.0.0 text" on one line, for logs.
    std::string summary() const;
};

// Collects one reply from a peer's lines. Returns the reply once its last line ("NNN text")
// has been added; errors for a line that is not "NNN[- ]text" or whose code differs from
// the first line's.
class ReplyParser {
  public:
    Expected<std::optional<Reply>, std::string> add_line(std::string_view line);

  private:
    Reply reply_;
    bool started_ = false;
};

// Formats a reply: "250-a\r\n250 b\r\n". Each line gets the enhanced code when given.
std::string format_reply(int code, std::string_view enhanced,
                         const std::vector<std::string>& lines);
std::string format_reply(int code, std::string_view enhanced, std::string_view text);

}  // namespace dkim::smtp

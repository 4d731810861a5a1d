#pragma once
// DKIM canonicalization, RFC 6376 §3.4: "simple" and "relaxed", for header fields and for
// the body. Header fields are canonicalized one at a time into a caller's buffer; the body is
// canonicalized as a stream, chunk by chunk as SMTP DATA arrives, into a BodySink (in
// production, SHA-256), never needing the whole body in memory.
//
// The body canonicalizers hold back only what the next bytes can still change: trailing
// empty lines (§3.4.3/§3.4.4 "Ignore all empty lines at the end of the message body"), a run
// of white space (relaxed), and a CR whose LF has not arrived. Everything else is passed to the
// sink as spans of the caller's chunk, without copying; relaxed canonicalization finds the few
// places that change with a vectorised scan.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/mail/header.hpp"

namespace dkim {

enum class Canon : std::uint8_t { simple, relaxed };

struct Canonicalization {
    Canon header = Canon::simple;
    Canon body = Canon::simple;

    // RFC 6376 §3.5 c=: "simple", "relaxed", "relaxed/simple", ...; a missing body part means
    // simple ("If only one algorithm is named, that algorithm is used for the header and
    // "simple" is used for the body").
    static Expected<Canonicalization, std::string> parse(std::string_view c_tag);
    std::string to_string() const;

    friend bool operator==(const Canonicalization&, const Canonicalization&) = default;
};

std::string_view to_string(Canon canon);

// Appends the canonical form of one raw header field (name, colon, value, folding and its
// CRLF, exactly as on the wire) to `out`, ending in CRLF.
void canonicalize_header_simple(std::string_view raw_field, std::string& out);
void canonicalize_header_relaxed(std::string_view raw_field, std::string& out);
void canonicalize_header(Canon canon, std::string_view raw_field, std::string& out);

// The DKIM-Signature field as it enters its own hash (RFC 6376 §3.7): the value of the b= tag
// deleted "(including all surrounding whitespace)", canonicalized, and without the trailing
// CRLF. Appended to `out`.
void canonicalize_signature_header(Canon canon, std::string_view raw_field, std::string& out);

// RFC 6376 §5.4.2: appends the fields named by h=, in h= order, each name selecting the
// last instance not selected yet (from the bottom up); a name with no instance left adds
// nothing. The field at index `exclude` (the signature being verified) is never selected.
void canonicalize_signed_headers(const mail::HeaderBlock& header,
                                 const std::vector<std::string>& signed_headers, Canon canon,
                                 std::size_t exclude, std::string& out);

// Where canonical body bytes go.
class BodySink {
  public:
    virtual ~BodySink() = default;
    virtual void write(const char* data, std::size_t size) = 0;
};

class BodyCanonicalizer {
  public:
    BodyCanonicalizer(Canon canon, BodySink& sink) : canon_(canon), sink_(sink) {}

    void update(std::string_view chunk);
    // Ends the body: emits the final CRLF the algorithm calls for (simple: always one, for an
    // empty body too; relaxed: one unless the body is empty).
    void finish();

  private:
    void process_simple(std::string_view data);
    void process_relaxed(std::string_view data);
    void step(char c);
    void flush_pending();
    void emit(const char* data, std::size_t size) {
        if (size > 0) {
            sink_.write(data, size);
            emitted_any_ = true;
        }
    }

    Canon canon_;
    BodySink& sink_;
    std::uint64_t pending_crlfs_ = 0;  // line breaks held back: they may be trailing
    bool pending_wsp_ = false;         // relaxed: a white space run held back
    bool pending_cr_ = false;          // a CR whose next byte has not arrived
    bool emitted_any_ = false;
    bool finished_ = false;
};

namespace detail {
// The relaxed body scanners this CPU can run (scalar, SSE2, AVX2, AVX-512BW), for tests that
// check each against the scalar one; the canonicalizer uses the fastest.
struct RelaxedScanner {
    const char* name;
    std::size_t (*find)(const char* data, std::size_t i, std::size_t end);
};
std::vector<RelaxedScanner> relaxed_scanners();
}  // namespace detail

// The reference canonicalizer: the RFC's rules applied to a whole body in memory, written
// for clarity, not speed. Fuzzing and tests compare the streaming one against it.
std::string canonicalize_body_reference(Canon canon, std::string_view body);

}  // namespace dkim

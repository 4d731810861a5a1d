#pragma once
// The CBOR that WebAuthn hands a relying party (RFC 8949, the subset CTAP2 §8 allows): unsigned
// and negative integers, byte and text strings, arrays, maps, and the simple values false, true
// and null. Definite lengths only, every head in its shortest form, map keys in CTAP2's canonical
// order (which also refuses a key given twice), text strings valid UTF-8, nesting bounded. Tags,
// floats and `undefined` never occur in what we read and are refused.
//
// A pull reader over untrusted bytes: every length is checked against what remains before it is
// used, and nothing recurses deeper than the depth its caller grants.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dkim/expected.hpp"

namespace dkim::jit::webauthn::cbor {

enum class Major : std::uint8_t {
    unsigned_integer = 0,
    negative_integer = 1,
    byte_string = 2,
    text_string = 3,
    array = 4,
    map = 5,
    tag = 6,
    simple = 7,
};

struct Head {
    Major major = Major::unsigned_integer;
    std::uint64_t argument = 0;  // the value, the length, the count, or the simple value
};

// How deep a caller may nest: the attestation object's statement (a map holding an array of
// certificates) is three levels below the top, extensions a few more.
inline constexpr int kMaxDepth = 8;

class Reader {
  public:
    explicit Reader(std::string_view bytes) : bytes_(bytes) {}

    std::size_t offset() const { return offset_; }
    std::size_t remaining() const { return bytes_.size() - offset_; }
    bool at_end() const { return offset_ == bytes_.size(); }
    // The bytes read between `from` and the current offset.
    std::string_view span_from(std::size_t from) const {
        return bytes_.substr(from, offset_ - from);
    }

    // One head. For arrays and maps the count is checked against the bytes that remain (one
    // byte at least per element, two per map entry); for strings the length.
    Expected<Head, std::string> head();
    Expected<std::int64_t, std::string> integer();
    Expected<std::string_view, std::string> byte_string();
    Expected<std::string_view, std::string> text_string();
    Expected<std::uint64_t, std::string> map_count();
    Expected<std::uint64_t, std::string> array_count();
    // One whole data item of any accepted kind; `depth` is how many levels of arrays and maps
    // may still open (0: a container is refused).
    Expected<void, std::string> skip(int depth);

  private:
    Expected<std::string_view, std::string> take(std::uint64_t size);

    std::string_view bytes_;
    std::size_t offset_ = 0;
};

// The keys of one map, as they are read: each must sort after the one before (CTAP2 §8
// canonical order: the lower major type first, then the shorter encoding, then bytewise), so a
// key given twice is refused too.
class MapKeyOrder {
  public:
    Expected<void, std::string> next(std::string_view encoded_key);

  private:
    std::string_view previous_;
    bool first_ = true;
};

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view text);

}  // namespace dkim::jit::webauthn::cbor

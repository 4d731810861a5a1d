#include "webauthn_cbor.hpp"

#include <limits>
#include <tuple>

namespace dkim::jit::webauthn::cbor {
namespace {

constexpr std::uint8_t kCborFalse = 20;
constexpr std::uint8_t kCborTrue = 21;
constexpr std::uint8_t kCborNull = 22;

// The smallest argument each head size may carry (RFC 8949 §4.2.1 preferred serialization):
// a value that fits a shorter head must use it.
constexpr std::uint64_t kCborOneByteMinimum = 24;
constexpr std::uint64_t kCborTwoBytesMinimum = 0x100;
constexpr std::uint64_t kCborFourBytesMinimum = 0x10000;
constexpr std::uint64_t kCborEightBytesMinimum = 0x100000000ULL;

Unexpected<std::string> cbor_failure(std::string message) {
    return unexpected("CBOR: " + std::move(message));
}

}  // namespace

Expected<std::string_view, std::string> Reader::take(std::uint64_t size) {
    if (size > remaining()) {
        return cbor_failure("a length runs past the end of the data");
    }
    const std::string_view taken = bytes_.substr(offset_, static_cast<std::size_t>(size));
    offset_ += static_cast<std::size_t>(size);
    return taken;
}

Expected<Head, std::string> Reader::head() {
    if (at_end()) {
        return cbor_failure("the data ends where an item was expected");
    }
    const auto initial = static_cast<std::uint8_t>(bytes_[offset_]);
    ++offset_;
    Head result;
    result.major = static_cast<Major>(initial >> 5);
    const std::uint8_t additional = initial & 0x1f;
    if (result.major == Major::tag) {
        return cbor_failure("tags are not accepted");
    }
    if (result.major == Major::simple) {
        // Only false, true and null, in their one-byte form; floats, undefined and the
        // two-byte simple values never occur in WebAuthn's data.
        if (additional != kCborFalse && additional != kCborTrue && additional != kCborNull) {
            return cbor_failure("a float or simple value other than false, true and null");
        }
        result.argument = additional;
        return result;
    }
    if (additional == 31) {
        return cbor_failure("indefinite lengths are not accepted");
    }
    if (additional >= 28) {
        return cbor_failure("a reserved additional-information value");
    }
    if (additional < 24) {
        result.argument = additional;
    } else {
        const std::size_t size = std::size_t{1} << (additional - 24);  // 1, 2, 4 or 8
        auto argument_bytes = take(size);
        if (!argument_bytes) {
            return unexpected(std::move(argument_bytes).error());
        }
        for (const char c : *argument_bytes) {
            result.argument = (result.argument << 8) | static_cast<std::uint8_t>(c);
        }
        static constexpr std::uint64_t minimum[] = {kCborOneByteMinimum, kCborTwoBytesMinimum,
                                                    kCborFourBytesMinimum, kCborEightBytesMinimum};
        if (result.argument < minimum[additional - 24]) {
            return cbor_failure("a value not in its shortest form");
        }
    }
    switch (result.major) {
        case Major::byte_string:
        case Major::text_string:
            if (result.argument > remaining()) {
                return cbor_failure("a string runs past the end of the data");
            }
            break;
        case Major::array:
            if (result.argument > remaining()) {
                return cbor_failure("an array has more elements than bytes remain");
            }
            break;
        case Major::map:
            if (result.argument > remaining() / 2) {
                return cbor_failure("a map has more entries than bytes remain");
            }
            break;
        default: break;
    }
    return result;
}

Expected<std::int64_t, std::string> Reader::integer() {
    auto h = head();
    if (!h) {
        return unexpected(std::move(h).error());
    }
    if (h->major != Major::unsigned_integer && h->major != Major::negative_integer) {
        return cbor_failure("an integer was expected");
    }
    constexpr auto kMaximum = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (h->argument > kMaximum) {
        return cbor_failure("an integer out of range");
    }
    const auto value = static_cast<std::int64_t>(h->argument);
    return h->major == Major::unsigned_integer ? value : -1 - value;
}

Expected<std::string_view, std::string> Reader::byte_string() {
    auto h = head();
    if (!h) {
        return unexpected(std::move(h).error());
    }
    if (h->major != Major::byte_string) {
        return cbor_failure("a byte string was expected");
    }
    return take(h->argument);
}

Expected<std::string_view, std::string> Reader::text_string() {
    auto h = head();
    if (!h) {
        return unexpected(std::move(h).error());
    }
    if (h->major != Major::text_string) {
        return cbor_failure("a text string was expected");
    }
    auto text = take(h->argument);
    if (text && !valid_utf8(*text)) {
        return cbor_failure("a text string is not valid UTF-8");
    }
    return text;
}

Expected<std::uint64_t, std::string> Reader::map_count() {
    auto h = head();
    if (!h) {
        return unexpected(std::move(h).error());
    }
    if (h->major != Major::map) {
        return cbor_failure("a map was expected");
    }
    return h->argument;
}

Expected<std::uint64_t, std::string> Reader::array_count() {
    auto h = head();
    if (!h) {
        return unexpected(std::move(h).error());
    }
    if (h->major != Major::array) {
        return cbor_failure("an array was expected");
    }
    return h->argument;
}

Expected<void, std::string> Reader::skip(int depth) {
    const std::size_t start = offset_;
    auto h = head();
    if (!h) {
        return unexpected(std::move(h).error());
    }
    switch (h->major) {
        case Major::byte_string: {
            auto skipped = take(h->argument);
            if (!skipped) {
                return unexpected(std::move(skipped).error());
            }
            return {};
        }
        case Major::text_string: {
            offset_ = start;
            auto text = text_string();
            if (!text) {
                return unexpected(std::move(text).error());
            }
            return {};
        }
        case Major::array:
        case Major::map: {
            if (depth <= 0) {
                return cbor_failure("nested too deeply");
            }
            // The count was checked against the remaining bytes, so this loop is bounded by the
            // input's size; each element's own items at most `depth - 1` levels further.
            MapKeyOrder keys;
            for (std::uint64_t i = 0; i < h->argument; ++i) {
                const std::size_t key_start = offset_;
                auto element = skip(depth - 1);
                if (!element) {
                    return element;
                }
                if (h->major == Major::map) {
                    auto ordered = keys.next(span_from(key_start));
                    if (!ordered) {
                        return ordered;
                    }
                    auto value = skip(depth - 1);
                    if (!value) {
                        return value;
                    }
                }
            }
            return {};
        }
        default: return {};  // integers and simple values: the head was all of it
    }
}

Expected<void, std::string> MapKeyOrder::next(std::string_view encoded_key) {
    if (!first_) {
        // The initial byte holds the major type in its top bits, so comparing it first sorts by
        // major type; within one major type a shorter encoding sorts first, then the bytes.
        const auto major_of = [](std::string_view key) {
            return static_cast<std::uint8_t>(key.front()) >> 5;
        };
        const auto rank = [&](std::string_view key) {
            return std::make_tuple(major_of(key), key.size());
        };
        if (encoded_key == previous_) {
            return cbor_failure("a map key appears twice");
        }
        const auto previous_rank = rank(previous_);
        const auto key_rank = rank(encoded_key);
        if (key_rank < previous_rank || (key_rank == previous_rank && encoded_key < previous_)) {
            return cbor_failure("map keys are not in canonical order");
        }
    }
    previous_ = encoded_key;
    first_ = false;
    return {};
}

bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<std::uint8_t>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length = 0;
        std::uint32_t code_point = 0;
        std::uint32_t smallest = 0;
        if ((lead & 0xe0) == 0xc0) {
            length = 2;
            code_point = lead & 0x1fU;
            smallest = 0x80;
        } else if ((lead & 0xf0) == 0xe0) {
            length = 3;
            code_point = lead & 0x0fU;
            smallest = 0x800;
        } else if ((lead & 0xf8) == 0xf0) {
            length = 4;
            code_point = lead & 0x07U;
            smallest = 0x10000;
        } else {
            return false;
        }
        if (length > text.size() - i) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto continuation = static_cast<std::uint8_t>(text[i + k]);
            if ((continuation & 0xc0) != 0x80) {
                return false;
            }
            code_point = (code_point << 6) | (continuation & 0x3fU);
        }
        if (code_point < smallest || code_point > 0x10ffff ||
            (code_point >= 0xd800 && code_point <= 0xdfff)) {
            return false;
        }
        i += length;
    }
    return true;
}

}  // namespace dkim::jit::webauthn::cbor

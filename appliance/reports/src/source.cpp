#include "dkim/reports/source.hpp"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

namespace dkim::reports {

// The decompressors' machinery: named (not anonymous) because ZipReader::State holds it.
namespace stream_detail {

constexpr std::size_t kChunk = 64 * 1024;
constexpr std::size_t kRatioFloor = std::size_t{1} << 20;  // ratios are checked past 1 MiB

std::string mib(std::size_t bytes) {
    return std::to_string(bytes >> 20) + " MiB";
}

// DecompressionBudget's count for this thread (no cap outside a budget's scope).
struct Budget {
    std::size_t cap = static_cast<std::size_t>(-1);
    std::size_t used = 0;
};
thread_local Budget budget;

// n more bytes decompressed: false once the budget is spent.
bool charge(std::size_t n) {
    if (n > budget.cap - std::min(budget.used, budget.cap)) {
        budget.used = budget.cap;
        return false;
    }
    budget.used += n;
    return true;
}

// Bytes in hand from a ByteSource, for the decompressors: zlib reads ahead of a member's end,
// and what it did not use belongs to whatever follows.
class InputBuffer {
  public:
    explicit InputBuffer(ByteSource& source) : source_(source), data_(kChunk) {}

    std::size_t available() const { return end_ - pos_; }
    const unsigned char* data() const {
        return reinterpret_cast<const unsigned char*>(data_.data()) + pos_;
    }
    void consume(std::size_t n) {
        pos_ += n;
        consumed_ += n;
    }
    std::uint64_t consumed() const { return consumed_; }

    // More bytes when none are in hand: false at the end of the source.
    Expected<bool, std::string> refill() {
        if (available() > 0) {
            return true;
        }
        auto n = source_.read(data_.data(), data_.size());
        if (!n) {
            return unexpected(std::move(n).error());
        }
        pos_ = 0;
        end_ = *n;
        return *n > 0;
    }

    // Exactly `n` bytes into `out` (n <= the buffer), or an error naming `what`.
    Expected<void, std::string> read_exact(char* out, std::size_t n, std::string_view what) {
        std::size_t got = 0;
        while (got < n) {
            auto more = refill();
            if (!more) {
                return unexpected(std::move(more).error());
            }
            if (!*more) {
                return unexpected("truncated " + std::string(what));
            }
            const std::size_t take = std::min(n - got, available());
            std::memcpy(out + got, data(), take);
            consume(take);
            got += take;
        }
        return {};
    }

    Expected<void, std::string> skip(std::size_t n, std::string_view what) {
        std::array<char, 4096> scratch{};
        while (n > 0) {
            const std::size_t step = std::min(n, scratch.size());
            auto r = read_exact(scratch.data(), step, what);
            if (!r) {
                return r;
            }
            n -= step;
        }
        return {};
    }

  private:
    ByteSource& source_;
    std::vector<char> data_;
    std::size_t pos_ = 0;
    std::size_t end_ = 0;
    std::uint64_t consumed_ = 0;
};

// One deflate stream (gzip-wrapped or raw) read from an InputBuffer up to its end, with the caps.
class Inflater {
  public:
    Inflater(InputBuffer& in, int window_bits, const Limits& limits, std::string what)
        : in_(in), limits_(limits), what_(std::move(what)) {
        ok_ = inflateInit2(&z_, window_bits) == Z_OK;
    }
    ~Inflater() {
        if (ok_) {
            inflateEnd(&z_);
        }
    }
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    bool finished() const { return done_; }
    std::uint64_t produced() const { return produced_; }
    std::uint32_t crc() const { return crc_; }

    Expected<std::size_t, std::string> read(char* out, std::size_t size) {
        if (!ok_) {
            return unexpected(what_ + ": zlib could not start");
        }
        if (done_ || size == 0) {
            return std::size_t{0};
        }
        z_.next_out = reinterpret_cast<Bytef*>(out);
        z_.avail_out = static_cast<uInt>(std::min<std::size_t>(size, kChunk));
        while (z_.avail_out > 0 && !done_) {
            auto more = in_.refill();
            if (!more) {
                return unexpected(std::move(more).error());
            }
            if (!*more) {
                return unexpected(what_ + ": truncated (the compressed data ends early)");
            }
            const std::size_t offered = in_.available();
            z_.next_in = const_cast<Bytef*>(in_.data());
            z_.avail_in = static_cast<uInt>(std::min<std::size_t>(offered, kChunk));
            const uInt before = z_.avail_in;
            const int rc = inflate(&z_, Z_NO_FLUSH);
            in_.consume(before - z_.avail_in);
            if (rc == Z_STREAM_END) {
                done_ = true;
            } else if (rc != Z_OK) {  // Z_BUF_ERROR too: input and room, yet no progress
                return unexpected(what_ + ": corrupt compressed data" +
                                  (z_.msg != nullptr ? std::string(" (") + z_.msg + ")" : ""));
            }
        }
        const std::size_t n = std::min<std::size_t>(size, kChunk) - z_.avail_out;
        produced_ += n;
        crc_ = static_cast<std::uint32_t>(
            crc32(crc_, reinterpret_cast<const Bytef*>(out), static_cast<uInt>(n)));
        if (produced_ > limits_.max_decompressed) {
            return unexpected(what_ + ": more than " + mib(limits_.max_decompressed) +
                              " once decompressed");
        }
        if (produced_ > kRatioFloor &&
            produced_ / std::max<std::uint64_t>(consumed(), 1) > limits_.max_ratio) {
            return unexpected(what_ + ": decompresses more than " +
                              std::to_string(limits_.max_ratio) +
                              " times its size (a decompression bomb?)");
        }
        if (!charge(n)) {
            return unexpected(what_ + ": more than " + mib(budget.cap) +
                              " decompressed from one input (all its compressed parts together)");
        }
        return n;
    }

  private:
    std::uint64_t consumed() const { return z_.total_in; }

    InputBuffer& in_;
    const Limits& limits_;
    std::string what_;
    z_stream z_{};
    bool ok_ = false;
    bool done_ = false;
    std::uint64_t produced_ = 0;
    std::uint32_t crc_ = 0;
};

class GzipSource final : public ByteSource {
  public:
    GzipSource(ByteSource& compressed, const Limits& limits)
        : in_(compressed), inflater_(in_, 16 + MAX_WBITS, limits, "gzip") {}
    Expected<std::size_t, std::string> read(char* out, std::size_t size) override {
        return inflater_.read(out, size);
    }

  private:
    InputBuffer in_;
    Inflater inflater_;
};

std::uint16_t le16(const unsigned char* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t le32(const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

constexpr std::uint32_t kLocalHeader = 0x04034b50;
constexpr std::uint32_t kCentralHeader = 0x02014b50;
constexpr std::uint32_t kEndOfCentral = 0x06054b50;
constexpr std::uint32_t kDataDescriptor = 0x08074b50;
constexpr std::uint16_t kFlagEncrypted = 0x0001;
constexpr std::uint16_t kFlagDescriptor = 0x0008;

}  // namespace stream_detail

using namespace stream_detail;

Expected<void, std::string> read_all(ByteSource& source, std::string& out, std::size_t cap,
                                     std::string_view what) {
    std::array<char, kChunk> chunk{};
    for (;;) {
        auto n = source.read(chunk.data(), chunk.size());
        if (!n) {
            return unexpected(std::move(n).error());
        }
        if (*n == 0) {
            return {};
        }
        if (out.size() + *n > cap) {
            return unexpected(std::string(what) + ": more than " + mib(cap));
        }
        out.append(chunk.data(), *n);
    }
}

Expected<std::size_t, std::string> MemorySource::read(char* out, std::size_t size) {
    const std::size_t n = std::min(size, bytes_.size());
    std::memcpy(out, bytes_.data(), n);
    bytes_.remove_prefix(n);
    return n;
}

Expected<std::size_t, std::string> FileSource::read(char* out, std::size_t size) {
    for (;;) {
        const ssize_t n = ::read(fd_, out, size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return unexpected(std::string("read failed: ") + std::strerror(errno));
        }
        total_ += static_cast<std::size_t>(n);
        if (total_ > cap_) {
            return unexpected("larger than " + mib(cap_));
        }
        return static_cast<std::size_t>(n);
    }
}

Expected<std::size_t, std::string> PrefixedSource::read(char* out, std::size_t size) {
    if (used_ < prefix_.size()) {
        const std::size_t n = std::min(size, prefix_.size() - used_);
        std::memcpy(out, prefix_.data() + used_, n);
        used_ += n;
        return n;
    }
    return rest_.read(out, size);
}

DecompressionBudget::DecompressionBudget(std::size_t cap)
    : saved_cap_(budget.cap), saved_used_(budget.used) {
    budget = {cap, 0};
}

DecompressionBudget::~DecompressionBudget() {
    budget = {saved_cap_, saved_used_};
}

std::unique_ptr<ByteSource> gunzip(ByteSource& compressed, const Limits& limits) {
    return std::make_unique<GzipSource>(compressed, limits);
}

// --- zip -----------------------------------------------------------------------------------

namespace stream_detail {
class ZipMemberSource;
}  // namespace stream_detail

struct ZipReader::State {
    State(ByteSource& archive, const Limits& l) : in(archive), limits(l) {}

    InputBuffer in;
    const Limits& limits;
    std::size_t members = 0;
    bool ended = false;
    std::string name;
    std::unique_ptr<stream_detail::ZipMemberSource> member;
};

namespace stream_detail {

// A member's bytes: inflated (method 8) or copied (method 0, size known from its header).
class ZipMemberSource final : public ByteSource {
  public:
    ZipMemberSource(InputBuffer& in, const Limits& limits, std::uint16_t method,
                    std::uint16_t flags, std::uint32_t crc, std::uint32_t stored_size,
                    std::string what)
        : in_(in),
          limits_(limits),
          method_(method),
          flags_(flags),
          crc_(crc),
          remaining_(stored_size),
          what_(std::move(what)) {
        if (method_ == 8) {
            inflater_ = std::make_unique<Inflater>(in_, -MAX_WBITS, limits_, what_);
        }
    }

    // A failed member stays failed: its stream cannot be resynchronised.
    Expected<std::size_t, std::string> read(char* out, std::size_t size) override {
        if (failure_) {
            return unexpected(*failure_);
        }
        auto n = read_more(out, size);
        if (!n) {
            failure_ = n.error();
        }
        return n;
    }

    // Reads what is left of the member (an abandoned member is skipped, still with the caps).
    // true: the archive goes on; false: the member failed and its reader was already told.
    Expected<bool, std::string> drain() {
        if (failure_) {
            return false;
        }
        std::array<char, 16384> scratch{};
        for (;;) {
            auto n = read_more(scratch.data(), scratch.size());
            if (!n) {
                failure_ = n.error();
                return unexpected(n.error());
            }
            if (*n == 0) {
                return true;
            }
        }
    }

  private:
    Expected<std::size_t, std::string> read_more(char* out, std::size_t size) {
        if (finished_) {
            return std::size_t{0};
        }
        std::size_t n = 0;
        if (inflater_) {
            auto r = inflater_->read(out, size);
            if (!r) {
                return r;
            }
            n = *r;
            if (inflater_->finished() && n == 0) {
                return finish(inflater_->crc());
            }
            return n;
        }
        if (remaining_ == 0) {
            return finish(stored_crc_);
        }
        auto more = in_.refill();
        if (!more) {
            return unexpected(std::move(more).error());
        }
        if (!*more) {
            return unexpected(what_ + ": truncated");
        }
        n = std::min({size, in_.available(), static_cast<std::size_t>(remaining_)});
        std::memcpy(out, in_.data(), n);
        in_.consume(n);
        remaining_ -= static_cast<std::uint32_t>(n);
        stored_total_ += n;
        if (stored_total_ > limits_.max_decompressed) {
            return unexpected(what_ + ": more than " + mib(limits_.max_decompressed));
        }
        stored_crc_ = static_cast<std::uint32_t>(
            crc32(stored_crc_, reinterpret_cast<const Bytef*>(out), static_cast<uInt>(n)));
        return n;
    }

    // The data descriptor (when flagged) and the CRC check, once the data has ended.
    Expected<std::size_t, std::string> finish(std::uint32_t actual) {
        finished_ = true;
        std::uint32_t expected = crc_;
        if ((flags_ & kFlagDescriptor) != 0) {
            std::array<unsigned char, 16> d{};
            auto r = in_.read_exact(reinterpret_cast<char*>(d.data()), 12, "zip data descriptor");
            if (!r) {
                return unexpected(what_ + ": " + r.error());
            }
            std::size_t at = 0;
            if (le32(d.data()) == kDataDescriptor) {  // the signature is optional
                auto r2 = in_.read_exact(reinterpret_cast<char*>(d.data()) + 12, 4,
                                         "zip data descriptor");
                if (!r2) {
                    return unexpected(what_ + ": " + r2.error());
                }
                at = 4;
            }
            expected = le32(d.data() + at);
        }
        if (expected != actual) {
            return unexpected(what_ + ": CRC-32 mismatch (corrupt archive)");
        }
        return std::size_t{0};
    }

    InputBuffer& in_;
    const Limits& limits_;
    std::uint16_t method_;
    std::uint16_t flags_;
    std::uint32_t crc_;
    std::uint32_t remaining_;
    std::string what_;
    std::unique_ptr<Inflater> inflater_;
    std::uint32_t stored_crc_ = 0;
    std::size_t stored_total_ = 0;
    bool finished_ = false;
    std::optional<std::string> failure_;
};

}  // namespace stream_detail

ZipReader::ZipReader(ByteSource& archive, const Limits& limits)
    : state_(std::make_unique<State>(archive, limits)) {}

ZipReader::~ZipReader() = default;

const std::string& ZipReader::name() const {
    return state_->name;
}

ByteSource& ZipReader::member() {
    return *state_->member;
}

Expected<bool, std::string> ZipReader::next() {
    State& s = *state_;
    if (s.ended) {
        return false;
    }
    if (s.member) {
        auto drained = s.member->drain();
        s.member.reset();
        if (!drained) {
            s.ended = true;
            return unexpected(std::move(drained).error());
        }
        if (!*drained) {
            s.ended = true;  // a broken member ends the archive; its error was already given
            return false;
        }
    }
    std::array<unsigned char, 30> h{};
    auto r = s.in.read_exact(reinterpret_cast<char*>(h.data()), 4, "zip archive");
    if (!r) {
        return unexpected(std::move(r).error());
    }
    const std::uint32_t signature = le32(h.data());
    if (signature == kCentralHeader || signature == kEndOfCentral) {
        s.ended = true;  // the central directory repeats what was read; nothing more to stream
        return false;
    }
    if (signature != kLocalHeader) {
        return unexpected(std::string("zip archive: no local file header where one belongs"));
    }
    r = s.in.read_exact(reinterpret_cast<char*>(h.data()) + 4, 26, "zip local file header");
    if (!r) {
        return unexpected(std::move(r).error());
    }
    if (++s.members > s.limits.max_zip_members) {
        return unexpected("zip archive: more than " + std::to_string(s.limits.max_zip_members) +
                          " members");
    }
    const std::uint16_t flags = le16(h.data() + 6);
    const std::uint16_t method = le16(h.data() + 8);
    const std::uint32_t crc = le32(h.data() + 14);
    const std::uint32_t compressed = le32(h.data() + 18);
    const std::uint16_t name_length = le16(h.data() + 26);
    const std::uint16_t extra_length = le16(h.data() + 28);
    std::string name(name_length, '\0');
    r = s.in.read_exact(name.data(), name.size(), "zip member name");
    if (!r) {
        return unexpected(std::move(r).error());
    }
    r = s.in.skip(extra_length, "zip extra field");
    if (!r) {
        return unexpected(std::move(r).error());
    }
    const std::string what = "zip member '" + name + "'";
    if ((flags & kFlagEncrypted) != 0) {
        return unexpected(what + ": encrypted members are not read");
    }
    if (compressed == 0xffffffffU) {
        return unexpected(what + ": zip64 members are not read");
    }
    if (method != 0 && method != 8) {
        return unexpected(what + ": compression method " + std::to_string(method) +
                          " is not read (only stored and deflate)");
    }
    if (method == 0 && (flags & kFlagDescriptor) != 0) {
        return unexpected(what + ": stored member of unknown size");
    }
    s.name = std::move(name);
    s.member =
        std::make_unique<ZipMemberSource>(s.in, s.limits, method, flags, crc, compressed, what);
    return true;
}

}  // namespace dkim::reports

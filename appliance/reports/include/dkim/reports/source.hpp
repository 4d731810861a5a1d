#pragma once
// Bytes read in pieces, so that a report of any size costs the same memory: from memory, from a
// file (capped), with a prefix put back in front (what sniffing read), out of gzip and out of
// the members of a zip archive. Every decompressor stops at Limits' caps with an error naming
// the cap; none of them trusts a size the input declares.
//
// STANDARDS: RFC 1952 (gzip: one member is read; bytes after it are ignored, as some reporters
// append them; a second member is such bytes too: reporters send one report per file), PKWARE
// APPNOTE 6.3 §4.3 (zip local file headers, data descriptors; stored and deflated members only, no
// encryption, no zip64).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dkim/expected.hpp"
#include "dkim/reports/model.hpp"

namespace dkim::reports {

class ByteSource {
  public:
    virtual ~ByteSource() = default;
    // Up to `size` bytes into `out`: how many (0 only at the end), or why not.
    virtual Expected<std::size_t, std::string> read(char* out, std::size_t size) = 0;
};

// The whole rest of `source` appended to `out`, or an error once more than `cap` bytes came.
Expected<void, std::string> read_all(ByteSource& source, std::string& out, std::size_t cap,
                                     std::string_view what);

class MemorySource final : public ByteSource {
  public:
    explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
    Expected<std::size_t, std::string> read(char* out, std::size_t size) override;

  private:
    std::string_view bytes_;
};

// A file by descriptor (not owned), refused once more than `cap` bytes were read.
class FileSource final : public ByteSource {
  public:
    FileSource(int fd, std::size_t cap) : fd_(fd), cap_(cap) {}
    Expected<std::size_t, std::string> read(char* out, std::size_t size) override;

  private:
    int fd_;
    std::size_t cap_;
    std::size_t total_ = 0;
};

// `prefix` (owned), then the rest of `rest`.
class PrefixedSource final : public ByteSource {
  public:
    PrefixedSource(std::string prefix, ByteSource& rest)
        : prefix_(std::move(prefix)), rest_(rest) {}
    Expected<std::size_t, std::string> read(char* out, std::size_t size) override;

  private:
    std::string prefix_;
    std::size_t used_ = 0;
    ByteSource& rest_;
};

// A cap on the bytes all decompressors on this thread produce together while it lives (each
// gzip stream and zip member has its own caps too; this one holds nested and repeated ones: a
// mail of 64 attachments, each a zip of 8 members, each under the ratio, or members abandoned
// and skipped by inflating them). Past it, each decompressor refuses with the cap named. Scopes
// nest: the inner one counts afresh, and the outer one's count is back when it ends.
class DecompressionBudget {
  public:
    explicit DecompressionBudget(std::size_t cap);
    ~DecompressionBudget();
    DecompressionBudget(const DecompressionBudget&) = delete;
    DecompressionBudget& operator=(const DecompressionBudget&) = delete;

  private:
    std::size_t saved_cap_;
    std::size_t saved_used_;
};

// The first gzip member's content. Errors: not gzip, truncated, corrupt, over
// limits.max_decompressed, or a ratio over limits.max_ratio once past 1 MiB.
std::unique_ptr<ByteSource> gunzip(ByteSource& compressed, const Limits& limits);

// The members of a zip archive, one after the other, read from its local file headers (the
// central directory at the end is not needed to stream it). Each member must be read to its end
// (or abandoned) before next() is called again.
class ZipReader {
  public:
    ZipReader(ByteSource& archive, const Limits& limits);
    ~ZipReader();
    ZipReader(const ZipReader&) = delete;
    ZipReader& operator=(const ZipReader&) = delete;

    // true: member() is the next member; false: no more members.
    Expected<bool, std::string> next();
    const std::string& name() const;
    ByteSource& member();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace dkim::reports

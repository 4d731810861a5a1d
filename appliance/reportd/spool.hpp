#pragma once
// A submission's body kept out of memory: spooled, as it comes off the socket, to an unlinked
// file beside the store (O_TMPFILE; gone when closed, whatever happens to the daemon), and read
// back in pieces when it is stored. A 64 MiB report costs dkim-reportd a 1 MiB buffer, not
// 64 MiB, so its memory does not grow with the report (README, "Scale and speed").

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "dkim/expected.hpp"
#include "dkim/reports/source.hpp"

namespace dkim::reportd {

class SpooledBody {
  public:
    // An empty spool file in `folder` (the store's own, so it is on the store's file system and
    // no one else's to read).
    static Expected<SpooledBody, std::string> create(const std::filesystem::path& folder);
    SpooledBody(SpooledBody&& other) noexcept;
    SpooledBody& operator=(SpooledBody&& other) noexcept;
    SpooledBody(const SpooledBody&) = delete;
    SpooledBody& operator=(const SpooledBody&) = delete;
    ~SpooledBody();

    Expected<void, std::string> append(const char* bytes, std::size_t size);
    std::uint64_t size() const { return size_; }
    // Bytes [offset, offset + size) of the body as a source (pread: sources do not share a
    // file position). The SpooledBody outlives it.
    std::unique_ptr<reports::ByteSource> range(std::uint64_t offset, std::uint64_t size) const;

  private:
    explicit SpooledBody(int fd) : fd_(fd) {}
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

}  // namespace dkim::reportd

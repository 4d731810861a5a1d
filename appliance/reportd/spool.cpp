#include "spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dkim::reportd {

namespace spool_detail {

class RangeSource final : public reports::ByteSource {
  public:
    RangeSource(int fd, std::uint64_t offset, std::uint64_t size)
        : fd_(fd), at_(offset), end_(offset + size) {}

    Expected<std::size_t, std::string> read(char* out, std::size_t size) override {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(size, end_ - at_));
        if (want == 0) {
            return std::size_t{0};
        }
        for (;;) {
            const ssize_t n = ::pread(fd_, out, want, static_cast<off_t>(at_));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return unexpected(std::string("cannot read the spooled submission: ") +
                                  (n == 0 ? "it is shorter than it was" : std::strerror(errno)));
            }
            at_ += static_cast<std::uint64_t>(n);
            return static_cast<std::size_t>(n);
        }
    }

  private:
    int fd_;
    std::uint64_t at_;
    std::uint64_t end_;
};

}  // namespace spool_detail

Expected<SpooledBody, std::string> SpooledBody::create(const std::filesystem::path& folder) {
    const std::string dir = folder.empty() ? std::string(".") : folder.string();
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
        // A file system without O_TMPFILE: a named file, unlinked at once.
        std::string name = dir + "/.spool-XXXXXX";
        fd = ::mkostemp(name.data(), O_CLOEXEC);
        if (fd >= 0) {
            ::unlink(name.c_str());
        }
    }
    if (fd < 0) {
        return unexpected("cannot spool a submission in " + dir + ": " + std::strerror(errno));
    }
    return SpooledBody(fd);
}

SpooledBody::SpooledBody(SpooledBody&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), size_(std::exchange(other.size_, 0)) {}

SpooledBody& SpooledBody::operator=(SpooledBody&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = std::exchange(other.fd_, -1);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

SpooledBody::~SpooledBody() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

Expected<void, std::string> SpooledBody::append(const char* bytes, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd_, bytes + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return unexpected(std::string("cannot spool the submission: ") +
                              (n == 0 ? "no space" : std::strerror(errno)));
        }
        done += static_cast<std::size_t>(n);
    }
    size_ += size;
    return {};
}

std::unique_ptr<reports::ByteSource> SpooledBody::range(std::uint64_t offset,
                                                        std::uint64_t size) const {
    return std::make_unique<spool_detail::RangeSource>(fd_, offset, size);
}

}  // namespace dkim::reportd

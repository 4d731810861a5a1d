#include "dkim/hsm/secret.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <utility>

namespace dkim::hsm {

namespace {

std::size_t page_size() noexcept {
    static const std::size_t size = [] {
        const long page = ::sysconf(_SC_PAGESIZE);
        return page > 0 ? static_cast<std::size_t>(page) : std::size_t{4096};
    }();
    return size;
}

// mlock(2) and munlock(2) as system calls: the sanitizers' runtimes intercept the libc functions
// and make them do nothing (ASan, "mlock is unsupported"), which would leave a sanitized build's
// secrets unlocked while locked() said otherwise.
bool lock_pages(void* pages, std::size_t length) noexcept {
    return ::syscall(SYS_mlock, pages, length) == 0;
}

void unlock_pages(void* pages, std::size_t length) noexcept {
    (void)::syscall(SYS_munlock, pages, length);
}

}  // namespace

Secret::Secret(std::size_t capacity) {
    const std::size_t page = page_size();
    const std::size_t length = (capacity + 1 + page - 1) / page * page;
    void* pages =
        ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED) {
        throw std::bad_alloc();
    }
    data_ = static_cast<unsigned char*>(pages);
    mapped_ = length;
    // Best effort, both: a secret that cannot be locked (RLIMIT_MEMLOCK) or kept out of core
    // dumps is still a secret, and one the process needs.
    (void)::madvise(pages, length, MADV_DONTDUMP);
    locked_ = lock_pages(pages, length);
}

Secret::Secret(std::span<const unsigned char> bytes) : Secret(bytes.size()) {
    if (!bytes.empty()) {
        std::memcpy(data_, bytes.data(), bytes.size());
    }
    size_ = bytes.size();
}

Secret Secret::from_string(std::string_view text) {
    return Secret(std::span(reinterpret_cast<const unsigned char*>(text.data()),  // NOLINT
                            text.size()));
}

Secret::Secret(Secret&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
    if (this != &other) {
        wipe();
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        mapped_ = std::exchange(other.mapped_, 0);
        locked_ = std::exchange(other.locked_, false);
    }
    return *this;
}

Secret::~Secret() {
    wipe();
}

void Secret::wipe() noexcept {
    if (data_ != nullptr) {
        // The whole mapping: from_file reads up to two bytes beyond what it keeps.
        OPENSSL_cleanse(data_, mapped_);
        if (locked_) {
            unlock_pages(data_, mapped_);
        }
        (void)::munmap(data_, mapped_);
    }
    data_ = nullptr;
    size_ = 0;
    mapped_ = 0;
    locked_ = false;
}

Secret Secret::duplicate() const {
    return Secret(bytes());
}

bool Secret::equals(const Secret& other) const noexcept {
    if (size_ != other.size_) {
        return false;
    }
    return size_ == 0 || CRYPTO_memcmp(data_, other.data_, size_) == 0;
}

Result<Secret> Secret::from_file(const std::filesystem::path& path) {
    const auto fail = [&](ErrorCode code, const std::string& why) {
        return dkim::unexpected(Error{code, "PIN file " + path.string() + ": " + why, "", 0});
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return fail(ErrorCode::io, std::generic_category().message(errno));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return fail(ErrorCode::io, "not a regular file");
    }
    if ((st.st_mode & S_IRWXO) != 0) {
        ::close(fd);
        char mode[8];
        (void)std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777U);
        return fail(ErrorCode::invalid_argument, std::string("other users may read it (mode ") +
                                                     mode + "); run chmod o-rwx on it");
    }
    // Read straight into the secret's own (locked) pages: no copy elsewhere to wipe.
    constexpr std::size_t capacity = max_size + 2;
    Secret secret(capacity);
    std::size_t size = 0;
    while (size < capacity) {
        const ssize_t got = ::read(fd, secret.data_ + size, capacity - size);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            const int saved = errno;
            ::close(fd);
            return fail(ErrorCode::io, std::generic_category().message(saved));
        }
        if (got == 0) {
            break;
        }
        size += static_cast<std::size_t>(got);
    }
    ::close(fd);
    if (size > 0 && secret.data_[size - 1] == '\n') {
        --size;
        if (size > 0 && secret.data_[size - 1] == '\r') {
            --size;
        }
    }
    if (size > max_size) {
        return fail(ErrorCode::invalid_argument,
                    "longer than " + std::to_string(max_size) + " bytes");
    }
    if (size == 0) {
        return fail(ErrorCode::invalid_argument, "empty");
    }
    // What was read beyond `size` (the line end) is zeroed; the bytes stay NUL-terminated.
    OPENSSL_cleanse(secret.data_ + size, capacity - size);
    secret.size_ = size;
    return secret;
}

}  // namespace dkim::hsm

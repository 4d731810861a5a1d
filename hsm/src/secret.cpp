#include "dkim/hsm/secret.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace dkim::hsm {

Secret::Secret(std::span<const unsigned char> bytes)
    : data_(std::make_unique<unsigned char[]>(bytes.size() + 1)), size_(bytes.size()) {
    std::memcpy(data_.get(), bytes.data(), bytes.size());
}

Secret Secret::from_string(std::string_view text) {
    return Secret(std::span(reinterpret_cast<const unsigned char*>(text.data()),  // NOLINT
                            text.size()));
}

Secret::Secret(Secret&& other) noexcept
    : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
    if (this != &other) {
        wipe();
        data_ = std::move(other.data_);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

Secret::~Secret() {
    wipe();
}

void Secret::wipe() noexcept {
    if (data_) {
        OPENSSL_cleanse(data_.get(), size_);
    }
    data_.reset();
    size_ = 0;
}

Secret Secret::duplicate() const {
    return Secret(bytes());
}

bool Secret::equals(const Secret& other) const noexcept {
    if (size_ != other.size_) {
        return false;
    }
    return size_ == 0 || CRYPTO_memcmp(data_.get(), other.data_.get(), size_) == 0;
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
    std::array<unsigned char, max_size + 2> buffer{};
    std::size_t size = 0;
    while (size < buffer.size()) {
        const ssize_t got = ::read(fd, buffer.data() + size, buffer.size() - size);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            const int saved = errno;
            ::close(fd);
            OPENSSL_cleanse(buffer.data(), buffer.size());
            return fail(ErrorCode::io, std::generic_category().message(saved));
        }
        if (got == 0) {
            break;
        }
        size += static_cast<std::size_t>(got);
    }
    ::close(fd);
    if (size > 0 && buffer[size - 1] == '\n') {
        --size;
        if (size > 0 && buffer[size - 1] == '\r') {
            --size;
        }
    }
    if (size > max_size) {
        OPENSSL_cleanse(buffer.data(), buffer.size());
        return fail(ErrorCode::invalid_argument,
                    "longer than " + std::to_string(max_size) + " bytes");
    }
    if (size == 0) {
        return fail(ErrorCode::invalid_argument, "empty");
    }
    Secret secret(std::span(buffer.data(), size));
    OPENSSL_cleanse(buffer.data(), buffer.size());
    return secret;
}

}  // namespace dkim::hsm

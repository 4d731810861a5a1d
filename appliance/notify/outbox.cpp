#include "outbox.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "dkim/base/hex.hpp"

namespace dkim::notify {

namespace {

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::error_code(errno, std::generic_category()).message();
}

bool all_of_class(std::string_view text, bool hex) {
    return std::all_of(text.begin(), text.end(), [hex](char c) {
        return (c >= '0' && c <= '9') || (hex && c >= 'a' && c <= 'f');
    });
}

std::string zero_padded(std::uint64_t value, std::size_t width) {
    std::string digits = std::to_string(value);
    return std::string(width > digits.size() ? width - digits.size() : 0, '0') + digits;
}

// Writes all of `data`, retrying on EINTR and short writes.
bool write_fully(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

}  // namespace

bool is_outbox_name(std::string_view name) {
    // 20 + 1 + 10 + 1 + 16 + 5
    if (name.size() != 53 || name.substr(48) != ".json" || name[20] != '-' || name[31] != '-') {
        return false;
    }
    return all_of_class(name.substr(0, 20), false) && all_of_class(name.substr(21, 10), false) &&
           all_of_class(name.substr(32, 16), true);
}

std::int64_t outbox_name_ms(std::string_view name) {
    std::int64_t ms = 0;
    for (const char c : name.substr(0, 20)) {
        if (ms > (INT64_MAX - 9) / 10) {
            return INT64_MAX;
        }
        ms = ms * 10 + (c - '0');
    }
    return ms;
}

OutboxWriter::OutboxWriter(int folder_fd, std::filesystem::path folder, std::size_t max_files)
    : folder_fd_(folder_fd), folder_(std::move(folder)), max_files_(max_files) {}

OutboxWriter::~OutboxWriter() {
    ::close(folder_fd_);
}

Expected<std::unique_ptr<OutboxWriter>, std::string> OutboxWriter::open(
    const std::filesystem::path& folder, std::size_t max_files) {
    const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return unexpected(errno_text(("the outbox " + folder.string()).c_str()));
    }
    return std::unique_ptr<OutboxWriter>(new OutboxWriter(fd, folder, max_files));
}

std::size_t OutboxWriter::entries() const {
    std::error_code ec;
    std::size_t n = 0;
    // Stops at the limit: the notifier can write to the folder, and a folder it filled with
    // millions of entries must not make every event cost a scan of all of them.
    for (std::filesystem::directory_iterator it(folder_, ec), end;
         !ec && it != end && n < max_files_; it.increment(ec)) {
        ++n;
    }
    return ec ? max_files_ : n;
}

Expected<std::string, std::string> OutboxWriter::put(std::string_view body, std::int64_t unix_ms) {
    if (body.size() > kOutboxBodyLimit) {
        return unexpected(std::string("the event is over the outbox's size limit"));
    }
    auto counter = counter_.lock();
    if (entries() >= max_files_) {
        return unexpected("the outbox holds " + std::to_string(max_files_) +
                          " files already (is dkim-notifyd running?)");
    }
    unsigned char random[8];
    if (RAND_bytes(random, sizeof random) != 1) {
        return unexpected(std::string("the random number generator failed"));
    }
    const std::string tail = base::hex_encode(std::span<const std::uint8_t>(random));
    const std::string name =
        zero_padded(static_cast<std::uint64_t>(std::max<std::int64_t>(0, unix_ms)), 20) + "-" +
        zero_padded((*counter)++, 10) + "-" + tail + ".json";
    const std::string temporary = ".tmp-" + name;
    Fd file(::openat(folder_fd_, temporary.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (file.fd < 0) {
        return unexpected(errno_text("cannot create an outbox file"));
    }
    // 0640 whatever the umask: the folder's group (dkim-notify) reads it.
    if (!write_fully(file.fd, body) || ::fchmod(file.fd, 0640) != 0 || ::fsync(file.fd) != 0) {
        const std::string why = errno_text("cannot write an outbox file");
        ::unlinkat(folder_fd_, temporary.c_str(), 0);
        return unexpected(why);
    }
    if (::renameat(folder_fd_, temporary.c_str(), folder_fd_, name.c_str()) != 0) {
        const std::string why = errno_text("cannot rename an outbox file");
        ::unlinkat(folder_fd_, temporary.c_str(), 0);
        return unexpected(why);
    }
    if (::fsync(folder_fd_) != 0) {
        return unexpected(errno_text("cannot sync the outbox folder"));
    }
    return name;
}

OutboxSender::OutboxSender(std::filesystem::path folder, Post post, Options options)
    : folder_(std::move(folder)), post_(std::move(post)), options_(options) {}

OutboxSender::Round OutboxSender::run_once(std::chrono::system_clock::time_point now) {
    Round round;
    if (now < next_try_) {
        round.retry_in = std::chrono::duration_cast<std::chrono::milliseconds>(next_try_ - now);
        return round;
    }
    const int folder_fd = ::open(folder_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (folder_fd < 0) {
        round.failed = errno_text(("the outbox " + folder_.string()).c_str());
        round.retry_in = options_.max_backoff;
        next_try_ = now + round.retry_in;
        return round;
    }
    Fd folder(folder_fd);
    std::vector<std::string> names;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder_, ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (is_outbox_name(name)) {
            names.push_back(name);
        }
    }
    if (ec) {
        round.failed = "cannot list the outbox: " + ec.message();
        round.retry_in = options_.max_backoff;
        next_try_ = now + round.retry_in;
        return round;
    }
    std::sort(names.begin(), names.end());
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    for (const std::string& name : names) {
        if (now_ms - outbox_name_ms(name) > options_.max_age.count()) {
            ::unlinkat(folder.fd, name.c_str(), 0);
            round.dropped.push_back(name + ": older than max_age, never delivered");
            continue;
        }
        Fd file(::openat(folder.fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
        struct stat st {};
        if (file.fd < 0 || ::fstat(file.fd, &st) != 0 || !S_ISREG(st.st_mode) ||
            static_cast<std::uint64_t>(st.st_size) > kOutboxBodyLimit) {
            ::unlinkat(folder.fd, name.c_str(), 0);
            round.dropped.push_back(name + ": not a regular file of at most 64 KiB");
            continue;
        }
        std::string body(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t got = 0;
        while (got < body.size()) {
            const ssize_t n = ::read(file.fd, body.data() + got, body.size() - got);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            got += static_cast<std::size_t>(n);
        }
        body.resize(got);
        const std::string problem = post_(body);
        if (!problem.empty()) {
            backoff_ = backoff_.count() == 0 ? options_.first_backoff
                                             : std::min(backoff_ * 2, options_.max_backoff);
            next_try_ = now + backoff_;
            round.failed = name + ": " + problem;
            round.retry_in = backoff_;
            return round;
        }
        backoff_ = std::chrono::milliseconds(0);
        if (::unlinkat(folder.fd, name.c_str(), 0) != 0) {
            // Delivered but not deleted: it would be sent again; say so and stop here.
            round.failed = name + ": delivered, but " + errno_text("cannot delete it");
            round.retry_in = options_.max_backoff;
            next_try_ = now + round.retry_in;
            return round;
        }
        round.delivered.push_back(name);
    }
    return round;
}

}  // namespace dkim::notify

#include "dkim/ipc/frame.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cereal/archives/binary.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>

namespace dkim::ipc {
namespace {

// cereal's binary format, read from a buffer with bounds: a size read from the payload may
// not exceed the bytes that are left, so a hostile length cannot allocate more than the
// frame, and bools must be 0 or 1.
class BoundedInputArchive
    : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
  public:
    BoundedInputArchive(const char* data, std::size_t size)
        : InputArchive(this), next_(data), end_(data + size) {}

    void load_binary(void* out, std::size_t size) {
        if (size > remaining()) {
            throw cereal::Exception("payload truncated");
        }
        if (size == 0) {
            return;  // an empty vector of numbers: its data() may be null, which memcpy may not get
        }
        std::memcpy(out, next_, size);
        next_ += size;
    }
    std::size_t remaining() const { return static_cast<std::size_t>(end_ - next_); }

  private:
    const char* next_;
    const char* end_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
    ar.load_binary(std::addressof(t), sizeof(t));
}

inline void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, bool& b) {
    std::uint8_t byte = 0;
    ar.load_binary(&byte, 1);
    if (byte > 1) {
        throw cereal::Exception("invalid boolean");
    }
    b = byte == 1;
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::NameValuePair<T>& t) {
    ar(t.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
    ar(t.size);
    // Every element takes at least one byte of the payload.
    if (t.size > ar.remaining()) {
        throw cereal::Exception("a length exceeds the frame");
    }
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::BinaryData<T>& bd) {
    ar.load_binary(bd.data, static_cast<std::size_t>(bd.size));
}

void put_header(std::string& out, std::size_t size) {
    const std::string header = frame_header(size);
    out.replace(0, kFrameHeaderSize, header);
}

template <class T>
std::string encode_any(const T& value) {
    std::ostringstream stream;
    stream.write("\0\0\0\0\0\0\0\0", kFrameHeaderSize);
    {
        cereal::BinaryOutputArchive archive(stream);
        archive(value);
    }
    std::string out = std::move(stream).str();
    put_header(out, out.size() - kFrameHeaderSize);
    return out;
}

template <class T>
Expected<T, FrameError> decode_any(std::string_view payload) {
    T value;
    try {
        BoundedInputArchive archive(payload.data(), payload.size());
        archive(value);
        if (archive.remaining() != 0) {
            return unexpected(FrameError{FrameError::Kind::malformed, "trailing bytes in frame"});
        }
    } catch (const cereal::Exception& error) {
        return unexpected(FrameError{FrameError::Kind::malformed,
                                     std::string("malformed frame: ") + error.what()});
    } catch (const std::length_error&) {
        return unexpected(FrameError{FrameError::Kind::malformed, "malformed frame: bad length"});
    }
    return value;
}

using Clock = std::chrono::steady_clock;

// Waits until fd is ready for `events` or the deadline passes.
Expected<void, FrameError> wait(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            return unexpected(FrameError{FrameError::Kind::timeout, "timed out"});
        }
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
        if (rc > 0) {
            return {};
        }
        if (rc < 0 && errno != EINTR) {
            return unexpected(FrameError{FrameError::Kind::io, "poll failed"});
        }
    }
}

// Reads exactly `size` bytes. The socket is read first and polled only when it has nothing
// (one recv per frame part in the usual case, no poll). `deadline` bounds the read; with
// `rest`, it bounds only the wait for the first byte, and is moved to that byte's arrival
// plus `rest` for everything after it.
Expected<void, FrameError> read_exact(
    int fd, char* out, std::size_t size, Clock::time_point& deadline,
    std::optional<std::chrono::milliseconds> rest = std::nullopt) {
    std::size_t got = 0;
    while (got < size) {
        const ssize_t n = ::recv(fd, out + got, size - got, MSG_DONTWAIT);
        if (n > 0) {
            if (got == 0 && rest) {
                deadline = Clock::now() + *rest;
            }
            got += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0) {
            return unexpected(
                FrameError{FrameError::Kind::closed,
                           got == 0 && rest ? "connection closed" : "connection closed mid-frame"});
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return unexpected(FrameError{FrameError::Kind::io, "read failed"});
        }
        if (auto ready = wait(fd, POLLIN, deadline); !ready) {
            return ready;
        }
    }
    return {};
}

}  // namespace

std::string encode(const Request& request) {
    return encode_any(request);
}
std::string encode(const Reply& reply) {
    return encode_any(reply);
}
Expected<Request, FrameError> decode_request(std::string_view payload) {
    return decode_any<Request>(payload);
}
Expected<Reply, FrameError> decode_reply(std::string_view payload) {
    return decode_any<Reply>(payload);
}

std::string frame_header(std::size_t size, std::uint16_t version) {
    const auto n = static_cast<std::uint32_t>(size);
    return {static_cast<char>(n >> 24),
            static_cast<char>((n >> 16) & 0xff),
            static_cast<char>((n >> 8) & 0xff),
            static_cast<char>(n & 0xff),
            static_cast<char>(version >> 8),
            static_cast<char>(version & 0xff),
            0,
            0};
}

Expected<FrameReader, FrameError> FrameReader::start(int fd, std::chrono::milliseconds first_byte,
                                                     std::chrono::milliseconds rest,
                                                     std::size_t max_size,
                                                     std::uint16_t expected_version) {
    char header[kFrameHeaderSize];
    auto deadline = Clock::now() + first_byte;  // then: the first byte's arrival + `rest`
    if (auto got = read_exact(fd, header, sizeof header, deadline, rest); !got) {
        return unexpected(got.error());
    }
    const auto byte = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(header[i]));
    };
    const std::uint32_t size = (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
    const auto version = static_cast<std::uint16_t>((byte(4) << 8) | byte(5));
    if (version != expected_version) {
        return unexpected(
            FrameError{FrameError::Kind::version, "protocol version " + std::to_string(version) +
                                                      " is not supported (this side speaks " +
                                                      std::to_string(expected_version) + ")"});
    }
    if (size > max_size) {
        return unexpected(
            FrameError{FrameError::Kind::too_large, "frame of " + std::to_string(size) +
                                                        " bytes exceeds the limit of " +
                                                        std::to_string(max_size)});
    }
    return FrameReader(fd, size, deadline);
}

Expected<void, FrameError> FrameReader::read(char* out, std::size_t n) {
    if (n > left_) {
        return unexpected(FrameError{FrameError::Kind::malformed, "read past the frame's end"});
    }
    if (auto got = read_exact(fd_, out, n, deadline_); !got) {
        return unexpected(got.error());
    }
    left_ -= n;
    return {};
}

Expected<std::string, FrameError> read_frame(int fd, std::chrono::milliseconds first_byte,
                                             std::chrono::milliseconds rest, std::size_t max_size,
                                             std::uint16_t expected_version) {
    auto frame = FrameReader::start(fd, first_byte, rest, max_size, expected_version);
    if (!frame) {
        return unexpected(frame.error());
    }
    std::string payload(frame->size(), '\0');
    if (auto got = frame->read(payload.data(), payload.size()); !got) {
        return unexpected(got.error());
    }
    return payload;
}

Expected<void, FrameError> write_all(int fd, std::string_view bytes,
                                     std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        const ssize_t n =
            ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return unexpected(FrameError{errno == EPIPE || errno == ECONNRESET
                                             ? FrameError::Kind::closed
                                             : FrameError::Kind::io,
                                         "write failed"});
        }
        if (auto ready = wait(fd, POLLOUT, deadline); !ready) {
            return ready;
        }
    }
    return {};
}

}  // namespace dkim::ipc

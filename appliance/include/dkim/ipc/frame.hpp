#pragma once
// Frames on the signerd socket:
//
//   +----------------+-----------+-----------+---------------------------+
//   | length (u32 BE)| version   | reserved  | payload: cereal binary    |
//   | of the payload | (u16 BE)  | (u16, 0)  | archive of Request/Reply  |
//   +----------------+-----------+-----------+---------------------------+
//
// A frame larger than kMaxFrameSize, of another version, or whose payload does not decode
// exactly (trailing bytes included) is refused. Decoding never allocates more than the
// frame's own size: every length inside the payload is checked against the bytes left.
// Reads and writes have deadlines.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dkim/expected.hpp"
#include "dkim/ipc/protocol.hpp"

namespace dkim::ipc {

inline constexpr std::size_t kFrameHeaderSize = 8;
inline constexpr std::size_t kMaxFrameSize = 1U << 20;  // 1 MiB: a header block is far less

struct FrameError {
    enum class Kind : std::uint8_t { closed, timeout, too_large, version, malformed, io };
    Kind kind = Kind::malformed;
    std::string message;
};

std::string encode(const Request& request);  // header + payload
std::string encode(const Reply& reply);
Expected<Request, FrameError> decode_request(std::string_view payload);
Expected<Reply, FrameError> decode_reply(std::string_view payload);

// Reads one frame's payload from a stream socket. `first_byte` bounds the wait for the frame
// to begin (an idle connection), `rest` the time from its first byte to its last. The report
// daemon's channel uses the same frames with its own version (dkim/ipc/report_channel.hpp).
Expected<std::string, FrameError> read_frame(int fd, std::chrono::milliseconds first_byte,
                                             std::chrono::milliseconds rest,
                                             std::size_t max_size = kMaxFrameSize,
                                             std::uint16_t version = kProtocolVersion);
// One frame read in pieces, for payloads too large to hold (a report submission spooled to a
// file as it comes): start() reads and checks the header, read() the payload in parts, with
// read_frame's deadlines.
class FrameReader {
  public:
    static Expected<FrameReader, FrameError> start(int fd, std::chrono::milliseconds first_byte,
                                                   std::chrono::milliseconds rest,
                                                   std::size_t max_size, std::uint16_t version);
    std::size_t size() const { return size_; }  // the payload's
    std::size_t left() const { return left_; }  // not read yet
    // Exactly `n` (at most left()) bytes of the payload into `out`.
    Expected<void, FrameError> read(char* out, std::size_t n);

  private:
    FrameReader(int fd, std::size_t size, std::chrono::steady_clock::time_point deadline)
        : fd_(fd), size_(size), left_(size), deadline_(deadline) {}
    int fd_;
    std::size_t size_;
    std::size_t left_;
    std::chrono::steady_clock::time_point deadline_;
};

// The 8-byte header of a frame of `size` payload bytes and `version`.
std::string frame_header(std::size_t size, std::uint16_t version = kProtocolVersion);
Expected<void, FrameError> write_all(int fd, std::string_view bytes,
                                     std::chrono::milliseconds timeout);

}  // namespace dkim::ipc

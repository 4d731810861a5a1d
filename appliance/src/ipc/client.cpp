#include "dkim/ipc/client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "dkim/base/wipe.hpp"
#include "dkim/ipc/frame.hpp"

namespace dkim::ipc {
namespace {
std::string errno_text(int error) {
    std::array<char, 256> buffer{};
    return strerror_r(error, buffer.data(), buffer.size());  // GNU: returns the message
}
}  // namespace

SignerClient::SignerClient(std::string socket_path, ClientOptions options)
    : path_(std::move(socket_path)), options_(options) {}

SignerClient::SignerClient(SignerClient&& other) noexcept
    : path_(std::move(other.path_)), options_(other.options_), fd_(other.fd_) {
    other.fd_ = -1;
}

SignerClient& SignerClient::operator=(SignerClient&& other) noexcept {
    if (this != &other) {
        close();
        path_ = std::move(other.path_);
        options_ = other.options_;
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

SignerClient::~SignerClient() {
    close();
}

void SignerClient::close() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

Expected<void, std::string> SignerClient::connect() {
    close();
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.size() >= sizeof(address.sun_path)) {
        return unexpected("socket path too long: " + path_);
    }
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return unexpected(std::string("cannot create a socket: ") + errno_text(errno));
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const int error = errno;
        ::close(fd);
        return unexpected("cannot connect to dkim-signerd at " + path_ + ": " + errno_text(error));
    }
    fd_ = fd;
    return {};
}

namespace {

// Frames carry passwords, tokens, TOTP codes and new secrets: wiped once used.
class WipedOnExit {
  public:
    explicit WipedOnExit(std::string& bytes) : bytes_(bytes) {}
    WipedOnExit(const WipedOnExit&) = delete;
    WipedOnExit& operator=(const WipedOnExit&) = delete;
    ~WipedOnExit() { base::secure_wipe(bytes_.data(), bytes_.size()); }

  private:
    std::string& bytes_;
};

}  // namespace

Expected<Reply, std::string> SignerClient::call(const Request& request) {
    std::string frame = encode(request);
    const WipedOnExit wipe_frame(frame);
    if (frame.size() - kFrameHeaderSize > kMaxFrameSize) {
        return unexpected(std::string("request too large for one frame"));
    }
    if (fd_ >= 0 && std::chrono::steady_clock::now() - last_used_ > options_.max_idle) {
        close();
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
        const bool fresh = fd_ < 0;
        if (fresh) {
            if (auto connected = connect(); !connected) {
                return unexpected(connected.error());
            }
        }
        auto written = write_all(fd_, frame, options_.timeout);
        if (!written && fresh) {
            // signerd may have refused the connection with an answer before closing it (a
            // peer it does not know): that answer says more than the failed write.
            if (auto refusal = read_frame(fd_, std::chrono::milliseconds(500), options_.timeout)) {
                if (auto reply = decode_reply(*refusal)) {
                    close();
                    return std::move(*reply);
                }
            }
        }
        if (!written) {
            close();
            // A connection the server closed while idle shows up here: reconnect once. The
            // request did not reach signerd.
            if (!fresh && written.error().kind == FrameError::Kind::closed) {
                continue;
            }
            return unexpected("cannot send to dkim-signerd: " + written.error().message);
        }
        auto payload = read_frame(fd_, options_.timeout, options_.timeout);
        if (!payload) {
            close();
            if (!fresh && payload.error().kind == FrameError::Kind::closed &&
                payload.error().message == "connection closed" &&
                (std::holds_alternative<StatusRequest>(request) ||
                 std::holds_alternative<PublicKeyRequest>(request) ||
                 std::holds_alternative<SigningSummaryRequest>(request))) {
                continue;  // only reads are safe to send again
            }
            return unexpected("no reply from dkim-signerd: " + payload.error().message);
        }
        const WipedOnExit wipe_payload(*payload);
        auto reply = decode_reply(*payload);
        if (!reply) {
            close();
            return unexpected("bad reply from dkim-signerd: " + reply.error().message);
        }
        last_used_ = std::chrono::steady_clock::now();
        return std::move(*reply);
    }
    return unexpected(std::string("dkim-signerd closed the connection"));
}

Expected<SigningSummaryReply, ErrorReply> signing_summary(SignerClient& client, std::int64_t from,
                                                          std::int64_t until,
                                                          const std::string& domain) {
    auto reply = client.call(SigningSummaryRequest{from, until, domain});
    if (!reply) {
        return unexpected(ErrorReply{ErrorCode::unavailable, reply.error(), 0, {}});
    }
    if (auto* summary = std::get_if<SigningSummaryReply>(&*reply)) {
        return std::move(*summary);
    }
    if (auto* error = std::get_if<ErrorReply>(&*reply)) {
        return unexpected(std::move(*error));
    }
    return unexpected(ErrorReply{ErrorCode::protocol, "unexpected reply from dkim-signerd", 0, {}});
}

}  // namespace dkim::ipc

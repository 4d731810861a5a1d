#include "dkim/reports/channel.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dkim/ipc/frame.hpp"

namespace dkim::reports::channel {

namespace bj = boost::json;

std::string encode(const Message& message) {
    const std::string json = bj::serialize(message.json);
    const std::size_t size = 4 + json.size() + message.body.size();
    std::string out = ipc::frame_header(size, kVersion);
    out.reserve(ipc::kFrameHeaderSize + size);
    const auto n = static_cast<std::uint32_t>(json.size());
    out += static_cast<char>(n >> 24);
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 8) & 0xff);
    out += static_cast<char>(n & 0xff);
    out += json;
    out += message.body;
    return out;
}

Expected<Message, std::string> decode(std::string payload) {
    if (payload.size() < 4) {
        return unexpected(std::string("frame too short"));
    }
    const auto byte = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(payload[i]));
    };
    const std::uint32_t length = (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
    if (length > kMaxJson || length > payload.size() - 4) {
        return unexpected(std::string("bad JSON length in frame"));
    }
    boost::system::error_code ec;
    bj::parse_options options;
    options.max_depth = 32;
    bj::value value = bj::parse(std::string_view(payload).substr(4, length), ec, {}, options);
    if (ec || !value.is_object()) {
        return unexpected(std::string("the frame's JSON is not an object"));
    }
    Message m;
    m.json = std::move(value.get_object());
    // The body (up to a report mail's 64 MiB) is the payload itself, moved: no second copy.
    payload.erase(0, 4 + std::size_t{length});
    m.body = std::move(payload);
    return m;
}

Message error(std::string_view code, std::string_view message) {
    Message m;
    m.json["ok"] = false;
    m.json["error"] = message;
    m.json["code"] = code;
    return m;
}

std::string string_member(const bj::object& o, std::string_view name) {
    const bj::value* v = o.if_contains(name);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t int_member(const bj::object& o, std::string_view name, std::int64_t fallback) {
    const bj::value* v = o.if_contains(name);
    if (v == nullptr) {
        return fallback;
    }
    if (v->is_int64()) {
        return v->get_int64();
    }
    if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
        return static_cast<std::int64_t>(v->get_uint64());
    }
    return fallback;
}

Client::Client(std::string socket_path, std::chrono::milliseconds timeout)
    : path_(std::move(socket_path)), timeout_(timeout) {}

Client::~Client() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

Expected<Message, std::string> Client::call(const Message& request) {
    if (fd_ < 0) {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        if (path_.size() >= sizeof address.sun_path) {
            return unexpected("socket path too long: " + path_);
        }
        std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0 ||
            ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
            const int e = errno;
            if (fd_ >= 0) {
                ::close(fd_);
                fd_ = -1;
            }
            return unexpected("cannot connect to " + path_ + ": " + std::strerror(e));
        }
    }
    auto fail = [this](const std::string& what) -> Expected<Message, std::string> {
        ::close(fd_);
        fd_ = -1;
        return unexpected("dkim-reportd (" + path_ + "): " + what);
    };
    if (auto sent = ipc::write_all(fd_, encode(request), timeout_); !sent) {
        return fail(sent.error().message);
    }
    auto payload = ipc::read_frame(fd_, timeout_, timeout_, kMaxFrame, kVersion);
    if (!payload) {
        return fail(payload.error().message);
    }
    auto message = decode(std::move(*payload));
    if (!message) {
        return fail(message.error());
    }
    return message;
}

}  // namespace dkim::reports::channel

#include "server.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "dkim/ipc/frame.hpp"

namespace dkim::reportd {

namespace server_detail {

constexpr std::size_t kMaxConnections = 16;
constexpr std::chrono::milliseconds kIdle{60'000};
constexpr std::chrono::milliseconds kFrame{120'000};  // a 64 MiB submission on a slow peer

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void answer(int fd, const reports::channel::Message& m) {
    (void)ipc::write_all(fd, reports::channel::encode(m), std::chrono::milliseconds(10'000));
}

}  // namespace server_detail

using namespace server_detail;

Expected<std::unique_ptr<Server>, std::string> Server::listen(const Config& config,
                                                              Service& service) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string& p = config.socket.native();
    if (p.size() >= sizeof(address.sun_path)) {
        return unexpected("socket path too long: " + p);
    }
    std::memcpy(address.sun_path, p.c_str(), p.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return unexpected(std::string("cannot create the socket: ") + std::strerror(errno));
    }
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            ::close(fd);
            return unexpected(p + " exists and is not a socket");
        }
        ::unlink(p.c_str());
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        (config.socket_gid &&
         ::chown(p.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*config.socket_gid)) != 0) ||
        ::chmod(p.c_str(), config.socket_mode) != 0 || ::listen(fd, 64) != 0) {
        const int e = errno;
        ::close(fd);
        return unexpected("cannot listen on " + p + ": " + std::strerror(e));
    }
    return std::unique_ptr<Server>(new Server(fd, config, service));
}

Server::Server(int fd, const Config& config, Service& service)
    : listen_fd_(fd),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      config_(config),
      service_(service) {}

Server::~Server() {
    stop();
    auto connections = connections_.lock();
    for (Connection& c : *connections) {
        ::shutdown(c.fd, SHUT_RDWR);
    }
    for (Connection& c : *connections) {
        c.thread.join();
        ::close(c.fd);
    }
    ::close(listen_fd_);
    ::close(wake_fd_);
    ::unlink(config_.socket.c_str());
}

void Server::stop() {
    stopping_ = true;
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

bool Server::responsive(std::chrono::milliseconds budget) {
    return steady_ms() - last_turn_ms_.load() <= budget.count() + 1000;
}

void Server::run() {
    while (!stopping_) {
        last_turn_ms_ = steady_ms();
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        if (::poll(fds, 2, 1000) < 0 && errno != EINTR) {
            break;
        }
        {
            auto connections = connections_.lock();
            for (auto it = connections->begin(); it != connections->end();) {
                if (it->done) {
                    it->thread.join();
                    ::close(it->fd);
                    it = connections->erase(it);
                } else {
                    ++it;
                }
            }
        }
        if (stopping_ || (fds[0].revents & POLLIN) == 0) {
            continue;
        }
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        ucred peer{};
        socklen_t size = sizeof peer;
        const auto kind = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) == 0
                              ? config_.peers.find(static_cast<std::uint32_t>(peer.uid))
                              : config_.peers.end();
        if (kind == config_.peers.end()) {
            std::cerr << "dkim-reportd: refused a connection from uid " << peer.uid
                      << ": not a configured peer\n";
            answer(fd, reports::channel::error("forbidden",
                                               "uid " + std::to_string(peer.uid) +
                                                   " is not a configured peer of dkim-reportd"));
            ::close(fd);
            continue;
        }
        auto connections = connections_.lock();
        if (connections->size() >= kMaxConnections) {
            answer(fd, reports::channel::error("unavailable", "too many connections"));
            ::close(fd);
            continue;
        }
        connections->emplace_back();
        Connection& c = connections->back();
        c.fd = fd;
        const PeerKind peer_kind = kind->second;
        c.thread = std::thread([this, &c, peer_kind] {
            serve(c.fd, peer_kind);
            c.done = true;
        });
    }
}

namespace server_detail {

// One request off the socket: its JSON, and its body in the message when small or spooled to a
// file when large (spool.hpp), so a 64 MiB submission is never held in memory.
struct Incoming {
    reports::channel::Message message;
    std::optional<SpooledBody> spooled;
};

struct IncomingError {
    std::string code;  // "protocol" or "unavailable"; empty: nothing to answer (closed, idle)
    std::string message;
};

constexpr std::size_t kSpoolAbove = std::size_t{1} << 20;

Expected<Incoming, IncomingError> read_request(int fd, const std::filesystem::path& spool_folder) {
    auto frame = ipc::FrameReader::start(fd, kIdle, kFrame, reports::channel::kMaxFrame,
                                         reports::channel::kVersion);
    const auto failed = [](const ipc::FrameError& e) {
        const bool quiet =
            e.kind == ipc::FrameError::Kind::closed || e.kind == ipc::FrameError::Kind::timeout;
        return IncomingError{quiet ? std::string() : std::string("protocol"), e.message};
    };
    if (!frame) {
        return unexpected(failed(frame.error()));
    }
    if (frame->size() <= kSpoolAbove) {
        std::string payload(frame->size(), '\0');
        if (auto got = frame->read(payload.data(), payload.size()); !got) {
            return unexpected(failed(got.error()));
        }
        auto message = reports::channel::decode(std::move(payload));
        if (!message) {
            return unexpected(IncomingError{"protocol", message.error()});
        }
        return Incoming{std::move(*message), std::nullopt};
    }
    // | JSON length (u32 BE) | JSON | body |: the JSON in memory, the body to the spool.
    std::string head(4, '\0');
    if (frame->size() < 4) {
        return unexpected(IncomingError{"protocol", "frame too short"});
    }
    if (auto got = frame->read(head.data(), 4); !got) {
        return unexpected(failed(got.error()));
    }
    const auto byte = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(head[i]));
    };
    const std::uint32_t length = (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
    if (length > reports::channel::kMaxJson || length > frame->left()) {
        return unexpected(IncomingError{"protocol", "bad JSON length in frame"});
    }
    head.resize(4 + std::size_t{length});
    if (auto got = frame->read(head.data() + 4, length); !got) {
        return unexpected(failed(got.error()));
    }
    auto message = reports::channel::decode(std::move(head));
    if (!message) {
        return unexpected(IncomingError{"protocol", message.error()});
    }
    auto spool = SpooledBody::create(spool_folder);
    if (!spool) {
        return unexpected(IncomingError{"unavailable", spool.error()});
    }
    std::string piece(std::min(kSpoolAbove, frame->left()), '\0');
    while (frame->left() > 0) {
        const std::size_t n = std::min(piece.size(), frame->left());
        if (auto got = frame->read(piece.data(), n); !got) {
            return unexpected(failed(got.error()));
        }
        if (auto put = spool->append(piece.data(), n); !put) {
            return unexpected(IncomingError{"unavailable", put.error()});
        }
    }
    return Incoming{std::move(*message), std::move(*spool)};
}

}  // namespace server_detail

void Server::serve(int fd, PeerKind peer) {
    const std::filesystem::path spool_folder = config_.store.parent_path();
    while (!stopping_) {
        auto request = server_detail::read_request(fd, spool_folder);
        if (!request) {
            if (!request.error().code.empty()) {
                answer(fd, reports::channel::error(request.error().code, request.error().message));
            }
            return;
        }
        answer(fd, service_.handle(peer, request->message,
                                   request->spooled ? &*request->spooled : nullptr));
        request->spooled.reset();  // the spool file is gone with the answer
        service_.after_answer();
    }
}

}  // namespace dkim::reportd

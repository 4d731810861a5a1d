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

namespace {

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

}  // namespace

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

void Server::serve(int fd, PeerKind peer) {
    while (!stopping_) {
        auto payload = ipc::read_frame(fd, kIdle, kFrame, reports::channel::kMaxFrame,
                                       reports::channel::kVersion);
        if (!payload) {
            if (payload.error().kind != ipc::FrameError::Kind::closed &&
                payload.error().kind != ipc::FrameError::Kind::timeout) {
                answer(fd, reports::channel::error("protocol", payload.error().message));
            }
            return;
        }
        auto request = reports::channel::decode(std::move(*payload));
        if (!request) {
            answer(fd, reports::channel::error("protocol", request.error()));
            return;
        }
        answer(fd, service_.handle(peer, *request));
        service_.after_answer();
    }
}

}  // namespace dkim::reportd

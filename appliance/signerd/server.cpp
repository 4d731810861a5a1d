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

#include "dkim/base/wipe.hpp"
#include "dkim/ipc/frame.hpp"

namespace dkim::signerd {

namespace {

std::string errno_text(int error) {
    std::array<char, 256> buffer{};
    return strerror_r(error, buffer.data(), buffer.size());
}

void send_error(int fd, ipc::ErrorCode code, const std::string& message) {
    const std::string frame = ipc::encode(ipc::Reply{ipc::ErrorReply{code, message, 0, {}}});
    (void)ipc::write_all(fd, frame, std::chrono::milliseconds(1000));
}

}  // namespace

Expected<std::unique_ptr<Server>, std::string> Server::listen(
    const std::filesystem::path& path, unsigned mode, std::optional<std::uint32_t> gid,
    const Config& config, Service& service, Metrics& metrics, ServerOptions options) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string& p = path.native();
    if (p.size() >= sizeof(address.sun_path)) {
        return unexpected("socket path too long: " + p);
    }
    std::memcpy(address.sun_path, p.c_str(), p.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return unexpected("cannot create the socket: " + errno_text(errno));
    }
    // A socket file left by a signerd that died: remove it, unless someone still answers.
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            ::close(fd);
            return unexpected(p + " exists and is not a socket");
        }
        const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool alive =
            probe >= 0 &&
            ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
        if (probe >= 0) {
            ::close(probe);
        }
        if (alive) {
            ::close(fd);
            return unexpected("another dkim-signerd is listening on " + p);
        }
        ::unlink(p.c_str());
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const int e = errno;
        ::close(fd);
        return unexpected("cannot bind " + p + ": " + errno_text(e));
    }
    // The socket is made with our own group; chown only to another one (the appliance's
    // unit forbids chown: SystemCallFilter=~@privileged).
    const bool regroup = gid && static_cast<gid_t>(*gid) != ::getegid();
    if ((regroup && ::chown(p.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*gid)) != 0) ||
        ::chmod(p.c_str(), mode) != 0 || ::listen(fd, 64) != 0) {
        const int e = errno;
        ::close(fd);
        return unexpected("cannot listen on " + p + ": " + errno_text(e));
    }
    return std::unique_ptr<Server>(new Server(fd, path, config, service, metrics, options));
}

Server::Server(int fd, std::filesystem::path path, const Config& config, Service& service,
               Metrics& metrics, ServerOptions options)
    : listen_fd_(fd),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      path_(std::move(path)),
      config_(config),
      service_(service),
      metrics_(metrics),
      options_(options) {}

Server::~Server() {
    stop();
    ::close(listen_fd_);
    ::close(wake_fd_);
    ::unlink(path_.c_str());
}

void Server::stop() {
    stopping_ = true;
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

bool Server::responsive(std::chrono::milliseconds budget) {
    auto turns = turns_.lock();
    const std::uint64_t seen = *turns;
    return turned_.wait_for(turns.lock(), budget, [&] { return *turns != seen; });
}

void Server::run() {
    while (!stopping_) {
        ++*turns_.lock();
        turned_.notify_all();
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        if (::poll(fds, 2, 1000) < 0 && errno != EINTR) {
            break;
        }
        {
            // Reap finished connections.
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
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) {
            ::close(fd);
            continue;
        }
        if (!config_.peer(static_cast<std::uint32_t>(peer.uid))) {
            metrics_.refusal(Metrics::Refusal::peer);
            std::cerr << "dkim-signerd: refused a connection from uid " << peer.uid << " (pid "
                      << peer.pid << "): not a configured peer\n";
            send_error(
                fd, ipc::ErrorCode::forbidden,
                "uid " + std::to_string(peer.uid) + " is not a configured peer of dkim-signerd");
            ::close(fd);
            continue;
        }
        auto connections = connections_.lock();
        if (connections->size() >= options_.max_connections) {
            send_error(fd, ipc::ErrorCode::unavailable, "too many connections");
            ::close(fd);
            continue;
        }
        Connection& c = connections->emplace_back();
        c.fd = fd;
        c.thread = std::thread([this, &c] {
            serve(c.fd);
            // The peer sees the end at once; the descriptor is closed when the thread is reaped.
            ::shutdown(c.fd, SHUT_RDWR);
            c.done = true;
        });
    }
    auto connections = connections_.lock();
    for (Connection& c : *connections) {
        ::shutdown(c.fd, SHUT_RDWR);
    }
    for (Connection& c : *connections) {
        c.thread.join();
        ::close(c.fd);
    }
    connections->clear();
}

void Server::serve(int fd) {
    ucred cred{};
    socklen_t size = sizeof cred;
    (void)::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size);
    const auto identity = config_.peer(static_cast<std::uint32_t>(cred.uid));
    if (!identity) {
        return;
    }
    const Peer peer{identity->kind, identity->name, static_cast<std::uint32_t>(cred.uid)};
    while (!stopping_) {
        auto payload = ipc::read_frame(fd, options_.idle_timeout, options_.frame_timeout);
        if (!payload) {
            const auto kind = payload.error().kind;
            if (kind == ipc::FrameError::Kind::closed &&
                payload.error().message == "connection closed") {
                break;  // the peer hung up between requests
            }
            if (kind == ipc::FrameError::Kind::timeout && payload.error().message == "timed out" &&
                !stopping_) {
                // Idle, or a frame that did not arrive in time: either way the connection ends.
                send_error(fd, ipc::ErrorCode::protocol, "timed out");
                break;
            }
            metrics_.refusal(Metrics::Refusal::protocol);
            send_error(fd, ipc::ErrorCode::protocol, payload.error().message);
            break;
        }
        auto request = ipc::decode_request(*payload);
        base::wipe(*payload);
        if (!request) {
            metrics_.refusal(Metrics::Refusal::protocol);
            send_error(fd, ipc::ErrorCode::protocol, request.error().message);
            break;
        }
        ipc::Reply reply = service_.handle(peer, *request);
        std::string frame = ipc::encode(reply);
        if (auto* ok = std::get_if<ipc::OkReply>(&reply)) {
            base::wipe(ok->secret);
        }
        if (auto* split = std::get_if<ipc::PinSharesReply>(&reply)) {
            for (ipc::PinShareOut& share : split->shares) {
                base::wipe(share.share);  // a split's shares: together, they are the PIN
            }
        }
        auto written = ipc::write_all(fd, frame, options_.frame_timeout);
        base::wipe(frame);
        if (!written) {
            break;
        }
    }
}

}  // namespace dkim::signerd

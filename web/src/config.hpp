#pragma once
// dkim-webd's configuration (TOML). Unknown keys and bad values are errors that name
// file:line:column and the key.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "dkim/config/endpoint.hpp"
#include "dkim/config/schema.hpp"
#include "dkim/expected.hpp"
#include "handlers.hpp"

namespace dkim::web {

struct Config {
    std::string file;
    config::Endpoint listen{"127.0.0.1", 8443};
    std::string tls_certificate;
    std::string tls_key;
    // Development only: without a certificate, make a self-signed one in state_dir on first
    // start (and print its fingerprint).
    bool self_signed = false;
    std::filesystem::path state_dir = "/var/lib/dkim-webd";
    std::string signerd_socket = "/run/dkim-signerd/signerd.sock";
    unsigned workers = 4;  // requests handled at once (each may wait for signerd)
    std::size_t body_limit = 64 * 1024;
    std::size_t header_limit = 16 * 1024;
    std::chrono::milliseconds read_timeout{30'000};   // one request, headers and body
    std::chrono::milliseconds idle_timeout{120'000};  // a kept-alive connection between requests
    std::chrono::milliseconds write_timeout{30'000};
    std::size_t max_connections = 512;
    std::chrono::milliseconds session_idle{30 * 60'000};
    std::size_t max_sessions = 10'000;
    LoginLimiter::Limits login;
    HandlerOptions handler;
    // [reports]: dkim-reportd's socket ("": the reports API answers 503), and what one upload of
    // a report file may take (its body, read only for an authenticated-looking request, at most
    // kMaxUploads at once).
    std::string reports_socket;
    std::size_t upload_limit = std::size_t{64} << 20;
    std::chrono::milliseconds upload_timeout{300'000};
    // The sources' reverse DNS (forward-confirmed, looked up by webd; reverse_dns.hpp): off,
    // webd makes no DNS query at all. dns_server: IP[:PORT], else the system's resolvers.
    bool reverse_dns = true;
    std::optional<std::string> dns_server;
    std::chrono::milliseconds dns_timeout{1000};
};

// The declarations of every key (the parser reads no other; --config-reference prints them).
const config::Schema& config_schema();

Expected<Config, std::string> load_config(const std::string& file);

}  // namespace dkim::web

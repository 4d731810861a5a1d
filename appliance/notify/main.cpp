// dkim-notifyd: delivers dkim-signerd's webhook events from the outbox to the webhook.
//
//   dkim-notifyd --config /etc/dkim-appliance/notifyd.toml [--check-config]
//
// SECURITY: signerd has no network on the appliance (PrivateNetwork=yes, AF_UNIX only), so it
// spools each event durably to the outbox (outbox.hpp) and this small daemon, its own user
// (dkim-notify) with no access to signerd's socket, state or token, POSTs them. It holds the
// webhook's HMAC key (a systemd credential) and nothing else; the firewall lets only its uid
// reach the operator's webhook hosts on 443. A compromised notifier can drop, delay or forge
// notifications (it holds the key), which are informational only: it cannot sign, approve
// or touch the audit log. The key is never logged; errors never quote it.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <iostream>
#include <system_error>

#include "dkim/base/wipe.hpp"
#include "dkim/config/schema.hpp"
#include "dkim/service/notify.hpp"
#include "notifyd_config.hpp"
#include "outbox.hpp"
#include "webhook_post.hpp"

namespace {

using namespace dkim;

// The HMAC key: a regular file that other users cannot read; one trailing newline dropped.
Expected<std::string, std::string> read_key(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return unexpected("the webhook key " + path.string() + ": " +
                          std::error_code(errno, std::generic_category()).message());
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 4096) {
        ::close(fd);
        return unexpected("the webhook key " + path.string() +
                          " is not a regular file of at most 4096 bytes");
    }
    if ((st.st_mode & S_IRWXO) != 0) {
        ::close(fd);
        return unexpected("the webhook key " + path.string() +
                          " is readable by other users; run chmod o-rwx on it");
    }
    std::string key(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < key.size()) {
        const ssize_t n = ::read(fd, key.data() + got, key.size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    key.resize(got);
    if (!key.empty() && key.back() == '\n') {
        key.pop_back();
    }
    if (key.empty()) {
        return unexpected("the webhook key " + path.string() + " is empty");
    }
    return key;
}

int serve(const notify::Config& config) {
    auto key = read_key(config.secret_file);
    if (!key) {
        std::cerr << "dkim-notifyd: " << key.error() << "\n";
        return 1;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    (void)::signal(SIGPIPE, SIG_IGN);

    const std::string url = config.url;
    const auto timeout = config.timeout;
    const SystemClock clock;
    notify::OutboxSender sender(config.outbox,
                                [&url, &key, timeout, &clock](const std::string& body) {
                                    return notify::post_signed(url, *key, body, timeout,
                                                               clock.now());
                                },
                                {config.first_backoff, config.max_backoff, config.max_age});
    std::cerr << "dkim-notifyd: delivering " << config.outbox.string()
              << " to the configured webhook\n"
              << std::flush;
    service::notify_ready("delivering " + config.outbox.string());
    for (;;) {
        const auto round = sender.run_once(clock.now());
        for (const std::string& name : round.delivered) {
            std::cerr << "dkim-notifyd: delivered " << name << "\n";
        }
        for (const std::string& why : round.dropped) {
            std::cerr << "dkim-notifyd: dropped " << why << "\n";
        }
        if (!round.failed.empty()) {
            std::cerr << "dkim-notifyd: not delivered " << round.failed << "; next try in "
                      << round.retry_in.count() << " ms\n";
        }
        std::cerr << std::flush;
        // While backing off, run_once delivers nothing and says how long is left.
        const auto wait =
            round.retry_in.count() > 0
                ? std::clamp(round.retry_in, std::chrono::milliseconds(1), config.poll_interval)
                : config.poll_interval;
        const auto wait_ms = wait.count();
        const timespec tick{static_cast<time_t>(wait_ms / 1000),
                            static_cast<long>((wait_ms % 1000) * 1'000'000)};
        if (sigtimedwait(&signals, nullptr, &tick) > 0) {
            break;
        }
    }
    service::notify_stopping();
    base::wipe(*key);
    std::cerr << "dkim-notifyd: stopped\n";
    return 0;
}

int run(int argc, char** argv) {
    CLI::App app{"dkim-notifyd: delivers dkim-signerd's webhook events from its outbox"};
    std::string config_file = "/etc/dkim-appliance/notifyd.toml";
    bool check_only = false;
    bool reference = false;
    app.add_option("--config", config_file, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check-config", check_only, "read the configuration, report, and exit");
    app.add_flag("--config-reference", reference, "print every configuration key (Markdown)");
    CLI11_PARSE(app, argc, argv);
    if (reference) {
        std::cout << config::reference_markdown(notify::config_schema());
        return 0;
    }
    auto config = notify::load_config(config_file);
    if (!config) {
        std::cerr << "dkim-notifyd: " << config.error() << "\n";
        return 2;
    }
    if (check_only) {
        std::cout << config_file << ": ok (outbox " << config->outbox.string() << ")\n";
        return 0;
    }
    return serve(*config);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "dkim-notifyd: " << e.what() << "\n";
        return 1;
    }
}

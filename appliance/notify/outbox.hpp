#pragma once
// The notification outbox: how dkim-signerd, which has no network on the appliance, hands
// its webhook events to dkim-notifyd, which has (outward only) and holds the HMAC key.
//
// signerd writes each event as one file, durably (the file and the folder fsync'd) before the
// decision that caused it is answered: a temporary ".tmp-..." file made with O_EXCL and
// O_NOFOLLOW, fsync'd, made 0640, renamed to "<20-digit unix ms>-<10-digit counter>-<16 hex>
// .json" and the folder fsync'd. The folder belongs to dkim-signer with the group
// dkim-notify and mode 2770: new files take the group, so the notifier may read and delete
// them, and signerd needs no group of the notifier's. The body is exactly what is POSTed.
//
// dkim-notifyd delivers the files in name order (oldest first), signs each at delivery with
// the webhook's v1 HMAC (post.hpp: existing receivers keep working), deletes each once the
// receiver answered 2xx, and backs off (doubling up to a maximum) while the receiver fails.
// Delivery is at least once: a crash between the answer and the delete sends it again.
// Neither side follows a symbolic link or reads anything but a regular file of bounded size
// with an outbox name; a file older than max_age is dropped and said so.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/lock_guarded.hpp"

namespace dkim::notify {

// "<20 digits>-<10 digits>-<16 hex>.json"; the first part, the spool time in Unix ms.
bool is_outbox_name(std::string_view name);
std::int64_t outbox_name_ms(std::string_view name);

inline constexpr std::size_t kOutboxBodyLimit = 64 * 1024;

class OutboxWriter {
  public:
    // Opens the folder (which must exist and be a folder, not a link to one).
    static Expected<std::unique_ptr<OutboxWriter>, std::string> open(
        const std::filesystem::path& folder, std::size_t max_files = 10'000);
    OutboxWriter(const OutboxWriter&) = delete;
    OutboxWriter& operator=(const OutboxWriter&) = delete;
    ~OutboxWriter();

    // One event, durable when this returns; refused (and nothing written) when the folder
    // holds max_files entries already or the body is over kOutboxBodyLimit.
    Expected<std::string, std::string> put(std::string_view body, std::int64_t unix_ms);

  private:
    OutboxWriter(int folder_fd, std::filesystem::path folder, std::size_t max_files);
    std::size_t entries() const;

    int folder_fd_;
    std::filesystem::path folder_;
    std::size_t max_files_;
    // The file counter. put() holds it from counting the folder's entries to the folder's fsync,
    // so that the limit check and the file it admits are one step.
    LockGuarded<std::uint32_t> counter_{0U};
};

class OutboxSender {
  public:
    // POSTs one body; "" when the receiver took it, else why not.
    using Post = std::function<std::string(const std::string& body)>;
    struct Options {
        std::chrono::milliseconds first_backoff{1000};
        std::chrono::milliseconds max_backoff{300'000};
        std::chrono::milliseconds max_age{7LL * 24 * 3600 * 1000};
    };
    struct Round {
        std::vector<std::string> delivered;
        std::vector<std::string> dropped;       // "name: why"
        std::string failed;                     // "name: why", or empty
        std::chrono::milliseconds retry_in{0};  // after a failure: the back-off
    };
    OutboxSender(std::filesystem::path folder, Post post, Options options);

    // Delivers the files that are due, oldest first, and stops at the first failure (the
    // receiver is likely down for the rest too); while backing off it delivers nothing.
    Round run_once(std::chrono::system_clock::time_point now);

  private:
    std::filesystem::path folder_;
    Post post_;
    Options options_;
    std::chrono::system_clock::time_point next_try_{};
    std::chrono::milliseconds backoff_{0};
};

}  // namespace dkim::notify

#pragma once
// Secrets (PINs): non-copyable, wiped on destruction, never printed, compared in
// constant time. There is deliberately no operator<< and no conversion to std::string.
//
// Each secret's bytes live in pages of their own (mmap), locked in memory (mlock: never written
// to swap) and left out of core dumps (MADV_DONTDUMP). When the process may not lock more
// (RLIMIT_MEMLOCK), the secret still works, unlocked: locked() says which. The pages are
// wiped, then unlocked and unmapped; no other object shares them, so unlocking one secret never
// unlocks another's bytes (mlock does not count references).

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>

#include "dkim/hsm/error.hpp"

namespace dkim::hsm {

class Secret {
  public:
    static constexpr std::size_t max_size = 1024;

    Secret() = default;
    // Copies the bytes; the caller wipes its own copy.
    explicit Secret(std::span<const unsigned char> bytes);
    static Secret from_string(std::string_view text);

    // Reads a PIN file: at most max_size bytes, one trailing "\n" or "\r\n" removed.
    // Refuses a file that other users may read, and an empty file. Errors never contain
    // the file's content.
    static Result<Secret> from_file(const std::filesystem::path& path);

    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    Secret(Secret&& other) noexcept;
    Secret& operator=(Secret&& other) noexcept;
    ~Secret();

    // An explicit copy, for the few places that must keep a secret (re-login after a
    // session loss); the name makes every copy visible in review.
    Secret duplicate() const;

    std::span<const unsigned char> bytes() const noexcept { return {data_, size_}; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    // Constant time in the content (the length is not secret).
    bool equals(const Secret& other) const noexcept;

    void wipe() noexcept;

    // Whether the bytes are locked in memory (false when mlock was refused, and for a secret
    // default-constructed, moved from or wiped).
    bool locked() const noexcept { return locked_; }

  private:
    // Pages for `capacity` bytes and a terminating zero, zero-filled, locked when allowed.
    explicit Secret(std::size_t capacity);

    unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t mapped_ = 0;  // the pages' length
    bool locked_ = false;
};

}  // namespace dkim::hsm

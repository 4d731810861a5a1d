#pragma once
// The bh= value: SHA-256 over the canonicalized body, fed in chunks, optionally limited to
// the first l= canonical bytes (RFC 6376 §3.5 l=, §3.7).

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "dkim/crypto/sha256.hpp"
#include "dkim/dkim/canonicalization.hpp"

namespace dkim {

class BodyHasher final : private BodySink {
  public:
    explicit BodyHasher(Canon canon, std::optional<std::uint64_t> length_limit = std::nullopt)
        : canonicalizer_(canon, *this), limit_(length_limit) {}
    BodyHasher(const BodyHasher&) = delete;
    BodyHasher& operator=(const BodyHasher&) = delete;

    void update(std::string_view chunk) { canonicalizer_.update(chunk); }
    crypto::Sha256Digest finish();

    // All canonical body bytes seen, including those beyond the limit.
    std::uint64_t canonical_length() const { return length_; }

  private:
    void write(const char* data, std::size_t size) override;
    void hash(const char* data, std::size_t size);
    void flush();

    // Relaxed canonicalization hands over many short spans; each SHA-256 update call costs
    // more than copying a short span, so spans shorter than this are gathered first.
    static constexpr std::size_t kStaging = 4096;

    BodyCanonicalizer canonicalizer_;
    std::optional<std::uint64_t> limit_;
    std::uint64_t length_ = 0;
    crypto::Sha256 sha_;
    std::size_t staged_ = 0;
    std::array<char, kStaging> staging_{};
};

}  // namespace dkim

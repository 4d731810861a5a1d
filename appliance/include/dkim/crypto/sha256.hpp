#pragma once
// SHA-256 over OpenSSL 3's EVP interface, with the algorithm fetched once per process (an
// implicit fetch on every EVP_DigestInit_ex costs more than hashing a short header block).

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace dkim::crypto {

using Sha256Digest = std::array<std::uint8_t, 32>;

class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, std::size_t size);
    void update(std::string_view data) { update(data.data(), data.size()); }
    // Returns the digest and starts over, so one object hashes many messages.
    Sha256Digest finish();

    static Sha256Digest hash(std::string_view data);

  private:
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
};

}  // namespace dkim::crypto

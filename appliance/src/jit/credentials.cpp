#include "dkim/jit/credentials.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <stdexcept>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/sha256.hpp"

namespace dkim::jit {
namespace {

void ensure_sodium() {
    static const int initialised = sodium_init();
    if (initialised < 0) {
        throw std::runtime_error("libsodium could not be initialised");
    }
}

}  // namespace

std::optional<PasswordCost> parse_password_cost(std::string_view name) {
    if (name == "interactive") {
        return PasswordCost{};
    }
    if (name == "moderate") {
        return PasswordCost{3, 256ULL << 20};
    }
    if (name == "minimal-for-tests") {
        return PasswordCost::minimal();
    }
    return std::nullopt;
}

PasswordCost PasswordCost::minimal() {
    return PasswordCost{crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
}

std::optional<std::string> hash_password(std::string_view password, const PasswordCost& cost) {
    ensure_sodium();
    std::array<char, crypto_pwhash_STRBYTES> out{};
    if (crypto_pwhash_str_alg(out.data(), password.data(), password.size(), cost.ops, cost.memory,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        return std::nullopt;
    }
    return std::string(out.data());
}

bool verify_password(const std::string& encoded, std::string_view password) {
    ensure_sodium();
    if (encoded.empty()) {
        return false;
    }
    return crypto_pwhash_str_verify(encoded.c_str(), password.data(), password.size()) == 0;
}

std::string random_token() {
    ensure_sodium();
    std::array<unsigned char, 32> bytes{};
    randombytes_buf(bytes.data(), bytes.size());
    std::array<char, sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)>
        text{};
    sodium_bin2base64(text.data(), text.size(), bytes.data(), bytes.size(),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    base::secure_wipe(bytes.data(), bytes.size());
    std::string token = "dkt_" + std::string(text.data());
    base::secure_wipe(text.data(), text.size());
    return token;
}

std::string token_hash(std::string_view token) {
    const auto digest = crypto::Sha256::hash(token);
    return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

std::string random_totp_secret() {
    ensure_sodium();
    std::string secret(20, '\0');
    randombytes_buf(secret.data(), secret.size());
    return secret;
}

std::string base32_encode(std::string_view bytes) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (char c : bytes) {
        buffer = (buffer << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 5) {
            out += alphabet[(buffer >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) {
        out += alphabet[(buffer << (5 - bits)) & 31];
    }
    return out;
}

std::optional<std::string> base32_decode(std::string_view text) {
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (char c : text) {
        int value = -1;
        if (c >= 'A' && c <= 'Z') {
            value = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            value = c - 'a';
        } else if (c >= '2' && c <= '7') {
            value = c - '2' + 26;
        } else if (c == '=') {
            break;
        }
        if (value < 0) {
            return std::nullopt;
        }
        buffer = (buffer << 5) | static_cast<unsigned>(value);
        bits += 5;
        if (bits >= 8) {
            out += static_cast<char>((buffer >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return out;
}

std::int64_t totp_step(std::int64_t unix_seconds) {
    return unix_seconds / 30;
}

std::uint32_t totp_code(std::string_view secret, std::int64_t step) {
    std::array<unsigned char, 8> counter{};
    auto value = static_cast<std::uint64_t>(step);
    for (int i = 7; i >= 0; --i) {
        counter[static_cast<std::size_t>(i)] = static_cast<unsigned char>(value & 0xff);
        value >>= 8;
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int mac_size = 0;
    if (HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()), counter.data(),
             counter.size(), mac.data(), &mac_size) == nullptr ||
        mac_size < 20) {
        throw std::runtime_error("HMAC-SHA-1 failed");
    }
    // RFC 4226 §5.3 dynamic truncation.
    const unsigned offset = mac[19] & 0x0f;
    const auto byte = [&](unsigned i) { return static_cast<std::uint32_t>(mac[i]); };
    const std::uint32_t binary = ((byte(offset) & 0x7fU) << 24) | (byte(offset + 1) << 16) |
                                 (byte(offset + 2) << 8) | byte(offset + 3);
    base::secure_wipe(mac.data(), mac.size());
    return binary % 1'000'000;
}

std::optional<std::int64_t> totp_match(std::string_view secret, std::string_view code,
                                       std::int64_t step, int window) {
    if (code.size() != 6) {
        return std::nullopt;
    }
    std::uint32_t given = 0;
    for (char c : code) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        given = given * 10 + static_cast<std::uint32_t>(c - '0');
    }
    std::optional<std::int64_t> matched;
    // Check every step in the window (no early exit: the time taken does not say which one).
    for (std::int64_t s = step - window; s <= step + window; ++s) {
        const std::uint32_t expected = totp_code(secret, s);
        const bool equal = sodium_memcmp(&expected, &given, sizeof given) == 0;
        if (equal && !matched) {
            matched = s;
        }
    }
    return matched;
}

std::string totp_uri(std::string_view issuer, std::string_view user, std::string_view secret) {
    const std::string b32 = base32_encode(secret);
    return "otpauth://totp/" + std::string(issuer) + ":" + std::string(user) + "?secret=" + b32 +
           "&issuer=" + std::string(issuer) + "&algorithm=SHA1&digits=6&period=30";
}

}  // namespace dkim::jit

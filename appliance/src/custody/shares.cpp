#include "dkim/custody/shares.hpp"

// libgfshare.h has no extern "C" of its own.
extern "C" {
#include <libgfshare.h>
}
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>

#include "dkim/crypto/base64.hpp"

namespace dkim::custody {

namespace {

constexpr std::string_view kPrefix = "dkimpin1";
constexpr std::string_view kBase32 = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::size_t kMaxShareText = 2048;
constexpr std::size_t kMinPadding = 32;

// gfshare's coefficients from OpenSSL's CSPRNG. A failure of the generator ends the process:
// a split with predictable coefficients would give the PIN away.
void fill_from_openssl(unsigned char* buffer, unsigned int count) {
    if (RAND_priv_bytes(buffer, static_cast<int>(count)) != 1) {
        std::abort();
    }
}

void use_csprng() {
    static std::once_flag once;
    std::call_once(once, [] { gfshare_fill_rand = fill_from_openssl; });
}

struct GfshareFree {
    void operator()(gfshare_ctx* c) const { gfshare_ctx_free(c); }
};
using Gfshare = std::unique_ptr<gfshare_ctx, GfshareFree>;

// A buffer that is cleansed when it goes.
struct Buffer {
    std::vector<unsigned char> bytes;
    explicit Buffer(std::size_t n) : bytes(n) {}
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

std::string hex(std::span<const unsigned char> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out += digits[b >> 4U];
        out += digits[b & 15U];
    }
    return out;
}

std::array<unsigned char, 32> sha256(std::string_view data) {
    std::array<unsigned char, 32> out{};
    unsigned int size = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr);
    return out;
}

// Lower-case base32 (RFC 4648 alphabet) without padding, in groups of 4 separated by '-'.
void base32_grouped(std::span<const unsigned char> data, std::string& out) {
    unsigned int buffer = 0;
    int bits = 0;
    std::size_t written = 0;
    auto put = [&](unsigned int v) {
        if (written > 0 && written % 4 == 0) {
            out += '-';
        }
        out += kBase32[v & 31U];
        ++written;
    };
    for (unsigned char b : data) {
        buffer = (buffer << 8U) | b;
        bits += 8;
        while (bits >= 5) {
            put(buffer >> static_cast<unsigned>(bits - 5));
            bits -= 5;
        }
    }
    if (bits > 0) {
        put(buffer << static_cast<unsigned>(5 - bits));
    }
    OPENSSL_cleanse(&buffer, sizeof buffer);  // the secret's last bits
}

bool is_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<unsigned> decimal(std::string_view s) {
    if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) {
        return std::nullopt;
    }
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v;
}

}  // namespace

std::string new_share_set_id() {
    std::array<unsigned char, 4> id{};
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
        std::abort();
    }
    return hex(id);
}

Expected<std::vector<Share>, std::string> split_pin(const hsm::Secret& pin, unsigned threshold,
                                                    unsigned count, const std::string& set_id) {
    if (pin.empty() || pin.size() > max_pin_size) {
        return unexpected("the PIN must be 1 to " + std::to_string(max_pin_size) + " bytes");
    }
    if (threshold < 2 || threshold > count || count > max_shares) {
        return unexpected(std::string("2 <= threshold <= shares <= 255"));
    }
    if (set_id.size() != 8 || !is_hex(set_id)) {
        return unexpected(std::string("the set id must be 8 lower-case hex digits"));
    }
    use_csprng();
    // [length][PIN][random], a multiple of 16 with at least 32 random bytes.
    std::size_t size = 1 + pin.size() + kMinPadding;
    size = (size + 15) / 16 * 16;
    Buffer secret(size);
    secret.bytes[0] = static_cast<unsigned char>(pin.size());
    std::memcpy(secret.bytes.data() + 1, pin.bytes().data(), pin.size());
    if (RAND_priv_bytes(secret.bytes.data() + 1 + pin.size(),
                        static_cast<int>(size - 1 - pin.size())) != 1) {
        return unexpected(std::string("the random generator failed"));
    }
    std::vector<unsigned char> numbers(count);
    for (unsigned i = 0; i < count; ++i) {
        numbers[i] = static_cast<unsigned char>(i + 1);
    }
    Gfshare ctx(gfshare_ctx_init_enc(numbers.data(), count, static_cast<unsigned char>(threshold),
                                     static_cast<unsigned>(size)));
    if (!ctx) {
        return unexpected(std::string("libgfshare refused the split"));
    }
    gfshare_ctx_enc_setsecret(ctx.get(), secret.bytes.data());
    std::vector<Share> out;
    Buffer share(size);
    for (unsigned i = 0; i < count; ++i) {
        gfshare_ctx_enc_getshare(ctx.get(), static_cast<unsigned char>(i), share.bytes.data());
        out.push_back(Share{set_id, numbers[i], static_cast<std::uint8_t>(threshold),
                            hsm::Secret(share.bytes)});
    }
    // The context holds the secret: overwrite it before libgfshare frees it.
    std::fill(secret.bytes.begin(), secret.bytes.end(), 0);
    gfshare_ctx_enc_setsecret(ctx.get(), secret.bytes.data());
    return out;
}

Expected<hsm::Secret, std::string> combine_pin(const std::vector<const Share*>& shares) {
    if (shares.empty()) {
        return unexpected(std::string("no shares"));
    }
    const Share& first = *shares.front();
    std::set<unsigned> indexes;
    for (const Share* s : shares) {
        if (s->set_id != first.set_id) {
            return unexpected("shares of different splits (" + first.set_id + ", " + s->set_id +
                              ")");
        }
        if (s->threshold != first.threshold || s->data.size() != first.data.size()) {
            return unexpected("share " + std::to_string(s->index) +
                              " does not fit the others of its split");
        }
        if (!indexes.insert(s->index).second) {
            return unexpected("share " + std::to_string(s->index) + " is given twice");
        }
    }
    if (shares.size() < first.threshold) {
        return unexpected(std::to_string(shares.size()) + " shares of " +
                          std::to_string(first.threshold) + " needed");
    }
    const std::size_t size = first.data.size();
    if (size < 48 || size % 16 != 0) {
        return unexpected(std::string("the shares have an impossible size"));
    }
    std::vector<unsigned char> numbers;
    numbers.reserve(shares.size());
    for (const Share* s : shares) {
        numbers.push_back(s->index);
    }
    Gfshare ctx(gfshare_ctx_init_dec(numbers.data(), static_cast<unsigned>(numbers.size()),
                                     static_cast<unsigned>(size)));
    if (!ctx) {
        return unexpected(std::string("libgfshare refused the shares"));
    }
    for (std::size_t i = 0; i < shares.size(); ++i) {
        Buffer data(size);
        std::memcpy(data.bytes.data(), shares[i]->data.bytes().data(), size);
        gfshare_ctx_dec_giveshare(ctx.get(), static_cast<unsigned char>(i), data.bytes.data());
    }
    Buffer secret(size);
    gfshare_ctx_dec_extract(ctx.get(), secret.bytes.data());
    const std::size_t length = secret.bytes[0];
    if (length == 0 || length > max_pin_size || 1 + length + kMinPadding > size) {
        return unexpected(
            std::string("the shares do not combine to a PIN: they are not shares of one split"));
    }
    return hsm::Secret(std::span<const unsigned char>(secret.bytes.data() + 1, length));
}

hsm::Secret format_share(const Share& share) {
    std::string text;
    text.reserve(64 + share.data.size() * 2);
    text += kPrefix;
    text += '-' + share.set_id + '-' + std::to_string(share.index) + '-' +
            std::to_string(share.threshold) + '-';
    base32_grouped(share.data.bytes(), text);
    const auto check = sha256(text);
    text += '-' + hex(std::span(check).first(4));
    hsm::Secret out = hsm::Secret::from_string(text);
    OPENSSL_cleanse(text.data(), text.size());
    return out;
}

Expected<Share, std::string> parse_share(std::string_view input) {
    const auto bad = [](const std::string& why) { return unexpected("not a share: " + why); };
    if (input.size() > kMaxShareText) {
        return bad("too long");
    }
    // Lower case, without white space.
    std::string text;
    text.reserve(input.size());
    for (char c : input) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        }
        text += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    struct Cleanse {
        std::string& s;
        ~Cleanse() { OPENSSL_cleanse(s.data(), s.size()); }
    } cleanse{text};
    std::vector<std::string_view> parts;
    for (std::size_t at = 0; at <= text.size();) {
        const std::size_t dash = std::min(text.find('-', at), text.size());
        parts.emplace_back(text.data() + at, dash - at);
        at = dash + 1;
    }
    if (parts.size() < 6 || parts[0] != kPrefix) {
        return bad("it does not start with " + std::string(kPrefix));
    }
    const std::string_view set_id = parts[1];
    const auto index = decimal(parts[2]);
    const auto threshold = decimal(parts[3]);
    const std::string_view check = parts.back();
    if (set_id.size() != 8 || !is_hex(set_id) || !index || *index < 1 || *index > 255 ||
        !threshold || *threshold < 2 || *threshold > 255 || check.size() != 8 || !is_hex(check)) {
        return bad("its set, index, threshold or check digits are malformed");
    }
    // The data: every group between the threshold and the check digits.
    std::vector<unsigned char> data;
    unsigned int buffer = 0;
    int bits = 0;
    for (std::size_t p = 4; p + 1 < parts.size(); ++p) {
        for (char c : parts[p]) {
            const auto v = kBase32.find(c);
            if (v == std::string_view::npos) {
                return bad("its data has a character outside the base32 alphabet");
            }
            buffer = (buffer << 5U) | static_cast<unsigned>(v);
            bits += 5;
            if (bits >= 8) {
                data.push_back(
                    static_cast<unsigned char>(buffer >> static_cast<unsigned>(bits - 8)));
                bits -= 8;
            }
        }
    }
    Buffer wiped(0);
    wiped.bytes.swap(data);
    if (bits >= 5 || wiped.bytes.size() < 48 || wiped.bytes.size() % 16 != 0 ||
        wiped.bytes.size() > hsm::Secret::max_size) {
        return bad("its data has an impossible length");
    }
    // The last character's bits past the data are zero in every share written: one mistyped
    // there would decode to the same bytes (and the same check digits) and be taken silently.
    const bool padded_with_zeros = (buffer & ((1U << static_cast<unsigned>(bits)) - 1U)) == 0;
    OPENSSL_cleanse(&buffer, sizeof buffer);  // the secret's last bits
    if (!padded_with_zeros) {
        return bad("its last data character is not one a share can end with: it was mistyped");
    }
    Share share{std::string(set_id), static_cast<std::uint8_t>(*index),
                static_cast<std::uint8_t>(*threshold), hsm::Secret(wiped.bytes)};
    // The check digits are over the canonical text: the same share written again.
    const hsm::Secret canonical = format_share(share);
    const std::string_view expected(reinterpret_cast<const char*>(canonical.bytes().data()),
                                    canonical.size());  // NOLINT
    if (CRYPTO_memcmp(expected.data() + expected.size() - 8, check.data(), 8) != 0) {
        return unexpected(
            std::string("the share's check digits do not match: it was mistyped or altered"));
    }
    return share;
}

std::string share_commitment(const Share& share) {
    std::string data = "dkim-appliance share commitment v1\n" + share.set_id + '\n';
    data += static_cast<char>(share.index);
    data += static_cast<char>(share.threshold);
    data.append(reinterpret_cast<const char*>(share.data.bytes().data()),  // NOLINT
                share.data.size());
    const auto digest = sha256(data);
    OPENSSL_cleanse(data.data(), data.size());
    return hex(digest);
}

// --- share files ---------------------------------------------------------------------------------

namespace {

constexpr std::string_view kFileFormat = "dkim-appliance share file v1";
constexpr std::uint64_t kMaxScryptN = std::uint64_t{1} << 20U;

bool scrypt(const hsm::Secret& passphrase, std::span<const unsigned char> salt, std::uint64_t n,
            std::array<unsigned char, 32>& key) {
    std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "SCRYPT", nullptr),
                                                          &EVP_KDF_free);
    if (!kdf) {
        return false;
    }
    std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()),
                                                                  &EVP_KDF_CTX_free);
    std::uint64_t r = 8;
    std::uint64_t p = 1;
    std::uint64_t maxmem = std::uint64_t{1} << 30U;
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_PASSWORD,
            const_cast<unsigned char*>(passphrase.bytes().data()),  // NOLINT
            passphrase.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                          const_cast<unsigned char*>(salt.data()),  // NOLINT
                                          salt.size()),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end()};
    return ctx && EVP_KDF_derive(ctx.get(), key.data(), key.size(), params) == 1;
}

std::string file_aad(std::string_view custodian, const std::string& set, unsigned index) {
    return std::string(kFileFormat) + "\ncustodian=" + std::string(custodian) + "\nset=" + set +
           "\nindex=" + std::to_string(index) + "\n";
}

bool is_name(std::string_view s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-' || c == '@';
    });
}

// The value of "key": a string ("...") or a number, in our own files' flat JSON (no escapes).
std::optional<std::string> json_field(std::string_view json, std::string_view key) {
    const std::string quoted = "\"" + std::string(key) + "\":";
    const auto at = json.find(quoted);
    if (at == std::string_view::npos || json.find(quoted, at + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view rest = json.substr(at + quoted.size());
    if (rest.starts_with("\"")) {
        const auto end = rest.find('"', 1);
        if (end == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view value = rest.substr(1, end - 1);
        if (value.find('\\') != std::string_view::npos) {
            return std::nullopt;
        }
        return std::string(value);
    }
    std::size_t end = 0;
    while (end < rest.size() && rest[end] >= '0' && rest[end] <= '9') {
        ++end;
    }
    if (end == 0 || end > 10) {
        return std::nullopt;
    }
    return std::string(rest.substr(0, end));
}

}  // namespace

Expected<std::string, std::string> encrypt_share_file(const Share& share,
                                                      std::string_view custodian,
                                                      const hsm::Secret& passphrase,
                                                      std::uint64_t scrypt_n) {
    if (!is_name(custodian)) {
        return unexpected(std::string("a custodian's name: letters, digits, . _ - @"));
    }
    if (scrypt_n < 2 || scrypt_n > kMaxScryptN || (scrypt_n & (scrypt_n - 1)) != 0) {
        return unexpected(std::string("scrypt's N: a power of two up to 2^20"));
    }
    std::array<unsigned char, 16> salt{};
    std::array<unsigned char, 12> iv{};
    std::array<unsigned char, 32> key{};
    if (RAND_bytes(salt.data(), 16) != 1 || RAND_bytes(iv.data(), 12) != 1 ||
        !scrypt(passphrase, salt, scrypt_n, key)) {
        OPENSSL_cleanse(key.data(), key.size());
        return unexpected(std::string("cannot derive a key from the passphrase"));
    }
    const hsm::Secret text = format_share(share);
    const std::string aad = file_aad(custodian, share.set_id, share.index);
    std::vector<unsigned char> out(text.size() + 16);
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                        &EVP_CIPHER_CTX_free);
    int len = 0;
    int tail = 0;
    const bool ok =
        ctx &&
        EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), iv.data()) == 1 &&
        EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(aad.data()),  // NOLINT
                          static_cast<int>(aad.size())) == 1 &&
        EVP_EncryptUpdate(ctx.get(), out.data(), &len, text.bytes().data(),
                          static_cast<int>(text.size())) == 1 &&
        EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &tail) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, out.data() + text.size()) == 1;
    OPENSSL_cleanse(key.data(), key.size());
    if (!ok) {
        return unexpected(std::string("AES-GCM failed"));
    }
    auto b64 = [](std::span<const unsigned char> b) {
        return crypto::base64_encode(
            std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));  // NOLINT
    };
    return "{\"format\":\"" + std::string(kFileFormat) + "\",\"custodian\":\"" +
           std::string(custodian) + "\",\"set\":\"" + share.set_id +
           "\",\"index\":" + std::to_string(share.index) +
           ",\"kdf\":\"scrypt\",\"n\":" + std::to_string(scrypt_n) +
           ",\"r\":8,\"p\":1,\"salt\":\"" + b64(salt) + "\",\"iv\":\"" + b64(iv) +
           "\",\"ciphertext\":\"" + b64(out) + "\"}\n";
}

Expected<ShareFile, std::string> decrypt_share_file(std::string_view json,
                                                    const hsm::Secret& passphrase) {
    const auto bad = [] { return unexpected(std::string("not a share file of this appliance")); };
    if (json.size() > 8192) {
        return bad();
    }
    const auto format = json_field(json, "format");
    const auto custodian = json_field(json, "custodian");
    const auto set = json_field(json, "set");
    const auto index = json_field(json, "index");
    const auto kdf = json_field(json, "kdf");
    const auto n = json_field(json, "n");
    const auto r = json_field(json, "r");
    const auto p = json_field(json, "p");
    const auto salt_text = json_field(json, "salt");
    const auto iv_text = json_field(json, "iv");
    const auto ct_text = json_field(json, "ciphertext");
    if (!format || *format != kFileFormat || !custodian || !is_name(*custodian) || !set ||
        set->size() != 8 || !is_hex(*set) || !index || !kdf || *kdf != "scrypt" || !n || !r ||
        *r != "8" || !p || *p != "1" || !salt_text || !iv_text || !ct_text) {
        return bad();
    }
    // scrypt's N: digits only, at most 2^20 (seven digits), no leading zero.
    std::uint64_t cost = 0;
    if (n->empty() || n->size() > 7 || (*n)[0] == '0' ||
        n->find_first_not_of("0123456789") != std::string::npos) {
        return bad();
    }
    for (const char c : *n) {
        cost = cost * 10 + static_cast<std::uint64_t>(c - '0');
    }
    const auto idx = decimal(*index);
    if (cost < 2 || cost > kMaxScryptN || (cost & (cost - 1)) != 0 || !idx || *idx < 1 ||
        *idx > 255) {
        return bad();
    }
    const auto salt = crypto::base64_decode(*salt_text);
    const auto iv = crypto::base64_decode(*iv_text);
    const auto ct = crypto::base64_decode(*ct_text);
    if (!salt || salt->size() != 16 || !iv || iv->size() != 12 || !ct || ct->size() <= 16 ||
        ct->size() > kMaxShareText + 16) {
        return bad();
    }
    std::array<unsigned char, 32> key{};
    if (!scrypt(passphrase,
                std::span(reinterpret_cast<const unsigned char*>(salt->data()),  // NOLINT
                          salt->size()),
                cost, key)) {
        return bad();
    }
    const std::string aad = file_aad(*custodian, *set, *idx);
    const std::size_t size = ct->size() - 16;
    Buffer plain(size + 1);
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                        &EVP_CIPHER_CTX_free);
    const auto* c = reinterpret_cast<const unsigned char*>(ct->data());  // NOLINT
    std::array<unsigned char, 16> tag{};
    std::memcpy(tag.data(), c + size, 16);
    int len = 0;
    int tail = 0;
    const bool ok =
        ctx &&
        EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(),
                           reinterpret_cast<const unsigned char*>(iv->data())) == 1 &&  // NOLINT
        EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(aad.data()),  // NOLINT
                          static_cast<int>(aad.size())) == 1 &&
        EVP_DecryptUpdate(ctx.get(), plain.bytes.data(), &len, c, static_cast<int>(size)) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
        EVP_DecryptFinal_ex(ctx.get(), plain.bytes.data() + len, &tail) == 1;
    OPENSSL_cleanse(key.data(), key.size());
    if (!ok) {
        return unexpected(std::string("the passphrase does not open it"));
    }
    auto share = parse_share(
        std::string_view(reinterpret_cast<const char*>(plain.bytes.data()), size));  // NOLINT
    if (!share || share->set_id != *set || share->index != *idx) {
        return bad();
    }
    return ShareFile{*custodian, std::move(*share)};
}

}  // namespace dkim::custody

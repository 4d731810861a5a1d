#include "dkim/custody/envelope.hpp"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include "dkim/crypto/base64.hpp"

namespace dkim::custody {

namespace {

constexpr std::string_view kHkdfInfo = "dkim-appliance pin envelope v1";
constexpr std::size_t kTag = 16;

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct KdfFree {
    void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct KdfCtxFree {
    void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Key material on the stack, cleansed when it goes out of scope.
template <std::size_t N>
struct Wiped {
    std::array<unsigned char, N> bytes{};
    Wiped() = default;
    Wiped(const Wiped&) = delete;
    Wiped& operator=(const Wiped&) = delete;
    ~Wiped() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
    unsigned char* data() { return bytes.data(); }
};

std::string_view text_of(std::span<const unsigned char> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};  // NOLINT
}

std::string b64url(std::span<const unsigned char> b) {
    return crypto::base64url_encode(text_of(b));
}

// Strict base64url without padding: only the alphabet, and a length a canonical encoder makes.
std::optional<std::string> strict_b64url(std::string_view text) {
    for (char c : text) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok) {
            return std::nullopt;
        }
    }
    if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    auto decoded = crypto::base64url_decode(text);
    if (!decoded || crypto::base64url_encode(*decoded) != text) {
        return std::nullopt;  // non-zero trailing bits: not the canonical form
    }
    return decoded;
}

Pkey x25519_private(std::span<const unsigned char> raw) {
    return Pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, raw.data(), raw.size()));
}

Pkey x25519_public(const PublicKey& raw) {
    return Pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, raw.data(), raw.size()));
}

// X25519(private, peer) into `out`; false for a failure or an all-zero result (a low-order
// point: OpenSSL refuses it too).
bool derive(EVP_PKEY* own, EVP_PKEY* peer, Wiped<32>& out) {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(own, nullptr));
    std::size_t size = out.bytes.size();
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
        EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1 ||
        EVP_PKEY_derive(ctx.get(), out.data(), &size) != 1 || size != out.bytes.size()) {
        return false;
    }
    unsigned char any = 0;
    for (unsigned char b : out.bytes) {
        any |= b;
    }
    return any != 0;
}

bool hkdf(const Wiped<32>& shared, const PublicKey& ephemeral, const PublicKey& recipient,
          Wiped<32>& key) {
    std::unique_ptr<EVP_KDF, KdfFree> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
    if (!kdf) {
        return false;
    }
    std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(EVP_KDF_CTX_new(kdf.get()));
    std::array<unsigned char, 64> salt{};
    std::memcpy(salt.data(), ephemeral.data(), 32);
    std::memcpy(salt.data() + 32, recipient.data(), 32);
    char digest[] = "SHA256";
    std::string info(kHkdfInfo);
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_KEY,
            const_cast<unsigned char*>(shared.bytes.data()),  // NOLINT
            shared.bytes.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt.data(), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
        OSSL_PARAM_construct_end()};
    return ctx && EVP_KDF_derive(ctx.get(), key.data(), key.bytes.size(), params) == 1;
}

}  // namespace

// --- text form -----------------------------------------------------------------------------------

Expected<Envelope, std::string> parse_envelope(std::string_view text) {
    const auto bad = [] { return unexpected(std::string("not a v1 envelope")); };
    if (text.size() > max_envelope_text || !text.starts_with("v1.")) {
        return bad();
    }
    text.remove_prefix(3);
    const auto dot1 = text.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : text.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || text.find('.', dot2 + 1) != std::string_view::npos) {
        return bad();
    }
    const auto ephemeral = strict_b64url(text.substr(0, dot1));
    const auto iv = strict_b64url(text.substr(dot1 + 1, dot2 - dot1 - 1));
    const auto ciphertext = strict_b64url(text.substr(dot2 + 1));
    if (!ephemeral || !iv || !ciphertext || ephemeral->size() != 32 || iv->size() != 12 ||
        ciphertext->size() < kTag || ciphertext->size() > hsm::Secret::max_size + kTag) {
        return bad();
    }
    Envelope e;
    std::memcpy(e.ephemeral.data(), ephemeral->data(), 32);
    std::memcpy(e.iv.data(), iv->data(), 12);
    e.ciphertext.assign(ciphertext->begin(), ciphertext->end());
    return e;
}

std::string format_envelope(const Envelope& e) {
    return "v1." + b64url(e.ephemeral) + "." + b64url(e.iv) + "." + b64url(e.ciphertext);
}

std::string envelope_associated_data(std::string_view purpose, std::string_view subject,
                                     std::string_view key_id) {
    return "dkim-appliance pin envelope v1\npurpose=" + std::string(purpose) +
           "\nsubject=" + std::string(subject) + "\nkey=" + std::string(key_id) + "\n";
}

// --- sealing
// ---------------------------------------------------------------------------------------

Expected<RecipientKey, std::string> generate_recipient_key() {
    Wiped<32> raw;
    if (RAND_priv_bytes(raw.data(), 32) != 1) {
        return unexpected(std::string("the random generator failed"));
    }
    Pkey key = x25519_private(raw.bytes);
    RecipientKey out;
    std::size_t size = out.public_key.size();
    if (!key || EVP_PKEY_get_raw_public_key(key.get(), out.public_key.data(), &size) != 1) {
        return unexpected(std::string("cannot make an X25519 key"));
    }
    out.private_key = hsm::Secret(raw.bytes);
    return out;
}

Expected<Envelope, std::string> seal_with(std::span<const unsigned char> plaintext,
                                          const PublicKey& recipient,
                                          std::string_view associated_data,
                                          std::span<const unsigned char, 32> ephemeral_private,
                                          std::span<const unsigned char, 12> iv) {
    if (plaintext.empty() || plaintext.size() > hsm::Secret::max_size) {
        return unexpected(std::string("the sealed text must be 1 to 1024 bytes"));
    }
    Pkey own = x25519_private(ephemeral_private);
    Pkey peer = x25519_public(recipient);
    Envelope e;
    std::size_t size = e.ephemeral.size();
    if (!own || !peer || EVP_PKEY_get_raw_public_key(own.get(), e.ephemeral.data(), &size) != 1) {
        return unexpected(std::string("cannot use the X25519 keys"));
    }
    Wiped<32> shared;
    Wiped<32> key;
    if (!derive(own.get(), peer.get(), shared) || !hkdf(shared, e.ephemeral, recipient, key)) {
        return unexpected(std::string("cannot agree on a key with the recipient"));
    }
    std::copy(iv.begin(), iv.end(), e.iv.begin());
    std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
    e.ciphertext.resize(plaintext.size() + kTag);
    int len = 0;
    int tail = 0;
    const bool ok =
        ctx &&
        EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), e.iv.data()) == 1 &&
        EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(associated_data.data()),  // NOLINT
                          static_cast<int>(associated_data.size())) == 1 &&
        EVP_EncryptUpdate(ctx.get(), e.ciphertext.data(), &len, plaintext.data(),
                          static_cast<int>(plaintext.size())) == 1 &&
        EVP_EncryptFinal_ex(ctx.get(), e.ciphertext.data() + len, &tail) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTag),
                            e.ciphertext.data() + plaintext.size()) == 1;
    if (!ok) {
        return unexpected(std::string("AES-GCM failed"));
    }
    return e;
}

Expected<Envelope, std::string> seal(std::span<const unsigned char> plaintext,
                                     const PublicKey& recipient, std::string_view associated_data) {
    Wiped<32> ephemeral;
    std::array<unsigned char, 12> iv{};
    if (RAND_priv_bytes(ephemeral.data(), 32) != 1 || RAND_bytes(iv.data(), 12) != 1) {
        return unexpected(std::string("the random generator failed"));
    }
    return seal_with(plaintext, recipient, associated_data,
                     std::span<const unsigned char, 32>(ephemeral.bytes), iv);
}

Expected<hsm::Secret, std::string> open(const Envelope& e, const RecipientKey& recipient,
                                        std::string_view associated_data) {
    const auto fail = [] { return unexpected(std::string("the envelope does not open")); };
    if (e.ciphertext.size() < kTag || e.ciphertext.size() > hsm::Secret::max_size + kTag ||
        recipient.private_key.size() != 32) {
        return fail();
    }
    Pkey own = x25519_private(recipient.private_key.bytes());
    Pkey peer = x25519_public(e.ephemeral);
    Wiped<32> shared;
    Wiped<32> key;
    if (!own || !peer || !derive(own.get(), peer.get(), shared) ||
        !hkdf(shared, e.ephemeral, recipient.public_key, key)) {
        return fail();
    }
    const std::size_t size = e.ciphertext.size() - kTag;
    std::vector<unsigned char> plain(size + 1);
    std::array<unsigned char, kTag> tag{};
    std::memcpy(tag.data(), e.ciphertext.data() + size, kTag);
    std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    int tail = 0;
    const bool ok =
        ctx &&
        EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), e.iv.data()) == 1 &&
        EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(associated_data.data()),  // NOLINT
                          static_cast<int>(associated_data.size())) == 1 &&
        EVP_DecryptUpdate(ctx.get(), plain.data(), &len, e.ciphertext.data(),
                          static_cast<int>(size)) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTag), tag.data()) ==
            1 &&
        EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &tail) == 1;
    hsm::Secret out;
    if (ok && size > 0) {
        out = hsm::Secret(std::span<const unsigned char>(plain.data(), size));
    }
    OPENSSL_cleanse(plain.data(), plain.size());
    if (!ok || size == 0) {
        return fail();
    }
    return out;
}

// --- the identity key
// -----------------------------------------------------------------------------

IdentityKey::IdentityKey(IdentityKey&& other) noexcept
    : key_(std::exchange(other.key_, nullptr)), public_key_(other.public_key_) {}

IdentityKey& IdentityKey::operator=(IdentityKey&& other) noexcept {
    if (this != &other) {
        EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
        key_ = std::exchange(other.key_, nullptr);
        public_key_ = other.public_key_;
    }
    return *this;
}

IdentityKey::~IdentityKey() {
    EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

Expected<IdentityKey, std::string> IdentityKey::generate() {
    EVP_PKEY* key = nullptr;
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &key) != 1) {
        return unexpected(std::string("cannot make an Ed25519 key"));
    }
    IdentityKey out;
    out.key_ = key;
    std::size_t size = out.public_key_.size();
    if (EVP_PKEY_get_raw_public_key(key, out.public_key_.data(), &size) != 1) {
        return unexpected(std::string("cannot read the Ed25519 public key"));
    }
    return out;
}

Expected<IdentityKey, std::string> IdentityKey::load_or_create(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        if ((st.st_mode & 077U) != 0) {
            return unexpected(path + ": the identity key is readable by others (chmod 600)");
        }
        std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "re"), &std::fclose);
        if (!file) {
            return unexpected(path + ": " + std::generic_category().message(errno));
        }
        EVP_PKEY* key = PEM_read_PrivateKey(file.get(), nullptr, nullptr, nullptr);
        if (key == nullptr || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
            EVP_PKEY_free(key);
            return unexpected(path + ": not an Ed25519 private key in PEM");
        }
        IdentityKey out;
        out.key_ = key;
        std::size_t size = out.public_key_.size();
        if (EVP_PKEY_get_raw_public_key(key, out.public_key_.data(), &size) != 1) {
            return unexpected(path + ": cannot read its public key");
        }
        return out;
    }
    if (errno != ENOENT) {
        return unexpected(path + ": " + std::generic_category().message(errno));
    }
    auto made = generate();
    if (!made) {
        return made;
    }
    // A new file beside it, written and synced, then renamed into place.
    const std::string temp = path + ".new";
    std::filesystem::remove(temp);
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return unexpected(temp + ": " + std::generic_category().message(errno));
    }
    FILE* file = ::fdopen(fd, "w");  // NOLINT(cppcoreguidelines-owning-memory): closed below
    if (file == nullptr) {
        ::close(fd);
        return unexpected(temp + ": " + std::generic_category().message(errno));
    }
    const bool written = PEM_write_PrivateKey(file, static_cast<EVP_PKEY*>(made->key_), nullptr,
                                              nullptr, 0, nullptr, nullptr) == 1 &&
                         std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
    const bool closed = std::fclose(file) == 0;  // NOLINT(cppcoreguidelines-owning-memory)
    if (!written || !closed || std::rename(temp.c_str(), path.c_str()) != 0) {
        std::filesystem::remove(temp);
        return unexpected(path + ": cannot write the identity key");
    }
    return made;
}

std::string fingerprint(const PublicKey& identity) {
    std::array<unsigned char, 32> digest{};
    unsigned int size = 0;
    EVP_Digest(identity.data(), identity.size(), digest.data(), &size, EVP_sha256(), nullptr);
    std::string b64 = crypto::base64_encode(text_of(digest));
    while (!b64.empty() && b64.back() == '=') {
        b64.pop_back();
    }
    return "SHA256:" + b64;
}

std::string IdentityKey::fingerprint() const {
    return custody::fingerprint(public_key_);
}

std::array<unsigned char, 64> IdentityKey::sign(std::span<const unsigned char> message) const {
    std::array<unsigned char, 64> out{};
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    std::size_t size = out.size();
    if (!ctx ||
        EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) !=
            1 ||
        EVP_DigestSign(ctx.get(), out.data(), &size, message.data(), message.size()) != 1) {
        out.fill(0);  // verifies against nothing
    }
    return out;
}

bool verify_identity_signature(const PublicKey& identity, std::span<const unsigned char> message,
                               std::span<const unsigned char> signature) {
    if (signature.size() != 64) {
        return false;
    }
    Pkey key(
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, identity.data(), identity.size()));
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    return key && ctx &&
           EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
           EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                            message.size()) == 1;
}

std::string key_offer_statement(std::string_view purpose, std::string_view subject,
                                std::string_view user, std::string_view key_id,
                                const PublicKey& public_key, std::int64_t expires_unix_ms) {
    return "dkim-appliance pin envelope key v1\npurpose=" + std::string(purpose) +
           "\nsubject=" + std::string(subject) + "\nuser=" + std::string(user) +
           "\nkey=" + std::string(key_id) + "\npublic=" + b64url(public_key) +
           "\nexpires=" + std::to_string(expires_unix_ms) + "\n";
}

}  // namespace dkim::custody

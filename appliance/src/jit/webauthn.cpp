#include "dkim/jit/webauthn.hpp"

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include <array>
#include <map>
#include <optional>
#include <utility>

#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/sha256.hpp"
#include "webauthn_cbor.hpp"
#include "webauthn_detail.hpp"

// RapidJSON as cereal's JSON archive uses it (Debian's rapidjson-dev, which libcereal-dev
// depends on). The parse is iterative (no recursion on nested input) and validates UTF-8.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

namespace dkim::jit::webauthn {
namespace {

// WebAuthn §6.1: rpIdHash (32), flags (1), signCount (4).
constexpr std::size_t kAuthenticatorDataFixedSize = 37;
// §6.5.1: "credentialIdLength ... Credential ID length L ... MUST be <= 1023".
constexpr std::size_t kMaxCredentialIdSize = 1023;
// clientDataJSON is a few hundred bytes from any browser; a bound keeps the parser's memory small.
constexpr std::size_t kMaxClientDataSize = std::size_t{64} * 1024;
// RSA moduli we take: 2048 to 4096 bits (RS256 authenticators such as Windows Hello use 2048;
// larger ones only cost verification time).
constexpr std::size_t kMinRsaModulusBytes = 256;
constexpr std::size_t kMaxRsaModulusBytes = 512;
// libfido2's rs256_pk_t holds a 3-byte exponent; 65537 is what authenticators use.
constexpr std::size_t kMaxRsaExponentBytes = 3;

// COSE (RFC 9052 §7.1, RFC 9053 §7): key labels and values.
constexpr std::int64_t kCoseLabelKty = 1;
constexpr std::int64_t kCoseLabelAlg = 3;
constexpr std::int64_t kCoseLabelCrvOrN = -1;
constexpr std::int64_t kCoseLabelXOrE = -2;
constexpr std::int64_t kCoseLabelY = -3;
constexpr std::int64_t kCoseKtyOkp = 1;
constexpr std::int64_t kCoseKtyEc2 = 2;
constexpr std::int64_t kCoseKtyRsa = 3;
constexpr std::int64_t kCoseCrvP256 = 1;
constexpr std::int64_t kCoseCrvEd25519 = 6;
constexpr std::int64_t kCoseAlgEs256 = -7;
constexpr std::int64_t kCoseAlgEdDsa = -8;
constexpr std::int64_t kCoseAlgRs256 = -257;
constexpr std::size_t kCoordinateSize = 32;

Unexpected<Failure> malformed_input(std::string message) {
    return unexpected(Failure{Failure::Reason::malformed, std::move(message)});
}

Unexpected<Failure> key_not_accepted(std::string message) {
    return unexpected(Failure{Failure::Reason::algorithm, std::move(message)});
}

// The one data item `encoded` holds, read as an integer or a byte string.
std::optional<std::int64_t> cose_integer(const std::optional<std::string_view>& encoded) {
    if (!encoded) {
        return std::nullopt;
    }
    cbor::Reader reader(*encoded);
    auto value = reader.integer();
    if (!value || !reader.at_end()) {
        return std::nullopt;
    }
    return *value;
}

std::optional<std::string_view> cose_bytes(const std::optional<std::string_view>& encoded) {
    if (!encoded) {
        return std::nullopt;
    }
    cbor::Reader reader(*encoded);
    auto value = reader.byte_string();
    if (!value || !reader.at_end()) {
        return std::nullopt;
    }
    return *value;
}

// RFC 9053 §7.1.1: x and y must be a point on P-256 (OpenSSL refuses coordinates outside the
// field and points off the curve).
bool on_p256(std::string_view x, std::string_view y) {
    struct GroupFree {
        void operator()(EC_GROUP* g) const { EC_GROUP_free(g); }
    };
    struct PointFree {
        void operator()(EC_POINT* p) const { EC_POINT_free(p); }
    };
    const std::unique_ptr<EC_GROUP, GroupFree> group(
        EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
    if (!group) {
        return false;
    }
    const std::unique_ptr<EC_POINT, PointFree> point(EC_POINT_new(group.get()));
    if (!point) {
        return false;
    }
    std::string uncompressed = "\x04";
    uncompressed.append(x);
    uncompressed.append(y);
    return EC_POINT_oct2point(group.get(), point.get(),
                              reinterpret_cast<const unsigned char*>(uncompressed.data()),
                              uncompressed.size(), nullptr) == 1 &&
           EC_POINT_is_at_infinity(group.get(), point.get()) == 0;
}

Expected<CoseKey, Failure> cose_rsa_key(std::optional<std::string_view> n_item,
                                        std::optional<std::string_view> e_item) {
    const auto n = cose_bytes(n_item);
    const auto e = cose_bytes(e_item);
    if (!n || !e) {
        return malformed_input("COSE key: an RSA key needs n (-1) and e (-2) as byte strings");
    }
    if (n->empty() || n->front() == '\0' || e->empty() || e->front() == '\0') {
        return malformed_input("COSE key: an RSA n or e with a leading zero byte");
    }
    if (n->size() < kMinRsaModulusBytes) {
        return key_not_accepted("COSE key: an RSA modulus shorter than 2048 bits");
    }
    if (n->size() > kMaxRsaModulusBytes) {
        return key_not_accepted("COSE key: an RSA modulus longer than 4096 bits");
    }
    const bool odd_modulus = (static_cast<std::uint8_t>(n->back()) & 1) != 0;
    const bool odd_exponent = (static_cast<std::uint8_t>(e->back()) & 1) != 0;
    if (!odd_modulus || !odd_exponent || e->size() > kMaxRsaExponentBytes ||
        (e->size() == 1 && static_cast<std::uint8_t>(e->front()) < 3)) {
        return malformed_input(
            "COSE key: not a usable RSA public key (n even, or e even, 1 or "
            "longer than 3 bytes)");
    }
    CoseKey key;
    key.algorithm = Algorithm::rs256;
    key.x = std::string(*n);
    key.y = std::string(*e);
    return key;
}

// The COSE_Key's items by label, before they are interpreted (their meaning depends on kty).
struct CoseItems {
    std::optional<std::string_view> kty;
    std::optional<std::string_view> alg;
    std::optional<std::string_view> minus_one;
    std::optional<std::string_view> minus_two;
    std::optional<std::string_view> minus_three;
};

Expected<CoseItems, Failure> read_cose_items(cbor::Reader& reader) {
    auto count = reader.map_count();
    if (!count) {
        return malformed_input("COSE key: " + std::move(count).error());
    }
    CoseItems items;
    cbor::MapKeyOrder order;
    for (std::uint64_t i = 0; i < *count; ++i) {
        const std::size_t key_start = reader.offset();
        // Labels are integers or text (RFC 9052 §7); neither is a container.
        auto skipped_key = reader.skip(0);
        if (!skipped_key) {
            return malformed_input("COSE key: " + std::move(skipped_key).error());
        }
        const std::string_view encoded_key = reader.span_from(key_start);
        auto ordered = order.next(encoded_key);
        if (!ordered) {
            return malformed_input("COSE key: " + std::move(ordered).error());
        }
        const std::size_t value_start = reader.offset();
        auto skipped_value = reader.skip(cbor::kMaxDepth - 1);
        if (!skipped_value) {
            return malformed_input("COSE key: " + std::move(skipped_value).error());
        }
        const std::string_view value = reader.span_from(value_start);
        const auto label = cose_integer(encoded_key);
        if (!label) {
            continue;  // a text label: no COSE key parameter we use has one
        }
        switch (*label) {
            case kCoseLabelKty: items.kty = value; break;
            case kCoseLabelAlg: items.alg = value; break;
            case kCoseLabelCrvOrN: items.minus_one = value; break;
            case kCoseLabelXOrE: items.minus_two = value; break;
            case kCoseLabelY: items.minus_three = value; break;
            default: break;  // kid, key_ops, base IV: not used by WebAuthn, ignored
        }
    }
    return items;
}

}  // namespace

namespace detail {

Expected<CoseKey, Failure> parse_cose_key(std::string_view cbor_bytes, std::size_t* consumed) {
    cbor::Reader reader(cbor_bytes);
    auto items = read_cose_items(reader);
    if (!items) {
        return unexpected(std::move(items).error());
    }
    const auto kty = cose_integer(items->kty);
    const auto alg = cose_integer(items->alg);
    if (!kty || !alg) {
        return malformed_input("COSE key: kty (1) and alg (3) are required integers");
    }
    if (*alg != kCoseAlgEs256 && *alg != kCoseAlgEdDsa && *alg != kCoseAlgRs256) {
        return key_not_accepted("COSE key: algorithm " + std::to_string(*alg) +
                                " is not one of ES256 (-7), EdDSA (-8), RS256 (-257)");
    }
    const std::int64_t expected_kty = *alg == kCoseAlgEs256   ? kCoseKtyEc2
                                      : *alg == kCoseAlgEdDsa ? kCoseKtyOkp
                                                              : kCoseKtyRsa;
    if (*kty != expected_kty) {
        return malformed_input("COSE key: key type " + std::to_string(*kty) +
                               " does not go with algorithm " + std::to_string(*alg));
    }
    Expected<CoseKey, Failure> key = malformed_input("COSE key: unreachable");
    if (*alg == kCoseAlgRs256) {
        key = cose_rsa_key(items->minus_one, items->minus_two);
    } else {
        const auto crv = cose_integer(items->minus_one);
        const auto x = cose_bytes(items->minus_two);
        const bool ec2 = *alg == kCoseAlgEs256;
        const auto y = cose_bytes(items->minus_three);
        if (!crv) {
            return malformed_input("COSE key: crv (-1) is a required integer");
        }
        if (*crv != (ec2 ? kCoseCrvP256 : kCoseCrvEd25519)) {
            return key_not_accepted("COSE key: curve " + std::to_string(*crv) +
                                    (ec2 ? " is not P-256 (1)" : " is not Ed25519 (6)"));
        }
        if (!x || x->size() != kCoordinateSize) {
            return malformed_input("COSE key: x (-2) is not a 32-byte string");
        }
        if (ec2 && (!y || y->size() != kCoordinateSize)) {
            return malformed_input("COSE key: y (-3) is not a 32-byte string");
        }
        if (!ec2 && items->minus_three) {
            return malformed_input("COSE key: an OKP key with a y (-3)");
        }
        if (ec2 && !on_p256(*x, *y)) {
            return malformed_input("COSE key: the point is not on P-256");
        }
        CoseKey parsed;
        parsed.algorithm = ec2 ? Algorithm::es256 : Algorithm::ed25519;
        parsed.x = std::string(*x);
        parsed.y = ec2 ? std::string(*y) : std::string();
        key = std::move(parsed);
    }
    if (key && consumed != nullptr) {
        *consumed = reader.offset();
    }
    return key;
}

Expected<AuthenticatorData, Failure> parse_authenticator_data(std::string_view bytes) {
    if (bytes.size() < kAuthenticatorDataFixedSize) {
        return malformed_input("authenticator data shorter than 37 bytes");
    }
    AuthenticatorData data;
    for (std::size_t i = 0; i < data.rp_id_hash.size(); ++i) {
        data.rp_id_hash[i] = static_cast<std::uint8_t>(bytes[i]);
    }
    data.flags = static_cast<std::uint8_t>(bytes[32]);
    for (std::size_t i = 33; i < kAuthenticatorDataFixedSize; ++i) {
        data.sign_count = (data.sign_count << 8) | static_cast<std::uint8_t>(bytes[i]);
    }
    // §6.1: "If the BE flag is not set, the BS flag MUST NOT be set."
    if (data.backed_up() && !data.backup_eligible()) {
        return malformed_input("authenticator data: backed up (BS) but not backup eligible (BE)");
    }
    std::string_view rest = bytes.substr(kAuthenticatorDataFixedSize);
    if ((data.flags & AuthenticatorData::kAttested) != 0) {
        // §6.5.1: aaguid (16), credentialIdLength (2, big-endian), credentialId, the COSE key.
        if (rest.size() < 18) {
            return malformed_input("authenticator data: attested credential data cut short");
        }
        AttestedCredential attested;
        for (std::size_t i = 0; i < attested.aaguid.size(); ++i) {
            attested.aaguid[i] = static_cast<std::uint8_t>(rest[i]);
        }
        const std::size_t id_size = (std::size_t{static_cast<std::uint8_t>(rest[16])} << 8) |
                                    static_cast<std::uint8_t>(rest[17]);
        rest.remove_prefix(18);
        if (id_size == 0 || id_size > kMaxCredentialIdSize) {
            return malformed_input("authenticator data: a credential id length outside 1 to 1023");
        }
        if (id_size > rest.size()) {
            return malformed_input("authenticator data: the credential id runs past the end");
        }
        attested.credential_id = std::string(rest.substr(0, id_size));
        rest.remove_prefix(id_size);
        std::size_t key_size = 0;
        auto key = parse_cose_key(rest, &key_size);
        if (!key) {
            return unexpected(std::move(key).error());
        }
        attested.public_key = std::string(rest.substr(0, key_size));
        attested.key = std::move(*key);
        rest.remove_prefix(key_size);
        data.attested = std::move(attested);
    }
    if ((data.flags & AuthenticatorData::kExtensions) != 0) {
        data.has_extensions = true;
        cbor::Reader reader(rest);
        if (rest.empty() || (static_cast<std::uint8_t>(rest.front()) >> 5) !=
                                static_cast<std::uint8_t>(cbor::Major::map)) {
            return malformed_input("authenticator data: the extensions (ED) are not a CBOR map");
        }
        auto skipped = reader.skip(cbor::kMaxDepth);
        if (!skipped) {
            return malformed_input("authenticator data extensions: " + std::move(skipped).error());
        }
        rest.remove_prefix(reader.offset());
    }
    if (!rest.empty()) {
        return malformed_input("authenticator data: bytes follow where nothing may");
    }
    return data;
}

Expected<AttestationObject, Failure> parse_attestation_object(std::string_view bytes) {
    cbor::Reader reader(bytes);
    auto count = reader.map_count();
    if (!count) {
        return malformed_input("attestation object: " + std::move(count).error());
    }
    std::optional<std::string_view> format;
    std::optional<std::string_view> statement;
    std::optional<std::string_view> auth_data;
    cbor::MapKeyOrder order;
    for (std::uint64_t i = 0; i < *count; ++i) {
        const std::size_t key_start = reader.offset();
        auto name = reader.text_string();
        if (!name) {
            return malformed_input("attestation object: " + std::move(name).error());
        }
        auto ordered = order.next(reader.span_from(key_start));
        if (!ordered) {
            return malformed_input("attestation object: " + std::move(ordered).error());
        }
        if (*name == "fmt") {
            auto value = reader.text_string();
            if (!value) {
                return malformed_input("attestation object fmt: " + std::move(value).error());
            }
            format = *value;
        } else if (*name == "attStmt") {
            const std::size_t start = reader.offset();
            if (reader.at_end() || (static_cast<std::uint8_t>(bytes[start]) >> 5) !=
                                       static_cast<std::uint8_t>(cbor::Major::map)) {
                return malformed_input("attestation object: attStmt is not a map");
            }
            auto skipped = reader.skip(cbor::kMaxDepth - 1);
            if (!skipped) {
                return malformed_input("attestation object attStmt: " + std::move(skipped).error());
            }
            statement = reader.span_from(start);
        } else if (*name == "authData") {
            auto value = reader.byte_string();
            if (!value) {
                return malformed_input("attestation object authData: " + std::move(value).error());
            }
            auth_data = *value;
        } else {
            return malformed_input(
                "attestation object: a member other than fmt, attStmt and "
                "authData");
        }
    }
    if (!reader.at_end()) {
        return malformed_input("attestation object: bytes follow the map");
    }
    if (!format || !statement || !auth_data) {
        return malformed_input("attestation object: fmt, attStmt and authData are required");
    }
    auto parsed = parse_authenticator_data(*auth_data);
    if (!parsed) {
        return unexpected(std::move(parsed).error());
    }
    if (!parsed->attested) {
        return malformed_input(
            "attestation object: the authenticator data has no attested "
            "credential (AT)");
    }
    AttestationObject object;
    object.format = std::string(*format);
    object.auth_data = std::string(*auth_data);
    object.parsed = std::move(*parsed);
    object.statement = std::string(*statement);
    return object;
}

}  // namespace detail

std::string_view to_string(Algorithm a) noexcept {
    switch (a) {
        case Algorithm::es256: return "ES256";
        case Algorithm::ed25519: return "Ed25519";
        case Algorithm::rs256: return "RS256";
    }
    return "unknown";
}

std::int64_t cose_identifier(Algorithm a) noexcept {
    switch (a) {
        case Algorithm::es256: return kCoseAlgEs256;
        case Algorithm::ed25519: return kCoseAlgEdDsa;
        case Algorithm::rs256: return kCoseAlgRs256;
    }
    return 0;
}

std::string_view to_string(Failure::Reason r) noexcept {
    switch (r) {
        case Failure::Reason::malformed: return "malformed";
        case Failure::Reason::type: return "type";
        case Failure::Reason::challenge: return "challenge";
        case Failure::Reason::origin: return "origin";
        case Failure::Reason::rp_id: return "rp_id";
        case Failure::Reason::user_present: return "user_present";
        case Failure::Reason::user_verified: return "user_verified";
        case Failure::Reason::algorithm: return "algorithm";
        case Failure::Reason::attestation: return "attestation";
        case Failure::Reason::credential: return "credential";
        case Failure::Reason::counter: return "counter";
        case Failure::Reason::signature: return "signature";
    }
    return "unknown";
}

Expected<CoseKey, std::string> parse_cose_key(std::string_view cbor_bytes, std::size_t* consumed) {
    auto key = detail::parse_cose_key(cbor_bytes, consumed);
    if (!key) {
        return unexpected(std::move(key).error().message);
    }
    return std::move(*key);
}

Expected<AuthenticatorData, std::string> parse_authenticator_data(std::string_view bytes) {
    auto data = detail::parse_authenticator_data(bytes);
    if (!data) {
        return unexpected(std::move(data).error().message);
    }
    return std::move(*data);
}

Expected<AttestationObject, std::string> parse_attestation_object(std::string_view cbor_bytes) {
    auto object = detail::parse_attestation_object(cbor_bytes);
    if (!object) {
        return unexpected(std::move(object).error().message);
    }
    return std::move(*object);
}

Expected<ClientData, std::string> parse_client_data(std::string_view json) {
    if (json.size() > kMaxClientDataSize) {
        return unexpected(std::string("clientDataJSON is larger than 64 KiB"));
    }
    constexpr unsigned kClientDataParseFlags =
        rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
    rapidjson::Document document;
    document.Parse<kClientDataParseFlags>(json.data(), json.size());
    if (document.HasParseError()) {
        return unexpected("clientDataJSON is not valid JSON: " +
                          std::string(rapidjson::GetParseError_En(document.GetParseError())) +
                          " (at byte " + std::to_string(document.GetErrorOffset()) + ")");
    }
    if (!document.IsObject()) {
        return unexpected(std::string("clientDataJSON is not a JSON object"));
    }
    // §5.8.1.2 lets clients add members (we ignore them), but two readers must never disagree
    // about one that appears twice. (Members are looked up in this map, not with RapidJSON's
    // operator[], which answers a missing name with a shared static value.)
    std::map<std::string_view, const rapidjson::Value*> members;
    for (rapidjson::SizeType i = 0; i < document.MemberCount(); ++i) {
        const auto& member = *(document.MemberBegin() + i);
        const std::string_view name(member.name.GetString(), member.name.GetStringLength());
        if (!members.emplace(name, &member.value).second) {
            return unexpected("clientDataJSON: the member " + std::string(name) + " appears twice");
        }
    }
    const auto find = [&](std::string_view name) -> const rapidjson::Value* {
        const auto found = members.find(name);
        return found == members.end() ? nullptr : found->second;
    };
    // A string member, checked as UTF-8 once more: RapidJSON lets a lone \udc00 escape through.
    const auto text_member = [&](std::string_view name) -> std::optional<std::string> {
        const rapidjson::Value* value = find(name);
        if (value == nullptr || !value->IsString()) {
            return std::nullopt;
        }
        std::string text(value->GetString(), value->GetStringLength());
        if (!cbor::valid_utf8(text)) {
            return std::nullopt;
        }
        return text;
    };
    ClientData data;
    auto type = text_member("type");
    auto challenge = text_member("challenge");
    auto origin = text_member("origin");
    if (!type || !challenge || !origin) {
        return unexpected(
            std::string("clientDataJSON: type, challenge and origin must be strings"));
    }
    auto decoded = base64url_decode(*challenge);
    if (!decoded) {
        return unexpected(std::string("clientDataJSON: the challenge is not base64url"));
    }
    data.type = std::move(*type);
    data.challenge = std::move(*decoded);
    data.origin = std::move(*origin);
    if (const rapidjson::Value* cross_origin = find("crossOrigin"); cross_origin != nullptr) {
        if (!cross_origin->IsBool()) {
            return unexpected(std::string("clientDataJSON: crossOrigin is not a boolean"));
        }
        data.cross_origin = cross_origin->GetBool();
    }
    if (find("topOrigin") != nullptr) {
        auto top_origin = text_member("topOrigin");
        if (!top_origin) {
            return unexpected(std::string("clientDataJSON: topOrigin is not a string"));
        }
        data.top_origin = std::move(*top_origin);
    }
    return data;
}

std::string base64url_encode(std::string_view bytes) {
    return crypto::base64url_encode(bytes);
}

std::optional<std::string> base64url_decode(std::string_view text) {
    return crypto::base64url_decode(text);
}

}  // namespace dkim::jit::webauthn

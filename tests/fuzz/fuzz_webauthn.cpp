// libFuzzer target: what a browser (or anyone posing as one through dkim-webd) hands signerd
// for WebAuthn: attestation objects, authenticator data, COSE keys and clientDataJSON, read by
// our own CBOR reader and RapidJSON, then the whole registration and assertion checks with
// libfido2. Every refusal says why; what parses keeps the promises webauthn.hpp makes.
//
// The first byte chooses the reading (the corpus, seeded from tests/data/webauthn, has each);
// the rest is the input. Assertions split the rest at 0xff 0xfe 0xfd markers into
// authenticatorData, signature, clientDataJSON and the stored COSE key.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/jit/webauthn.hpp"

namespace {

namespace webauthn = dkim::jit::webauthn;

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

const webauthn::RelyingParty& fuzz_relying_party() {
    static const webauthn::RelyingParty rp{"localhost", {"http://localhost:8447"}};
    return rp;
}

void check_key(const webauthn::CoseKey& key) {
    switch (key.algorithm) {
        case webauthn::Algorithm::es256: require(key.x.size() == 32 && key.y.size() == 32); break;
        case webauthn::Algorithm::ed25519: require(key.x.size() == 32 && key.y.empty()); break;
        case webauthn::Algorithm::rs256:
            require(key.x.size() >= 256 && key.x.size() <= 512 && !key.y.empty() &&
                    key.y.size() <= 3);
            break;
    }
}

void cose_key(std::string_view input) {
    std::size_t consumed = 0;
    auto key = webauthn::parse_cose_key(input, &consumed);
    if (!key) {
        require(!key.error().empty());
        return;
    }
    require(consumed > 0 && consumed <= input.size());
    check_key(*key);
    // The bytes it took are a key on their own, the same key.
    auto again = webauthn::parse_cose_key(input.substr(0, consumed));
    require(again && again->x == key->x && again->y == key->y &&
            again->algorithm == key->algorithm);
}

void authenticator_data(std::string_view input) {
    auto data = webauthn::parse_authenticator_data(input);
    if (!data) {
        require(!data.error().empty());
        return;
    }
    require(input.size() >= 37);
    require(data->attested.has_value() ==
            ((data->flags & webauthn::AuthenticatorData::kAttested) != 0));
    require(data->has_extensions ==
            ((data->flags & webauthn::AuthenticatorData::kExtensions) != 0));
    std::size_t length = 37;
    if (data->attested) {
        const auto& attested = *data->attested;
        require(!attested.credential_id.empty() && attested.credential_id.size() <= 1023);
        check_key(attested.key);
        length += 16 + 2 + attested.credential_id.size() + attested.public_key.size();
        auto key = webauthn::parse_cose_key(attested.public_key);
        require(key && key->x == attested.key.x);
    }
    // Without extensions the parts add up to the whole: nothing was skipped or read twice.
    if (!data->has_extensions) {
        require(length == input.size());
    } else {
        require(length < input.size());
    }
}

void attestation_object(std::string_view input) {
    auto object = webauthn::parse_attestation_object(input);
    if (!object) {
        require(!object.error().empty());
        return;
    }
    require(object->parsed.attested.has_value());
    require(!object->statement.empty());
    auto data = webauthn::parse_authenticator_data(object->auth_data);
    require(data && data->sign_count == object->parsed.sign_count);
    const std::string challenge = "fuzz registration challenge";
    const std::string client_data = R"({"type":"webauthn.create","challenge":")" +
                                    webauthn::base64url_encode(challenge) +
                                    R"(","origin":"http://localhost:8447"})";
    auto registration = webauthn::verify_registration(
        fuzz_relying_party(), client_data, input, challenge, false,
        {webauthn::Algorithm::es256, webauthn::Algorithm::ed25519, webauthn::Algorithm::rs256});
    if (registration) {
        require(object->format == "none" && object->statement == "\xa0");
        require(registration->credential_id == object->parsed.attested->credential_id);
    } else {
        require(!registration.error().message.empty());
    }
}

void client_data(std::string_view input) {
    auto data = webauthn::parse_client_data(input);
    if (!data) {
        require(!data.error().empty());
        return;
    }
    require(input.size() <= 64 * 1024);
    // The challenge went through base64url and comes back the same.
    require(webauthn::base64url_decode(webauthn::base64url_encode(data->challenge)) ==
            data->challenge);
}

void base64url(std::string_view input) {
    auto decoded = webauthn::base64url_decode(input);
    if (decoded) {
        require(webauthn::base64url_encode(*decoded) == input);  // one text per byte string
    }
    require(webauthn::base64url_decode(webauthn::base64url_encode(input)) == std::string(input));
}

std::vector<std::string_view> split(std::string_view input, std::size_t parts) {
    static constexpr std::string_view kMarker = "\xff\xfe\xfd";
    std::vector<std::string_view> out;
    while (out.size() + 1 < parts) {
        const auto at = input.find(kMarker);
        if (at == std::string_view::npos) {
            break;
        }
        out.push_back(input.substr(0, at));
        input.remove_prefix(at + kMarker.size());
    }
    out.push_back(input);
    out.resize(parts);
    return out;
}

void assertion(std::string_view input) {
    const auto parts = split(input, 4);
    webauthn::Assertion a;
    a.credential_id = "fuzz credential";
    a.authenticator_data = std::string(parts[0]);
    a.signature = std::string(parts[1]);
    a.client_data_json = std::string(parts[2]);
    const webauthn::StoredCredential stored{"fuzz credential", std::string(parts[3]), 1};
    auto verified = webauthn::verify_assertion(fuzz_relying_party(), stored, a,
                                               "fuzz decision challenge", false);
    if (verified) {
        // Whoever forges this has broken the signature; with a fuzzer's key that can happen
        // only for bytes that really are signed by it, so the other checks must hold.
        auto data = webauthn::parse_authenticator_data(a.authenticator_data);
        require(data && data->user_present() && verified->sign_count > 1);
    } else {
        require(!verified.error().message.empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 6) {
        case 0: attestation_object(input); break;
        case 1: authenticator_data(input); break;
        case 2: cose_key(input); break;
        case 3: client_data(input); break;
        case 4: assertion(input); break;
        default: base64url(input); break;
    }
    return 0;
}

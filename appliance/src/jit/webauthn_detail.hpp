#pragma once
// The parsers of webauthn.hpp with the reason of a refusal kept: a key the parser reads but we
// do not accept (another algorithm or curve, a short RSA modulus) is Failure::Reason::algorithm,
// anything else Failure::Reason::malformed. The public parsers return only the message.

#include <cstddef>
#include <string_view>

#include "dkim/expected.hpp"
#include "dkim/jit/webauthn.hpp"

namespace dkim::jit::webauthn::detail {

Expected<CoseKey, Failure> parse_cose_key(std::string_view cbor_bytes, std::size_t* consumed);
Expected<AuthenticatorData, Failure> parse_authenticator_data(std::string_view bytes);
Expected<AttestationObject, Failure> parse_attestation_object(std::string_view bytes);

}  // namespace dkim::jit::webauthn::detail

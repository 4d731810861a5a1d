#pragma once
// DKIM public key records in DNS (RFC 6376 §3.6.1): "selector._domainkey.domain" TXT.

#include <cstdint>
#include <string>
#include <string_view>

#include "dkim/dkim/signature.hpp"
#include "dkim/expected.hpp"

namespace dkim {

enum class KeyType : std::uint8_t { rsa, ed25519 };

struct KeyRecord {
    KeyType type = KeyType::rsa;
    std::string public_key;  // p=, decoded: SPKI or RSAPublicKey DER (rsa), 32 bytes (ed25519)
    bool revoked = false;    // "An empty value means that this public key has been revoked."
    bool testing = false;    // t=y
    bool strict_identity = false;  // t=s: i= must be exactly d=, not a subdomain
    bool allows_sha256 = true;     // h= absent or listing sha256
};

// Errors are reasons for a permerror ("no key record", "unknown key type k=dsa", ...).
Expected<KeyRecord, std::string> parse_key_record(std::string_view txt);

// "selector._domainkey.domain"
std::string key_record_name(std::string_view selector, std::string_view domain);

}  // namespace dkim

#pragma once
// DKIM key records (RFC 6376 §3.6.1) for publication in DNS.

#include <string>
#include <vector>

#include "dkim/hsm/keys.hpp"

namespace dkim::provisioning {

// "v=DKIM1; k=rsa; p=MIIB..." (k=ed25519 with the bare 32-byte key for Ed25519, RFC 8463).
std::string dkim_record_value(const hsm::PublicKey& key);

// The value split into character-strings of at most 255 bytes (RFC 1035 §3.3.14: a TXT
// record holds one or more <character-string>s, each at most 255 octets).
std::vector<std::string> split_character_strings(const std::string& value, std::size_t max = 255);

// One zone-file line for any TXT value (quotes and backslashes escaped, split in 255-byte
// character-strings): name. IN TXT ( "..." "..." )
std::string zone_line(const std::string& name, const std::string& value);

// One zone-file line:
//   s1._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..." "...rest" )
std::string render_zone_line(const hsm::KeyName& name, const hsm::PublicKey& key);

}  // namespace dkim::provisioning

#pragma once
// DKIM key records (RFC 6376 §3.6.1) for publication in DNS, from the token's public key. The
// text itself (and any other record's, and the zone-file line) is dkim_core's:
// dkim/dns/record_text.hpp.

#include <string>

#include "dkim/hsm/keys.hpp"

namespace dkim::provisioning {

// "v=DKIM1; k=rsa; p=MIIB..." (k=ed25519 with the bare 32-byte key for Ed25519, RFC 8463).
std::string dkim_record_value(const hsm::PublicKey& key);

// One zone-file line:
//   s1._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..." "...rest" )
std::string render_zone_line(const hsm::KeyName& name, const hsm::PublicKey& key);

}  // namespace dkim::provisioning

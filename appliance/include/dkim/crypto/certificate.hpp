#pragma once
// The SHA-256 fingerprint of an X.509 certificate, as browsers and `openssl x509 -fingerprint
// -sha256` show it: what an operator compares to pin a self-signed certificate (dkim-webd
// logs it, `dkim-appliance up` prints it).

#include <string>

#include "dkim/expected.hpp"

namespace dkim::crypto {

// "AB:CD:...": the SHA-256 of the DER certificate, upper-case hex pairs joined by colons.
// The first certificate of a PEM file; an error names the file when it cannot be read or holds
// no certificate.
Expected<std::string, std::string> certificate_sha256_fingerprint(const std::string& pem_file);

}  // namespace dkim::crypto

#pragma once
// RFC 7512 PKCS#11 URIs: "pkcs11:token=dkim;object=s1._domainkey.example.com;type=private".
// Parsing reads untrusted bytes (configuration, command lines): it has a fuzz target.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::hsm {

struct Pkcs11Uri {
    // Path attributes (RFC 7512 §2.3). Values are percent-decoded.
    std::optional<std::string> token;
    std::optional<std::string> manufacturer;
    std::optional<std::string> serial;
    std::optional<std::string> model;
    std::optional<std::string> library_manufacturer;
    std::optional<std::string> library_description;
    std::optional<std::string> library_version;
    std::optional<std::string> slot_description;
    std::optional<std::string> slot_manufacturer;
    std::optional<unsigned long> slot_id;
    std::optional<std::string> object;
    std::optional<std::string> type;  // "public", "private", "cert", "secret-key", "data"
    std::optional<std::vector<unsigned char>> id;
    // Query attributes. pin-value is refused by parse(): a PIN in a URI ends up in shell
    // history, process listings and logs; use pin-source (a file) instead.
    std::optional<std::string> pin_source;
    std::optional<std::string> module_name;
    std::optional<std::string> module_path;
    // Vendor attributes ("x-..."), kept as they were given, in order.
    std::vector<std::pair<std::string, std::string>> vendor;        // in the path
    std::vector<std::pair<std::string, std::string>> vendor_query;  // in the query

    // The error says which attribute or byte is wrong and where.
    static dkim::Expected<Pkcs11Uri, std::string> parse(std::string_view text);
    // Canonical form: attributes in RFC order, values percent-encoded where needed.
    std::string to_string() const;

    bool operator==(const Pkcs11Uri&) const = default;
};

std::string percent_encode(std::string_view bytes, bool in_query);

}  // namespace dkim::hsm

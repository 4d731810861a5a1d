// libFuzzer target: OpenDKIM's KeyTable and SigningTable as `import opendkim` reads them from
// an installation being migrated. The input is both tables, separated by a NUL byte.
// Properties: every refusal names the table and a line; every entry read holds a valid domain
// (or %), selector and absolute key file; the joined items have concrete domains and refer to
// key table entries.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/hsm/keys.hpp"
#include "dkim/provisioning/opendkim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto nul = input.find('\0');
    const std::string_view key_text = input.substr(0, nul);
    const std::string_view signing_text =
        nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
    auto keys = dkim::provisioning::parse_key_table(key_text, "KT");
    if (!keys) {
        if (keys.error().rfind("KT:", 0) != 0) {
            std::abort();
        }
        return 0;
    }
    for (const auto& k : *keys) {
        if ((k.domain != "%" && !dkim::hsm::KeyName::make(k.domain, k.selector)) || k.key.empty() ||
            k.key.front() != '/' || k.line < 1) {
            std::abort();
        }
    }
    auto signing = dkim::provisioning::parse_signing_table(signing_text, "ST");
    if (!signing) {
        if (signing.error().rfind("ST:", 0) != 0) {
            std::abort();
        }
        return 0;
    }
    auto items = dkim::provisioning::plan_import(*keys, *signing, "KT", "ST");
    if (!items) {
        if (items.error().rfind("KT:", 0) != 0 && items.error().rfind("ST:", 0) != 0) {
            std::abort();
        }
        return 0;
    }
    for (const auto& item : *items) {
        if (!dkim::hsm::KeyName::make(item.domain, item.selector)) {
            std::abort();
        }
        bool found = false;
        for (const auto& k : *keys) {
            found = found || (k.name == item.key_name && k.key == item.key_file);
        }
        if (!found) {
            std::abort();
        }
    }
    return 0;
}

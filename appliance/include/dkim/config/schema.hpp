#pragma once
// The declarations of a daemon's configuration keys: what the parser may read (a TableReader
// given a Schema refuses, as a programming error, any key the schema does not declare) and
// what the configuration reference documents (`--config-reference`, the README's
// "Configuration reference", checked against the binaries by tests/lint/config-reference).
//
// Paths: "socket"; "pin.source" (key source of [pin]); "listen[].address" (key address of each
// [[listen]]); "policy.<operation>.quorum" ("<...>" stands for one or more name segments:
// sign, admin, key.generate, ...).

#include <span>
#include <string>
#include <string_view>

namespace dkim::config {

struct KeyDoc {
    std::string_view path;
    std::string_view type;      // "string", "boolean", "integer 1..64", "duration", "size",
                                // "strings", "table", "tables"
    std::string_view fallback;  // the default as the parser applies it; "" for none/required
    std::string_view doc;       // what it does
    // A TOML value the parser accepts, for the test that parses every declared key at once;
    // "" for keys that exclude others (their own tests cover them). For a "<...>" table, the
    // name to put in its place.
    std::string_view example = "";
};

// What a "<...>" segment may stand for: names, space-separated ("sign admin key.generate").
// A placeholder without one stands for any single name.
struct Placeholder {
    std::string_view name;   // "<operation>"
    std::string_view names;  // "sign admin key.generate key.rotate key.retire"
};

struct Schema {
    std::string_view title;  // "dkim-signerd: /etc/dkim-appliance/signerd.toml"
    std::span<const KeyDoc> keys;
    std::span<const Placeholder> placeholders = {};
};

// Whether `path` as a reader sees it ("listen[2].address", "policy.key.generate.quorum") is
// declared.
bool declares(const Schema& schema, std::string_view path);

// The reference: a Markdown section with one table row per key, in declaration order.
std::string reference_markdown(const Schema& schema);

// A configuration file holding every key that has an example.
std::string example_toml(const Schema& schema);

}  // namespace dkim::config

#pragma once
// Strict reading of a structured TOML file (signerd's configuration and policy): typed
// getters that name file:line:column and the dotted key in every error, and a check that
// refuses keys nobody reads (a typo must not silently fall back to a default).
//
//   TableReader r(root, "/etc/dkim/signerd.toml");
//   auto socket = r.string("socket").value_or("/run/dkim-signerd/signerd.sock");
//   r.finish();  // throws ConfigError on any key that no getter asked for

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
class node;
class array;
}  // namespace v3
}  // namespace toml

namespace dkim::config {

struct Schema;

// "file:line:column: key 'a.b': message"
class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class TableReader {
  public:
    // `prefix` is the dotted path of `table` ("" for the root, "policy.sign", ...). With a
    // schema, reading a key it does not declare throws std::logic_error: the parser and the
    // configuration reference cannot drift apart.
    TableReader(const toml::table& table, std::string file, std::string prefix = "",
                const Schema* schema = nullptr);

    bool has(const std::string& key) const;
    std::optional<std::string> string(const std::string& key);
    std::optional<std::int64_t> integer(const std::string& key, std::int64_t min, std::int64_t max);
    std::optional<bool> boolean(const std::string& key);
    std::optional<std::vector<std::string>> strings(const std::string& key);
    // A duration string ("250ms", "90s", "5m", "1h30m"), at least `min`.
    std::optional<std::chrono::milliseconds> duration(
        const std::string& key, std::chrono::milliseconds min = std::chrono::milliseconds(1));
    // A size: an integer number of bytes or a string with a unit ("10KiB", "25MiB").
    std::optional<std::uint64_t> size(const std::string& key, std::uint64_t min, std::uint64_t max);
    // A sub-table, read with its own reader (its keys are checked by that reader's finish).
    std::optional<TableReader> table(const std::string& key);
    // An array of tables ([[key]]).
    std::vector<TableReader> tables(const std::string& key);

    // An error about `key` (or about the table itself when key is empty).
    [[noreturn]] void fail(const std::string& key, const std::string& message) const;
    // Throws on the first key present that no getter asked for.
    void finish() const;

    const std::string& file() const { return file_; }
    std::string path(const std::string& key) const;

  private:
    const toml::node* node(const std::string& key);
    std::string where(const toml::node& node) const;

    const toml::table* table_;
    std::string file_;
    std::string prefix_;
    std::set<std::string> seen_;
    const Schema* schema_ = nullptr;
};

// "250ms", "90s", "15m", "8h", "2d", "1h30m" -> milliseconds; none on a malformed or zero
// value.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// "512", "10KiB", "25MiB", "1GiB" -> bytes; none when malformed.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Parses a file; a syntax error becomes a ConfigError naming file:line:column.
toml::table parse_toml_file(const std::string& file);

}  // namespace dkim::config

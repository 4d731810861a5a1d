#include "dkim/config/toml_reader.hpp"

#include <toml++/toml.h>

#include <sstream>
#include <stdexcept>

#include "dkim/config/schema.hpp"

namespace dkim::config {

TableReader::TableReader(const toml::table& table, std::string file, std::string prefix,
                         const Schema* schema)
    : table_(&table), file_(std::move(file)), prefix_(std::move(prefix)), schema_(schema) {}

std::string TableReader::path(const std::string& key) const {
    if (prefix_.empty()) {
        return key;
    }
    return key.empty() ? prefix_ : prefix_ + "." + key;
}

std::string TableReader::where(const toml::node& node) const {
    const auto& begin = node.source().begin;
    return file_ + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column);
}

void TableReader::fail(const std::string& key, const std::string& message) const {
    const toml::node* at = key.empty() ? table_ : table_->get(key);
    if (at == nullptr) {
        at = table_;
    }
    const std::string name = path(key);
    throw ConfigError(where(*at) + ": " + (name.empty() ? "" : "key '" + name + "': ") + message);
}

bool TableReader::has(const std::string& key) const {
    return table_->contains(key);
}

const toml::node* TableReader::node(const std::string& key) {
    if (schema_ != nullptr && !declares(*schema_, path(key))) {
        throw std::logic_error("configuration key '" + path(key) +
                               "' is read but not declared in its schema");
    }
    seen_.insert(key);
    return table_->get(key);
}

std::optional<std::string> TableReader::string(const std::string& key) {
    const toml::node* n = node(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    if (const auto* s = n->as_string()) {
        return s->get();
    }
    fail(key, "expected a string");
}

std::optional<std::int64_t> TableReader::integer(const std::string& key, std::int64_t min,
                                                 std::int64_t max) {
    const toml::node* n = node(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    const auto* i = n->as_integer();
    if (i == nullptr) {
        fail(key, "expected an integer");
    }
    if (i->get() < min || i->get() > max) {
        fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return i->get();
}

std::optional<bool> TableReader::boolean(const std::string& key) {
    const toml::node* n = node(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    if (const auto* b = n->as_boolean()) {
        return b->get();
    }
    fail(key, "expected true or false");
}

std::optional<std::vector<std::string>> TableReader::strings(const std::string& key) {
    const toml::node* n = node(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    const auto* array = n->as_array();
    if (array == nullptr) {
        fail(key, "expected an array of strings");
    }
    std::vector<std::string> out;
    for (const auto& element : *array) {
        const auto* s = element.as_string();
        if (s == nullptr) {
            throw ConfigError(where(element) + ": key '" + path(key) +
                              "': expected an array of strings");
        }
        out.push_back(s->get());
    }
    return out;
}

namespace {

// "0s", "0ms", "0m0s": a well-formed duration of zero (parse_duration refuses zero).
bool reads_as_zero_duration(std::string_view text) {
    std::string ones(text);
    bool digits_all_zero = true;
    for (char& c : ones) {
        if (c >= '1' && c <= '9') {
            digits_all_zero = false;
        }
        c = c == '0' ? '1' : c;
    }
    return digits_all_zero && parse_duration(ones).has_value();
}

}  // namespace

std::optional<std::chrono::milliseconds> TableReader::duration(const std::string& key,
                                                               std::chrono::milliseconds min) {
    const auto text = string(key);
    if (!text) {
        return std::nullopt;
    }
    // Where the minimum is zero, zero is a value ("0s": no greeting delay).
    const auto d = min.count() == 0 && reads_as_zero_duration(*text)
                       ? std::optional<std::chrono::milliseconds>(0)
                       : parse_duration(*text);
    if (!d || *d < min) {
        fail(key, "expected a duration of at least " + std::to_string(min.count()) +
                      "ms such as \"500ms\", \"90s\", \"5m\" or \"1h30m\"");
    }
    return *d;
}

std::optional<std::uint64_t> TableReader::size(const std::string& key, std::uint64_t min,
                                               std::uint64_t max) {
    const toml::node* n = node(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    std::optional<std::uint64_t> value;
    if (const auto* i = n->as_integer(); i != nullptr && i->get() >= 0) {
        value = static_cast<std::uint64_t>(i->get());
    } else if (const auto* s = n->as_string(); s != nullptr) {
        value = parse_size(s->get());
    }
    if (!value || *value < min || *value > max) {
        fail(key, "expected a size from " + std::to_string(min) + " to " + std::to_string(max) +
                      " bytes, as a number or with a unit (\"64KiB\", \"25MiB\")");
    }
    return value;
}

std::optional<TableReader> TableReader::table(const std::string& key) {
    const toml::node* n = node(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    const auto* t = n->as_table();
    if (t == nullptr) {
        fail(key, "expected a table");
    }
    return TableReader(*t, file_, path(key), schema_);
}

std::vector<TableReader> TableReader::tables(const std::string& key) {
    const toml::node* n = node(key);
    std::vector<TableReader> out;
    if (n == nullptr) {
        return out;
    }
    const auto* array = n->as_array();
    if (array == nullptr) {
        fail(key, "expected an array of tables ([[" + path(key) + "]])");
    }
    std::size_t index = 0;
    for (const auto& element : *array) {
        const auto* t = element.as_table();
        if (t == nullptr) {
            throw ConfigError(where(element) + ": key '" + path(key) + "': expected a table");
        }
        out.emplace_back(*t, file_, path(key) + "[" + std::to_string(index++) + "]", schema_);
    }
    return out;
}

void TableReader::finish() const {
    for (const auto& [key, value] : *table_) {
        if (seen_.count(std::string(key.str())) == 0) {
            throw ConfigError(where(value) + ": key '" + path(std::string(key.str())) +
                              "': unknown key");
        }
    }
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    std::int64_t total = 0;
    while (!text.empty()) {
        std::int64_t value = 0;
        std::size_t digits = 0;
        while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
            value = value * 10 + (text[digits] - '0');
            if (value > 1'000'000'000) {
                return std::nullopt;
            }
            ++digits;
        }
        if (digits == 0 || digits == text.size()) {
            return std::nullopt;
        }
        std::int64_t unit = 0;
        std::size_t unit_length = 1;
        if (text.substr(digits, 2) == "ms") {
            unit = 1;
            unit_length = 2;
        } else {
            switch (text[digits]) {
                case 's': unit = 1000; break;
                case 'm': unit = std::int64_t{60} * 1000; break;
                case 'h': unit = std::int64_t{3600} * 1000; break;
                case 'd': unit = std::int64_t{86400} * 1000; break;
                default: return std::nullopt;
            }
        }
        total += value * unit;
        text.remove_prefix(digits + unit_length);
    }
    if (total <= 0) {
        return std::nullopt;
    }
    return std::chrono::milliseconds(total);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t value = 0;
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        value = value * 10 + static_cast<std::uint64_t>(text[digits] - '0');
        if (value > (std::uint64_t{1} << 40)) {
            return std::nullopt;
        }
        ++digits;
    }
    if (digits == 0) {
        return std::nullopt;
    }
    const std::string_view unit = text.substr(digits);
    if (unit.empty() || unit == "B") {
        return value;
    }
    if (unit == "KiB") {
        return value << 10;
    }
    if (unit == "MiB") {
        return value << 20;
    }
    if (unit == "GiB") {
        return value << 30;
    }
    return std::nullopt;
}

toml::table parse_toml_file(const std::string& file) {
    try {
        return toml::parse_file(file);
    } catch (const toml::parse_error& error) {
        const auto& begin = error.source().begin;
        std::ostringstream out;
        out << file << ":" << begin.line << ":" << begin.column << ": " << error.description();
        throw ConfigError(out.str());
    }
}

}  // namespace dkim::config

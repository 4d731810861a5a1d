#include "dkim/config/toml_reader.hpp"

#include <toml++/toml.h>

#include <sstream>

namespace dkim::config {

TableReader::TableReader(const toml::table& table, std::string file, std::string prefix)
    : table_(&table), file_(std::move(file)), prefix_(std::move(prefix)) {}

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

std::optional<TableReader> TableReader::table(const std::string& key) {
    const toml::node* n = node(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    const auto* t = n->as_table();
    if (t == nullptr) {
        fail(key, "expected a table");
    }
    return TableReader(*t, file_, path(key));
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
        out.emplace_back(*t, file_, path(key) + "[" + std::to_string(index++) + "]");
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

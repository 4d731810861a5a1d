#include "dkim/config/schema.hpp"

#include <algorithm>
#include <map>
#include <vector>

namespace dkim::config {
namespace {

std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> out;
    while (!path.empty()) {
        const auto dot = path.find('.');
        out.push_back(path.substr(0, dot));
        path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    }
    return out;
}

// "listen[3].address" and "listen[].address" -> "listen.address": an array of tables and
// its elements are one name (the reader asks for "listen", then "listen[0].address").
std::string normalize(std::string_view path) {
    std::string out;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '[') {
            while (i < path.size() && path[i] != ']') {
                ++i;
            }
            continue;
        }
        out += path[i];
    }
    return out;
}

bool is_placeholder(std::string_view segment) {
    return segment.size() > 2 && segment.front() == '<' && segment.back() == '>';
}

bool match(const Schema& schema, std::span<const std::string_view> pattern,
           std::span<const std::string_view> path) {
    if (pattern.empty()) {
        return path.empty();
    }
    if (is_placeholder(pattern.front())) {
        for (const Placeholder& p : schema.placeholders) {
            if (p.name != pattern.front()) {
                continue;
            }
            std::string_view names = p.names;
            while (!names.empty()) {
                const auto space = names.find(' ');
                const auto name = segments(names.substr(0, space));
                names =
                    space == std::string_view::npos ? std::string_view() : names.substr(space + 1);
                if (name.size() <= path.size() &&
                    std::equal(name.begin(), name.end(), path.begin()) &&
                    match(schema, pattern.subspan(1), path.subspan(name.size()))) {
                    return true;
                }
            }
            return false;
        }
        return !path.empty() && match(schema, pattern.subspan(1), path.subspan(1));
    }
    return !path.empty() && pattern.front() == path.front() &&
           match(schema, pattern.subspan(1), path.subspan(1));
}

// "listen[].address" -> "[[listen]] address"; "pin.source" -> "[pin] source"; the tables
// themselves: "[[listen]]", "[pin]".
std::string display(std::string_view path, std::string_view type) {
    if (type == "tables" || type == "table") {
        std::string name(path);
        if (name.size() > 2 && name.compare(name.size() - 2, 2, "[]") == 0) {
            name.resize(name.size() - 2);
        }
        return type == "tables" ? "[[" + name + "]]" : "[" + name + "]";
    }
    const auto dot = path.rfind('.');
    if (dot == std::string_view::npos) {
        return std::string(path);
    }
    std::string table(path.substr(0, dot));
    const std::string key(path.substr(dot + 1));
    const bool array = table.size() > 2 && table.compare(table.size() - 2, 2, "[]") == 0;
    if (array) {
        table.resize(table.size() - 2);
    }
    return (array ? "[[" + table + "]] " : "[" + table + "] ") + key;
}

std::string cell(std::string_view text) {
    std::string out;
    for (char c : text) {
        out += c == '|' ? std::string("\\|") : std::string(1, c);
    }
    return out;
}

}  // namespace

bool declares(const Schema& schema, std::string_view path) {
    const std::string normal = normalize(path);
    const auto wanted = segments(normal);
    for (const KeyDoc& k : schema.keys) {
        const std::string declared = normalize(k.path);
        const auto pattern = segments(declared);
        if (match(schema, pattern, wanted)) {
            return true;
        }
    }
    return false;
}

std::string reference_markdown(const Schema& schema) {
    std::string out = "#### " + std::string(schema.title) +
                      "\n\n| key | type | default | what it does |\n|---|---|---|---|\n";
    for (const KeyDoc& k : schema.keys) {
        out += "| `" + display(k.path, k.type) + "` | " + std::string(k.type) + " | " +
               (k.fallback.empty() ? std::string("–") : "`" + cell(k.fallback) + "`") + " | " +
               cell(k.doc) + " |\n";
    }
    return out;
}

std::string example_toml(const Schema& schema) {
    // The name each placeholder table stands for in the example.
    std::map<std::string, std::string, std::less<>> names;
    for (const KeyDoc& k : schema.keys) {
        if (is_placeholder(segments(k.path).back()) && !k.example.empty()) {
            names[std::string(segments(k.path).back())] = std::string(k.example);
        }
    }
    std::vector<std::string> order;
    std::map<std::string, std::string> tables;  // header -> lines
    for (const KeyDoc& k : schema.keys) {
        if (k.example.empty() || k.type == "table" || k.type == "tables") {
            continue;
        }
        std::string path;
        for (auto segment : segments(k.path)) {
            const auto it = names.find(segment);
            path +=
                (path.empty() ? "" : ".") + (it != names.end() ? it->second : std::string(segment));
        }
        const auto dot = path.rfind('.');
        std::string header;
        if (dot != std::string::npos) {
            std::string table = path.substr(0, dot);
            header = table.size() > 2 && table.compare(table.size() - 2, 2, "[]") == 0
                         ? "[[" + table.substr(0, table.size() - 2) + "]]"
                         : "[" + table + "]";
        }
        if (tables.find(header) == tables.end()) {
            order.push_back(header);
        }
        tables[header] += path.substr(dot == std::string::npos ? 0 : dot + 1) + " = " +
                          std::string(k.example) + "\n";
    }
    std::string out = tables[""];  // the root's keys come before any table
    for (const auto& header : order) {
        if (!header.empty()) {
            out += "\n" + header + "\n" + tables[header];
        }
    }
    return out;
}

}  // namespace dkim::config

#include "up_commented_toml.hpp"

#include <sstream>
#include <stdexcept>

namespace dkim::cli::up {

std::string comment_lines(std::string_view comment, std::size_t width) {
    std::string out;
    while (!comment.empty()) {
        const auto end = comment.find('\n');
        std::string_view line = comment.substr(0, end);
        comment = end == std::string_view::npos ? std::string_view() : comment.substr(end + 1);
        std::string current = "#";
        auto flush = [&] {
            out += current + "\n";
            current = "#";
        };
        while (!line.empty()) {
            const auto space = line.find(' ');
            const std::string_view word = line.substr(0, space);
            line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
            if (current.size() > 1 && current.size() + 1 + word.size() > width) {
                flush();
            }
            current += ' ';
            current += word;
        }
        flush();
    }
    return out;
}

CommentedToml::CommentedToml(std::string_view header) {
    if (!header.empty()) {
        text_ = comment_lines(header) + "\n";
    }
}

CommentedToml& CommentedToml::add(std::string_view comment, const toml::table& part) {
    bool tables = false;
    bool keys = false;
    for (const auto& [key, value] : part) {
        const auto* array = value.as_array();
        const bool table = value.is_table() ||
                           (array != nullptr && !array->empty() && array->is_array_of_tables());
        tables = tables || table;
        keys = keys || !table;
    }
    if (keys && in_table_) {
        throw std::logic_error("CommentedToml: plain keys after a table would belong to it");
    }
    if (tables && !text_.empty() && !text_.ends_with("\n\n")) {
        text_ += "\n";
    }
    in_table_ = in_table_ || tables;
    std::ostringstream written;
    written << toml::toml_formatter(part, toml::format_flags::allow_unicode_strings);
    text_ += comment_lines(comment) + written.str() + "\n";
    return *this;
}

}  // namespace dkim::cli::up

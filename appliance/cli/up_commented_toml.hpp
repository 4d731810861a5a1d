#pragma once
// A TOML file with comments, for the files `up` writes for people to read (up.toml, the
// daemons' configurations): toml++ writes every key and value (quoting and escaping them), the
// comments go between the parts. toml++ keeps no comments and sorts a table's keys, so each
// commented part is a table of its own, written in the order it was added.

#include <toml++/toml.h>

#include <string>
#include <string_view>

namespace dkim::cli::up {

class CommentedToml {
  public:
    // `header`: comment lines at the top (without "# "), then an empty line.
    explicit CommentedToml(std::string_view header = {});

    // The comment ("# " lines, wrapped at 96 columns; "\n" starts a new line), then `part`. A
    // part holding tables ([name], [[name]]) starts after an empty line. A part of plain keys
    // after one that opened a table would land in that table: std::logic_error.
    CommentedToml& add(std::string_view comment, const toml::table& part);

    const std::string& text() const { return text_; }

  private:
    std::string text_;
    bool in_table_ = false;
};

// "# " lines for `comment`, each at most `width` columns (a longer word stays whole).
std::string comment_lines(std::string_view comment, std::size_t width = 96);

}  // namespace dkim::cli::up

#include "query.hpp"

#include <charconv>

namespace dkim::web::detail {

std::optional<std::string> query_value(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const std::size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name) {
            return std::string(eq == std::string_view::npos ? std::string_view()
                                                            : pair.substr(eq + 1));
        }
    }
    return std::nullopt;
}

Result<std::optional<std::int64_t>> query_integer(std::string_view query, const char* name,
                                                  std::int64_t min, std::int64_t max) {
    const auto text = query_value(query, name);
    if (!text) {
        return std::optional<std::int64_t>();
    }
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || value < min || value > max) {
        return unexpected(failure(http::status::bad_request, "invalid_field",
                                  std::string(name) + " must be an integer from " +
                                      std::to_string(min) + " to " + std::to_string(max),
                                  name));
    }
    return std::optional<std::int64_t>(value);
}

Result<std::int64_t> path_id(const Context& ctx) {
    const std::string& text = ctx.params.at(0);
    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || id <= 0) {
        return unexpected(failure(http::status::not_found, "not_found",
                                  "no elevation request '" + text.substr(0, 40) + "'"));
    }
    return id;
}

}  // namespace dkim::web::detail

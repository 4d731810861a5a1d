#pragma once
// The query string and the path's {id}: read strictly, refused with the parameter's name.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "context.hpp"
#include "response.hpp"

namespace dkim::web::detail {

// The value of `name` in "a=1&b=2" (as sent: no percent-decoding), or nullopt.
std::optional<std::string> query_value(std::string_view query, std::string_view name);

// The integer `name` between min and max, nullopt when absent; invalid_field otherwise.
Result<std::optional<std::int64_t>> query_integer(std::string_view query, const char* name,
                                                  std::int64_t min, std::int64_t max);

// The path's {id} as a positive integer (not_found otherwise).
Result<std::int64_t> path_id(const Context& ctx);

}  // namespace dkim::web::detail

#pragma once
// The console's static files and the OpenAPI document, compiled into dkim-webd
// (web/console/*, web/openapi.json; see web/CMakeLists.txt): the daemon serves exactly what
// was reviewed and built, and nothing on disk can change it.

#include <string_view>
#include <vector>

namespace dkim::web {

struct Asset {
    std::string_view path;  // "/", "/app.js", ...
    std::string_view content_type;
    std::string_view body;
};

const std::vector<Asset>& embedded_assets();
const Asset* find_asset(std::string_view path);

}  // namespace dkim::web

#include "test_paths.hpp"

#include <fstream>
#include <mutex>
#include <stdexcept>

namespace dkim::test {

namespace {

std::map<std::string, std::filesystem::path> read_test_paths() {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) {
        throw std::runtime_error("test_path: /proc/self/exe: " + ec.message());
    }
    const auto file = self.parent_path() / "dkim-test-paths";
    std::ifstream in(file);
    if (!in) {
        throw std::runtime_error("test_path: cannot read " + file.string() +
                                 " (written by tests/CMakeLists.txt next to the test binaries)");
    }
    std::map<std::string, std::filesystem::path> paths;
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos) {
            paths[line.substr(0, eq)] = line.substr(eq + 1);
        }
    }
    return paths;
}

}  // namespace

std::filesystem::path test_path(const std::string& name) {
    static const std::map<std::string, std::filesystem::path> paths = read_test_paths();
    const auto it = paths.find(name);
    if (it == paths.end()) {
        throw std::runtime_error("test_path: no '" + name + "' in dkim-test-paths");
    }
    return it->second;
}

}  // namespace dkim::test

#pragma once
// Paths the tests read (the data folder, the CLI, the fault-injecting PKCS#11 module, ...),
// looked up at run time in `dkim-test-paths`, a file tests/CMakeLists.txt writes next to the
// test binaries: one `name=path` per line. Compiled in as macros, they put the clone's
// absolute path into the objects, and a clone in another folder could not reuse them from
// ccache (tests/stages.sh).

#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

namespace dkim::test {

// The path named NAME in dkim-test-paths; throws, naming the file and NAME, when either is
// missing.
std::filesystem::path test_path(const std::string& name);

// read_test_file's folder: tests/data in the source tree.
inline std::filesystem::path test_data_path(const std::filesystem::path& relative) {
    return test_path("data") / relative;
}

}  // namespace dkim::test

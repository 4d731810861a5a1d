// `up --pin-custody`: where the demo's PIN is kept, moving it when the custody changes, and the
// sealed custody with systemd-creds and a host key in the test's folder (never the machine's).
#include "up_pin_custody.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "systemd_creds.hpp"
#include "up_test_folder.hpp"

namespace dkim::cli::up {
namespace {

namespace fs = std::filesystem;
using test::TestFolder;

std::string secret_text(const hsm::Secret& secret) {
    return {reinterpret_cast<const char*>(secret.bytes().data()), secret.size()};  // NOLINT
}

mode_t mode_of(const fs::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777U : 0;
}

std::string file_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Whether systemd-creds can seal on this machine (it needs /etc/machine-id too).
bool can_use_systemd_creds() {
    return std::system("systemd-creds --version >/dev/null 2>&1") == 0 &&  // NOLINT(cert-env33-c)
           fs::exists("/etc/machine-id") && fs::file_size("/etc/machine-id") >= 32;
}

class UpPinCustodyTest : public ::testing::Test {
  protected:
    UpPinCustodyTest() : paths(folder.path()) {
        for (const fs::path& f : {paths.signerd, paths.secrets, paths.credentials}) {
            fs::create_directories(f);
        }
        users.signer = ::geteuid();
        users.signer_gid = ::getegid();
    }

    TestFolder folder;
    StatePaths paths;
    DaemonUsers users;
};

TEST_F(UpPinCustodyTest, ParsesTheFourCustodies) {
    for (const std::string_view name : kPinCustodies) {
        const auto custody = parse_pin_custody(name);
        ASSERT_TRUE(custody) << name;
        EXPECT_EQ(to_string(*custody), name);
    }
    EXPECT_FALSE(parse_pin_custody("credential"));
    EXPECT_FALSE(parse_pin_custody(""));
}

TEST_F(UpPinCustodyTest, ANewFolderGetsARandomPinThatMovesWithTheCustody) {
    auto pin = demo_user_pin(paths);
    ASSERT_TRUE(pin) << pin.error();
    EXPECT_EQ(pin->size(), 26U) << "16 random bytes in base32";
    ASSERT_TRUE(keep_demo_pin(PinCustody::file, *pin, paths, users));
    const fs::path signerd_pin = paths.signerd / "user.pin";
    EXPECT_EQ(file_text(signerd_pin), secret_text(*pin) + "\n");
    EXPECT_EQ(mode_of(signerd_pin), 0600U);

    auto again = demo_user_pin(paths);
    ASSERT_TRUE(again) << again.error();
    EXPECT_TRUE(again->equals(*pin)) << "the next run finds it";

    // approver: root's secrets/ only; signerd's copy goes.
    ASSERT_TRUE(keep_demo_pin(PinCustody::approver, *again, paths, users));
    EXPECT_FALSE(fs::exists(signerd_pin));
    EXPECT_EQ(file_text(paths.secrets / "user.pin"), secret_text(*pin) + "\n");
    EXPECT_EQ(*clear_pin_file(PinCustody::approver, paths), paths.secrets / "user.pin");
    auto moved = demo_user_pin(paths);
    ASSERT_TRUE(moved) << moved.error();
    EXPECT_TRUE(moved->equals(*pin));

    ASSERT_TRUE(keep_demo_pin(PinCustody::file, *moved, paths, users));
    EXPECT_FALSE(fs::exists(paths.secrets / "user.pin"));
    EXPECT_TRUE(fs::exists(signerd_pin));
}

TEST_F(UpPinCustodyTest, TheEarlierScriptsPinAtTheTopIsTakenOnlyWithItsToken) {
    folder.write("user.pin", "legacy-pin\n");
    ::chmod((folder.path() / "user.pin").c_str(), 0600);
    auto fresh = demo_user_pin(paths);
    ASSERT_TRUE(fresh) << fresh.error();
    EXPECT_NE(secret_text(*fresh), "legacy-pin") << "no token: the old PIN opens nothing";

    fs::create_directories(paths.tokens);
    auto legacy = demo_user_pin(paths);
    ASSERT_TRUE(legacy) << legacy.error();
    EXPECT_EQ(secret_text(*legacy), "legacy-pin");
    ASSERT_TRUE(keep_demo_pin(PinCustody::file, *legacy, paths, users));
    EXPECT_FALSE(fs::exists(folder.path() / "user.pin"));
    EXPECT_EQ(file_text(paths.signerd / "user.pin"), "legacy-pin\n");
}

TEST_F(UpPinCustodyTest, SealedKeepsNoClearPinAndOpensAFreshFolderForEachStart) {
    // .ci/install-deps.sh installs systemd (systemd-creds); a machine without a machine id
    // cannot seal at all, which this test must say rather than pass.
    ASSERT_TRUE(can_use_systemd_creds()) << "systemd-creds or /etc/machine-id is missing";
    auto pin = demo_user_pin(paths);
    ASSERT_TRUE(pin) << pin.error();
    ASSERT_TRUE(keep_demo_pin(PinCustody::file, *pin, paths, users));
    const auto sealed = keep_demo_pin(PinCustody::sealed, *pin, paths, users);
    ASSERT_TRUE(sealed) << sealed.error();
    EXPECT_TRUE(fs::exists(sealed_pin_file(paths)));
    EXPECT_EQ(mode_of(sealed_pin_file(paths)), 0600U);
    EXPECT_FALSE(fs::exists(paths.signerd / "user.pin")) << "no clear PIN left";
    EXPECT_FALSE(fs::exists(paths.secrets / "user.pin"));
    EXPECT_TRUE(fs::exists(host_key_file(paths))) << "the folder's own host key";
    EXPECT_EQ(sealed_with(sealed_pin_file(paths)), "the host key");
    EXPECT_EQ(file_text(sealed_pin_file(paths)).find(secret_text(*pin)), std::string::npos);

    auto opened = demo_user_pin(paths);
    ASSERT_TRUE(opened) << opened.error();
    EXPECT_TRUE(opened->equals(*pin)) << "the next run opens it";
    CredentialKeys other;
    other.host_key = folder.path() / "another.secret";
    EXPECT_FALSE(open_credential(sealed_pin_file(paths), "pin", other))
        << "another host key does not open it";
    CredentialKeys own;
    own.host_key = host_key_file(paths);
    const auto wrong_name = open_credential(sealed_pin_file(paths), "other", own);
    ASSERT_FALSE(wrong_name);
    EXPECT_NE(wrong_name.error().find("systemd-creds"), std::string::npos) << wrong_name.error();

    fs::path first;
    {
        SealedPinRuntime runtime(paths, users);
        auto env = runtime.prepare();
        ASSERT_TRUE(env) << env.error();
        ASSERT_EQ(env->size(), 1U);
        first = runtime.folder();
        EXPECT_EQ((*env)[0], "CREDENTIALS_DIRECTORY=" + first.string());
        EXPECT_EQ(mode_of(first), 0700U);
        EXPECT_EQ(mode_of(first / "pin"), 0400U);
        EXPECT_EQ(file_text(first / "pin"), secret_text(*pin));
        auto read = hsm::Secret::from_file(first / "pin");
        ASSERT_TRUE(read) << read.error().to_string();
        EXPECT_TRUE(read->equals(*pin)) << "as signerd reads it";

        // The next start: the old folder goes, a new one is made (a file left in it is gone).
        std::ofstream(first / "left-over") << "x";
        auto next = runtime.prepare();
        ASSERT_TRUE(next) << next.error();
        EXPECT_FALSE(fs::exists(runtime.folder() / "left-over"));
        EXPECT_TRUE(fs::exists(runtime.folder() / "pin"));
    }
    EXPECT_FALSE(fs::exists(first)) << "removed when up stops";

    // Back to a file: the credential goes.
    ASSERT_TRUE(keep_demo_pin(PinCustody::file, *pin, paths, users));
    EXPECT_FALSE(fs::exists(sealed_pin_file(paths)));
    EXPECT_EQ(file_text(paths.signerd / "user.pin"), secret_text(*pin) + "\n");
}

}  // namespace
}  // namespace dkim::cli::up

// Whether a service user can reach a folder: the decision on stat facts (the kernel's rule of
// one permission class per user), and the folders a walk to a path passes, gathered from a
// temporary tree of the test's own.
#include "dkim/service/traversal.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using dkim::service::Account;
using dkim::service::FolderFacts;
using dkim::service::PermissionClass;

constexpr uid_t kSigner = 994;
constexpr gid_t kSignerGroup = 994;
constexpr uid_t kRelay = 993;
constexpr gid_t kRelayGroup = 993;

const Account kSignerAccount{"dkim-signer", kSigner, {kSignerGroup}};
const Account kRelayAccount{"dkim-relay", kRelay, {kRelayGroup, kSignerGroup}};

FolderFacts folder(const std::string& path, unsigned mode, uid_t uid = 0, gid_t gid = 0) {
    return FolderFacts{path, mode, uid, gid};
}

TEST(TraversalTest, AMktempFolderOfRootStopsEveryOtherUser) {
    const std::vector<FolderFacts> walk = {folder("/", 0755), folder("/tmp", 01777),
                                           folder("/tmp/tmp.AbC123", 0700)};
    const auto blocked = dkim::service::first_blocking(walk, {kSignerAccount, kRelayAccount});
    ASSERT_TRUE(blocked.has_value());
    EXPECT_EQ(blocked->folder.path, "/tmp/tmp.AbC123");
    EXPECT_EQ(blocked->folder.mode, 0700U);
    EXPECT_EQ(blocked->account, "dkim-signer");
    EXPECT_EQ(blocked->applies, PermissionClass::others);
    EXPECT_EQ(blocked->fix, "chmod o+x /tmp/tmp.AbC123");
}

TEST(TraversalTest, SearchPermissionForOthersIsEnough) {
    for (unsigned mode : {0711U, 0701U, 0755U, 01777U}) {
        EXPECT_FALSE(dkim::service::first_blocking({folder("/", 0755), folder("/srv/x", mode)},
                                                   {kSignerAccount, kRelayAccount})
                         .has_value())
            << std::oct << mode;
    }
    // Read without search is not: a folder is entered with x.
    EXPECT_TRUE(
        dkim::service::first_blocking({folder("/srv/x", 0744)}, {kSignerAccount}).has_value());
}

TEST(TraversalTest, OneClassAppliesAsTheKernelChecks) {
    // A member of the folder's group gets the group's bits, not the others' ones.
    const FolderFacts group_only = folder("/srv/g", 0750, 0, kSignerGroup);
    EXPECT_EQ(dkim::service::permission_class(group_only, kRelayAccount), PermissionClass::group);
    EXPECT_TRUE(dkim::service::can_search(group_only, kRelayAccount));
    const FolderFacts not_the_group = folder("/srv/h", 0705, 0, kSignerGroup);
    EXPECT_FALSE(dkim::service::can_search(not_the_group, kRelayAccount));
    const auto blocked = dkim::service::first_blocking({not_the_group}, {kRelayAccount});
    ASSERT_TRUE(blocked.has_value());
    EXPECT_EQ(blocked->fix, "chmod g+x /srv/h");
    // The owner gets the owner's bits, even when others may pass.
    const FolderFacts owned = folder("/srv/o", 0071, kSigner, 0);
    EXPECT_EQ(dkim::service::permission_class(owned, kSignerAccount), PermissionClass::owner);
    EXPECT_FALSE(dkim::service::can_search(owned, kSignerAccount));
    EXPECT_TRUE(dkim::service::can_search(owned, kRelayAccount));
    EXPECT_EQ(dkim::service::first_blocking({owned}, {kRelayAccount, kSignerAccount})->fix,
              "chmod u+x /srv/o");
    // Root passes everything.
    EXPECT_TRUE(dkim::service::can_search(folder("/root", 0700), Account{"root", 0, {0}}));
}

TEST(TraversalTest, TheOutermostBlockingFolderIsNamed) {
    const auto blocked = dkim::service::first_blocking(
        {folder("/", 0755), folder("/home/a", 0750), folder("/home/a/b", 0700)}, {kSignerAccount});
    ASSERT_TRUE(blocked.has_value());
    EXPECT_EQ(blocked->folder.path, "/home/a");
}

class TraversalWalkTest : public ::testing::Test {
  protected:
    void SetUp() override {
        // Resolved, so that the walk below has no symlink of the machine's in it.
        dir_ = fs::canonical(fs::temp_directory_path()) /
               ("traversal-test-" + std::to_string(::getpid()));
        fs::create_directories(dir_ / "private" / "inner");
        ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
        ASSERT_EQ(::chmod((dir_ / "private").c_str(), 0700), 0);
        ASSERT_EQ(::chmod((dir_ / "private" / "inner").c_str(), 0755), 0);
        fs::create_directory_symlink(dir_ / "private" / "inner", dir_ / "link");
    }
    void TearDown() override { fs::remove_all(dir_); }
    fs::path dir_;
};

TEST_F(TraversalWalkTest, TheWalkHasEveryExistingAncestorOutermostFirst) {
    const auto walk = dkim::service::folders_on_the_way(dir_ / "private" / "inner" / "state");
    ASSERT_GE(walk.size(), 3U);
    EXPECT_EQ(walk.front().path, "/");
    EXPECT_EQ(walk[walk.size() - 2].path, dir_ / "private");
    EXPECT_EQ(walk[walk.size() - 2].mode, 0700U);
    EXPECT_EQ(walk.back().path, dir_ / "private" / "inner");
    EXPECT_EQ(walk.back().mode, 0755U);
    // The target itself is not part of it (up makes it and sets its mode).
    for (const auto& f : walk) {
        EXPECT_NE(f.path, dir_ / "private" / "inner" / "state");
    }
}

TEST_F(TraversalWalkTest, TheWalkStopsWhereTheFoldersAreStillToBeMade) {
    const auto walk = dkim::service::folders_on_the_way(dir_ / "new" / "deeper" / "state");
    ASSERT_FALSE(walk.empty());
    EXPECT_EQ(walk.back().path, dir_);
}

TEST_F(TraversalWalkTest, ASymlinkLeadsThroughTheFoldersOfItsTarget) {
    // dir/link -> dir/private/inner: reaching dir/link/state means passing dir/private (0700).
    const auto walk = dkim::service::folders_on_the_way(dir_ / "link" / "state");
    const auto blocked = dkim::service::first_blocking(walk, {kSignerAccount});
    ASSERT_TRUE(blocked.has_value());
    EXPECT_EQ(blocked->folder.path, dir_ / "private");
}

}  // namespace

// The notification outbox (issue 18, finding 6): what signerd writes is what the notifier
// sends, once, in order; a failing receiver keeps the file and backs off; junk is never read.

#include "outbox.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "webhook_post.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

class OutboxTest : public ::testing::Test {
  protected:
    void SetUp() override {
        folder = std::filesystem::temp_directory_path() /
                 ("dkim-outbox-test-" + std::to_string(::getpid()));
        std::filesystem::remove_all(folder);
        std::filesystem::create_directories(folder);
    }
    void TearDown() override { std::filesystem::remove_all(folder); }
    std::vector<std::string> files() const {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(folder)) {
            out.push_back(e.path().filename().string());
        }
        std::sort(out.begin(), out.end());
        return out;
    }
    std::filesystem::path folder;
    std::chrono::system_clock::time_point now{std::chrono::milliseconds(1'795'000'000'000)};
};

TEST_F(OutboxTest, EventsAreSentInOrderOnceAndDeleted) {
    auto writer = notify::OutboxWriter::open(folder);
    ASSERT_TRUE(writer);
    auto first = (*writer)->put(R"({"type":"break_glass"})", 1'795'000'000'000);
    auto second = (*writer)->put(R"({"type":"grant.revoked"})", 1'795'000'000'000);
    ASSERT_TRUE(first && second);
    EXPECT_TRUE(notify::is_outbox_name(*first)) << *first;
    EXPECT_LT(*first, *second) << "the same millisecond keeps the order";
    struct stat st {};
    ASSERT_EQ(::stat((folder / *first).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640U) << "the notifier's group reads it whatever the umask";
    EXPECT_EQ(files().size(), 2U) << "no temporary file is left";

    std::vector<std::string> sent;
    notify::OutboxSender sender(folder,
                                [&](const std::string& body) {
                                    sent.push_back(body);
                                    return std::string();
                                },
                                {});
    const auto round = sender.run_once(now);
    EXPECT_EQ(sent, (std::vector<std::string>{R"({"type":"break_glass"})",
                                              R"({"type":"grant.revoked"})"}));
    EXPECT_EQ(round.delivered.size(), 2U);
    EXPECT_TRUE(files().empty());
    sender.run_once(now + 1s);
    EXPECT_EQ(sent.size(), 2U) << "sent once";
}

TEST_F(OutboxTest, AFailingReceiverKeepsTheEventAndBacksOff) {
    auto writer = notify::OutboxWriter::open(folder);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->put(R"({"type":"break_glass"})", 1'795'000'000'000));
    int attempts = 0;
    bool up = false;
    notify::OutboxSender sender(folder,
                                [&](const std::string&) {
                                    ++attempts;
                                    return up ? std::string() : std::string("connection refused");
                                },
                                {1s, 4s, 24h});
    auto round = sender.run_once(now);
    EXPECT_EQ(round.retry_in, 1s);
    EXPECT_NE(round.failed.find("connection refused"), std::string::npos);
    EXPECT_EQ(files().size(), 1U) << "kept";
    sender.run_once(now + 500ms);
    EXPECT_EQ(attempts, 1) << "not before the back-off";
    EXPECT_EQ(sender.run_once(now + 1s).retry_in, 2s) << "doubles";
    EXPECT_EQ(sender.run_once(now + 3s).retry_in, 4s);
    EXPECT_EQ(sender.run_once(now + 7s).retry_in, 4s) << "capped at max_backoff";
    up = true;
    round = sender.run_once(now + 11s);
    EXPECT_EQ(round.delivered.size(), 1U);
    EXPECT_EQ(attempts, 5);
    EXPECT_TRUE(files().empty());
}

TEST_F(OutboxTest, JunkIsNeverReadAndOldEventsAreDropped) {
    const std::string link = "00000001795000000000-0000000000-0123456789abcdef.json";
    std::filesystem::create_symlink("/etc/hostname", folder / link);
    std::ofstream(folder / "forged.json") << R"({"type":"forged"})";
    std::ofstream(folder / "00000001700000000000-0000000000-0123456789abcdef.json") << "{}";
    std::vector<std::string> sent;
    notify::OutboxSender sender(folder,
                                [&](const std::string& body) {
                                    sent.push_back(body);
                                    return std::string();
                                },
                                {1s, 4s, 24h});
    const auto round = sender.run_once(now);
    EXPECT_TRUE(sent.empty());
    ASSERT_EQ(round.dropped.size(), 2U);
    EXPECT_NE(round.dropped[0].find("older than max_age"), std::string::npos);
    EXPECT_NE(round.dropped[1].find("not a regular file"), std::string::npos);
    EXPECT_FALSE(std::filesystem::is_symlink(std::filesystem::symlink_status(folder / link)));
    EXPECT_TRUE(std::filesystem::exists(folder / "forged.json")) << "a bad name is not touched";
}

TEST_F(OutboxTest, TheOutboxIsBounded) {
    auto writer = notify::OutboxWriter::open(folder, 2);
    ASSERT_TRUE(writer);
    EXPECT_TRUE((*writer)->put("{}", 1));
    EXPECT_TRUE((*writer)->put("{}", 2));
    EXPECT_FALSE((*writer)->put("{}", 3));
    EXPECT_FALSE((*writer)->put(std::string(notify::kOutboxBodyLimit + 1, 'x'), 4));
    EXPECT_FALSE(notify::OutboxWriter::open(folder / "missing"));
}

TEST_F(OutboxTest, TheSignatureIsTheWebhooksV1Format) {
    // HMAC-SHA256("key", "1790000000.{}"), as receivers of the in-process webhook check it
    // (python3: hmac.new(b"key", b"1790000000.{}", hashlib.sha256).hexdigest()).
    EXPECT_EQ(notify::webhook_signature("key", 1790000000, "{}"),
              "v1=099d33989336226b12c85da813adf6100e1bbab1e91bede9a41ddeb7882d66b8");
    EXPECT_NE(notify::webhook_signature("key", 1790000000, "{}"),
              notify::webhook_signature("key", 1790000001, "{}"));
    EXPECT_TRUE(notify::valid_webhook_url("https://hooks.example.net/dkim"));
    EXPECT_FALSE(notify::valid_webhook_url("ftp://hooks.example.net/"));
}

}  // namespace
}  // namespace dkim::test

// Frames: round trips, and every way a hostile or broken peer can send a bad one.

#include "dkim/ipc/frame.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

std::string payload_of(const std::string& frame) {
    return frame.substr(ipc::kFrameHeaderSize);
}

TEST(FrameTest, RequestsAndRepliesRoundTrip) {
    ipc::ElevationRequest e;
    e.auth.user = "alice";
    e.operation = "sign";
    e.domain = "example.com";
    e.duration_seconds = 3600;
    e.budget = 10;
    e.reason = "CHG-1";
    e.break_glass = true;
    const std::string frame = ipc::encode(ipc::Request{e});
    ASSERT_GT(frame.size(), ipc::kFrameHeaderSize);
    EXPECT_EQ(static_cast<unsigned char>(frame[5]), ipc::kProtocolVersion);
    auto decoded = ipc::decode_request(payload_of(frame));
    ASSERT_TRUE(decoded) << decoded.error().message;
    const auto& back = std::get<ipc::ElevationRequest>(*decoded);
    EXPECT_EQ(back.auth.user, "alice");
    EXPECT_EQ(back.budget, 10U);
    EXPECT_TRUE(back.break_glass);

    ipc::RequestsReply r;
    r.requests.push_back({});
    r.requests[0].approvals = {"bob", "carol"};
    auto reply = ipc::decode_reply(payload_of(ipc::encode(ipc::Reply{r})));
    ASSERT_TRUE(reply);
    EXPECT_EQ(std::get<ipc::RequestsReply>(*reply).requests[0].approvals.size(), 2U);
}

// Issue 21: the signing summary's request and reply, field by field.
TEST(FrameTest, TheSigningSummaryRoundTrips) {
    const ipc::SigningSummaryRequest asked{1'795'690'800, 1'795'698'000, "example.com"};
    auto request = ipc::decode_request(payload_of(ipc::encode(ipc::Request{asked})));
    ASSERT_TRUE(request) << request.error().message;
    const auto& back = std::get<ipc::SigningSummaryRequest>(*request);
    EXPECT_EQ(back.from, asked.from);
    EXPECT_EQ(back.until, asked.until);
    EXPECT_EQ(back.domain, "example.com");

    ipc::SigningSummaryReply summary;
    summary.hours = {{"example.com", "s1", 1'795'694'400, 12, 3},
                     {"example.org", "sel", 1'795'698'000, 0, 1}};
    summary.grants = {{7, "example.com", "*", 1'795'694'400, 1'795'701'601}};
    summary.signature_lifetime = 604'800;
    summary.counted_since = 1'795'000'000;
    const std::string frame = ipc::encode(ipc::Reply{summary});
    auto reply = ipc::decode_reply(payload_of(frame));
    ASSERT_TRUE(reply) << reply.error().message;
    const auto& got = std::get<ipc::SigningSummaryReply>(*reply);
    ASSERT_EQ(got.hours.size(), 2U);
    EXPECT_EQ(got.hours[1].domain, "example.org");
    EXPECT_EQ(got.hours[1].selector, "sel");
    EXPECT_EQ(got.hours[0].hour, 1'795'694'400);
    EXPECT_EQ(got.hours[0].signatures, 12);
    EXPECT_EQ(got.hours[0].refusals, 3);
    ASSERT_EQ(got.grants.size(), 1U);
    EXPECT_EQ(got.grants[0].grant_id, 7);
    EXPECT_EQ(got.grants[0].selector, "*");
    EXPECT_EQ(got.grants[0].start, 1'795'694'400);
    EXPECT_EQ(got.grants[0].end, 1'795'701'601);
    EXPECT_EQ(got.signature_lifetime, 604'800);
    EXPECT_EQ(got.counted_since, 1'795'000'000);
    EXPECT_EQ(ipc::encode(*reply), frame) << "exactly";
}

TEST(FrameTest, MalformedPayloadsAreRefused) {
    const std::string good = payload_of(ipc::encode(
        ipc::Request{ipc::SignRequest{"example.com", "s1", "rsa-sha256", "data", "app1"}}));
    EXPECT_TRUE(ipc::decode_request(good));
    for (std::size_t cut = 0; cut < good.size(); ++cut) {
        EXPECT_FALSE(ipc::decode_request(good.substr(0, cut))) << "truncated at " << cut;
    }
    EXPECT_FALSE(ipc::decode_request(good + "x")) << "trailing bytes";
    std::string bad_index = good;
    bad_index[0] = 99;  // variant index
    EXPECT_FALSE(ipc::decode_request(bad_index));
    // A string length of 2^62: must fail without trying to allocate it.
    std::string huge = good;
    for (std::size_t i = 4; i < 12; ++i) {
        huge[i] = i == 11 ? '\x40' : '\0';
    }
    auto refused = ipc::decode_request(huge);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("exceeds"), std::string::npos)
        << refused.error().message;
    // A bool that is neither 0 nor 1.
    std::string with_bool = payload_of(ipc::encode(ipc::Request{ipc::ElevationList{{}, true}}));
    with_bool.back() = 7;
    EXPECT_FALSE(ipc::decode_request(with_bool));
}

class SocketPair : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0); }
    void TearDown() override {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    void send(const std::string& bytes) {
        ASSERT_EQ(::write(fds[0], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    }
    int fds[2] = {-1, -1};
};

TEST_F(SocketPair, OversizedFramesAreRefusedBeforeReadingThem) {
    send(std::string("\x7f\xff\xff\xff\x00\x01\x00\x00", 8));
    auto frame = ipc::read_frame(fds[1], 1s, 1s);
    ASSERT_FALSE(frame);
    EXPECT_EQ(frame.error().kind, ipc::FrameError::Kind::too_large);
}

TEST_F(SocketPair, OtherVersionsAreRefused) {
    send(std::string("\x00\x00\x00\x01\x00\x02\x00\x00x", 9));
    auto frame = ipc::read_frame(fds[1], 1s, 1s);
    ASSERT_FALSE(frame);
    EXPECT_EQ(frame.error().kind, ipc::FrameError::Kind::version);
}

TEST_F(SocketPair, AFrameThatStopsHalfwayTimesOut) {
    send(std::string("\x00\x00\x00\x10\x00\x01\x00\x00", 8) + "abc");
    auto frame = ipc::read_frame(fds[1], 1s, 20ms);
    ASSERT_FALSE(frame);
    EXPECT_EQ(frame.error().kind, ipc::FrameError::Kind::timeout);
}

TEST_F(SocketPair, AClosedPeerIsReportedAsClosed) {
    send(ipc::encode(ipc::Request{ipc::StatusRequest{}}));
    ::shutdown(fds[0], SHUT_WR);
    auto first = ipc::read_frame(fds[1], 1s, 1s);
    ASSERT_TRUE(first);
    EXPECT_TRUE(ipc::decode_request(*first));
    auto second = ipc::read_frame(fds[1], 1s, 1s);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().kind, ipc::FrameError::Kind::closed);
}

}  // namespace
}  // namespace dkim::test

namespace dkim {
namespace {

// Refusals cross the socket as their codes' names: each name reads back as its code, and a
// name this build does not know reads as `unknown` (never as another code).
TEST(ErrorCodeTest, CodesCrossTheSocketByName) {
    using ipc::ErrorCode;
    for (const auto code : {ErrorCode::invalid, ErrorCode::forbidden, ErrorCode::not_found,
                            ErrorCode::conflict, ErrorCode::unavailable, ErrorCode::unauthenticated,
                            ErrorCode::locked, ErrorCode::protocol}) {
        EXPECT_EQ(ipc::error_code_from_name(ipc::to_string(code)), code);
        const ipc::ErrorReply sent{code, "why", 7, "rule"};
        auto reply = ipc::decode_reply(ipc::encode(ipc::Reply{sent}).substr(ipc::kFrameHeaderSize));
        ASSERT_TRUE(reply);
        const auto* got = std::get_if<ipc::ErrorReply>(&*reply);
        ASSERT_NE(got, nullptr);
        EXPECT_EQ(got->code, code);
        EXPECT_EQ(got->request_id, 7);
        EXPECT_EQ(got->rule, "rule");
    }
    EXPECT_EQ(ipc::to_string(ErrorCode::not_found), "not_found");
    EXPECT_EQ(ipc::error_code_from_name("Forbidden"), ErrorCode::unknown);
    EXPECT_EQ(ipc::error_code_from_name("teapot"), ErrorCode::unknown);
    EXPECT_EQ(ipc::error_code_from_name(""), ErrorCode::unknown);
    EXPECT_EQ((ipc::ErrorReply{ErrorCode::locked, "no grant", 0, {}}.describe()),
              "locked: no grant");
}

}  // namespace
}  // namespace dkim

#include "dkim/dkim/signer.hpp"

#include <gtest/gtest.h>

#include "dkim/dkim/verifier.hpp"
#include "software_signer.hpp"

namespace dkim {
namespace {

const auto kSignedAt = std::chrono::system_clock::time_point(std::chrono::seconds(1764115200));

mail::HeaderBlock header(std::string text) {
    auto h = mail::HeaderBlock::parse(std::move(text));
    EXPECT_TRUE(h) << h.error().to_string();
    return h ? std::move(*h) : mail::HeaderBlock{};
}

TEST(SignerTest, DefaultHeaderSelectionSignsPresentFieldsAndOversigns) {
    const auto h = header(
        "Received: x\r\nFrom: a@example.com\r\nTo: b@example.net\r\nTo: c@example.net\r\n"
        "Subject: s\r\nList-Id: <l.example.com>\r\nList-Unsubscribe: <mailto:u@example.com>\r\n"
        "X-Mailer: m\r\nMIME-Version: 1.0\r\n");
    EXPECT_EQ(select_signed_headers(h, SignOptions{}),
              (std::vector<std::string>{"from", "from", "to", "to", "to", "cc", "subject",
                                        "subject", "date", "message-id", "reply-to", "mime-version",
                                        "content-type", "list-id", "list-unsubscribe"}));
}

TEST(SignerTest, CustomHeaderListWithoutOversigning) {
    SignOptions options;
    options.headers = {"From", "X-Custom"};
    options.oversigned = {};
    EXPECT_EQ(select_signed_headers(header("From: a\r\nX-Custom: 1\r\nX-Custom: 2\r\n"), options),
              (std::vector<std::string>{"from", "x-custom", "x-custom"}));
}

TEST(SignerTest, RefusesMessagesWithoutExactlyOneFrom) {
    auto signer = test::SoftwareSigner::generate(0);
    for (const char* m : {"To: a@example.com\r\n\r\nbody\r\n",
                          "From: a@example.com\r\nFrom: b@evil.example\r\n\r\nbody\r\n"}) {
        auto out = sign_message(m, {SigningKey{"example.com", "s", signer.get(), {}}}, kSignedAt);
        ASSERT_FALSE(out);
        EXPECT_NE(out.error().message.find("From"), std::string::npos);
    }
}

TEST(SignerTest, FieldLooksRightAndCarriesTimestamps) {
    auto signer = test::SoftwareSigner::generate(0);
    SignOptions options;
    options.expire_after = std::chrono::hours(24 * 7);
    auto out = sign_message("From: a@example.com\r\n\r\nbody\r\n",
                            {SigningKey{"Example.COM", "Ed1", signer.get(), "@mail.example.com"}},
                            kSignedAt, options);
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_EQ(
        out->rfind("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com;\r\n"
                   "\ts=ed1; t=1764115200; x=1764720000; i=@mail.example.com; h=from:from:\r\n",
                   0),
        0U)
        << *out;
    EXPECT_NE(out->find("\r\nFrom: a@example.com\r\n\r\nbody\r\n"), std::string::npos);
}

TEST(SignerTest, StreamedBodyGivesTheSameSignatureAsOneBuffer) {
    auto signer = test::SoftwareSigner::generate(0);  // Ed25519 is deterministic
    const std::string body = "line one  \r\n\tline two\r\n\r\n\r\n";
    const auto h = header("From: a@example.com\r\nSubject: x\r\n");
    MessageSigner streamed({SigningKey{"example.com", "s", signer.get(), {}}});
    for (const char c : body) {
        streamed.update_body(std::string_view(&c, 1));
    }
    auto a = streamed.finish(h, kSignedAt);
    MessageSigner whole({SigningKey{"example.com", "s", signer.get(), {}}});
    whole.update_body(body);
    auto b = whole.finish(h, kSignedAt);
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    EXPECT_EQ(*a, *b);
}

class FailingSigner final : public Signer {
  public:
    SigningAlgorithm algorithm() const override { return SigningAlgorithm::rsa_sha256; }
    Expected<std::string, std::string> sign(std::string_view) override {
        return unexpected(std::string("token not logged in"));
    }
};

TEST(SignerTest, SignerFailureIsAnErrorNotAnUnsignedMessage) {
    FailingSigner failing;
    auto out = sign_message("From: a@example.com\r\n\r\nbody\r\n",
                            {SigningKey{"example.com", "s", &failing, {}}}, kSignedAt);
    ASSERT_FALSE(out);
    EXPECT_NE(out.error().message.find("token not logged in"), std::string::npos);
}

}  // namespace
}  // namespace dkim

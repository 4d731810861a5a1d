// The milter listener's conversation (milter.hpp) without a socket: packets as Postfix's
// milter8.c sends them, the replies the MTA gets, and what the policies were given. The
// signing backend is a fake that records the header section and body it signed; the verifying
// policy runs inbound::Verifier over a FakeResolver.
#include "milter.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "dkim/dns/resolver.hpp"
#include "jit_fixture.hpp"
#include "milter_packets.hpp"

namespace dkim::relayd {
namespace {

using test::bin;
using test::packet;
using test::u32;

using namespace std::chrono_literals;
namespace cmd = milter::command;
namespace st = milter::step;

std::string strings(std::initializer_list<std::string> parts) {
    std::string out;
    for (const auto& p : parts) {
        out += p;
        out.push_back('\0');
    }
    return out;
}

// Every step Postfix 3.7 offers (milter8.c: SMFIP_* up to HDR_LEADSPC) and every action.
constexpr std::uint32_t kPostfixSteps = 0x1fffff;
constexpr std::uint32_t kPostfixActions = 0x1ff;

std::string negotiate(std::uint32_t steps = kPostfixSteps, std::uint32_t version = 6) {
    return packet(cmd::option_negotiation, u32(version) + u32(kPostfixActions) + u32(steps));
}
std::string connect(const std::string& address) {
    return packet(cmd::connect, bin("client.test\0") + "4" + bin("\0\x19") + address + '\0');
}
std::string header(const std::string& name, const std::string& value) {
    return packet(cmd::header, name + '\0' + value + '\0');
}

// A reply packet as the MTA reads it.
struct Reply {
    char command = 0;
    std::string data;
};
std::vector<Reply> parse_replies(std::string_view bytes) {
    std::vector<Reply> out;
    milter::PacketReader reader(1 << 20);
    reader.feed(bytes);
    while (auto next = reader.next()) {
        if (!*next) {
            break;
        }
        out.push_back(Reply{(*next)->command, (*next)->data});
    }
    return out;
}

// A signature whose value names the header section and body it was given.
class RecordingSigning final : public SigningBackend {
  public:
    class Signature final : public BodySignature {
      public:
        explicit Signature(RecordingSigning& owner) : owner_(owner) {}
        void update_body(std::string_view chunk) override { owner_.body.append(chunk); }
        Expected<std::string, SignFailure> finish(const mail::HeaderBlock& header,
                                                  TimePoint /*now*/) override {
            owner_.header = header.text();
            if (owner_.failure) {
                return unexpected(*owner_.failure);
            }
            return "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel1;\r\n\tbh=" +
                   std::to_string(owner_.body.size()) + "; b=sig\r\n";
        }
        const std::vector<std::string>& selectors() const override { return selectors_; }

      private:
        RecordingSigning& owner_;
        std::vector<std::string> selectors_{"sel1"};
    };
    std::unique_ptr<BodySignature> start(const SigningDomain& /*domain*/,
                                         const std::string& smtp_client) override {
        clients.push_back(smtp_client);
        body.clear();
        return std::make_unique<Signature>(*this);
    }
    Expected<void, SignFailure> prepare(const SigningDomain& /*domain*/) override { return {}; }

    std::vector<std::string> clients;
    std::string header;
    std::string body;
    std::optional<SignFailure> failure;
};

class FakeMilterHost final : public MilterHost {
  public:
    awaitable<bool> flush(std::string& output) override {
        sent += output;
        output.clear();
        co_return true;
    }
    void log(const std::string& line) override { logs.push_back(line); }

    std::string sent;
    std::vector<std::string> logs;
};

class MilterTest : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto file = dir_ / "relayd.toml";
        std::ofstream(file) << R"(hostname = "relay.test"
[[listen]]
address = "127.0.0.1:8891"
protocol = "milter"
role = "both"
[next_hop]
url = "maildir:/nonexistent"
[[domain]]
name = "example.com"
selectors = ["sel1"]
[[domain]]
name = "other.test"
selectors = ["sel1"]
[[client]]
name = "apps"
networks = ["10.0.0.0/8"]
domains = ["example.com"]
[[client]]
name = "people"
sasl_users = ["alice@example.com"]
domains = ["example.com", "other.test"]
[limits]
message_size = 4096
[inbound]
domains = ["example.net"]
authserv_id = "relay.test"
)";
        auto loaded = load_config(file.string());
        ASSERT_TRUE(loaded) << loaded.error();
        config_ = std::make_unique<Config>(std::move(*loaded));
        signing_policy_ = std::make_unique<SigningPolicy>(*config_, signing_, metrics_, clock_);
        keys_ = std::make_unique<KeyFetcher>(resolver_);
        inbound::Settings settings;
        settings.authserv_id = "relay.test";
        settings.dmarc.method = dmarc::OrgDomainMethod::tree_walk;
        verifier_ = std::make_unique<inbound::Verifier>(resolver_, *keys_, settings);
        verifying_policy_ =
            std::make_unique<VerifyingPolicy>(*config_, *verifier_, metrics_, clock_);
    }
    void start(bool sign = true, bool verify = true) {
        MilterPolicies p;
        p.signing = sign ? signing_policy_.get() : nullptr;
        p.verifying = verify ? verifying_policy_.get() : nullptr;
        conversation_ =
            std::make_unique<MilterConversation>(*config_, "m1", p, host_, metrics_, clock_);
    }
    // Feeds bytes; the replies sent since the last call.
    std::vector<Reply> send(const std::string& bytes) {
        asio::co_spawn(io_, conversation_->receive(bytes), asio::detached);
        io_.restart();
        io_.run();
        std::string out = host_.sent + conversation_->take_output();
        host_.sent.clear();
        return parse_replies(out);
    }
    static std::string commands(const std::vector<Reply>& replies) {
        std::string out;
        for (const auto& r : replies) {
            out.push_back(r.command);
        }
        return out;
    }
    // One message up to its end of headers, from `from`, after a connect from `address`.
    std::vector<Reply> message(const std::string& from, const std::string& body = "hello\r\n",
                               const std::string& extra_header = "") {
        std::string bytes = packet(cmd::macro, bin("Mi\0ABC123\0")) +
                            packet(cmd::mail, strings({"<a@example.com>"})) +
                            packet(cmd::rcpt, strings({"<b@example.net>"})) +
                            header("From", " " + from) + header("To", " b@example.net") +
                            header("Subject", " a folded\n\tsubject") + extra_header +
                            packet(cmd::end_of_header);
        if (!body.empty()) {
            bytes += packet(cmd::body, body);
        }
        return send(bytes + packet(cmd::end_of_body));
    }
    std::vector<Reply> open(const std::string& address = "10.1.2.3") {
        start();
        return send(negotiate() + connect(address) + packet(cmd::helo, strings({"client.test"})));
    }

    std::filesystem::path dir_ = test::make_temp_dir("relayd-milter");
    std::unique_ptr<Config> config_;
    ManualClock clock_{from_unix_ms(1'767'225'600'000)};
    RelayMetrics metrics_;
    FakeMilterHost host_;
    RecordingSigning signing_;
    dns::FakeResolver resolver_;
    std::unique_ptr<KeyFetcher> keys_;
    std::unique_ptr<inbound::Verifier> verifier_;
    std::unique_ptr<SigningPolicy> signing_policy_;
    std::unique_ptr<VerifyingPolicy> verifying_policy_;
    std::unique_ptr<MilterConversation> conversation_;
    asio::io_context io_;
};

TEST_F(MilterTest, NegotiatesVersionSixHeaderActionsAndNoRepliesWhereItNeverRefuses) {
    start();
    const auto replies = send(negotiate());
    ASSERT_EQ(commands(replies), "O");
    const std::string& d = replies[0].data;
    ASSERT_EQ(d.size(), 12u);
    EXPECT_EQ(d.substr(0, 4), u32(6));
    EXPECT_EQ(d.substr(4, 4), u32(milter::action::add_headers | milter::action::change_headers |
                                  milter::action::quarantine));
    const std::uint32_t steps =
        (static_cast<std::uint32_t>(static_cast<unsigned char>(d[8])) << 24) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(d[9])) << 16) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(d[10])) << 8) |
        static_cast<std::uint32_t>(static_cast<unsigned char>(d[11]));
    EXPECT_TRUE(steps & st::header_leading_space);
    EXPECT_TRUE(steps & st::no_reply_header);
    EXPECT_TRUE(steps & st::no_reply_body);
    EXPECT_FALSE(steps & st::no_reply_mail) << "MAIL is answered: mail it will not touch goes";
    EXPECT_FALSE(steps & st::no_reply_end_of_header);
    EXPECT_FALSE(steps & st::no_body);
    EXPECT_FALSE(steps & st::no_headers);
}

TEST_F(MilterTest, AnMtaThatCannotAddHeadersOrSpeaksVersionOneIsRefused) {
    start();
    EXPECT_TRUE(
        send(packet(cmd::option_negotiation, u32(6) + u32(0) + u32(kPostfixSteps))).empty());
    EXPECT_TRUE(conversation_->closing());
    start();
    send(negotiate(kPostfixSteps, 1));
    EXPECT_TRUE(conversation_->closing());
    start();
    send(connect("10.1.2.3"));  // before OPTNEG
    EXPECT_TRUE(conversation_->closing());
}

TEST_F(MilterTest, ANetworkClientsMessageIsSignedAndTheSignatureGoesOnTop) {
    ASSERT_TRUE(open().size() == 1);  // OPTNEG only: CONNECT and HELO need no reply
    const auto replies = message("a@example.com", "line one\r\nline two\r\n");
    // MAIL and EOH answered with continue; then the signature, then continue.
    ASSERT_EQ(commands(replies), "ccic");
    const std::string& ins = replies[2].data;
    EXPECT_EQ(ins.substr(0, 4), u32(0)) << "index 0: above every field";
    EXPECT_EQ(ins.substr(4), bin("DKIM-Signature\0 v=1; a=rsa-sha256; d=example.com; s=sel1;\n"
                                 "\tbh=20; b=sig\0"));
    EXPECT_EQ(signing_.clients, (std::vector<std::string>{"apps"}));
    // The header section as the message has it: the leading spaces kept, LF made CRLF.
    EXPECT_EQ(signing_.header,
              "From: a@example.com\r\nTo: b@example.net\r\nSubject: a folded\r\n\tsubject\r\n");
    EXPECT_EQ(signing_.body, "line one\r\nline two\r\n");
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::delivered), 1u);
    ASSERT_FALSE(host_.logs.empty());
    EXPECT_NE(host_.logs.back().find("mode=sign client=apps ip=10.1.2.3 from_domain=example.com"),
              std::string::npos)
        << host_.logs.back();
    EXPECT_NE(host_.logs.back().find("queue_id=\"ABC123\""), std::string::npos);
}

TEST_F(MilterTest, AnAuthenticatedUserIsItsClientWhereverItConnectsFrom) {
    open("192.0.2.9");
    auto replies = send(packet(cmd::macro, bin("M{auth_authen}\0alice@example.com\0")) +
                        packet(cmd::mail, strings({"<alice@example.com>"})) +
                        header("From", " alice@other.test") + packet(cmd::end_of_header) +
                        packet(cmd::body, "hi\r\n") + packet(cmd::end_of_body));
    EXPECT_EQ(commands(replies), "ccic");
    EXPECT_EQ(signing_.clients, (std::vector<std::string>{"people"}));

    // An AUTH user that no client names, from a stranger's address: verified, not signed.
    signing_.clients.clear();
    replies = send(packet(cmd::macro, bin("M{auth_authen}\0mallory\0")) +
                   packet(cmd::mail, strings({"<alice@example.com>"})) +
                   header("From", " alice@example.com") + packet(cmd::end_of_header) +
                   packet(cmd::end_of_body));
    EXPECT_TRUE(signing_.clients.empty());
    ASSERT_EQ(commands(replies), "ccic");
    EXPECT_NE(replies[2].data.find("Authentication-Results"), std::string::npos);
}

TEST_F(MilterTest, OnlyTheMailStagesAuthUserCountsAndAClientsNameIsNoAuthUser) {
    open("192.0.2.9");
    // "apps" is a client of networks: an AUTH user of that name is not it.
    send(packet(cmd::macro, bin("M{auth_authen}\0apps\0")) +
         packet(cmd::mail, strings({"<a@example.com>"})) + header("From", " a@example.com") +
         packet(cmd::end_of_header) + packet(cmd::end_of_body));
    EXPECT_TRUE(signing_.clients.empty());
    // {auth_authen} in another stage's macros (here the end of the last message's) is not the
    // MAIL stage's: the next message is a stranger's.
    send(packet(cmd::macro, bin("E{auth_authen}\0alice@example.com\0")) + packet(cmd::abort));
    send(packet(cmd::mail, strings({"<a@example.com>"})) + header("From", " a@example.com") +
         packet(cmd::end_of_header) + packet(cmd::end_of_body));
    EXPECT_TRUE(signing_.clients.empty());
    // The MAIL stage's macros of one message do not carry over to the next.
    send(packet(cmd::macro, bin("M{auth_authen}\0alice@example.com\0")) +
         packet(cmd::mail, strings({"<a@example.com>"})) + packet(cmd::abort));
    send(packet(cmd::macro, bin("M\0")) + packet(cmd::mail, strings({"<a@example.com>"})) +
         header("From", " a@example.com") + packet(cmd::end_of_header) + packet(cmd::end_of_body));
    EXPECT_TRUE(signing_.clients.empty());
}

TEST_F(MilterTest, AnAuthUserNoClientNamesIsNotTheClientOfItsAddress) {
    open("10.1.2.3");  // apps' network
    send(packet(cmd::macro, bin("M{auth_authen}\0mallory\0")) +
         packet(cmd::mail, strings({"<a@example.com>"})) + header("From", " a@example.com") +
         packet(cmd::end_of_header) + packet(cmd::end_of_body));
    EXPECT_TRUE(signing_.clients.empty()) << "mallory on apps' address is not apps";
}

TEST_F(MilterTest, AHeaderAfterTheEndOfTheHeaderSectionEndsTheConnection) {
    open();
    send(packet(cmd::mail, strings({"<a@example.com>"})) + header("From", " a@example.com") +
         packet(cmd::end_of_header));
    EXPECT_TRUE(send(header("From", " b@example.com")).empty());
    EXPECT_TRUE(conversation_->closing());
    EXPECT_TRUE(signing_.header.empty()) << "nothing signed";
}

TEST_F(MilterTest, MailTheClientMayNotSignForPassesUntouched) {
    open();
    // apps may sign example.com only: other.test goes on as it is (accepted at EOH).
    auto replies = send(packet(cmd::mail, strings({"<a@other.test>"})) +
                        header("From", " a@other.test") + packet(cmd::end_of_header));
    EXPECT_EQ(commands(replies), "ca");
    EXPECT_FALSE(conversation_->in_message());
    EXPECT_NE(host_.logs.back().find("outcome=untouched"), std::string::npos) << host_.logs.back();
    // Two From: fields: not signed, not refused either.
    replies =
        send(packet(cmd::mail, strings({"<a@example.com>"})) + header("From", " a@example.com") +
             header("From", " b@example.com") + packet(cmd::end_of_header));
    EXPECT_EQ(commands(replies), "ca");
}

TEST_F(MilterTest, AStrangerOnAnOutboundListenerIsAcceptedAtMail) {
    start(true, false);
    send(negotiate() + connect("192.0.2.9"));
    const auto replies = send(packet(cmd::mail, strings({"<x@example.com>"})));
    EXPECT_EQ(commands(replies), "a");
    EXPECT_NE(host_.logs.back().find("is no configured client"), std::string::npos);
}

TEST_F(MilterTest, NoGrantIsATempfailWithTheRequestSoTheMtaKeepsTheMail) {
    open();
    signing_.failure = SignFailure{SignFailure::Kind::locked, "locked", "sel1", 42};
    auto replies = message("a@example.com");
    ASSERT_EQ(commands(replies), "ccy");
    EXPECT_EQ(replies[2].data,
              bin("451 4.7.0 Signing for example.com is awaiting approval (elevation request 42); "
                  "try again later\0"));
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::deferred_grant), 1u);

    signing_.failure = SignFailure{SignFailure::Kind::unavailable, "signerd is down", "sel1", 0};
    replies = message("a@example.com");
    ASSERT_EQ(commands(replies), "ccy");
    EXPECT_EQ(replies[2].data.substr(0, 10), "451 4.3.0 ");
    // The next message, once signerd answers again, is signed on the same connection.
    signing_.failure.reset();
    EXPECT_EQ(commands(message("a@example.com")), "ccic");
}

TEST_F(MilterTest, InboundMailGetsOneAuthenticationResultsAndForgedOnesGo) {
    open("192.0.2.9");
    const auto replies = message(
        "someone@example.org", "hi\r\n",
        header("Authentication-Results", " elsewhere.test; spf=pass") +
            header("Authentication-Results", " relay.test; dkim=pass header.d=example.org") +
            header("Authentication-Results", " (comment) RELAY.TEST.; dmarc=pass"));
    // MAIL (after SPF), EOH, then the forged fields removed (from the last), ours on top.
    ASSERT_EQ(commands(replies), "ccmmic") << replies.size();
    EXPECT_EQ(replies[2].data, u32(3) + bin("Authentication-Results\0\0"));
    EXPECT_EQ(replies[3].data, u32(2) + bin("Authentication-Results\0\0"));
    EXPECT_EQ(replies[4].data.substr(0, 4), u32(0));
    EXPECT_EQ(replies[4].data.substr(4, 30), bin("Authentication-Results\0 relay."));
    EXPECT_TRUE(signing_.clients.empty());
}

TEST_F(MilterTest, ResultsClaimingOurIdGoFromAClientsMailToo) {
    // Role both: a client's mail may be delivered here, where our authserv-id is trusted.
    open();
    const std::string forged =
        header("Authentication-Results", " relay.test; dkim=pass header.d=example.com");
    auto replies = message("a@example.com", "hi\r\n", forged);
    // MAIL, EOH, the forged field removed (it is the first), the signature on top, continue.
    ASSERT_EQ(commands(replies), "ccmic");
    EXPECT_EQ(replies[2].data, u32(1) + bin("Authentication-Results\0\0"));
    ASSERT_EQ(signing_.clients, (std::vector<std::string>{"apps"}));
    // Mail the client may not sign passes untouched, but is not accepted at the end of its
    // header (which would let the field through): it goes at the end of the body.
    replies = message("a@other.test", "hi\r\n", forged);
    ASSERT_EQ(commands(replies), "ccmc");
    EXPECT_EQ(replies[2].data, u32(1) + bin("Authentication-Results\0\0"));
    EXPECT_NE(host_.logs.back().find("outcome=untouched"), std::string::npos) << host_.logs.back();
}

TEST_F(MilterTest, ALocalSubmissionWithoutAnAddressIsNotDeferredForEver) {
    // Sendmail's local submissions: family 'L' (a socket path) and unknown ('U'), no address.
    for (const std::string& family :
         {std::string("L") + bin("\0\0") + "/var/run/x" + '\0', std::string("U")}) {
        start();
        send(negotiate() + packet(cmd::connect, bin("localhost\0") + family) +
             packet(cmd::helo, strings({"localhost"})));
        const auto replies = message(
            "someone@example.org", "hi\r\n",
            header("Authentication-Results", " relay.test; spf=pass smtp.mailfrom=example.org"));
        // Untouched (no SPF without an address, no Authentication-Results of ours), the field
        // in our name removed.
        ASSERT_EQ(commands(replies), "ccmc") << family;
        EXPECT_EQ(replies[2].data, u32(1) + bin("Authentication-Results\0\0"));
        EXPECT_NE(host_.logs.back().find("outcome=untouched"), std::string::npos)
            << host_.logs.back();
    }
    // Over the field limit the forged ones cannot all be counted, so it does not pass.
    std::string many = header("Authentication-Results", " relay.test; dkim=pass");
    for (std::size_t i = 0; i < kMilterMaxFields; ++i) {
        many += header("X", "");
    }
    start();
    send(negotiate() + packet(cmd::connect, bin("localhost\0") + "U"));
    const auto replies = message("someone@example.org", "hi\r\n", many);
    ASSERT_EQ(commands(replies), "ccy");
    EXPECT_EQ(replies[2].data.substr(0, 10), "552 5.3.4 ");
}

TEST_F(MilterTest, AMessageOverTheSizeLimitIsRefusedWithoutBeingKept) {
    open();
    const auto replies = message("a@example.com", std::string(5000, 'x'));
    ASSERT_EQ(commands(replies), "ccy");
    EXPECT_EQ(replies[2].data.substr(0, 10), "552 5.3.4 ");
    EXPECT_EQ(commands(message("a@example.com")), "ccic") << "the connection goes on";
}

TEST_F(MilterTest, TooManyFieldsOrForgedResultsAreRefusedNotKept) {
    open("192.0.2.9");
    std::string forged;
    for (int i = 0; i < 65; ++i) {
        forged += header("Authentication-Results", " relay.test; dkim=pass");
    }
    auto replies = message("someone@example.org", "hi\r\n", forged);
    ASSERT_EQ(commands(replies), "ccy");
    EXPECT_EQ(replies[2].data.substr(0, 10), "550 5.7.1 ");
    // 64 are removed one by one, as any real message's few.
    forged.clear();
    for (int i = 0; i < 64; ++i) {
        forged += header("Authentication-Results", " relay.test; dkim=pass");
    }
    replies = message("someone@example.org", "hi\r\n", forged);
    EXPECT_EQ(std::count_if(replies.begin(), replies.end(),
                            [](const Reply& r) { return r.command == 'm'; }),
              64);
    // Ten thousand and one fields of one byte each, within message_size: 552, nothing kept.
    config_->limits.message_size = 1 << 20;
    std::string many;
    for (std::size_t i = 0; i <= kMilterMaxFields; ++i) {
        many += header("X", "");
    }
    replies = message("a@example.com", "hi\r\n", many);
    ASSERT_EQ(commands(replies), "ccy");
    EXPECT_EQ(replies[2].data.substr(0, 10), "552 5.3.4 ");
}

TEST_F(MilterTest, AbortForgetsTheMessageAndTheNextOneStartsClean) {
    open();
    send(packet(cmd::mail, strings({"<a@example.com>"})) + header("From", " a@example.com") +
         packet(cmd::end_of_header) + packet(cmd::body, "first body\r\n"));
    EXPECT_TRUE(conversation_->in_message());
    EXPECT_TRUE(send(packet(cmd::abort)).empty());
    EXPECT_FALSE(conversation_->in_message());
    EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::aborted), 1u);
    EXPECT_EQ(commands(message("a@example.com", "second\r\n")), "ccic");
    EXPECT_EQ(signing_.body, "second\r\n");
}

TEST_F(MilterTest, WithoutNoReplyStepsEveryStepIsAnswered) {
    start();
    send(negotiate(st::header_leading_space));  // an MTA that offers no "no reply" steps
    auto replies =
        send(connect("10.1.2.3") + packet(cmd::helo, strings({"c"})) +
             packet(cmd::mail, strings({"<a@example.com>"})) +
             packet(cmd::rcpt, strings({"<b@example.net>"})) + header("From", " a@example.com") +
             header("To", " b@example.net") + packet(cmd::end_of_header) +
             packet(cmd::body, "x\r\n") + packet(cmd::end_of_body));
    EXPECT_EQ(commands(replies), "ccccccccic");
}

TEST_F(MilterTest, WithoutLeadingSpacesTheSpaceIsPutBackAndLeftOutOfInsertedValues) {
    start();
    send(negotiate(kPostfixSteps & ~st::header_leading_space) + connect("10.1.2.3"));
    const auto replies =
        send(packet(cmd::mail, strings({"<a@example.com>"})) + header("From", "a@example.com") +
             packet(cmd::end_of_header) + packet(cmd::end_of_body));
    ASSERT_EQ(commands(replies), "ccic");
    EXPECT_EQ(signing_.header, "From: a@example.com\r\n");
    EXPECT_EQ(replies[2].data.substr(4, 20), bin("DKIM-Signature\0v=1; "));
}

TEST_F(MilterTest, AMalformedPacketEndsItsConversationAndItsMessageIsCountedAborted) {
    for (const std::string& bad :
         {packet('Z'), packet(cmd::header, "no nul"), packet(cmd::connect, "x"), packet(cmd::macro),
          u32(0), u32(2u << 20), packet(cmd::mail, "<a@b>")}) {
        open();
        send(packet(cmd::mail, strings({"<a@example.com>"})) + header("From", " a@example.com"));
        const auto aborted = metrics_.transactions(RelayMetrics::Outcome::aborted);
        EXPECT_TRUE(send(bad).empty());
        EXPECT_TRUE(conversation_->closing());
        EXPECT_EQ(metrics_.transactions(RelayMetrics::Outcome::aborted), aborted + 1);
        EXPECT_NE(host_.logs.back().find("protocol error"), std::string::npos) << host_.logs.back();
    }
}

TEST_F(MilterTest, QuitNewConnectionForgetsTheClient) {
    open();
    send(packet(cmd::quit_new_connection) + connect("192.0.2.9"));
    // The new client is a stranger: verified, not signed.
    const auto replies = message("a@example.com");
    EXPECT_EQ(commands(replies), "ccic");
    EXPECT_TRUE(signing_.clients.empty());
    EXPECT_NE(replies[2].data.find("Authentication-Results"), std::string::npos);
}

TEST(MilterConfigTest, MilterListenersAndSaslUsersAreCheckedWithTheirKeys) {
    const auto dir = test::make_temp_dir("relayd-milter-config");
    auto load = [&dir](const std::string& listen, const std::string& client = "") {
        const auto file = dir / "relayd.toml";
        // A milter-only relay needs no [next_hop]: the MTA keeps the mail.
        const bool milter = listen.find("milter") != std::string::npos;
        std::ofstream(file) << "[[listen]]\naddress = \"127.0.0.1:8891\"\n"
                            << listen
                            << (milter ? "" : "\n[next_hop]\nurl = \"maildir:/nonexistent\"")
                            << "\n[[domain]]\nname = \"example.com\"\nselectors = [\"s\"]\n"
                               "[[client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n"
                               "domains = [\"example.com\"]\n"
                            << client;
        return load_config(file.string());
    };
    auto ok = load("protocol = \"milter\"");
    ASSERT_TRUE(ok) << ok.error();
    ASSERT_EQ(ok->listeners[0].allowed_networks.size(), 2u) << "loopback by default";
    EXPECT_EQ(ok->listeners[0].role, Listener::Role::outbound);
    auto both = load("protocol = \"milter\"\nrole = \"both\"");
    ASSERT_FALSE(both);
    EXPECT_NE(both.error().find("[inbound]"), std::string::npos) << both.error();
    auto smtp_both = load("role = \"both\"");
    ASSERT_FALSE(smtp_both);
    EXPECT_NE(smtp_both.error().find("role"), std::string::npos);
    auto smtp_allowed = load("allowed_networks = [\"10.0.0.0/8\"]");
    ASSERT_TRUE(smtp_allowed) << smtp_allowed.error();
    std::array<unsigned char, 16> ip{};
    ip[10] = ip[11] = 0xff;
    ip[12] = 10;
    EXPECT_TRUE(smtp_allowed->listeners[0].allows(ip));
    ip[12] = 192;
    EXPECT_FALSE(smtp_allowed->listeners[0].allows(ip));
    ASSERT_TRUE(load("")->listeners[0].allowed_networks.empty()) << "SMTP: anyone by default";
    auto nobody = load("allowed_networks = []");
    ASSERT_FALSE(nobody);
    EXPECT_NE(nobody.error().find("allowed_networks"), std::string::npos);
    auto bad_network = load("protocol = \"milter\"\nallowed_networks = [\"nowhere\"]");
    ASSERT_FALSE(bad_network);
    EXPECT_NE(bad_network.error().find("allowed_networks"), std::string::npos);
    // A Unix socket: milter listeners only, its peers checked by user (postfix by default).
    const auto dir_text = dir.string();
    auto unix_socket = load("protocol = \"milter\"\naddress = \"unix:" + dir_text + "/m.sock\"");
    ASSERT_FALSE(unix_socket) << "address is given twice (the helper's and this one)";
    auto unix_file = dir / "unix.toml";
    std::ofstream(unix_file) << "[[listen]]\naddress = \"unix:" << dir_text
                             << "/m.sock\"\nprotocol = \"milter\"\nallowed_users = [\"root\"]\n"
                                "[[domain]]\nname = \"example.com\"\nselectors = [\"s\"]\n";
    auto unix_ok = load_config(unix_file.string());
    ASSERT_TRUE(unix_ok) << unix_ok.error();
    EXPECT_EQ(unix_ok->listeners[0].unix_path, dir_text + "/m.sock");
    EXPECT_EQ(unix_ok->listeners[0].allowed_uids, std::vector<uid_t>{0});
    EXPECT_TRUE(unix_ok->listeners[0].allowed_networks.empty());
    for (const char* bad :
         {"address = \"unix:relative.sock\"\nprotocol = \"milter\"",
          "address = \"unix:/tmp/x.sock\"\nprotocol = \"milter\"\nallowed_users = "
          "[\"no-such-user-x\"]",
          "address = \"unix:/tmp/x.sock\"\nprotocol = \"milter\"\nallowed_users = [\"root\"]\n"
          "allowed_networks = [\"127.0.0.1\"]",
          "address = \"unix:/tmp/x.sock\"",
          "address = \"127.0.0.1:2525\"\nallowed_users = [\"root\"]"}) {
        std::ofstream(unix_file) << "[[listen]]\n"
                                 << bad << "\n[next_hop]\nurl = \"maildir:/x\"\n"
                                 << "[[domain]]\nname = \"example.com\"\nselectors = [\"s\"]\n";
        auto refused = load_config(unix_file.string());
        ASSERT_FALSE(refused) << bad;
        EXPECT_NE(refused.error().find("unix.toml:"), std::string::npos) << refused.error();
    }
    auto bad_protocol = load("protocol = \"lmtp\"");
    ASSERT_FALSE(bad_protocol);
    EXPECT_NE(bad_protocol.error().find("protocol"), std::string::npos);
    auto tls = load("protocol = \"milter\"\ntls_certificate = \"c\"\ntls_key = \"k\"");
    ASSERT_FALSE(tls);
    auto users =
        load("protocol = \"milter\"",
             "[[client]]\nname = \"b\"\nsasl_users = [\"bob\"]\ndomains = [\"example.com\"]\n");
    ASSERT_TRUE(users) << users.error();
    EXPECT_EQ(users->client_for_user("bob"), users->client("b"));
    EXPECT_EQ(users->client_for_user("b"), nullptr) << "a client's name is no AUTH user";
    EXPECT_EQ(users->client_for_user("carol"), nullptr);
    auto twice =
        load("protocol = \"milter\"",
             "[[client]]\nname = \"b\"\nsasl_users = [\"x\"]\ndomains = [\"example.com\"]\n"
             "[[client]]\nname = \"c\"\nsasl_users = [\"x\"]\ndomains = [\"example.com\"]\n");
    ASSERT_FALSE(twice);
    EXPECT_NE(twice.error().find("sasl_users"), std::string::npos) << twice.error();
}

}  // namespace
}  // namespace dkim::relayd

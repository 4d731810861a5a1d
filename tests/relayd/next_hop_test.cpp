// The SMTP next hop against a scripted peer on 127.0.0.1: what follows its 220 to STARTTLS in
// clear text ends the session before TLS (issue 18, finding 5). The full attack (TLS done
// after the injection, forged 250 and 550) runs against the daemon in
// integration/attack_network.py.

#include "next_hop.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <ostream>
#include <string>
#include <thread>

namespace dkim::relayd {
namespace {

// What the peer saw of the relay after its 220 to STARTTLS.
struct PeerLog {
    bool got_starttls = false;
    std::string after_ready;  // bytes from the relay after the 220 (a ClientHello, or none)
};

// One session: greeting, EHLO offering STARTTLS, then `ready` (the 220 and whatever the man
// in the middle appends) as one write; then it reads what the relay sends until the relay
// closes or 64 bytes came (a TLS ClientHello is longer), and closes.
void serve_once(tcp::acceptor& acceptor, const std::string& ready, PeerLog& log) {
    asio::io_context io;
    tcp::socket peer(io);
    acceptor.accept(peer);
    peer.set_option(tcp::no_delay(true));
    asio::streambuf in;
    error_code ec;
    const auto line = [&] {
        const std::size_t n = asio::read_until(peer, in, "\r\n", ec);
        std::string text(n, '\0');
        asio::buffer_copy(asio::buffer(text), in.data());
        in.consume(n);
        return text;
    };
    asio::write(peer, asio::buffer(std::string("220 hop.test ESMTP\r\n")), ec);
    (void)line();  // EHLO
    asio::write(peer, asio::buffer(std::string("250-hop.test\r\n250 STARTTLS\r\n")), ec);
    log.got_starttls = line() == "STARTTLS\r\n" && in.size() == 0;
    asio::write(peer, asio::buffer(ready), ec);
    std::array<char, 64> buffer{};
    while (!ec && log.after_ready.size() < 64) {
        const std::size_t n = peer.read_some(asio::buffer(buffer), ec);
        log.after_ready.append(buffer.data(), n);
    }
    peer.close(ec);
}

smtp::Reply mail_through(const std::string& ready, PeerLog& log) {
    asio::io_context setup;
    tcp::acceptor acceptor(setup, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::thread peer([&] { serve_once(acceptor, ready, log); });

    NextHop hop;
    hop.kind = NextHop::Kind::smtp;
    hop.host = "127.0.0.1";
    hop.port = acceptor.local_endpoint().port();
    hop.tls = TlsMode::required;
    hop.verify_certificate = false;  // never reached with an injection; the peer has no key
    hop.connect_timeout = std::chrono::seconds(5);
    hop.command_timeout = std::chrono::seconds(5);
    const std::string hostname = "relay.test";
    asio::thread_pool blocking(1);
    ssl::context tls(ssl::context::tls_client);
    const SystemClock clock;
    const auto factory = make_next_hop(hop, hostname, blocking, tls, clock);

    asio::io_context io;
    smtp::Reply reply;
    const auto session = factory(io.get_executor());
    MailCommand command;
    command.reverse_path = "alice@example.com";
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            reply = co_await session->mail(command);
            co_await session->quit();
        },
        asio::detached);
    io.run();
    peer.join();
    blocking.join();
    return reply;
}

struct Injection {
    const char* name;
    const char* appended;
};

void PrintTo(const Injection& injection, std::ostream* os) {
    *os << injection.name;
}

class StartTlsInjectionTest : public ::testing::TestWithParam<Injection> {};

TEST_P(StartTlsInjectionTest, ClearTextAfterTheReadyReplyEndsTheSessionWith4xx) {
    PeerLog log;
    const auto reply = mail_through(std::string("220 2.0.0 Ready\r\n") + GetParam().appended, log);
    ASSERT_TRUE(log.got_starttls);
    EXPECT_EQ(reply.code, 451) << reply.summary();
    EXPECT_EQ(reply.enhanced, "4.7.5");
    EXPECT_NE(reply.text.find("clear text after its 220 to STARTTLS"), std::string::npos)
        << reply.text;
    EXPECT_TRUE(log.after_ready.empty())
        << "the relay went on to TLS over a stream holding injected replies ("
        << log.after_ready.size() << " bytes after the 220)";
}

INSTANTIATE_TEST_SUITE_P(
    NextHop, StartTlsInjectionTest,
    ::testing::Values(Injection{"Forged550", "250 hop.test\r\n550 5.7.1 Injected refusal\r\n"},
                      Injection{"Forged250", "250 hop.test\r\n250 2.1.0 Ok\r\n"},
                      Injection{"HalfALine", "25"}, Injection{"OneByte", "\n"}),
    [](const ::testing::TestParamInfo<Injection>& param_info) {
        return std::string(param_info.param.name);
    });

TEST(NextHopStartTls, WithNothingAfterTheReadyReplyTheHandshakeStarts) {
    // The control for the test above: the peer does see a ClientHello when nothing was
    // injected (here it then hangs up, so TLS fails: 451 4.7.5 all the same).
    PeerLog log;
    const auto reply = mail_through("220 2.0.0 Ready\r\n", log);
    ASSERT_TRUE(log.got_starttls);
    ASSERT_FALSE(log.after_ready.empty());
    EXPECT_EQ(log.after_ready[0], '\x16') << "a TLS handshake record";
    EXPECT_EQ(reply.code, 451) << reply.summary();
    EXPECT_NE(reply.text.find("TLS with"), std::string::npos) << reply.text;
}

}  // namespace
}  // namespace dkim::relayd

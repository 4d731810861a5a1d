// dkim-relayd's SMTP transaction (appliance/relayd/transaction.hpp) over arbitrary byte
// streams in arbitrary chunkings, with the signing policy, a fake signerd and a fake next hop.
// Where smuggling lives: the hand-off from command lines to DATA after 354 with pipelined
// bytes, the end of data and what follows it, STARTTLS's dropped clear text, the limits.
// Checked for every input:
//   - the replies, and what the next hop is told (every MAIL, RCPT, DATA, RSET and each
//     message's bytes), do not depend on how the bytes were chunked: the whole stream at
//     once gives the same as chunks of 1..32 bytes cut by the input's first byte;
//   - every reply is a well-formed SMTP reply (it parses back), and nothing is answered
//     after the session said it closes;
//   - what reaches the next hop as a message was announced by 354 and ends with CRLF;
//   - nothing sent after STARTTLS in clear text is answered (the session stops there: the
//     handshake is the session's).
// The first failed check aborts (libFuzzer reports it as a crash with the input).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "signing_policy.hpp"
#include "transaction.hpp"
#include "transaction_fakes.hpp"

using namespace dkim;
using namespace dkim::relayd;

namespace {

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

std::unique_ptr<Config> the_config;

struct Outcome {
    std::string replies;
    std::vector<std::string> calls;
    std::vector<std::string> messages;
    bool closing = false;
};

Outcome play(std::string_view stream, std::size_t seed) {
    fakes::FakeHost host;
    fakes::FakeSigning signing;
    RelayMetrics metrics;
    ManualClock clock(from_unix_ms(1'767'225'600'000));
    SigningPolicy policy(*the_config, signing, metrics, clock);
    ConnectionInfo connection;
    connection.id = "f";
    connection.address_text = "10.0.0.1";
    connection.network_client = the_config->client("apps");
    connection.tls_offered = true;
    Transaction txn(*the_config, connection, policy, host, metrics, clock);
    asio::io_context io;
    Outcome out;
    auto run = [&](awaitable<void> task) {
        asio::co_spawn(io, std::move(task), asio::detached);
        io.restart();
        io.run();
    };
    std::size_t state = seed;
    for (std::size_t at = 0; at < stream.size() && !txn.closing();) {
        std::size_t n = stream.size();
        if (seed != 0) {
            state = state * 1103515245 + 12345;
            n = 1 + (state >> 16) % 32;
        }
        n = std::min(n, stream.size() - at);
        run(txn.receive(stream.substr(at, n)));
        at += n;
        if (txn.tls_requested()) {
            // The handshake comes next; what was pipelined after STARTTLS in clear text was
            // dropped (and is never answered), whatever chunk it came in.
            out.replies = host.sent + txn.take_output();
            require(out.replies.ends_with("220 2.0.0 Ready to start TLS\r\n"));
            out.calls = host.hop.calls;
            out.messages = host.hop.messages;
            out.closing = true;
            return out;
        }
    }
    run(txn.input_ended(false));
    out.replies = host.sent + txn.take_output();
    out.closing = txn.closing();
    out.calls = host.hop.calls;
    out.messages = host.hop.messages;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    const auto dir = std::filesystem::temp_directory_path() / "fuzz-smtp-transaction";
    std::filesystem::create_directories(dir);
    const auto file = dir / "relayd.toml";
    std::ofstream(file) << "hostname = \"relay.test\"\n"
                           "[[listen]]\naddress = \"127.0.0.1:2525\"\n"
                           "[next_hop]\nurl = \"maildir:/nonexistent\"\n"
                           "[[domain]]\nname = \"example.com\"\nselectors = [\"sel1\"]\n"
                           "[[client]]\nname = \"apps\"\nnetworks = [\"10.0.0.0/8\"]\n"
                           "domains = [\"example.com\"]\n"
                           "[limits]\ncommands = 100\nerrors = 5\nrecipients = 5\n"
                           "message_size = 4096\nline_length = 200\n";
    auto loaded = load_config(file.string());
    require(static_cast<bool>(loaded));
    the_config = std::make_unique<Config>(std::move(*loaded));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::size_t seed = std::size_t{data[0]} + 1;
    const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
    const Outcome whole = play(stream, 0);
    const Outcome chunked = play(stream, seed);
    require(whole.replies == chunked.replies);
    require(whole.calls == chunked.calls);
    require(whole.messages == chunked.messages);

    // Every reply parses back; the one that says the session closes is the last.
    smtp::ReplyParser parser;
    std::size_t at = 0;
    std::size_t replies = 0;
    bool closed = false;
    while (at < whole.replies.size()) {
        const std::size_t end = whole.replies.find("\r\n", at);
        require(end != std::string::npos);
        auto reply = parser.add_line(std::string_view(whole.replies).substr(at, end - at));
        require(static_cast<bool>(reply));
        if (*reply) {
            require(!closed);
            ++replies;
            closed = (*reply)->code == 221 || (*reply)->code == 421 || (*reply)->code == 521 ||
                     ((*reply)->code == 500 && (*reply)->enhanced == "5.5.6");
            parser = smtp::ReplyParser();
        }
        at = end + 2;
    }
    require(!closed || whole.closing);
    // A message reached the next hop only after a 354, and in CRLF lines.
    if (!whole.messages.empty()) {
        require(whole.replies.find("354 ") != std::string::npos);
    }
    for (const auto& m : whole.messages) {
        require(m.empty() || m.ends_with("\r\n"));
    }
    return 0;
}

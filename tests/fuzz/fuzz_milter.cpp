// What an MTA (or whoever reaches a milter listener) sends dkim-relayd over the milter
// protocol: the packet framing and every packet parser (dkim/milter/protocol.hpp), then the
// whole conversation (appliance/relayd/milter.hpp) with the signing policy, a fake signerd and
// no verifying role. Checked for every input:
//   - the packets framed, and every parser's answer, do not depend on how the bytes were
//     chunked (the whole stream at once against chunks of 1..32 bytes cut by the first byte);
//   - a parser either refuses with a message or gives back fields that encode again to the
//     same bytes (headers, strings);
//   - the conversation's replies do not depend on the chunking either, and are whole reply
//     packets of known commands; nothing is answered after the connection closed.
// The first failed check aborts (libFuzzer reports it as a crash with the input).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "dkim/milter/protocol.hpp"
#include "milter.hpp"
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

// Chunks of the stream: all at once (seed 0) or 1..32 bytes each.
template <class F>
void chunked(std::string_view stream, std::size_t seed, F&& take) {
    std::size_t state = seed;
    for (std::size_t at = 0; at < stream.size();) {
        std::size_t n = stream.size();
        if (seed != 0) {
            state = state * 1103515245 + 12345;
            n = 1 + (state >> 16) % 32;
        }
        n = std::min(n, stream.size() - at);
        if (!take(stream.substr(at, n))) {
            return;
        }
        at += n;
    }
}

// Every packet's parse, as text, so that two runs compare. The framing limit is 4096 here so
// that inputs of libFuzzer's sizes reach the refusal of an over-long packet; the conversation
// below frames with the daemon's own limit (kMilterMaxPacket).
std::string parse_all(std::string_view stream, std::size_t seed) {
    std::string out;
    milter::PacketReader reader(4096);
    bool failed = false;
    chunked(stream, seed, [&](std::string_view bytes) {
        reader.feed(bytes);
        for (;;) {
            auto next = reader.next();
            if (!next) {
                require(!next.error().message.empty());
                out += "E";
                failed = true;
                return false;
            }
            if (!*next) {
                return true;
            }
            const milter::Packet& p = **next;
            out += p.command;
            out += std::to_string(p.data.size());
            if (auto h = milter::parse_header(p.data)) {
                require(milter::encode_insert_header(0, h->name, h->value).substr(9) == p.data);
                out += "h";
            }
            if (auto s = milter::parse_strings(p.data)) {
                std::string again;
                for (const auto& part : *s) {
                    require(part.find('\0') == std::string::npos);
                    again += part;
                    again.push_back('\0');
                }
                require(again == p.data);
            }
            if (auto c = milter::parse_connect(p.data)) {
                out += "c" + c->address;
            }
            if (auto m = milter::parse_macros(p.data)) {
                out += "m" + std::to_string(m->values.size());
            }
            if (auto n = milter::parse_negotiation(p.data)) {
                out += "n" + std::to_string(n->steps);
            }
        }
    });
    return failed ? out : out + "$" + std::to_string(reader.buffered());
}

struct Outcome {
    std::string replies;
    bool closing = false;
};

Outcome converse(std::string_view stream, std::size_t seed) {
    fakes::FakeSigning signing;
    RelayMetrics metrics;
    ManualClock clock(from_unix_ms(1'767'225'600'000));
    SigningPolicy policy(*the_config, signing, metrics, clock);
    MilterPolicies policies;
    policies.signing = &policy;
    struct Host final : MilterHost {
        awaitable<bool> flush(std::string& output) override {
            sent += output;
            output.clear();
            co_return true;
        }
        void log(const std::string& /*line*/) override {}
        std::string sent;
    } milter_host;
    MilterConversation conversation(*the_config, "f", policies, milter_host, metrics, clock);
    asio::io_context io;
    chunked(stream, seed, [&](std::string_view bytes) {
        require(!conversation.closing());
        asio::co_spawn(io, conversation.receive(bytes), asio::detached);
        io.restart();
        io.run();
        return !conversation.closing();
    });
    conversation.input_ended(false);
    return Outcome{milter_host.sent + conversation.take_output(), conversation.closing()};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    const auto dir = std::filesystem::temp_directory_path() / "fuzz-milter";
    std::filesystem::create_directories(dir);
    const auto file = dir / "relayd.toml";
    std::ofstream(file) << "hostname = \"relay.test\"\n"
                           "[[listen]]\naddress = \"127.0.0.1:8891\"\nprotocol = \"milter\"\n"
                           "[next_hop]\nurl = \"maildir:/nonexistent\"\n"
                           "[[domain]]\nname = \"example.com\"\nselectors = [\"sel1\"]\n"
                           "[[client]]\nname = \"apps\"\nnetworks = [\"10.0.0.0/8\"]\n"
                           "sasl_users = [\"alice\"]\ndomains = [\"example.com\"]\n"
                           "[limits]\nmessage_size = 4096\n";
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
    require(parse_all(stream, 0) == parse_all(stream, seed));

    const Outcome whole = converse(stream, 0);
    const Outcome pieces = converse(stream, seed);
    require(whole.replies == pieces.replies);
    require(whole.closing == pieces.closing);
    // The replies are whole packets of commands a milter sends.
    milter::PacketReader reader(std::size_t{1} << 20);
    reader.feed(whole.replies);
    for (;;) {
        auto next = reader.next();
        require(static_cast<bool>(next));
        if (!*next) {
            break;
        }
        require(std::string_view("acdhimpqrtyO").find((*next)->command) != std::string_view::npos);
    }
    require(reader.buffered() == 0);
    return 0;
}

// libFuzzer target: the payload of a frame on dkim-signerd's socket, as a hostile local peer
// could send it. Decoding must fail cleanly or succeed exactly (re-encoding a decoded request
// gives back the same bytes); a decoded sign request's header block goes through the same
// structural check signerd applies before it signs (fuzz_signing_profile goes further).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dkim/dkim/signing_profile.hpp"
#include "dkim/ipc/frame.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view payload(reinterpret_cast<const char*>(data), size);
    if (auto request = dkim::ipc::decode_request(payload)) {
        const std::string again = dkim::ipc::encode(*request);
        if (std::string_view(again).substr(dkim::ipc::kFrameHeaderSize) != payload) {
            std::abort();
        }
        if (const auto* sign = std::get_if<dkim::ipc::SignRequest>(&*request)) {
            auto inspected = dkim::parse_signing_block(sign->data);
            if (!inspected && inspected.error().message.empty()) {
                std::abort();
            }
        }
    } else if (request.error().message.empty()) {
        std::abort();
    }
    if (auto reply = dkim::ipc::decode_reply(payload)) {
        const std::string again = dkim::ipc::encode(*reply);
        if (std::string_view(again).substr(dkim::ipc::kFrameHeaderSize) != payload) {
            std::abort();
        }
    }
    return 0;
}

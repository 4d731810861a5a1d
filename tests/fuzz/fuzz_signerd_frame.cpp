// libFuzzer target: the payload of a frame on dkim-signerd's socket, as a hostile local peer
// could send it. Decoding must fail cleanly or succeed exactly (re-encoding a decoded request
// gives back the same bytes; a refusal with a code this build does not know reads as
// `unknown`, the one lossy case); a decoded sign request's header block goes through the same
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
        const auto* error = std::get_if<dkim::ipc::ErrorReply>(&*reply);
        if (error != nullptr && error->code == dkim::ipc::ErrorCode::unknown) {
            // A refusal code this build does not know reads as `unknown` (never as another
            // code) and is written back as "unknown": the second round trip is exact.
            auto twice = dkim::ipc::decode_reply(
                std::string_view(again).substr(dkim::ipc::kFrameHeaderSize));
            const auto* error2 = twice ? std::get_if<dkim::ipc::ErrorReply>(&*twice) : nullptr;
            if (error2 == nullptr || error2->code != dkim::ipc::ErrorCode::unknown ||
                error2->message != error->message || error2->rule != error->rule ||
                error2->request_id != error->request_id || dkim::ipc::encode(*twice) != again) {
                std::abort();
            }
        } else if (std::string_view(again).substr(dkim::ipc::kFrameHeaderSize) != payload) {
            std::abort();
        }
    }
    return 0;
}

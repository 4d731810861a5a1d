// libFuzzer target: body canonicalization, differential. The streaming canonicalizer (with
// its vectorised scan and its held-back state across chunks) must produce exactly what the
// plain reference implementation of RFC 6376 §3.4.3/§3.4.4 produces, for any bytes and any
// chunking. The first byte picks the algorithm and the chunk sizes. Every SIMD scanner the
// CPU runs must also find the same positions as the scalar one.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/dkim/canonicalization.hpp"

namespace {

class StringSink final : public dkim::BodySink {
  public:
    void write(const char* data, std::size_t size) override { out.append(data, size); }
    std::string out;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const dkim::Canon canon = (data[0] & 1) != 0 ? dkim::Canon::relaxed : dkim::Canon::simple;
    const std::size_t chunk = 1 + (data[0] >> 1) % 64;
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    StringSink sink;
    dkim::BodyCanonicalizer canonicalizer(canon, sink);
    for (std::size_t pos = 0; pos < body.size(); pos += chunk) {
        canonicalizer.update(body.substr(pos, chunk));
    }
    canonicalizer.finish();
    if (sink.out != dkim::canonicalize_body_reference(canon, body)) {
        std::abort();
    }
    std::string header;
    dkim::canonicalize_signature_header(canon, body, header);
    // Each vectorised scanner agrees with the scalar one on ranges that end in content.
    static const auto scanners = dkim::detail::relaxed_scanners();
    std::size_t end = body.size();
    while (end > 0 && (body[end - 1] == ' ' || body[end - 1] == '\t')) {
        --end;
    }
    const std::size_t expected = scanners[0].find(body.data(), 0, end);
    for (const auto& s : scanners) {
        if (s.find(body.data(), 0, end) != expected) {
            std::abort();
        }
    }
    return 0;
}

// libFuzzer target: the decompressors (gzip, zip) and their caps. Properties: no more bytes
// come out of a member than max_decompressed allows; a zip never yields more members than
// max_zip_members; every failure says why; and whether gzip fails, and what it yields, does not
// depend on the pieces the compressed bytes arrive in.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "dkim/reports/source.hpp"
#include "fuzz_report_support.hpp"

namespace {

std::string drain(dkim::reports::ByteSource& source, const dkim::reports::Limits& limits) {
    std::string out;
    char chunk[4096];
    for (;;) {
        auto n = source.read(chunk, sizeof chunk);
        if (!n) {
            if (n.error().empty()) {
                std::abort();
            }
            return out + "|error";
        }
        if (*n == 0) {
            return out;
        }
        out.append(chunk, *n);
        if (out.size() > limits.max_decompressed) {
            std::abort();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    auto limits = dkim::reports::fuzzing::small_limits();
    limits.max_decompressed = 256 << 10;
    const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    {
        dkim::reports::fuzzing::PiecewiseSource whole(bytes, bytes.size() + 1);
        dkim::reports::fuzzing::PiecewiseSource pieces(bytes, 1 + data[0] % 61);
        const auto a = drain(*dkim::reports::gunzip(whole, limits), limits);
        const auto b = drain(*dkim::reports::gunzip(pieces, limits), limits);
        // Both fail or neither; output handed out before a failure depends on how much
        // arrived at once, but what came out is always a prefix of the same decompression.
        const bool a_failed = a.ends_with("|error");
        const bool b_failed = b.ends_with("|error");
        const std::string_view a_data(a.data(), a.size() - (a_failed ? 6 : 0));
        const std::string_view b_data(b.data(), b.size() - (b_failed ? 6 : 0));
        const bool prefix = a_data.size() <= b_data.size() ? b_data.starts_with(a_data)
                                                           : a_data.starts_with(b_data);
        if (a_failed != b_failed || !prefix || (!a_failed && a_data != b_data)) {
            std::fprintf(stderr, "whole: %zu bytes%s; pieces: %zu bytes%s\n", a.size(),
                         a_failed ? " (error)" : "", b.size(), b_failed ? " (error)" : "");
            std::abort();
        }
    }
    dkim::reports::fuzzing::PiecewiseSource archive(bytes, 1 + data[0] % 61);
    dkim::reports::ZipReader zip(archive, limits);
    std::size_t members = 0;
    for (;;) {
        auto more = zip.next();
        if (!more) {
            if (more.error().empty()) {
                std::abort();
            }
            break;
        }
        if (!*more) {
            break;
        }
        if (++members > limits.max_zip_members) {
            std::abort();
        }
        if (data[0] & 1) {
            drain(zip.member(), limits);  // otherwise next() skips it
        }
    }
    return 0;
}

#include "dkim/dkim/canonicalization.hpp"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dkim {
namespace {

using mail::ascii_lower;
using mail::is_wsp;

std::string_view trim_wsp(std::string_view s) {
    while (!s.empty() && is_wsp(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_wsp(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// --- relaxed body: where does the input differ from its canonical form? -------------------
//
// Inside a chunk whose last byte is not white space or part of a line break, the relaxed
// body algorithm changes bytes only where a white space run starts that is longer than one
// byte, is a TAB, or ends a line ("Ignore all whitespace at the end of lines", "Reduce all
// sequences of WSP within a line to a single SP character", RFC 6376 §3.4.4). Such a run
// always starts with a TAB, or with an SP followed by SP, TAB or CR. The scanners return the
// first such position in [i, end), or end, and read only [i, end): data[end - 1] is neither
// SP nor TAB, so an SP before it always has its next byte in range.

std::size_t find_relaxed_change_scalar(const char* data, std::size_t i, std::size_t end) {
    for (; i < end; ++i) {
        const char c = data[i];
        if (c == '\t') {
            return i;
        }
        if (c == ' ') {
            const char next = data[i + 1];
            if (next == ' ' || next == '\t' || next == '\r') {
                return i;
            }
        }
    }
    return end;
}

#if defined(__x86_64__)
std::size_t find_relaxed_change_sse2(const char* data, std::size_t i, std::size_t end) {
    const __m128i sp = _mm_set1_epi8(' ');
    const __m128i tab = _mm_set1_epi8('\t');
    const __m128i cr = _mm_set1_epi8('\r');
    // Each block reads data[i, i + 17): 16 bytes and the one after them.
    while (i + 17 <= end) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i + 1));
        const __m128i a_tab = _mm_cmpeq_epi8(a, tab);
        const __m128i a_sp = _mm_cmpeq_epi8(a, sp);
        const __m128i b_wsp_cr = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(b, sp), _mm_cmpeq_epi8(b, tab)), _mm_cmpeq_epi8(b, cr));
        const int mask = _mm_movemask_epi8(_mm_or_si128(a_tab, _mm_and_si128(a_sp, b_wsp_cr)));
        if (mask != 0) {
            return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
        }
        i += 16;
    }
    return find_relaxed_change_scalar(data, i, end);
}

// From the SP, TAB and CR masks of 64 bytes and the byte after them: the bytes where a run
// that relaxed canonicalization rewrites starts (a TAB, or an SP followed by SP, TAB or CR;
// bit k of `next` is set when byte k + 1 is SP, TAB or CR).
inline std::uint64_t change_mask(std::uint64_t is_sp, std::uint64_t is_tab, std::uint64_t is_cr,
                                 char after) {
    const std::uint64_t next =
        ((is_sp | is_tab | is_cr) >> 1) |
        (static_cast<std::uint64_t>(after == ' ' || after == '\t' || after == '\r') << 63);
    return is_tab | (is_sp & next);
}

__attribute__((target("avx2"))) inline std::uint64_t mask(__m256i v) {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm256_movemask_epi8(v)));
}

// 64 bytes per step: one load per byte, three comparisons, and the "next byte" relation
// computed on the 64-bit masks (bit k of `next` = byte k + 1 is SP, TAB or CR).
__attribute__((target("avx2"))) std::size_t find_relaxed_change_avx2(const char* data,
                                                                     std::size_t i,
                                                                     std::size_t end) {
    const __m256i sp = _mm256_set1_epi8(' ');
    const __m256i tab = _mm256_set1_epi8('\t');
    const __m256i cr = _mm256_set1_epi8('\r');
    while (i + 65 <= end) {
        const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i));
        const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i + 32));
        const std::uint64_t is_sp =
            mask(_mm256_cmpeq_epi8(lo, sp)) | mask(_mm256_cmpeq_epi8(hi, sp)) << 32;
        const std::uint64_t is_tab =
            mask(_mm256_cmpeq_epi8(lo, tab)) | mask(_mm256_cmpeq_epi8(hi, tab)) << 32;
        const std::uint64_t is_cr =
            mask(_mm256_cmpeq_epi8(lo, cr)) | mask(_mm256_cmpeq_epi8(hi, cr)) << 32;
        const std::uint64_t change = change_mask(is_sp, is_tab, is_cr, data[i + 64]);
        if (change != 0) {
            return i + static_cast<std::size_t>(__builtin_ctzll(change));
        }
        i += 64;
    }
    return find_relaxed_change_sse2(data, i, end);
}

// AVX-512BW compares 64 bytes at once straight into 64-bit masks.
__attribute__((target("avx512bw"))) std::size_t find_relaxed_change_avx512(const char* data,
                                                                           std::size_t i,
                                                                           std::size_t end) {
    const __m512i sp = _mm512_set1_epi8(' ');
    const __m512i tab = _mm512_set1_epi8('\t');
    const __m512i cr = _mm512_set1_epi8('\r');
    while (i + 65 <= end) {
        const __m512i v = _mm512_loadu_si512(data + i);
        const std::uint64_t is_sp = _mm512_cmpeq_epi8_mask(v, sp);
        const std::uint64_t is_tab = _mm512_cmpeq_epi8_mask(v, tab);
        const std::uint64_t is_cr = _mm512_cmpeq_epi8_mask(v, cr);
        const std::uint64_t change = change_mask(is_sp, is_tab, is_cr, data[i + 64]);
        if (change != 0) {
            return i + static_cast<std::size_t>(__builtin_ctzll(change));
        }
        i += 64;
    }
    return find_relaxed_change_sse2(data, i, end);
}

using FindFn = std::size_t (*)(const char*, std::size_t, std::size_t);

FindFn select_find_relaxed_change() noexcept {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw")) {
        return find_relaxed_change_avx512;
    }
    if (__builtin_cpu_supports("avx2")) {
        return find_relaxed_change_avx2;
    }
    return find_relaxed_change_sse2;
}

const FindFn find_relaxed_change = select_find_relaxed_change();
#else
constexpr auto find_relaxed_change = find_relaxed_change_scalar;
#endif

// The held-back tail of a chunk: trailing CRLF pairs, a final lone CR, and (relaxed) white
// space, in any mix. Returns where it starts.
std::size_t held_tail_start(std::string_view data, bool relaxed) {
    std::size_t i = data.size();
    if (i > 0 && data[i - 1] == '\r') {
        --i;
    }
    while (i > 0) {
        if (i >= 2 && data[i - 1] == '\n' && data[i - 2] == '\r') {
            i -= 2;
        } else if (relaxed && is_wsp(data[i - 1])) {
            --i;
        } else {
            break;
        }
    }
    return i;
}

}  // namespace

std::vector<detail::RelaxedScanner> detail::relaxed_scanners() {
    std::vector<RelaxedScanner> out{{"scalar", find_relaxed_change_scalar}};
#if defined(__x86_64__)
    out.push_back({"sse2", find_relaxed_change_sse2});
    if (__builtin_cpu_supports("avx2")) {
        out.push_back({"avx2", find_relaxed_change_avx2});
    }
    if (__builtin_cpu_supports("avx512bw")) {
        out.push_back({"avx512bw", find_relaxed_change_avx512});
    }
#endif
    return out;
}

Expected<Canonicalization, std::string> Canonicalization::parse(std::string_view c_tag) {
    auto one = [](std::string_view s) -> Expected<Canon, std::string> {
        if (s == "simple") {
            return Canon::simple;
        }
        if (s == "relaxed") {
            return Canon::relaxed;
        }
        return unexpected("unknown canonicalization '" + std::string(s) + "'");
    };
    const std::size_t slash = c_tag.find('/');
    auto header = one(c_tag.substr(0, slash));
    if (!header) {
        return unexpected(header.error());
    }
    Canonicalization c;
    c.header = *header;
    if (slash != std::string_view::npos) {
        auto body = one(c_tag.substr(slash + 1));
        if (!body) {
            return unexpected(body.error());
        }
        c.body = *body;
    }
    return c;
}

std::string_view to_string(Canon canon) {
    return canon == Canon::simple ? "simple" : "relaxed";
}

std::string Canonicalization::to_string() const {
    return std::string(dkim::to_string(header)) + "/" + std::string(dkim::to_string(body));
}

void canonicalize_header_simple(std::string_view raw_field, std::string& out) {
    // RFC 6376 §3.4.1: "The "simple" header canonicalization algorithm does not change header
    // fields in any way."
    out.append(raw_field);
    if (raw_field.size() < 2 || raw_field.substr(raw_field.size() - 2) != "\r\n") {
        out.append("\r\n");  // an unterminated last field of a header-only message
    }
}

void canonicalize_header_relaxed(std::string_view raw_field, std::string& out) {
    // RFC 6376 §3.4.2: lowercase the name; unfold; "Convert all sequences of one or more WSP
    // characters to a single SP character"; "Delete all WSP characters at the end of each
    // unfolded header field value"; "Delete any WSP characters remaining before and after the
    // colon separating the header field name from the header field value."
    const std::size_t colon = raw_field.find(':');
    const std::string_view name =
        trim_wsp(raw_field.substr(0, colon == std::string_view::npos ? raw_field.size() : colon));
    out.reserve(out.size() + raw_field.size() + 2);
    for (const char c : name) {
        out.push_back(ascii_lower(c));
    }
    out.push_back(':');
    if (colon != std::string_view::npos) {
        const std::string_view value = raw_field.substr(colon + 1);
        bool pending_space = false;
        bool any = false;
        for (const char c : value) {
            if (c == '\r' || c == '\n') {
                continue;  // unfolding: CRLF removed, the WSP after it kept (and compressed)
            }
            if (is_wsp(c)) {
                pending_space = true;
                continue;
            }
            if (pending_space && any) {
                out.push_back(' ');
            }
            pending_space = false;
            any = true;
            out.push_back(c);
        }
    }
    out.append("\r\n");
}

void canonicalize_header(Canon canon, std::string_view raw_field, std::string& out) {
    if (canon == Canon::simple) {
        canonicalize_header_simple(raw_field, out);
    } else {
        canonicalize_header_relaxed(raw_field, out);
    }
}

void canonicalize_signature_header(Canon canon, std::string_view raw_field, std::string& out) {
    // Find the b= tag: tag-specs are separated by ';'; the tag name is the text before '='
    // with folding white space around it.
    std::string stripped;
    stripped.reserve(raw_field.size());
    const std::size_t colon = raw_field.find(':');
    std::size_t pos = colon == std::string_view::npos ? raw_field.size() : colon + 1;
    stripped.append(raw_field.substr(0, pos));
    // The field's own CRLF is not part of the value.
    std::string_view value = raw_field.substr(pos);
    if (value.size() >= 2 && value.substr(value.size() - 2) == "\r\n") {
        value.remove_suffix(2);
    }
    std::size_t start = 0;
    while (start <= value.size()) {
        std::size_t semi = value.find(';', start);
        const bool last = semi == std::string_view::npos;
        if (last) {
            semi = value.size();
        }
        const std::string_view spec = value.substr(start, semi - start);
        const std::size_t eq = spec.find('=');
        bool is_b = false;
        if (eq != std::string_view::npos) {
            std::string_view tag = spec.substr(0, eq);
            // Strip FWS (WSP and CRLF) around the tag name.
            while (!tag.empty() &&
                   (is_wsp(tag.front()) || tag.front() == '\r' || tag.front() == '\n')) {
                tag.remove_prefix(1);
            }
            while (!tag.empty() &&
                   (is_wsp(tag.back()) || tag.back() == '\r' || tag.back() == '\n')) {
                tag.remove_suffix(1);
            }
            is_b = tag == "b";
        }
        if (is_b) {
            stripped.append(spec.substr(0, eq + 1));
        } else {
            stripped.append(spec);
        }
        if (last) {
            break;
        }
        stripped.push_back(';');
        start = semi + 1;
    }
    std::string canonical;
    canonicalize_header(canon, stripped, canonical);
    // "...without a trailing CRLF" (RFC 6376 §3.7).
    canonical.resize(canonical.size() - 2);
    out.append(canonical);
}

void canonicalize_signed_headers(const mail::HeaderBlock& header,
                                 const std::vector<std::string>& signed_headers, Canon canon,
                                 std::size_t exclude, std::string& out) {
    // How many instances of each name (by position in h=) were selected already. h= is
    // short, so a linear search beats a map.
    std::vector<std::pair<std::string_view, std::size_t>> used;
    used.reserve(signed_headers.size());
    for (const std::string& name : signed_headers) {
        std::size_t* skip = nullptr;
        for (auto& [seen_name, count] : used) {
            if (mail::iequals(seen_name, name)) {
                skip = &count;
                break;
            }
        }
        if (skip == nullptr) {
            used.emplace_back(name, 0);
            skip = &used.back().second;
        }
        std::size_t seen = 0;
        for (std::size_t i = header.size(); i-- > 0;) {
            if (i == exclude || !mail::iequals(header.name(i), name)) {
                continue;
            }
            if (seen++ == *skip) {
                canonicalize_header(canon, header.raw(i), out);
                break;
            }
        }
        ++*skip;
    }
}

// --- streaming body ------------------------------------------------------------------------

void BodyCanonicalizer::flush_pending() {
    static constexpr char kCrlfs[] =
        "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
    constexpr std::uint64_t kBatch = (sizeof(kCrlfs) - 1) / 2;
    while (pending_crlfs_ > 0) {
        const std::uint64_t n = pending_crlfs_ < kBatch ? pending_crlfs_ : kBatch;
        emit(kCrlfs, static_cast<std::size_t>(n * 2));
        pending_crlfs_ -= n;
    }
    if (pending_wsp_) {
        emit(" ", 1);
        pending_wsp_ = false;
    }
}

// One byte through the state machine; used for the held-back tail and at chunk starts.
void BodyCanonicalizer::step(char c) {
    if (pending_cr_) {
        pending_cr_ = false;
        if (c == '\n') {
            pending_wsp_ = false;  // relaxed: white space at the end of a line is ignored
            ++pending_crlfs_;
            return;
        }
        flush_pending();  // the CR was not a line break: it is content
        emit("\r", 1);
    }
    if (c == '\r') {
        pending_cr_ = true;
        return;
    }
    if (canon_ == Canon::relaxed && is_wsp(c)) {
        pending_wsp_ = true;
        return;
    }
    flush_pending();
    emit(&c, 1);
}

void BodyCanonicalizer::update(std::string_view chunk) {
    if (chunk.empty()) {
        return;
    }
    if (canon_ == Canon::simple) {
        process_simple(chunk);
    } else {
        process_relaxed(chunk);
    }
}

void BodyCanonicalizer::process_simple(std::string_view data) {
    const std::size_t tail = held_tail_start(data, false);
    std::size_t p = 0;
    // A CR held back by the previous chunk is resolved by the byte after it; everything else
    // up to `tail` is emitted unchanged ("simple" changes only the end of the body).
    while (p < tail && pending_cr_) {
        step(data[p++]);
    }
    if (p < tail) {
        flush_pending();
        emit(data.data() + p, tail - p);
    }
    for (std::size_t q = tail; q < data.size(); ++q) {
        step(data[q]);
    }
}

void BodyCanonicalizer::process_relaxed(std::string_view data) {
    const std::size_t tail = held_tail_start(data, true);
    std::size_t p = 0;
    while (p < tail && (pending_cr_ || pending_wsp_ || pending_crlfs_ > 0)) {
        const char c = data[p];
        const bool holdable = is_wsp(c) || c == '\r' || (c == '\n' && pending_cr_);
        if (!holdable) {
            if (pending_cr_) {
                step(data[p++]);  // resolves the CR as content and emits data[p] too
                continue;
            }
            flush_pending();
            break;
        }
        step(data[p++]);
    }
    // From here to `tail` nothing is pending and data[tail - 1] is content: emit unchanged
    // spans, rewriting only the white space runs that the scanner finds.
    const char* d = data.data();
    std::size_t i = p;
    while (i < tail) {
        const std::size_t j = find_relaxed_change(d, i, tail);
        if (j == tail) {
            emit(d + i, j - i);
            break;
        }
        std::size_t k = j;
        while (is_wsp(d[k])) {
            ++k;  // stops before tail: data[tail - 1] is not white space
        }
        const bool line_end = d[k] == '\r' && k + 1 < data.size() && d[k + 1] == '\n';
        if (line_end) {
            emit(d + i, j - i);  // the run is dropped
        } else if (d[j] == ' ') {
            emit(d + i, j + 1 - i);  // the run's first SP stands for the whole run
        } else {
            emit(d + i, j - i);
            emit(" ", 1);  // a run starting with TAB
        }
        i = k;
    }
    for (std::size_t q = tail; q < data.size(); ++q) {
        step(data[q]);
    }
}

void BodyCanonicalizer::finish() {
    if (finished_) {
        return;
    }
    finished_ = true;
    if (pending_cr_) {
        pending_cr_ = false;
        flush_pending();
        emit("\r", 1);  // a bare CR at the very end is content
    }
    if (pending_wsp_) {
        // Relaxed, white space after the last line break with nothing after it: like dkimpy,
        // the run becomes one SP and the line gets its CRLF ("If the body is non-empty but
        // does not end with a CRLF, a CRLF is added", RFC 6376 §3.4.4).
        flush_pending();
    }
    if (canon_ == Canon::simple || emitted_any_) {
        // Simple: "If there is no body or no trailing CRLF on the message body, a CRLF is
        // added" (§3.4.3). Both: trailing empty lines reduced to none, then one line break.
        sink_.write("\r\n", 2);
        emitted_any_ = true;
    }
    pending_crlfs_ = 0;
}

std::string canonicalize_body_reference(Canon canon, std::string_view body) {
    std::string text(body);
    if (canon == Canon::relaxed) {
        // "Ignore all whitespace at the end of lines": WSP runs before CRLF go.
        std::string no_trailing;
        std::size_t i = 0;
        while (i < text.size()) {
            if (is_wsp(text[i])) {
                std::size_t k = i;
                while (k < text.size() && is_wsp(text[k])) {
                    ++k;
                }
                const bool at_line_end =
                    k + 1 < text.size() && text[k] == '\r' && text[k + 1] == '\n';
                if (!at_line_end) {
                    no_trailing.append(text, i, k - i);
                }
                i = k;
            } else {
                no_trailing.push_back(text[i++]);
            }
        }
        // "Reduce all sequences of WSP within a line to a single SP character."
        std::string compressed;
        bool in_run = false;
        for (const char c : no_trailing) {
            if (is_wsp(c)) {
                if (!in_run) {
                    compressed.push_back(' ');
                }
                in_run = true;
            } else {
                compressed.push_back(c);
                in_run = false;
            }
        }
        text = std::move(compressed);
    }
    // "Ignore all empty lines at the end of the message body", then end in exactly one CRLF.
    std::size_t end = text.size();
    while (end >= 2 && text.compare(end - 2, 2, "\r\n") == 0) {
        end -= 2;
    }
    text.resize(end);
    if (canon == Canon::relaxed && text.empty()) {
        return {};  // relaxed: an empty body stays empty
    }
    text.append("\r\n");
    return text;
}

}  // namespace dkim

// libFuzzer target: the whole verifier on an attacker's message, with a fake resolver that
// knows RFC 8463's two example keys (Ed25519 "brisbane" and RSA "test" at
// football.example.com), so that signatures get as far as the crypto. Every signature gets
// exactly one verdict, every verdict but pass and none says why, and no verdict is "pass" for
// bytes that were not signed.
//
// The last property is checked, not assumed. RFC 8463 publishes both private halves; at
// start-up the harness signs a fixed message with them (the product's signer, four
// canonicalizations, one with x=), and the only signatures that exist under these keys are
// those and RFC 8463's own example message (a seed). For every pass, the verified field's
// view (RFC 6376 §3.7: the fields its h= selects and the field itself without its b= value,
// canonicalized, and its canonical body cut at l=) must be the view of one of those
// signatures. The view is computed here by a plain rereading of RFC 6376 §3.4.1, §3.4.2,
// §3.7 and §5.4.2 (own field splitting, tag reading, h= selection and header
// canonicalization; the body by the reference canonicalizer), not by the verifier's code.
//
// Input: a first byte below 0x10 puts the harness's signatures selected by its bits on top of
// the rest of the input (the seed "signed" holds the signed message), so that the fuzzer
// mutates a signed message under valid signatures; any other input is a whole message.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/dkim/canonicalization.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/dkim/verifier.hpp"
#include "dkim/dns/resolver.hpp"

namespace {

constexpr std::int64_t kNow = 1764115200;

// RFC 8463 Appendix A.1 (Ed25519 seed) and A.2 (RSA), as tests/data/dkimpy has them.
constexpr std::string_view kEd25519Seed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
constexpr std::string_view kRsaPem =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";

// RFC 8463 Appendix A.3: the example message as its authors signed it (the seed
// "rfc8463-dkimpy").
constexpr std::string_view kRfc8463Message =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; \r\n"
    " d=football.example.com; i=@football.example.com; \r\n"
    " q=dns/txt; s=brisbane; t=1518460054; h=from : to : \r\n"
    " subject : date : message-id : from : subject : date; \r\n"
    " bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \r\n"
    " b=9/dsDChY0YMTtD5Eyw3wx7x22BlSJP7M5ECbJ7GWrR45nXlTCGb8l0YB\r\n"
    " o0wBLR++X5LqmsxXaOYLLJe46l10AQ==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; \r\n"
    " d=football.example.com; i=@football.example.com; \r\n"
    " q=dns/txt; s=test; t=1527915362; h=from : to : subject : \r\n"
    " date : message-id : from : subject : date; \r\n"
    " bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \r\n"
    " b=icKcLSEZYXJ95flvWE8FT6hl5iqd8MC/LEKYH0QjsqYy6MO/4pgVNCZH\r\n"
    " l/RAXAuADxE/40Fg7uTlxwwD1hjN2Ple6J//cJfslBdDOq6zTVbne1dqtl\r\n"
    " NOat7iamJ1AfRqyG+ja7a2AZsrpUuJ7VA6O+0zRYPqpwMEkEFIzI9i/Xk=\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n"
    "\r\n";

// What the harness signs (the seed "signed" is a byte 0x0f and this): folded and unsigned
// fields, white space for relaxed to remove, lines that begin with dots, empty lines at the end.
constexpr std::string_view kSignedMessage =
    "Received: from client.example (client.example [192.0.2.1])\r\n"
    "\tby relay.football.example.com; Fri, 11 Jul 2003 21:00:38 -0700\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>,\r\n"
    "  Bob <bob@shopping.example.net>\r\n"
    "Subject:   Is dinner  ready?  \r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "Hi.  \r\n"
    "\r\n"
    "..and a line that began with a dot.\r\n"
    "We lost the game.\t Are you hungry yet?\r\n"
    "\r\n"
    "\r\n";

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

struct PkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// rsa-sha256: RSASSA-PKCS1-v1_5 with SHA-256; ed25519-sha256: PureEdDSA over SHA-256 of the
// data (RFC 8463 §3). Both deterministic, so the signatures are the same on every run.
class HarnessSigner final : public dkim::Signer {
  public:
    HarnessSigner(Pkey key, dkim::SigningAlgorithm algorithm)
        : key_(std::move(key)), algorithm_(algorithm) {}
    dkim::SigningAlgorithm algorithm() const override { return algorithm_; }
    dkim::Expected<std::string, std::string> sign(std::string_view data) override {
        std::string input(data);
        const EVP_MD* md = EVP_sha256();
        if (algorithm_ == dkim::SigningAlgorithm::ed25519_sha256) {
            const auto digest = dkim::crypto::Sha256::hash(data);
            input.assign(reinterpret_cast<const char*>(digest.data()), digest.size());
            md = nullptr;
        }
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        const auto* in = reinterpret_cast<const unsigned char*>(input.data());
        std::size_t length = 0;
        std::string out;
        bool ok = EVP_DigestSignInit(ctx, nullptr, md, nullptr, key_.get()) == 1 &&
                  EVP_DigestSign(ctx, nullptr, &length, in, input.size()) == 1;
        if (ok) {
            out.resize(length);
            ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(out.data()), &length, in,
                                input.size()) == 1;
            out.resize(length);
        }
        EVP_MD_CTX_free(ctx);
        if (!ok) {
            return dkim::unexpected(std::string("signing failed"));
        }
        return out;
    }

  private:
    Pkey key_;
    dkim::SigningAlgorithm algorithm_;
};

// --- the reference view: RFC 6376 reread, sharing no code with the verifier --------------

bool wsp(char c) {
    return c == ' ' || c == '\t';
}
bool fws(char c) {
    return wsp(c) || c == '\r' || c == '\n';
}
char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = lower(c);
    }
    return out;
}
std::string_view trim(std::string_view s) {
    while (!s.empty() && fws(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && fws(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

struct RefField {
    std::string name;  // before the colon, white space before it removed
    std::string raw;   // every line of it, each with its CRLF
};

struct RefMessage {
    std::vector<RefField> fields;
    std::string body;
};

// RFC 5322 §2.1/§2.2: the header section ends at the first empty line; a line that begins
// with WSP continues the field above.
RefMessage read_message(std::string_view m) {
    RefMessage out;
    std::string_view header;
    if (m.substr(0, 2) == "\r\n") {
        out.body = std::string(m.substr(2));
    } else if (const auto sep = m.find("\r\n\r\n"); sep != std::string_view::npos) {
        header = m.substr(0, sep + 2);
        out.body = std::string(m.substr(sep + 4));
    } else {
        header = m;
    }
    while (!header.empty()) {
        const auto eol = header.find("\r\n");
        const std::size_t length = eol == std::string_view::npos ? header.size() : eol + 2;
        const std::string_view line = header.substr(0, length);
        header.remove_prefix(length);
        if (wsp(line.front()) && !out.fields.empty()) {
            out.fields.back().raw += line;
            continue;
        }
        std::string_view name = line.substr(0, line.find(':'));
        while (!name.empty() && wsp(name.back())) {
            name.remove_suffix(1);
        }
        out.fields.push_back({std::string(name), std::string(line)});
    }
    for (auto& f : out.fields) {
        if (f.raw.size() < 2 || f.raw.compare(f.raw.size() - 2, 2, "\r\n") != 0) {
            f.raw += "\r\n";  // an unterminated last line is the same field
        }
    }
    return out;
}

// RFC 6376 §3.4.1 and §3.4.2.
std::string canonical_field(std::string_view raw, bool relaxed) {
    if (!relaxed) {
        return std::string(raw);
    }
    const auto colon = raw.find(':');
    std::string name(raw.substr(0, colon));
    while (!name.empty() && wsp(name.back())) {
        name.pop_back();
    }
    // "Unfold all header field continuation lines", "convert all sequences of one or more WSP
    // characters to a single SP", "delete all WSP characters at the end of each unfolded
    // header field value", "delete any WSP characters remaining before and after the colon".
    std::string value;
    bool run = false;
    for (std::size_t i = colon + 1; i < raw.size(); ++i) {
        if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') {
            ++i;
            continue;
        }
        if (wsp(raw[i])) {
            if (!run) {
                value.push_back(' ');
            }
            run = true;
            continue;
        }
        run = false;
        value.push_back(raw[i]);
    }
    while (!value.empty() && value.back() == ' ') {
        value.pop_back();
    }
    if (!value.empty() && value.front() == ' ') {
        value.erase(0, 1);
    }
    return lowered(name) + ":" + value + "\r\n";
}

// The tag-spec strings of a field's value, split at ';' (no tag value holds one).
std::vector<std::string_view> tag_specs(std::string_view raw) {
    std::vector<std::string_view> out;
    std::string_view rest = raw.substr(raw.find(':') + 1);
    for (;;) {
        const auto semi = rest.find(';');
        out.push_back(rest.substr(0, semi));
        if (semi == std::string_view::npos) {
            return out;
        }
        rest.remove_prefix(semi + 1);
    }
}

std::optional<std::string_view> tag(std::string_view raw, std::string_view name) {
    for (const auto spec : tag_specs(raw)) {
        const auto eq = spec.find('=');
        if (eq != std::string_view::npos && trim(spec.substr(0, eq)) == name) {
            return trim(spec.substr(eq + 1));
        }
    }
    return std::nullopt;
}

// RFC 6376 §3.7: the field "with the value of the "b=" tag (including all surrounding
// whitespace) deleted (i.e., treated as the empty string)".
std::string without_b_value(std::string_view raw) {
    raw.remove_suffix(2);  // its CRLF
    std::string out(raw.substr(0, raw.find(':') + 1));
    const auto specs = tag_specs(raw);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const auto eq = specs[i].find('=');
        const bool b = eq != std::string_view::npos && trim(specs[i].substr(0, eq)) == "b";
        out += b ? specs[i].substr(0, eq + 1) : specs[i];
        if (i + 1 < specs.size()) {
            out += ';';
        }
    }
    return out + "\r\n";
}

using View = std::pair<std::string, std::string>;  // header hash input, canonical body

// What the signature in field `self` covers.
View signed_view(const RefMessage& m, std::size_t self) {
    const std::string_view raw = m.fields[self].raw;
    const std::string c(tag(raw, "c").value_or("simple"));
    const auto slash = c.find('/');
    const bool header_relaxed = c.substr(0, slash) == "relaxed";
    const bool body_relaxed = slash != std::string::npos && c.substr(slash + 1) == "relaxed";
    View view;
    // RFC 6376 §5.4.2: each name in h= takes the last field of that name not taken yet.
    std::vector<bool> taken(m.fields.size(), false);
    taken[self] = true;
    std::string_view h = tag(raw, "h").value_or("");
    for (;;) {
        const auto colon = h.find(':');
        const std::string_view name = trim(h.substr(0, colon));
        for (std::size_t i = m.fields.size(); i-- > 0;) {
            if (!taken[i] && lowered(m.fields[i].name) == lowered(name)) {
                taken[i] = true;
                view.first += canonical_field(m.fields[i].raw, header_relaxed);
                break;
            }
        }
        if (colon == std::string_view::npos) {
            break;
        }
        h.remove_prefix(colon + 1);
    }
    std::string own = canonical_field(without_b_value(raw), header_relaxed);
    own.resize(own.size() - 2);
    view.first += own;
    view.second = dkim::canonicalize_body_reference(
        body_relaxed ? dkim::Canon::relaxed : dkim::Canon::simple, m.body);
    if (const auto l = tag(raw, "l")) {
        std::uint64_t length = 0;
        bool fits = !l->empty();
        for (const char d : *l) {
            fits = fits && d >= '0' && d <= '9' && length <= (UINT64_MAX - 9) / 10;
            length = length * 10 + static_cast<std::uint64_t>(d - '0');
        }
        if (fits && length < view.second.size()) {
            view.second.resize(length);
        }
    }
    return view;
}

std::vector<std::size_t> signature_fields(const RefMessage& m) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < m.fields.size(); ++i) {
        if (lowered(m.fields[i].name) == "dkim-signature") {
            out.push_back(i);
        }
    }
    return out;
}

// --- the world of the harness ------------------------------------------------------------

struct Harness {
    dkim::dns::FakeResolver resolver;
    std::vector<std::string> fields;  // the harness's signatures, one field each
    std::set<View> signed_views;      // every view a key holder signed
};

std::vector<dkim::SignatureVerdict> verify(Harness& h, std::string_view message) {
    dkim::KeyFetcher keys(h.resolver);
    auto verdicts = dkim::verify_message(
        message, keys, std::chrono::system_clock::time_point(std::chrono::seconds(kNow)));
    return verdicts ? *verdicts : std::vector<dkim::SignatureVerdict>{};
}

// Records the views of a message signed by a key holder, after checking that the verifier
// passes every signature on it (else the property would hold vacuously).
void add_signed(Harness& h, std::string_view message) {
    const auto verdicts = verify(h, message);
    const RefMessage m = read_message(message);
    const auto sigs = signature_fields(m);
    check(!sigs.empty() && verdicts.size() == sigs.size());
    for (std::size_t k = 0; k < sigs.size(); ++k) {
        check(verdicts[k].result == dkim::mail::AuthResult::pass);
        h.signed_views.insert(signed_view(m, sigs[k]));
    }
}

Harness& harness() {
    static Harness* made = [] {
        auto* h = new Harness;
        h->resolver.set_txt("brisbane._domainkey.football.example.com",
                            {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="});
        h->resolver.set_txt(
            "test._domainkey.football.example.com",
            {"v=DKIM1; k=rsa; "
             "p="
             "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6"
             "wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/"
             "8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/"
             "K4w3QIDAQAB"});
        h->resolver.set_status("temp._domainkey.football.example.com",
                               dkim::dns::LookupStatus::temporary_failure);

        const auto seed = dkim::crypto::base64_decode(kEd25519Seed);
        check(seed.has_value());
        HarnessSigner ed25519(
            Pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                              reinterpret_cast<const unsigned char*>(seed->data()),
                                              seed->size())),
            dkim::SigningAlgorithm::ed25519_sha256);
        BIO* bio = BIO_new_mem_buf(kRsaPem.data(), static_cast<int>(kRsaPem.size()));
        HarnessSigner rsa(Pkey(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)),
                          dkim::SigningAlgorithm::rsa_sha256);
        BIO_free(bio);

        using dkim::Canon;
        const std::array<std::pair<dkim::Canonicalization, HarnessSigner*>, 4> plan = {{
            {{Canon::relaxed, Canon::relaxed}, &ed25519},
            {{Canon::simple, Canon::simple}, &rsa},
            {{Canon::relaxed, Canon::simple}, &rsa},
            {{Canon::simple, Canon::relaxed}, &ed25519},
        }};
        const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(kNow));
        std::string all;
        for (std::size_t i = 0; i < plan.size(); ++i) {
            dkim::SignOptions options;
            options.canonicalization = plan[i].first;
            if (i == 2) {
                options.expire_after = std::chrono::hours(1);
            }
            const dkim::SigningKey key{"football.example.com",
                                       plan[i].second == &rsa ? "test" : "brisbane", plan[i].second,
                                       std::nullopt};
            auto signed_message = dkim::sign_message(kSignedMessage, {key}, now, options);
            check(signed_message.has_value());
            h->fields.push_back(
                signed_message->substr(0, signed_message->size() - kSignedMessage.size()));
            all += h->fields.back();
        }
        add_signed(*h, all + std::string(kSignedMessage));
        add_signed(*h, kRfc8463Message);
        return h;
    }();
    return *made;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Harness& h = harness();
    std::string message(reinterpret_cast<const char*>(data), size);
    if (size > 0 && data[0] < 0x10) {
        std::string top;
        for (std::size_t i = 0; i < h.fields.size(); ++i) {
            if ((data[0] & (1U << i)) != 0) {
                top += h.fields[i];
            }
        }
        message = top + message.substr(1);
    }
    dkim::KeyFetcher keys(h.resolver);
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(kNow));
    auto verdicts = dkim::verify_message(message, keys, now);
    if (!verdicts) {
        return 0;
    }
    check(!verdicts->empty());
    for (const auto& v : *verdicts) {
        // Every non-pass says why.
        check(v.result == dkim::mail::AuthResult::pass ||
              v.result == dkim::mail::AuthResult::none || !v.reason.empty());
    }
    const RefMessage m = read_message(message);
    const auto sigs = signature_fields(m);
    // Exactly one verdict per DKIM-Signature field, top first (one "none" when there is none).
    check(sigs.empty()
              ? verdicts->size() == 1 && (*verdicts)[0].result == dkim::mail::AuthResult::none
              : verdicts->size() == sigs.size());
    for (std::size_t k = 0; k < sigs.size(); ++k) {
        const auto& v = (*verdicts)[k];
        if (v.result != dkim::mail::AuthResult::pass) {
            continue;
        }
        const std::string_view raw = m.fields[sigs[k]].raw;
        check(v.domain == lowered(tag(raw, "d").value_or("")) &&
              v.selector == lowered(tag(raw, "s").value_or("")));
        // A pass only for what a key holder signed.
        check(h.signed_views.count(signed_view(m, sigs[k])) == 1);
    }
    (void)dkim::mail::render_authentication_results("fuzz", dkim::to_method_results(*verdicts));
    return 0;
}

#include "dkim/dkim/signature.hpp"

#include <charconv>

#include "dkim/crypto/base64.hpp"
#include "dkim/dkim/tag_list.hpp"
#include "dkim/mail/header.hpp"

namespace dkim {
namespace {

constexpr std::size_t kFoldColumn = 78;

SignatureError syntax(std::string message) {
    return SignatureError{SignatureError::Kind::syntax, std::move(message)};
}
SignatureError unacceptable(std::string message) {
    return SignatureError{SignatureError::Kind::unacceptable, std::move(message)};
}

// 1*max_digits DIGIT. (std::from_chars alone would also take a leading '-'.)
template <class Int>
std::optional<Int> parse_decimal(std::string_view s, std::size_t max_digits) {
    if (s.empty() || s.size() > max_digits ||
        s.find_first_not_of("0123456789") != std::string_view::npos) {
        return std::nullopt;
    }
    Int v{};
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

}  // namespace

std::string_view to_string(SigningAlgorithm a) {
    switch (a) {
        case SigningAlgorithm::rsa_sha256: return "rsa-sha256";
        case SigningAlgorithm::ed25519_sha256: return "ed25519-sha256";
        case SigningAlgorithm::rsa_sha1: return "rsa-sha1";
    }
    return "unknown";
}

std::optional<SigningAlgorithm> parse_signing_algorithm(std::string_view a_tag) {
    if (a_tag == "rsa-sha256") {
        return SigningAlgorithm::rsa_sha256;
    }
    if (a_tag == "ed25519-sha256") {
        return SigningAlgorithm::ed25519_sha256;
    }
    if (a_tag == "rsa-sha1") {
        return SigningAlgorithm::rsa_sha1;
    }
    return std::nullopt;
}

Expected<Signature, SignatureError> parse_signature(std::string_view value) {
    if (value.size() >= 2 && value.substr(value.size() - 2) == "\r\n") {
        value.remove_suffix(2);  // the field's own line end
    }
    auto tags = TagList::parse(value);
    if (!tags) {
        return unexpected(syntax("malformed DKIM-Signature: " + tags.error()));
    }
    auto required = [&](std::string_view name) -> const std::string_view* {
        return tags->find(name);
    };
    for (const char* name : {"v", "a", "b", "bh", "d", "h", "s"}) {
        if (required(name) == nullptr) {
            return unexpected(
                syntax(std::string("DKIM-Signature without required tag ") + name + "="));
        }
    }
    Signature sig;
    // RFC 6376 §6.1.1: "If the "v=" tag value is not "1"... PERMFAIL (incompatible version)".
    if (*tags->find("v") != "1") {
        return unexpected(
            unacceptable("unsupported DKIM version v=" + std::string(*tags->find("v"))));
    }
    const auto algorithm = parse_signing_algorithm(*tags->find("a"));
    if (!algorithm) {
        return unexpected(
            unacceptable("unsupported signing algorithm a=" + std::string(*tags->find("a"))));
    }
    sig.algorithm = *algorithm;

    sig.signature_text = strip_fws(*tags->find("b"));
    auto b = crypto::base64_decode(sig.signature_text);
    if (!b || b->empty()) {
        return unexpected(syntax("b= is not valid base64"));
    }
    sig.signature = std::move(*b);
    auto bh = crypto::base64_decode(*tags->find("bh"));
    if (!bh || bh->empty()) {
        return unexpected(syntax("bh= is not valid base64"));
    }
    sig.body_hash = std::move(*bh);

    if (const auto* c = tags->find("c")) {
        auto canon = Canonicalization::parse(trim_fws(*c));
        if (!canon) {
            return unexpected(unacceptable(canon.error()));
        }
        sig.canonicalization = *canon;
    }

    sig.domain = mail::ascii_lowercase(trim_fws(*tags->find("d")));
    if (!is_valid_domain(sig.domain)) {
        return unexpected(syntax("d= is not a domain name"));
    }
    sig.selector = mail::ascii_lowercase(trim_fws(*tags->find("s")));
    if (!is_valid_selector(sig.selector)) {
        return unexpected(syntax("s= is not a valid selector"));
    }

    sig.signed_headers = split_colon_list(*tags->find("h"));
    bool from_signed = false;
    for (const std::string& h : sig.signed_headers) {
        if (h.empty()) {
            return unexpected(syntax("h= has an empty header field name"));
        }
        from_signed = from_signed || mail::iequals(h, "from");
    }
    // RFC 6376 §6.1.1: "If the "h=" tag does not include the From header field, the Verifier
    // MUST ignore the DKIM-Signature header field and return PERMFAIL (From field not signed)."
    if (!from_signed) {
        return unexpected(unacceptable("h= does not include From"));
    }

    if (const auto* i = tags->find("i")) {
        sig.identity = trim_fws(*i);
        const std::size_t at = sig.identity.rfind('@');
        if (at == std::string::npos) {
            return unexpected(syntax("i= has no '@'"));
        }
        if (sig.identity.find_first_of(" \t\r\n") != std::string::npos) {
            return unexpected(syntax("i= has white space inside"));
        }
        const std::string i_domain =
            mail::ascii_lowercase(std::string_view(sig.identity).substr(at + 1));
        // RFC 6376 §6.1.1: "Verifiers MUST confirm that the domain specified in the "d=" tag
        // is the same as or a parent domain of the domain part of the "i=" tag."
        const bool same = i_domain == sig.domain;
        const bool sub = i_domain.size() > sig.domain.size() &&
                         i_domain.compare(i_domain.size() - sig.domain.size(), sig.domain.size(),
                                          sig.domain) == 0 &&
                         i_domain[i_domain.size() - sig.domain.size() - 1] == '.';
        if (!same && !sub) {
            return unexpected(unacceptable("i= domain is not d= or a subdomain of it"));
        }
    } else {
        sig.identity = "@" + sig.domain;
    }

    if (const auto* l = tags->find("l")) {
        const std::string digits = trim_fws(*l);
        // "l= ... 1*76DIGIT": more than fits in 64 bits is longer than any body we will see.
        if (digits.empty() || digits.size() > 76 ||
            digits.find_first_not_of("0123456789") != std::string::npos) {
            return unexpected(syntax("l= is not a number"));
        }
        auto v = parse_decimal<std::uint64_t>(digits, 76);
        sig.body_length = v ? *v : UINT64_MAX;
    }

    if (const auto* q = tags->find("q")) {
        bool dns_txt = false;
        for (const std::string& method : split_colon_list(*q)) {
            dns_txt = dns_txt || method == "dns/txt";
        }
        if (!dns_txt) {
            return unexpected(unacceptable("q= does not offer dns/txt"));
        }
    }

    if (const auto* t = tags->find("t")) {
        sig.timestamp = parse_decimal<std::int64_t>(trim_fws(*t), 12);
        if (!sig.timestamp) {
            return unexpected(syntax("t= is not a timestamp"));
        }
    }
    if (const auto* x = tags->find("x")) {
        sig.expiration = parse_decimal<std::int64_t>(trim_fws(*x), 12);
        if (!sig.expiration) {
            return unexpected(syntax("x= is not a timestamp"));
        }
        // "The "x=" tag value MUST be greater than the "t=" tag value if both are present."
        if (sig.timestamp && *sig.expiration <= *sig.timestamp) {
            return unexpected(syntax("x= is not after t="));
        }
    }
    return sig;
}

namespace {

// Appends tokens to folded lines: a token never straddles a fold.
class Folder {
  public:
    explicit Folder(std::string& out) : out_(out) {
        const std::size_t nl = out_.rfind('\n');
        const std::size_t start = nl == std::string::npos ? 0 : nl + 1;
        for (std::size_t i = start; i < out_.size(); ++i) {
            column_ = out_[i] == '\t' ? (column_ / 8 + 1) * 8 : column_ + 1;
        }
    }

    // `space`: put one SP before the token when it stays on the current line.
    void add(std::string_view token, bool space) {
        const std::size_t needed = token.size() + (space ? 1 : 0);
        if (column_ + needed > kFoldColumn && column_ > 8) {
            out_.append("\r\n\t");
            column_ = 8;
        } else if (space) {
            out_.push_back(' ');
            ++column_;
        }
        out_.append(token);
        column_ += token.size();
    }

    std::size_t column() const { return column_; }

  private:
    std::string& out_;
    std::size_t column_ = 0;
};

}  // namespace

std::string render_signature_field(const SignatureTemplate& t) {
    std::string out(kSignatureFieldName);
    out.append(":");
    Folder f(out);
    f.add("v=1;", true);
    f.add("a=" + std::string(to_string(t.algorithm)) + ";", true);
    f.add("c=" + t.canonicalization.to_string() + ";", true);
    f.add("d=" + t.domain + ";", true);
    f.add("s=" + t.selector + ";", true);
    f.add("t=" + std::to_string(t.timestamp) + ";", true);
    if (t.expiration) {
        f.add("x=" + std::to_string(*t.expiration) + ";", true);
    }
    if (t.identity) {
        f.add("i=" + *t.identity + ";", true);
    }
    if (t.body_length) {
        f.add("l=" + std::to_string(*t.body_length) + ";", true);
    }
    // h= folds after its colons.
    for (std::size_t i = 0; i < t.signed_headers.size(); ++i) {
        std::string token = (i == 0 ? "h=" : "") + t.signed_headers[i];
        token.push_back(i + 1 == t.signed_headers.size() ? ';' : ':');
        f.add(token, i == 0);
    }
    f.add("bh=" + crypto::base64_encode(t.body_hash) + ";", true);
    f.add("b=", true);
    return out;
}

std::string complete_signature_field(std::string rendered, std::string_view signature) {
    const std::string b64 = crypto::base64_encode(signature);
    Folder f(rendered);
    // Base64 may fold anywhere: fill the current line, then whole lines.
    std::size_t pos = 0;
    std::size_t room = f.column() < kFoldColumn ? kFoldColumn - f.column() : 0;
    while (pos < b64.size()) {
        if (room == 0) {
            rendered.append("\r\n\t");
            room = kFoldColumn - 8;
        }
        const std::size_t n = std::min(room, b64.size() - pos);
        rendered.append(b64, pos, n);
        pos += n;
        room -= n;
    }
    rendered.append("\r\n");
    return rendered;
}

}  // namespace dkim

#include "dkim/dkim/verifier.hpp"

namespace dkim {
namespace {

using mail::AuthResult;

constexpr std::size_t kSignaturePrefix = 12;

bool constant_time_equal(std::string_view a, const crypto::Sha256Digest& b) {
    if (a.size() != b.size()) {
        return false;
    }
    unsigned char diff = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        diff |= static_cast<unsigned char>(static_cast<unsigned char>(a[i]) ^ b[i]);
    }
    return diff == 0;
}

}  // namespace

struct MessageVerifier::BodyHash {
    BodyHash(Canon c, std::optional<std::uint64_t> l) : canon(c), limit(l), hasher(c, l) {}
    Canon canon;
    std::optional<std::uint64_t> limit;
    BodyHasher hasher;
    crypto::Sha256Digest digest{};
};

struct MessageVerifier::Candidate {
    std::size_t field = 0;  // index in the header block
    Expected<Signature, SignatureError> parsed = unexpected(SignatureError{});
    BodyHash* body = nullptr;
    SignatureVerdict verdict;  // pre-filled with the identifying tags
    bool over_limit = false;
};

MessageVerifier::MessageVerifier(KeyFetcher& keys, VerifyOptions options)
    : keys_(keys), options_(options) {}
MessageVerifier::~MessageVerifier() = default;

void MessageVerifier::start(mail::HeaderBlock header) {
    header_ = std::move(header);
    candidates_.clear();
    body_hashes_.clear();
    const std::vector<std::size_t> fields = header_.find_all(kSignatureFieldName);
    candidates_.reserve(fields.size());
    for (const std::size_t field : fields) {
        Candidate c;
        c.field = field;
        if (candidates_.size() >= options_.max_signatures) {
            c.over_limit = true;
            candidates_.push_back(std::move(c));
            continue;
        }
        c.parsed = parse_signature(header_.value(field));
        if (c.parsed) {
            const Signature& sig = *c.parsed;
            c.verdict.domain = sig.domain;
            c.verdict.selector = sig.selector;
            c.verdict.identity = sig.identity;
            c.verdict.algorithm = std::string(to_string(sig.algorithm));
            c.verdict.signature_prefix = sig.signature_text.substr(0, kSignaturePrefix);
            for (const auto& body : body_hashes_) {
                if (body->canon == sig.canonicalization.body && body->limit == sig.body_length) {
                    c.body = body.get();
                }
            }
            if (c.body == nullptr) {
                body_hashes_.push_back(
                    std::make_unique<BodyHash>(sig.canonicalization.body, sig.body_length));
                c.body = body_hashes_.back().get();
            }
        }
        candidates_.push_back(std::move(c));
    }
}

void MessageVerifier::update_body(std::string_view chunk) {
    for (const auto& body : body_hashes_) {
        body->hasher.update(chunk);
    }
}

std::vector<SignatureVerdict> MessageVerifier::finish(std::chrono::system_clock::time_point now) {
    for (const auto& body : body_hashes_) {
        body->digest = body->hasher.finish();
    }
    std::vector<SignatureVerdict> out;
    if (candidates_.empty()) {
        SignatureVerdict none;
        none.result = AuthResult::none;
        none.reason = "message not signed";
        out.push_back(std::move(none));
        return out;
    }
    out.reserve(candidates_.size());
    for (Candidate& c : candidates_) {
        out.push_back(check(c, now));
    }
    return out;
}

SignatureVerdict MessageVerifier::check(Candidate& c, std::chrono::system_clock::time_point now) {
    SignatureVerdict v = std::move(c.verdict);
    auto verdict = [&v](AuthResult r, std::string reason) {
        v.result = r;
        v.reason = std::move(reason);
        return std::move(v);
    };
    if (c.over_limit) {
        return verdict(AuthResult::policy, "more than " + std::to_string(options_.max_signatures) +
                                               " signatures; not evaluated");
    }
    if (!c.parsed) {
        const SignatureError& e = c.parsed.error();
        return verdict(
            e.kind == SignatureError::Kind::syntax ? AuthResult::neutral : AuthResult::permerror,
            e.message);
    }
    const Signature& sig = *c.parsed;
    // RFC 8301 §3.1: "Verifiers MUST NOT consider signatures using SHA-1 to be valid."
    if (sig.algorithm == SigningAlgorithm::rsa_sha1) {
        return verdict(AuthResult::permerror, "rsa-sha1 is not accepted (RFC 8301)");
    }
    if (sig.body_length && !options_.allow_body_length) {
        return verdict(AuthResult::policy, "l= (partial body signature) refused by local policy");
    }
    const std::int64_t now_s = unix_seconds(now);
    // RFC 6376 §3.5 x=: "Signatures MAY be considered invalid if the verification time at
    // the Verifier is past the expiration date."
    if (sig.expiration && now_s > *sig.expiration) {
        return verdict(AuthResult::policy, "signature expired");
    }
    if (sig.timestamp && *sig.timestamp > now_s + options_.max_clock_skew.count()) {
        return verdict(AuthResult::policy, "signature timestamp t= is in the future");
    }

    // Body first: it needs no DNS.
    BodyHash& body = *c.body;
    if (sig.body_length && body.hasher.canonical_length() < *sig.body_length) {
        return verdict(AuthResult::fail, "body is shorter than l=");
    }
    if (!constant_time_equal(sig.body_hash, body.digest)) {
        return verdict(AuthResult::fail, "body hash did not verify");
    }

    const KeyLookup lookup = keys_.fetch(sig.selector, sig.domain, now);
    if (lookup.status == KeyLookup::Status::temperror) {
        return verdict(AuthResult::temperror, lookup.reason);
    }
    if (lookup.status == KeyLookup::Status::permerror) {
        return verdict(AuthResult::permerror, lookup.reason);
    }
    const FetchedKey& key = *lookup.key;
    v.key_testing = key.record.testing;
    if (key.record.revoked) {
        return verdict(AuthResult::permerror, "key revoked (empty p=)");
    }
    const KeyType wanted =
        sig.algorithm == SigningAlgorithm::ed25519_sha256 ? KeyType::ed25519 : KeyType::rsa;
    if (key.record.type != wanted) {
        return verdict(AuthResult::permerror, "key type k= does not match a=");
    }
    if (!key.record.allows_sha256) {
        return verdict(AuthResult::permerror, "key record h= does not allow sha256");
    }
    if (key.record.strict_identity) {
        const std::string_view id = sig.identity;
        const std::string_view id_domain = id.substr(id.rfind('@') + 1);
        if (!mail::iequals(id_domain, sig.domain)) {
            return verdict(AuthResult::permerror, "key has t=s but i= is a subdomain of d=");
        }
    }
    v.key_bits = key.key.bits();
    if (wanted == KeyType::rsa) {
        // RFC 8301 §3.2: "Verifiers MUST NOT consider signatures using RSA keys of less than
        // 1024 bits as valid signatures."
        if (key.key.bits() < options_.min_rsa_bits) {
            return verdict(AuthResult::permerror, "RSA key of " + std::to_string(key.key.bits()) +
                                                      " bits is too short (RFC 8301)");
        }
        if (key.key.bits() > options_.max_rsa_bits) {
            return verdict(AuthResult::permerror, "RSA key of " + std::to_string(key.key.bits()) +
                                                      " bits is longer than accepted");
        }
    }

    scratch_.clear();
    canonicalize_signed_headers(header_, sig.signed_headers, sig.canonicalization.header, c.field,
                                scratch_);
    canonicalize_signature_header(sig.canonicalization.header, header_.raw(c.field), scratch_);
    const crypto::Sha256Digest digest = crypto::Sha256::hash(scratch_);
    if (!key.key.verify(sig.algorithm, digest, sig.signature)) {
        return verdict(AuthResult::fail, "signature did not verify");
    }
    return verdict(AuthResult::pass, {});
}

Expected<std::vector<SignatureVerdict>, mail::HeaderError> verify_message(
    std::string_view message, KeyFetcher& keys, std::chrono::system_clock::time_point now,
    const VerifyOptions& options) {
    auto split = mail::split_message(message);
    if (!split) {
        return unexpected(std::move(split).error());
    }
    MessageVerifier verifier(keys, options);
    verifier.start(std::move(split->header));
    verifier.update_body(split->body);
    return verifier.finish(now);
}

std::vector<mail::MethodResult> to_method_results(const std::vector<SignatureVerdict>& verdicts) {
    std::vector<mail::MethodResult> out;
    for (const SignatureVerdict& v : verdicts) {
        mail::MethodResult r;
        r.method = "dkim";
        r.result = v.result;
        r.reason = v.reason;
        if (v.result != AuthResult::none) {
            if (!v.domain.empty()) {
                r.properties.push_back({"header.d", v.domain});
            }
            if (!v.identity.empty()) {
                r.properties.push_back({"header.i", v.identity});
            }
            if (!v.selector.empty()) {
                r.properties.push_back({"header.s", v.selector});
            }
            if (!v.algorithm.empty()) {
                r.properties.push_back({"header.a", v.algorithm});
            }
            if (!v.signature_prefix.empty()) {
                r.properties.push_back({"header.b", v.signature_prefix});
            }
        }
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace dkim

#include "dkim/dkim/signer.hpp"

#include <algorithm>

namespace dkim {
namespace {

bool is_prefix_pattern(std::string_view name) {
    return !name.empty() && name.back() == '*';
}

bool starts_with_icase(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && mail::iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

const std::vector<std::string>& default_signed_headers() {
    static const std::vector<std::string> headers = {
        "From",       "To",           "Cc",           "Subject",
        "Date",       "Message-ID",   "Reply-To",     "In-Reply-To",
        "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
        "List-*"};
    return headers;
}

const std::vector<std::string>& default_oversigned_headers() {
    static const std::vector<std::string> headers = {
        "From", "Subject", "Date", "To", "Cc", "Reply-To", "Message-ID", "Content-Type"};
    return headers;
}

std::vector<std::string> select_signed_headers(const mail::HeaderBlock& header,
                                               const SignOptions& options) {
    std::vector<std::string> h;
    auto oversigned = [&](std::string_view name) {
        for (const std::string& o : options.oversigned) {
            if (mail::iequals(o, name)) {
                return true;
            }
        }
        return false;
    };
    for (const std::string& configured : options.headers) {
        if (is_prefix_pattern(configured)) {
            // "List-*": every distinct present name with that prefix, in order of appearance.
            const std::string_view prefix =
                std::string_view(configured).substr(0, configured.size() - 1);
            std::vector<std::string> names;
            for (std::size_t i = 0; i < header.size(); ++i) {
                const std::string name = mail::ascii_lowercase(header.name(i));
                if (starts_with_icase(name, prefix) &&
                    std::find(names.begin(), names.end(), name) == names.end()) {
                    names.push_back(name);
                }
            }
            for (const std::string& name : names) {
                const std::size_t count = header.find_all(name).size();
                h.insert(h.end(), count + (oversigned(name) ? 1 : 0), name);
            }
            continue;
        }
        const std::string name = mail::ascii_lowercase(configured);
        const std::size_t count = header.find_all(name).size();
        h.insert(h.end(), count + (oversigned(name) ? 1 : 0), name);
    }
    return h;
}

std::string signing_input(const mail::HeaderBlock& header, const SignatureTemplate& tmpl,
                          std::string_view rendered_field) {
    std::string data;
    data.reserve(header.text().size() + rendered_field.size() + 64);
    canonicalize_signed_headers(header, tmpl.signed_headers, tmpl.canonicalization.header,
                                header.size(), data);
    canonicalize_signature_header(tmpl.canonicalization.header, rendered_field, data);
    return data;
}

MessageSigner::MessageSigner(std::vector<SigningKey> keys, SignOptions options)
    : keys_(std::move(keys)), options_(std::move(options)), body_(options_.canonicalization.body) {}

Expected<std::string, SignError> MessageSigner::finish(const mail::HeaderBlock& header,
                                                       std::chrono::system_clock::time_point now) {
    const crypto::Sha256Digest body_hash = body_.finish();
    if (keys_.empty()) {
        return unexpected(SignError{"no signing key"});
    }
    const std::size_t froms = header.find_all("From").size();
    if (froms != 1) {
        return unexpected(SignError{froms == 0 ? "message has no From field; not signed"
                                               : "message has " + std::to_string(froms) +
                                                     " From fields; not signed"});
    }
    SignatureTemplate tmpl;
    tmpl.canonicalization = options_.canonicalization;
    tmpl.signed_headers = select_signed_headers(header, options_);
    tmpl.body_hash.assign(reinterpret_cast<const char*>(body_hash.data()), body_hash.size());
    tmpl.timestamp = unix_seconds(now);
    if (options_.expire_after) {
        tmpl.expiration = tmpl.timestamp + options_.expire_after->count();
    }
    std::string fields;
    for (const SigningKey& key : keys_) {
        if (key.signer == nullptr) {
            return unexpected(SignError{"no signer for selector " + key.selector});
        }
        if (!is_valid_domain(key.domain) || !is_valid_selector(key.selector)) {
            return unexpected(SignError{"invalid domain or selector: " + key.selector +
                                        "._domainkey." + key.domain});
        }
        tmpl.algorithm = key.signer->algorithm();
        if (tmpl.algorithm == SigningAlgorithm::rsa_sha1) {
            return unexpected(SignError{"rsa-sha1 is not offered (RFC 8301)"});
        }
        tmpl.domain = mail::ascii_lowercase(key.domain);
        tmpl.selector = mail::ascii_lowercase(key.selector);
        tmpl.identity = key.identity;
        std::string rendered = render_signature_field(tmpl);
        auto signature = key.signer->sign(signing_input(header, tmpl, rendered));
        if (!signature) {
            return unexpected(SignError{"signing with " + tmpl.selector + "._domainkey." +
                                        tmpl.domain + " failed: " + signature.error()});
        }
        fields.append(complete_signature_field(std::move(rendered), *signature));
    }
    return fields;
}

Expected<std::string, SignError> sign_message(std::string_view message,
                                              std::vector<SigningKey> keys,
                                              std::chrono::system_clock::time_point now,
                                              const SignOptions& options) {
    auto split = mail::split_message(message);
    if (!split) {
        return unexpected(SignError{split.error().to_string()});
    }
    MessageSigner signer(std::move(keys), options);
    signer.update_body(split->body);
    auto fields = signer.finish(split->header, now);
    if (!fields) {
        return unexpected(std::move(fields).error());
    }
    return *fields + std::string(message);
}

}  // namespace dkim

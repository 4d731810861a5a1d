#include "dkim/dkim/key_record.hpp"

#include "dkim/crypto/base64.hpp"
#include "dkim/dkim/tag_list.hpp"

namespace dkim {

Expected<KeyRecord, std::string> parse_key_record(std::string_view txt) {
    auto tags = TagList::parse(txt);
    if (!tags) {
        return unexpected("malformed key record: " + tags.error());
    }
    // §3.6.1 v=: "If specified, this tag MUST be set to "DKIM1" ... This tag MUST be the first
    // tag in the record."
    if (const auto* v = tags->find("v")) {
        if (tags->tags().front().name != "v") {
            return unexpected(std::string("key record v= is not the first tag"));
        }
        if (*v != "DKIM1") {
            return unexpected("key record version v=" + std::string(*v) + " is not DKIM1");
        }
    }
    KeyRecord key;
    if (const auto* k = tags->find("k")) {
        if (*k == "rsa") {
            key.type = KeyType::rsa;
        } else if (*k == "ed25519") {
            key.type = KeyType::ed25519;
        } else {
            return unexpected("unknown key type k=" + std::string(*k));
        }
    }
    if (const auto* h = tags->find("h")) {
        key.allows_sha256 = false;
        for (const std::string& alg : split_colon_list(*h)) {
            key.allows_sha256 = key.allows_sha256 || alg == "sha256";
        }
    }
    if (const auto* s = tags->find("s")) {
        bool email = false;
        for (const std::string& service : split_colon_list(*s)) {
            email = email || service == "*" || service == "email";
        }
        if (!email) {
            return unexpected(std::string("key record is not for email (s=)"));
        }
    }
    if (const auto* t = tags->find("t")) {
        for (const std::string& flag : split_colon_list(*t)) {
            key.testing = key.testing || flag == "y";
            key.strict_identity = key.strict_identity || flag == "s";
        }
    }
    const auto* p = tags->find("p");
    if (p == nullptr) {
        return unexpected(std::string("key record without p="));
    }
    const std::string p_text = strip_fws(*p);
    if (p_text.empty()) {
        key.revoked = true;
        return key;
    }
    auto decoded = crypto::base64_decode(p_text);
    if (!decoded) {
        return unexpected(std::string("key record p= is not valid base64"));
    }
    key.public_key = std::move(*decoded);
    return key;
}

std::string key_record_name(std::string_view selector, std::string_view domain) {
    std::string name(selector);
    name.append("._domainkey.");
    name.append(domain);
    return name;
}

}  // namespace dkim

// libFuzzer target: RFC 6376 §3.2 tag lists and the DKIM-Signature fields built on them
// (attacker-controlled: any inbound message carries them). Properties: every refusal says
// why; accepted lists have no duplicate tags and write back ("name=value;") to a list that
// parses to the same tags; and a signature that parses renders (render_signature_field,
// complete_signature_field: what the signer writes) to a field that parses back to the same
// values, every one of them: a=, b=, bh=, c=, d=, h=, i=, l=, s=, t= and x=.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/crypto/base64.hpp"
#include "dkim/dkim/signature.hpp"
#include "dkim/dkim/tag_list.hpp"
#include "dkim/mail/header.hpp"

namespace {

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto tags = dkim::TagList::parse(text);
    if (!tags) {
        require(!tags.error().empty());
    } else {
        std::string written;
        for (std::size_t i = 0; i < tags->tags().size(); ++i) {
            for (std::size_t j = i + 1; j < tags->tags().size(); ++j) {
                require(tags->tags()[i].name != tags->tags()[j].name);
            }
            written +=
                std::string(tags->tags()[i].name) + "=" + std::string(tags->tags()[i].value) + ";";
        }
        auto again = dkim::TagList::parse(written);
        require(again.has_value() && again->tags().size() == tags->tags().size());
        for (std::size_t i = 0; i < tags->tags().size(); ++i) {
            require(again->tags()[i].name == tags->tags()[i].name &&
                    again->tags()[i].value == tags->tags()[i].value);
        }
    }
    auto sig = dkim::parse_signature(text);
    if (!sig) {
        require(!sig.error().message.empty());
        return 0;
    }
    // RFC 6376 §3.5: "sig-t-tag = %x74 [FWS] "=" [FWS] 1*12DIGIT", and x= the same.
    require(sig->timestamp.value_or(0) >= 0 && sig->expiration.value_or(0) >= 0);
    dkim::SignatureTemplate t;
    t.algorithm = sig->algorithm;
    t.canonicalization = sig->canonicalization;
    t.domain = sig->domain;
    t.selector = sig->selector;
    if (sig->identity != "@" + sig->domain) {
        t.identity = sig->identity;
    }
    t.signed_headers = sig->signed_headers;
    t.body_hash = sig->body_hash;
    t.body_length = sig->body_length;
    // The renderer always writes t= (a signer always has a time): without one, t=0.
    t.timestamp = sig->timestamp.value_or(0);
    t.expiration = sig->expiration;
    if (t.expiration && *t.expiration <= t.timestamp) {
        return 0;  // only without t= (parse_signature refuses x= not after t=): x=0 or less
    }
    const std::string field =
        dkim::complete_signature_field(dkim::render_signature_field(t), sig->signature);
    auto block = dkim::mail::HeaderBlock::parse(field);
    require(block.has_value() && block->size() == 1 && block->name(0) == dkim::kSignatureFieldName);
    auto again = dkim::parse_signature(block->value(0));
    require(again.has_value());
    require(again->algorithm == sig->algorithm);
    require(again->signature == sig->signature);
    require(again->signature_text == dkim::crypto::base64_encode(sig->signature));
    require(again->body_hash == sig->body_hash);
    require(again->canonicalization == sig->canonicalization);
    require(again->domain == sig->domain);
    require(again->signed_headers == sig->signed_headers);
    require(again->identity == sig->identity);
    require(again->body_length == sig->body_length);
    require(again->selector == sig->selector);
    require(again->timestamp == t.timestamp);
    require(again->expiration == sig->expiration);
    return 0;
}

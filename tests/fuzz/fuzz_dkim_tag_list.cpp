// libFuzzer target: RFC 6376 §3.2 tag lists and the DKIM-Signature fields built on them
// (attacker-controlled: any inbound message carries them). Properties: every refusal says
// why, accepted lists have no duplicate tags, and a signature that parses renders to a field
// that parses back to the same values.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/dkim/signature.hpp"
#include "dkim/dkim/tag_list.hpp"
#include "dkim/mail/header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto tags = dkim::TagList::parse(text);
    if (!tags) {
        if (tags.error().empty()) {
            std::abort();
        }
    } else {
        for (std::size_t i = 0; i < tags->tags().size(); ++i) {
            for (std::size_t j = i + 1; j < tags->tags().size(); ++j) {
                if (tags->tags()[i].name == tags->tags()[j].name) {
                    std::abort();
                }
            }
        }
    }
    auto sig = dkim::parse_signature(text);
    if (!sig) {
        if (sig.error().message.empty()) {
            std::abort();
        }
        return 0;
    }
    if (sig->algorithm == dkim::SigningAlgorithm::rsa_sha1 || sig->identity != "@" + sig->domain) {
        return 0;  // the renderer writes neither rsa-sha1 nor custom i= values it did not check
    }
    dkim::SignatureTemplate t;
    t.algorithm = sig->algorithm;
    t.canonicalization = sig->canonicalization;
    t.domain = sig->domain;
    t.selector = sig->selector;
    t.signed_headers = sig->signed_headers;
    t.body_hash = sig->body_hash;
    t.body_length = sig->body_length;
    t.timestamp = sig->timestamp.value_or(0);
    t.expiration = sig->expiration;
    if (t.expiration && *t.expiration <= t.timestamp) {
        return 0;
    }
    const std::string field =
        dkim::complete_signature_field(dkim::render_signature_field(t), sig->signature);
    auto block = dkim::mail::HeaderBlock::parse(field);
    if (!block || block->size() != 1) {
        std::abort();
    }
    auto again = dkim::parse_signature(block->value(0));
    if (!again || again->signature != sig->signature || again->body_hash != sig->body_hash ||
        again->signed_headers != sig->signed_headers || again->domain != sig->domain ||
        again->selector != sig->selector || again->body_length != sig->body_length) {
        std::abort();
    }
    return 0;
}

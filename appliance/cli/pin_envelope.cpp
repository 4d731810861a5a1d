#include "pin_envelope.hpp"

#include <algorithm>
#include <span>

#include "dkim/crypto/base64.hpp"
#include "dkim/custody/envelope.hpp"

namespace dkim::cli {

namespace {

std::span<const unsigned char> bytes_of(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};  // NOLINT
}

}  // namespace

Expected<ipc::PinEnvelope, std::string> seal_to_signerd(
    const Common& c, const ipc::Credentials& auth, const std::string& purpose,
    const std::string& subject, const hsm::Secret& plaintext, const std::string& fingerprint) {
    ipc::Credentials offer_auth;
    offer_auth.user = auth.user;
    offer_auth.password = auth.password;
    offer_auth.token = auth.token;
    offer_auth.token_kind = auth.token_kind;
    auto reply = ask_signerd(c, ipc::PinKeyOffer{std::move(offer_auth), purpose, subject});
    if (!reply) {
        return unexpected(reply.error());
    }
    const auto* offer = std::get_if<ipc::PinKeyOfferReply>(&*reply);
    if (offer == nullptr) {
        return unexpected(std::string("signerd answered the key offer with something else"));
    }
    const auto identity = crypto::base64url_decode(offer->identity);
    const auto public_key = crypto::base64url_decode(offer->public_key);
    const auto signature = crypto::base64url_decode(offer->signature);
    if (!identity || identity->size() != 32 || !public_key || public_key->size() != 32 ||
        !signature) {
        return unexpected(std::string("signerd's key offer is malformed"));
    }
    custody::PublicKey id{};
    custody::PublicKey recipient{};
    std::copy(identity->begin(), identity->end(), id.begin());
    std::copy(public_key->begin(), public_key->end(), recipient.begin());
    // The statement must be the one signerd's identity signed, about this key, for this purpose
    // (the user in it is whoever signerd authenticated: the caller).
    const std::string& text = offer->statement;
    const auto user_at = text.find("\nuser=");
    const auto user_end = user_at == std::string::npos ? user_at : text.find('\n', user_at + 6);
    const std::string user = user_end == std::string::npos
                                 ? std::string()
                                 : text.substr(user_at + 6, user_end - user_at - 6);
    const bool statement_ok =
        !user.empty() && (auth.user.empty() || user == auth.user) &&
        text == custody::key_offer_statement(purpose, subject, user, offer->key_id, recipient,
                                             offer->expires_ms);
    if (!statement_ok ||
        !custody::verify_identity_signature(id, bytes_of(text), bytes_of(*signature))) {
        return unexpected(std::string(
            "signerd's key offer is not signed by its identity key: refusing to seal to it"));
    }
    if (custody::fingerprint(id) != offer->fingerprint) {
        return unexpected(std::string("signerd's key offer names another fingerprint"));
    }
    if (!fingerprint.empty() && fingerprint != offer->fingerprint) {
        return unexpected("signerd's identity is " + offer->fingerprint + ", not " + fingerprint +
                          " as expected: refusing to seal to it");
    }
    auto sealed = custody::seal(plaintext.bytes(), recipient,
                                custody::envelope_associated_data(purpose, subject, offer->key_id));
    if (!sealed) {
        return unexpected(sealed.error());
    }
    return ipc::PinEnvelope{offer->key_id, custody::format_envelope(*sealed)};
}

}  // namespace dkim::cli

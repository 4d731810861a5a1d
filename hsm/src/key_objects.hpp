#pragma once
// Internal to dkim_hsm: what the key store (key_store.cpp) and the import (key_import.cpp) share
// about the objects of a DKIM key pair on a token: their attributes, the start of a new key
// (session and CKA_ID), and keeping or removing what was made.

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/hsm/keys.hpp"
#include "pkcs11.hpp"

namespace dkim::hsm::detail {

// RFC 8410 §3: id-Ed25519 OBJECT IDENTIFIER ::= { 1 3 101 112 }, DER-encoded.
inline constexpr std::array<unsigned char, 5> kEd25519Oid{0x06, 0x03, 0x2B, 0x65, 0x70};
inline constexpr std::size_t kKeyIdSize = 16;

// An error of the key store that no CK_RV caused.
template <class T>
Result<T> fail(ErrorCode code, std::string message) {
    return dkim::unexpected(Error{code, std::move(message), "", 0});
}

// The one mechanism a key of `type` signs with on `token` (Token::rsa_signing_mechanism).
inline CK_MECHANISM_TYPE signing_mechanism(KeyType type, const Token& token) {
    return type == KeyType::rsa ? token.rsa_signing_mechanism() : CKM_EDDSA;
}

// The attributes every DKIM key pair gets, generated or imported (keys.hpp's header comment):
// both halves on the token under the record's DNS name, the private half sensitive, never
// extractable, and signing with its one mechanism only. It holds the values its attributes
// point to: not copyable.
class KeyPairTemplate {
  public:
    KeyPairTemplate(KeyType type, const Token& token, const std::string& label,
                    std::span<const unsigned char> id)
        : key_type_(type == KeyType::ed25519 ? CKK_EC_EDWARDS : CKK_RSA),
          allowed_(signing_mechanism(type, token)) {
        const std::span<const unsigned char> allowed_bytes(
            reinterpret_cast<const unsigned char*>(&allowed_), sizeof allowed_);  // NOLINT
        public_half = {
            attr(CKA_CLASS, public_class_),
            attr(CKA_KEY_TYPE, key_type_),
            attr(CKA_TOKEN, yes_),
            attr(CKA_PRIVATE, no_),
            attr(CKA_VERIFY, yes_),
            attr(CKA_ENCRYPT, no_),
            attr(CKA_WRAP, no_),
            attr(CKA_VERIFY_RECOVER, no_),
            attr(CKA_LABEL, label),
            attr(CKA_ID, id),
        };
        private_half = {
            attr(CKA_CLASS, private_class_),
            attr(CKA_KEY_TYPE, key_type_),
            attr(CKA_TOKEN, yes_),
            attr(CKA_PRIVATE, yes_),
            attr(CKA_SENSITIVE, yes_),
            attr(CKA_EXTRACTABLE, no_),
            attr(CKA_SIGN, yes_),
            attr(CKA_DECRYPT, no_),
            attr(CKA_UNWRAP, no_),
            attr(CKA_DERIVE, no_),
            attr(CKA_SIGN_RECOVER, no_),
            attr(CKA_ALLOWED_MECHANISMS, allowed_bytes),
            attr(CKA_LABEL, label),
            attr(CKA_ID, id),
        };
    }
    KeyPairTemplate(const KeyPairTemplate&) = delete;
    KeyPairTemplate& operator=(const KeyPairTemplate&) = delete;

    CK_MECHANISM_TYPE allowed() const { return allowed_; }
    // The template still asks for CKA_ALLOWED_MECHANISMS (drop_allowed_mechanisms was not
    // needed): the key made from it must have it.
    bool restricts_mechanisms() const {
        return std::any_of(private_half.begin(), private_half.end(),
                           [](const CK_ATTRIBUTE& a) { return a.type == CKA_ALLOWED_MECHANISMS; });
    }

    // For a token that refuses the whole template because it does not implement
    // CKA_ALLOWED_MECHANISMS (CKR_ATTRIBUTE_TYPE_INVALID: openCryptoki 3.8.1): the private half
    // without it, once. False when it was already gone (the refusal was about something else).
    bool drop_allowed_mechanisms() {
        return std::erase_if(private_half, [](const CK_ATTRIBUTE& a) {
                   return a.type == CKA_ALLOWED_MECHANISMS;
               }) > 0;
    }

    std::vector<CK_ATTRIBUTE> public_half;
    std::vector<CK_ATTRIBUTE> private_half;

  private:
    CK_OBJECT_CLASS public_class_ = CKO_PUBLIC_KEY;
    CK_OBJECT_CLASS private_class_ = CKO_PRIVATE_KEY;
    CK_KEY_TYPE key_type_;
    CK_BBOOL yes_ = CK_TRUE;
    CK_BBOOL no_ = CK_FALSE;
    CK_MECHANISM_TYPE allowed_;
};

// The start of every new key pair (generated or imported): a read-write session on a logged-in
// token on which no object carries the name's label yet (a key is never replaced in place), and
// a random CKA_ID. `doing` ("generating") and `exists_hint` word the refusals.
struct NewKey {
    Session session;
    std::array<unsigned char, kKeyIdSize> id{};
};
Result<NewKey> start_new_key(const Token& token, const KeyName& name, std::string_view doing,
                             std::string_view exists_hint);

// The SubjectPublicKeyInfo (DER) and the size in bits of `key`, into `out`.
Result<void> encode_public_key(const EVP_PKEY* key, PublicKey& out);

// An object that a generation or an import made, and what it is ("private half").
struct MadeObject {
    CK_OBJECT_HANDLE handle;
    std::string_view what;
};

// What a failed generation or import made must not stay on the token: a half-made key, or one
// not protected as promised. Destroys `made` and returns `why`, with `removed` appended when
// every object went. An object the token would not destroy is never left silently: the error
// then names it (label and CKA_ID) and the C_DestroyObject failure, and says how to remove it.
Error remove_made_objects(const Session& session, const Token& token,
                          std::initializer_list<MadeObject> made, const std::string& label,
                          std::span<const unsigned char> id, Error why, std::string_view removed);

// Reads back the pair just made under `name` and keeps it only when its private half is
// protected as `promised` (PrivateKeyProtection::as_generated or as_imported) with `allowed` its
// one mechanism; a key without the attribute only when the token refused it in the template
// (`restricted` false), not when a token took it and then reads it back as unknown. Some tokens
// ignore attributes they do not implement: a key that is not protected as promised must not exist,
// so both halves are removed.
Result<KeyInfo> keep_if_protected(const Session& session, const Token& token, const KeyName& name,
                                  Session::KeyPair made, std::span<const unsigned char> id,
                                  CK_MECHANISM_TYPE allowed, bool restricted,
                                  bool (PrivateKeyProtection::*promised)() const);

}  // namespace dkim::hsm::detail

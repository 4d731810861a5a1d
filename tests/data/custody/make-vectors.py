#!/usr/bin/python3
"""Fixed vectors for tests/appliance/custody/envelope_test.cpp, made with an implementation that
is not ours (python3-cryptography, OpenSSL underneath but through another code path): an
envelope as custody/envelope.hpp defines it, and an Ed25519 key offer signature.

Run: /usr/bin/python3 tests/data/custody/make-vectors.py > tests/data/custody/vectors.txt"""
import base64
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


raw = serialization.Encoding.Raw
fmt = serialization.PublicFormat.Raw
recipient_private = bytes(range(1, 33))
ephemeral_private = bytes(range(101, 133))
iv = bytes(range(200, 212))
recipient = x25519.X25519PrivateKey.from_private_bytes(recipient_private)
ephemeral = x25519.X25519PrivateKey.from_private_bytes(ephemeral_private)
recipient_public = recipient.public_key().public_bytes(raw, fmt)
ephemeral_public = ephemeral.public_key().public_bytes(raw, fmt)
shared = ephemeral.exchange(recipient.public_key())
key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public,
           info=b"dkim-appliance pin envelope v1").derive(shared)
aad = "dkim-appliance pin envelope v1\npurpose=approve\nsubject=42\nkey=k1\n"
plaintext = b"pin-7f3a9c2e41"
box = AESGCM(key).encrypt(iv, plaintext, aad.encode())
print("recipient_private", recipient_private.hex())
print("recipient_public", recipient_public.hex())
print("ephemeral_private", ephemeral_private.hex())
print("iv", iv.hex())
print("plaintext", plaintext.hex())
print("envelope", "v1.%s.%s.%s" % (b64u(ephemeral_public), b64u(iv), b64u(box)))

identity = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(50, 82)))
identity_public = identity.public_key().public_bytes(raw, fmt)
statement = ("dkim-appliance pin envelope key v1\npurpose=approve\nsubject=42\nuser=bob\nkey=k1\n"
             "public=%s\nexpires=1795694700000\n" % b64u(recipient_public))
print("identity_public", identity_public.hex())
print("statement", statement.encode().hex())
print("signature", identity.sign(statement.encode()).hex())
print("fingerprint", "SHA256:" + base64.b64encode(hashlib.sha256(identity_public).digest()).rstrip(b"=").decode())

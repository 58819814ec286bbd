"""RSA-SHA256 request and webhook signatures, as Bank 131 computes them.

The signature is RSASSA-PKCS1-v1_5 with SHA-256 over the exact body bytes, sent as
standard, padded Base64 in ``X-PARTNER-SIGN``. Nothing else is signed: no URL, no headers,
no time. This module depends on ``cryptography`` only, so the SDK can ship without the
server, and the server uses it for both directions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "MIN_KEY_BITS",
    "KeyFormatError",
    "fingerprint",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "sign",
    "verify",
]

MIN_KEY_BITS = 2048


class KeyFormatError(ValueError):
    """A PEM that is not an RSA key of at least 2048 bits."""


_PADDING, _DIGEST = padding.PKCS1v15(), hashes.SHA256()  # the bank's scheme, made once


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load a PKCS#1 or PKCS#8 PEM private key (unencrypted)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a readable PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("the private key is not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise KeyFormatError(f"the RSA key has {key.key_size} bits; at least {MIN_KEY_BITS} needed")
    return key


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """Load a PEM public key, either SubjectPublicKeyInfo or PKCS#1 ``RSA PUBLIC KEY``."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a readable PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError("the public key is not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise KeyFormatError(f"the RSA key has {key.key_size} bits; at least {MIN_KEY_BITS} needed")
    return key


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a key (the public half of a private key)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """``sha256:`` and the hex SHA-256 of the key's DER SubjectPublicKeyInfo: how the bank
    and the partner name a key to each other (``payout131 project key list``)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def sign(key: rsa.RSAPrivateKey, body: bytes) -> str:
    """Base64 of the PKCS#1 v1.5 SHA-256 signature over ``body``."""
    raw = key.sign(body, _PADDING, _DIGEST)
    return base64.b64encode(raw).decode("ascii")


def verify(key: rsa.RSAPublicKey, body: bytes, signature: str | bytes | None) -> bool:
    """True when ``signature`` is a valid Base64 signature of ``body`` by ``key``."""
    if not signature:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(raw, body, _PADDING, _DIGEST)
    except InvalidSignature:
        return False
    return True

"""The bank's own RSA key pair, kept in the data directory; it signs every webhook."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client import signing

__all__ = ["ensure_bank_keys", "load_bank_key"]


def ensure_bank_keys(private_path: Path, public_path: Path) -> bool:
    """Create the key pair unless it exists; True when a new pair was made."""
    if private_path.exists():
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path.write_bytes(signing.public_key_pem(key))
    return True


def load_bank_key(private_path: Path) -> rsa.RSAPrivateKey:
    if not private_path.exists():
        raise FileNotFoundError(
            f"no bank key at {private_path}: run `payout131 init` first (PAYOUT131_HOME)"
        )
    return signing.load_private_key(private_path.read_bytes())

"""The account vault: AES-256-GCM encryption of tokenized account numbers at rest.

Keys come from ``PAYOUT131_VAULT_KEY`` (comma-separated Base64 keys, the first is current)
or else from the key file ``vault.key`` in the data directory (one Base64 key a line, the
first is current; ``payout131 init`` creates it). Each ciphertext is stored with the id of
the key that sealed it, so after a rotation old and new ciphertexts can both be read until
everything has been re-encrypted. The key file is re-read when it changes on disk, so a
running server follows a rotation made by ``payout131 vault rotate``.

A sealed value is ``nonce (12 bytes) || ciphertext || tag``; the caller's ``context`` (the
token, its project and BIK) is authenticated with it, so a ciphertext moved to another row
does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_BYTES",
    "Sealed",
    "Vault",
    "VaultError",
    "ensure_key_file",
    "format_key_file",
    "key_id",
    "new_key",
    "parse_keys",
    "write_key_file",
]

KEY_BYTES = 32
_NONCE_BYTES = 12
_KEY_ID_DOMAIN = b"payout131 vault key id\x00"
_MAC_DOMAIN = b"payout131 vault fingerprint key\x00"
_FILE_HEADER = (
    "# payout131 account vault keys: Base64, one a line, the first seals new values.\n"
    "# Losing this file loses every tokenized account. Back it up; keep it secret.\n"
)


class VaultError(Exception):
    """The vault has no usable key, or a ciphertext does not open with the key it names."""


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    blob: bytes


def key_id(key: bytes) -> str:
    """A key's public name: 16 hex digits of a domain-separated SHA-256 of the key."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).hexdigest()[:16]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def parse_keys(text: str, source: str) -> list[bytes]:
    """Keys from Base64 text separated by commas or new lines; ``#`` starts a comment."""
    keys = []
    items = [i.strip() for line in text.splitlines() for i in line.split("#", 1)[0].split(",")]
    for item in items:
        if not item:
            continue
        try:
            key = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise VaultError(f"{source}: {item[:6]}… is not Base64") from None
        if len(key) != KEY_BYTES:
            raise VaultError(f"{source}: a key must be {KEY_BYTES} bytes, got {len(key)}")
        keys.append(key)
    if not keys:
        raise VaultError(f"{source}: holds no key")
    return keys


def format_key_file(keys: list[bytes]) -> str:
    return _FILE_HEADER + "".join(base64.b64encode(k).decode() + "\n" for k in keys)


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically (write a sibling, then rename), readable by us only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(format_key_file(keys))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


class Vault:
    """Seals and opens account numbers with the current key ring.

    The ring is read lazily: a server without a vault key starts and serves everything but
    tokenized accounts, whose calls fail with a :class:`VaultError` naming the remedy.
    """

    def __init__(self, path: Path, env_keys: str = "") -> None:
        self.path = path
        self._env_keys = env_keys
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, AESGCM] = {}
        self._macs: dict[str, bytes] = {}  # each key's subkey for fingerprints
        self._current: str | None = None

    def __repr__(self) -> str:  # never show keys
        source = "PAYOUT131_VAULT_KEY" if self._env_keys else str(self.path)
        return f"Vault({source})"

    @property
    def from_environment(self) -> bool:
        return bool(self._env_keys)

    def key_ids(self) -> list[str]:
        """The ids of the keys in the ring, the current one first."""
        self._refresh()
        return list(self._keys)

    @property
    def current_key_id(self) -> str:
        self._refresh()
        assert self._current is not None
        return self._current

    def seal(self, plaintext: str, context: bytes) -> Sealed:
        return self.seal_bytes(plaintext.encode(), context)

    def open(self, sealed: Sealed, context: bytes) -> str:
        return self.open_bytes(sealed, context).decode()

    def seal_bytes(self, plaintext: bytes, context: bytes) -> Sealed:
        self._refresh()
        assert self._current is not None
        nonce = secrets.token_bytes(_NONCE_BYTES)
        blob = nonce + self._keys[self._current].encrypt(nonce, plaintext, context)
        return Sealed(self._current, blob)

    def open_bytes(self, sealed: Sealed, context: bytes) -> bytes:
        self._refresh()
        cipher = self._keys.get(sealed.key_id)
        if cipher is None:
            raise VaultError(
                f"vault key {sealed.key_id} is not in the key ring ({self!r}); "
                "restore it or the data sealed with it cannot be read"
            )
        nonce, body = sealed.blob[:_NONCE_BYTES], sealed.blob[_NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, body, context)
        except InvalidTag:
            raise VaultError(
                f"a value sealed with key {sealed.key_id} failed authentication"
            ) from None

    def _refresh(self) -> None:
        """Load the ring on first use, and again whenever the key file has changed."""
        with self._lock:
            if self._env_keys:
                if self._current is None:
                    self._install(parse_keys(self._env_keys, "PAYOUT131_VAULT_KEY"))
                return
            try:
                info = self.path.stat()
            except FileNotFoundError:
                raise VaultError(
                    f"no vault key at {self.path}: run `payout131 init` or set PAYOUT131_VAULT_KEY"
                ) from None
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            if stamp != self._stamp:
                self._install(parse_keys(self.path.read_text(), str(self.path)))
                self._stamp = stamp

    def fingerprints(self, data: bytes, domain: bytes) -> list[str]:
        """HMAC-SHA256 of ``data`` under each key of the ring (the current key's first), as
        hex: equal data give equal fingerprints, and without the keys they cannot be
        computed, so one kept in the database tells nothing of a guessable secret in
        ``data`` (a card number in an idempotency key's body digest)."""
        self._refresh()
        return [
            hmac.new(k, domain + b"\x00" + data, hashlib.sha256).hexdigest()
            for k in self._macs.values()
        ]

    def _install(self, keys: list[bytes]) -> None:
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self._macs = {key_id(k): hmac.new(k, _MAC_DOMAIN, hashlib.sha256).digest() for k in keys}
        self._current = key_id(keys[0])


def ensure_key_file(path: Path) -> bool:
    """Create a key file with one fresh key unless it exists; True when one was made."""
    if path.exists():
        return False
    write_key_file(path, [new_key()])
    return True

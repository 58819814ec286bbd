"""The bank's own RSA key pair, kept in the data directory; it signs every webhook.

A rotation without downtime (``payout131 bank-key rotate``) keeps a second pair beside the
first, and the time webhook signing switches to it, in three more files of the home:

- ``bank-next-private.pem``, ``bank-next-public.pem``: the next key pair;
- ``bank-key-switch``: when it takes over (RFC 3339, UTC), written last.

Until then ``payout131 bank-key`` publishes both public keys, so partners install the next
one before it signs anything. ``finish`` (or the next ``rotate``) makes the next pair the
current one. Every server reads the files again when they change (``BankSigner``), so
neither the rotation nor the switch needs a restart, and processes sharing a home switch at
the same moment. Time here is wall time, never a sandbox's test clock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client import signing
from payout131.clock import SystemClock, rfc3339_seconds

__all__ = [
    "FILES",
    "BankKeys",
    "BankSigner",
    "Keys",
    "PublishedKeys",
    "RotationError",
    "cancel",
    "ensure_bank_keys",
    "finish",
    "load_bank_keys",
    "load_published",
    "parse_at",
    "reschedule",
    "rotate",
]

PRIVATE, PUBLIC = "bank-private.pem", "bank-public.pem"
NEXT_PRIVATE, NEXT_PUBLIC = "bank-next-private.pem", "bank-next-public.pem"
SWITCH = "bank-key-switch"
FILES = (PRIVATE, PUBLIC, NEXT_PRIVATE, NEXT_PUBLIC, SWITCH)
"""Every file of the bank's keys a home may hold (backups take those that exist)."""
_RELOAD_S = 1.0  # how often a server looks at the files again

log = logging.getLogger("payout131.webhooks")


class RotationError(Exception):
    """A rotation step that cannot be taken now; the message says why and what to do."""


def _new_key_pem() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, signing.public_key_pem(key)


def _write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` (0600), replacing it whole: readers see the old or the new."""
    temporary = path.with_name(f".{path.name}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def ensure_bank_keys(private_path: Path, public_path: Path) -> bool:
    """Create the key pair unless it exists; True when a new pair was made."""
    if private_path.exists():
        return False
    private, public = _new_key_pem()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    public_path.write_bytes(public)
    return True


K = TypeVar("K", rsa.RSAPrivateKey, rsa.RSAPublicKey)


@dataclass(frozen=True, slots=True)
class Keys(Generic[K]):
    """The keys a home holds (private: ``BankKeys``; their public halves: ``PublishedKeys``):
    the current one, and during a rotation the next one with the time (µs, wall) it takes
    over."""

    current: K
    next: K | None = None
    switch_at: int | None = None

    def signing_key(self, now_us: int) -> K:
        """The key that signs a webhook sent at ``now_us``."""
        if self.next is not None and self.switch_at is not None and now_us >= self.switch_at:
            return self.next
        return self.current

    def published(self, now_us: int) -> list[K]:
        """The keys partners should trust: the signing one first, then the other."""
        keys = [self.signing_key(now_us)]
        keys += [k for k in (self.current, self.next) if k is not None and k is not keys[0]]
        return keys

    @property
    def pending(self) -> bool:
        return self.next is not None and self.switch_at is not None


BankKeys = Keys[rsa.RSAPrivateKey]
PublishedKeys = Keys[rsa.RSAPublicKey]
"""The public halves a home publishes: ``bank-key`` reads only these, so it needs no access
to the private keys."""


def _read_switch(home: Path) -> int | None:
    path = home / SWITCH
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return parse_at(text, 0)
    except ValueError:
        raise RotationError(f"{path}: {text[:40]!r} is not an RFC 3339 time") from None


def _load(home: Path, current: str, following: str, load: Callable[[bytes], K]) -> Keys[K]:
    """The keys in files ``current`` and ``following`` of ``home``; FileNotFoundError before
    ``payout131 init``. A next key with no switch time (a rotation written part way) is
    left out."""
    path = home / current
    if not path.exists():
        raise FileNotFoundError(
            f"no bank key at {path}: run `payout131 init` first (PAYOUT131_HOME)"
        )
    first = load(path.read_bytes())
    switch_at = _read_switch(home)
    next_path = home / following
    if switch_at is None or not next_path.exists():
        return Keys(first)
    return Keys(first, load(next_path.read_bytes()), switch_at)


def load_published(home: Path) -> PublishedKeys:
    """The public keys in ``home``."""
    return _load(home, PUBLIC, NEXT_PUBLIC, signing.load_public_key)


def load_bank_keys(home: Path) -> BankKeys:
    """The private keys in ``home``."""
    return _load(home, PRIVATE, NEXT_PRIVATE, signing.load_private_key)


class BankSigner:
    """Signs webhook bodies with the key of the moment, reading the home's key files again
    (at most every second) when they change: a rotation, a switch or a finish is seen by a
    running server without a restart."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock = threading.Lock()
        self._keys = load_bank_keys(home)
        self._stamp = self._files_stamp()
        self._checked = time.monotonic()
        self._problem: str | None = None

    def _files_stamp(self) -> tuple[tuple[int, int] | None, ...]:
        out: list[tuple[int, int] | None] = []
        for name in (PRIVATE, NEXT_PRIVATE, SWITCH):
            try:
                st = (self.home / name).stat()
                out.append((st.st_mtime_ns, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def keys(self) -> BankKeys:
        """The keys, read again if the files changed since the last look."""
        if time.monotonic() - self._checked < _RELOAD_S:
            return self._keys
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._files_stamp()
            if stamp != self._stamp:
                try:
                    self._keys, self._stamp = load_bank_keys(self.home), stamp
                    self._problem = None
                except (OSError, ValueError, RotationError) as exc:
                    # caught part way through a change, the next look reads it whole; a
                    # file that stays wrong is told once, and the keys in use go on
                    if str(exc) != self._problem:
                        log.warning("bank keys in %s not read again: %s", self.home, exc)
                    self._problem = str(exc)
        return self._keys

    def sign(self, body: bytes) -> str:
        return signing.sign(self.keys().signing_key(SystemClock().now()), body)


def parse_at(text: str, now_us: int) -> int:
    """``now`` or an RFC 3339 time with its offset (``2026-12-10T09:00:00Z``), in µs;
    ValueError naming the rule."""
    if text.strip().lower() == "now":
        return now_us
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text[:40]!r}: 'now' or an RFC 3339 time with its offset, like 2026-12-10T09:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text[:40]!r}: give the offset (Z for UTC, or +03:00)")
    try:
        return int(when.astimezone(UTC).timestamp() * 1_000_000)
    except (OverflowError, ValueError):
        raise ValueError(f"{text[:40]!r}: a time before the year 9999, please") from None


def _write_switch(home: Path, at_us: int) -> None:
    _write_private(home / SWITCH, (rfc3339_seconds(at_us) + "\n").encode())


def _remove_next(home: Path) -> None:
    (home / SWITCH).unlink(missing_ok=True)  # first: a server stops trusting the next pair
    (home / NEXT_PRIVATE).unlink(missing_ok=True)
    (home / NEXT_PUBLIC).unlink(missing_ok=True)


def finish(home: Path, now_us: int | None = None) -> BankKeys:
    """Make the next pair the current one, once it signs; RotationError before that."""
    now_us = SystemClock().now() if now_us is None else now_us
    keys = load_bank_keys(home)
    if not keys.pending:
        raise RotationError("no rotation to finish: `payout131 bank-key rotate --at TIME`")
    assert keys.switch_at is not None
    if now_us < keys.switch_at:
        raise RotationError(
            f"the next key signs from {rfc3339_seconds(keys.switch_at)} only: finish after "
            "that, or move the switch with `payout131 bank-key switch --at TIME`"
        )
    # in this order a server that looks part way signs with the next key all along
    os.replace(home / NEXT_PUBLIC, home / PUBLIC)
    os.replace(home / NEXT_PRIVATE, home / PRIVATE)
    (home / SWITCH).unlink(missing_ok=True)
    return load_bank_keys(home)


def rotate(home: Path, at_us: int, now_us: int | None = None) -> BankKeys:
    """Make the next key pair, to sign webhooks from ``at_us``; a rotation that has switched
    already is finished first. RotationError while another waits for its switch."""
    now_us = SystemClock().now() if now_us is None else now_us
    keys = load_bank_keys(home)
    if keys.pending:
        assert keys.switch_at is not None
        if now_us < keys.switch_at:
            raise RotationError(
                f"a rotation waits for its switch at {rfc3339_seconds(keys.switch_at)}: move it "
                "with `payout131 bank-key switch --at TIME` or drop it with `bank-key cancel`"
            )
        finish(home, now_us)
    if at_us < now_us - 60_000_000:
        raise RotationError(
            f"--at {rfc3339_seconds(at_us)} is in the past: give a later time, or now"
        )
    _remove_next(home)  # what a rotation written part way left
    private, public = _new_key_pem()
    _write_private(home / NEXT_PRIVATE, private)
    (home / NEXT_PUBLIC).write_bytes(public)
    _write_switch(home, at_us)  # last: the next pair counts once this is written
    return load_bank_keys(home)


def reschedule(home: Path, at_us: int, now_us: int | None = None) -> BankKeys:
    """Move the switch of the waiting rotation to ``at_us``."""
    now_us = SystemClock().now() if now_us is None else now_us
    keys = load_bank_keys(home)
    if not keys.pending:
        raise RotationError("no rotation waits: `payout131 bank-key rotate --at TIME`")
    assert keys.switch_at is not None
    if now_us >= keys.switch_at:
        raise RotationError(
            f"the next key has signed since {rfc3339_seconds(keys.switch_at)}: it cannot be "
            "moved back; `payout131 bank-key finish` completes the rotation"
        )
    if at_us < now_us - 60_000_000:
        raise RotationError(
            f"--at {rfc3339_seconds(at_us)} is in the past: give a later time, or now"
        )
    _write_switch(home, at_us)
    return load_bank_keys(home)


def cancel(home: Path, now_us: int | None = None) -> BankKeys:
    """Drop the waiting rotation's next key pair, before its switch."""
    now_us = SystemClock().now() if now_us is None else now_us
    keys = load_bank_keys(home)
    if not keys.pending:
        raise RotationError("no rotation waits")
    assert keys.switch_at is not None
    if now_us >= keys.switch_at:
        raise RotationError(
            f"the next key has signed since {rfc3339_seconds(keys.switch_at)}: finish the rotation "
            "(`payout131 bank-key finish`), or start another"
        )
    _remove_next(home)
    return load_bank_keys(home)

"""Client settings: read once, from arguments first, then ``PAYOUT131_*`` environment variables.

==================  ==========================  ==========================================
argument            environment variable        value
==================  ==========================  ==========================================
``base_url``        ``PAYOUT131_BASE_URL``      e.g. ``https://demo.bank131.ru``
``project``         ``PAYOUT131_PROJECT``       the project id the bank issued
``private_key``     ``PAYOUT131_PRIVATE_KEY``   path to the partner's PEM private key
``bank_public_key`` ``PAYOUT131_BANK_PUBLIC_KEY`` path to the bank's PEM public key (webhooks)
==================  ==========================  ==========================================

Keys given as arguments may be PEM bytes, PEM text, a path, or an already loaded key. Keys
are loaded once here (loading costs ~30 ms); they never appear in a repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeVar, Unpack

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client.errors import ConfigurationError
from payout131.client.params import ApiVersion
from payout131.client.retry import Backoff
from payout131.client.signing import KeyFormatError, load_private_key, load_public_key

__all__ = [
    "BankKeySource",
    "Options",
    "PrivateKeySource",
    "PublicKeySource",
    "Settings",
    "read_public_key",
    "read_public_keys",
]

K = TypeVar("K", rsa.RSAPrivateKey, rsa.RSAPublicKey)
PrivateKeySource = bytes | str | os.PathLike[str] | rsa.RSAPrivateKey
PublicKeySource = bytes | str | os.PathLike[str] | rsa.RSAPublicKey
BankKeySource = PublicKeySource | Sequence[PublicKeySource]
"""The bank's key, or its keys: during a rotation ``payout131 bank-key`` publishes two, the
one signing now and the next; a webhook verifies with either."""
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----.*?-----END [A-Z0-9 ]+-----", re.DOTALL)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3


class Options(TypedDict, total=False):
    """The keyword arguments ``Client`` and ``AsyncClient`` share."""

    base_url: str
    project: str
    private_key: PrivateKeySource
    bank_public_key: BankKeySource | None
    api_version: ApiVersion
    timeout: float | httpx.Timeout
    max_retries: int
    backoff: Backoff
    env: Mapping[str, str]  # where the PAYOUT131_* fallbacks are read; os.environ by default


@dataclass(frozen=True)
class Settings:
    """Resolved, validated settings with the keys loaded; what ``client.settings`` holds."""

    base_url: str
    project: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    bank_public_keys: tuple[rsa.RSAPublicKey, ...] = field(repr=False)
    api_version: ApiVersion
    timeout: float | httpx.Timeout
    max_retries: int
    backoff: Backoff

    @classmethod
    def resolve(cls, **options: Unpack[Options]) -> Settings:
        unknown = sorted(set(options) - Options.__optional_keys__)
        if unknown:  # a misspelt setting must not fall back to the environment unnoticed
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        env = options.get("env", os.environ)
        base_url = _required("base_url", options.get("base_url"), env)
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must start with http:// or https://: {base_url}")
        api_version = options.get("api_version", "v1")
        if api_version not in ("v1", "v2"):
            raise ConfigurationError(f"api_version must be 'v1' or 'v2', not {api_version!r}")
        max_retries = options.get("max_retries", DEFAULT_MAX_RETRIES)
        if type(max_retries) is not int or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an int >= 0, not {max_retries!r}")
        return cls(
            base_url=base_url.rstrip("/"),
            project=_required("project", options.get("project"), env),
            private_key=_private_key(options.get("private_key"), env),
            bank_public_keys=_bank_public_keys(options.get("bank_public_key"), env),
            api_version=api_version,
            timeout=options.get("timeout", DEFAULT_TIMEOUT),
            max_retries=max_retries,
            backoff=options.get("backoff", Backoff()),
        )

    @property
    def bank_public_key(self) -> rsa.RSAPublicKey | None:
        """The first of the bank's keys (or None)."""
        return self.bank_public_keys[0] if self.bank_public_keys else None

    def require_bank_public_keys(self) -> tuple[rsa.RSAPublicKey, ...]:
        if not self.bank_public_keys:
            raise ConfigurationError(_missing("bank_public_key"))
        return self.bank_public_keys


_ENV = {
    "base_url": "PAYOUT131_BASE_URL",
    "project": "PAYOUT131_PROJECT",
    "private_key": "PAYOUT131_PRIVATE_KEY",
    "bank_public_key": "PAYOUT131_BANK_PUBLIC_KEY",
}


def _required(name: str, given: str | None, env: Mapping[str, str]) -> str:
    value = given if given is not None else env.get(_ENV[name])
    if not value:
        raise ConfigurationError(_missing(name))
    return value


def _missing(name: str) -> str:
    return f"{name} is not configured: pass {name}= or set the {_ENV[name]} environment variable"


def _private_key(given: PrivateKeySource | None, env: Mapping[str, str]) -> rsa.RSAPrivateKey:
    source = given if given is not None else env.get(_ENV["private_key"])
    if not source:
        raise ConfigurationError(_missing("private_key"))
    if isinstance(source, rsa.RSAPrivateKey):
        return source
    return _key("private_key", source, load_private_key)


def _bank_public_keys(
    given: BankKeySource | None, env: Mapping[str, str]
) -> tuple[rsa.RSAPublicKey, ...]:
    source = given or env.get(_ENV["bank_public_key"])
    return read_public_keys(source) if source else ()


def read_public_key(source: PublicKeySource, name: str = "bank_public_key") -> rsa.RSAPublicKey:
    """A loaded key as is; PEM bytes, PEM text or the path of a PEM file, loaded."""
    if isinstance(source, rsa.RSAPublicKey):
        return source
    return _key(name, source, load_public_key)


def read_public_keys(
    source: BankKeySource, name: str = "bank_public_key"
) -> tuple[rsa.RSAPublicKey, ...]:
    """Every key in ``source``: a loaded key, a list of sources, or PEM (bytes, text or a
    path) holding one key or several, one after the other."""
    if isinstance(source, rsa.RSAPublicKey):
        return (source,)
    if isinstance(source, bytes | str | os.PathLike):
        pem = _pem(name, source)
        blocks = _PEM_BLOCK.findall(pem) or [pem]  # none: let the loader say what is wrong
        return tuple(_key(name, block, load_public_key) for block in blocks)
    return tuple(key for one in source for key in read_public_keys(one, name))


def _key(name: str, source: bytes | str | os.PathLike[str], load: Callable[[bytes], K]) -> K:
    try:
        return load(_pem(name, source))
    except KeyFormatError as exc:
        raise ConfigurationError(f"{name}: {exc}") from exc


def _pem(name: str, source: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode("ascii")
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{name}: cannot read {path}: {exc.strerror}") from exc

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeVar, Unpack

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client.errors import ConfigurationError
from payout131.client.params import ApiVersion
from payout131.client.retry import Backoff
from payout131.client.signing import KeyFormatError, load_private_key, load_public_key

__all__ = ["Options", "PrivateKeySource", "PublicKeySource", "Settings", "read_public_key"]

K = TypeVar("K", rsa.RSAPrivateKey, rsa.RSAPublicKey)
PrivateKeySource = bytes | str | os.PathLike[str] | rsa.RSAPrivateKey
PublicKeySource = bytes | str | os.PathLike[str] | rsa.RSAPublicKey

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3


class Options(TypedDict, total=False):
    """The keyword arguments ``Client`` and ``AsyncClient`` share."""

    base_url: str
    project: str
    private_key: PrivateKeySource
    bank_public_key: PublicKeySource | None
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
    bank_public_key: rsa.RSAPublicKey | None = field(repr=False)
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
            bank_public_key=_bank_public_key(options.get("bank_public_key"), env),
            api_version=api_version,
            timeout=options.get("timeout", DEFAULT_TIMEOUT),
            max_retries=max_retries,
            backoff=options.get("backoff", Backoff()),
        )

    def require_bank_public_key(self) -> rsa.RSAPublicKey:
        if self.bank_public_key is None:
            raise ConfigurationError(_missing("bank_public_key"))
        return self.bank_public_key


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


def _bank_public_key(
    given: PublicKeySource | None, env: Mapping[str, str]
) -> rsa.RSAPublicKey | None:
    source = given or env.get(_ENV["bank_public_key"])
    return read_public_key(source) if source else None


def read_public_key(source: PublicKeySource, name: str = "bank_public_key") -> rsa.RSAPublicKey:
    """A loaded key as is; PEM bytes, PEM text or the path of a PEM file, loaded."""
    if isinstance(source, rsa.RSAPublicKey):
        return source
    return _key(name, source, load_public_key)


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

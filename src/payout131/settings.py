"""Settings, read once at start from ``PAYOUT131_*`` variables and handed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with. Secrets stay out of ``repr``."""

    home: Path = Path(".payout131")
    database_url: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 8131
    max_body_bytes: int = 256 * 1024
    rail: str = "instant"
    worker_poll_s: float = 0.2
    worker_batch: int = 64
    lease_s: float = 30.0
    db_threads: int = 16

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'payout131.db').resolve()}"

    @property
    def bank_private_key_path(self) -> Path:
        return self.home / "bank-private.pem"

    @property
    def bank_public_key_path(self) -> Path:
        return self.home / "bank-public.pem"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            home=Path(env.get("PAYOUT131_HOME", ".payout131")),
            database_url=env.get("PAYOUT131_DATABASE_URL", ""),
        )
        if "PAYOUT131_RAIL" in env:
            settings = replace(settings, rail=env["PAYOUT131_RAIL"])
        if "PAYOUT131_MAX_BODY_BYTES" in env:
            settings = replace(settings, max_body_bytes=int(env["PAYOUT131_MAX_BODY_BYTES"]))
        return settings

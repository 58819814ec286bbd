"""Settings, read once at start from ``PAYOUT131_*`` variables and handed down."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from payout131.rails import RAILS  # the names only: no rail's code is loaded
from payout131.webhooks.schedule import DEFAULT_SCHEDULE, parse_duration, parse_schedule

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with. Secrets stay out of ``repr``."""

    home: Path = Path(".payout131")
    database_url: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 8131
    max_body_bytes: int = 256 * 1024
    rail: str = "simulator"  # PAYOUT131_RAIL (docs/rails.md)
    worker_poll_s: float = 0.2
    worker_batch: int = 64
    # benchmarks: after a round that found work, the worker and the webhook dispatcher wait
    # this long before claiming again, so that work gathers into fewer, bigger batches
    gather_s: float = 0.005
    lease_s: float = 30.0
    db_threads: int = 16
    # rails (docs/rails.md): the simulator's base latency and spread; the fallback interval
    # at which the worker asks a rail about a payout when the rail names no time
    sim_latency_ms: int = 0
    sim_spread_ms: int = 0
    rail_poll_s: float = 60.0
    # webhooks (docs/webhooks.md): retry schedule, per-attempt timeout, horizon, concurrency
    webhook_schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    webhook_jitter: float = 0.1
    webhook_timeout_s: float = 15.0
    webhook_horizon_s: float = 36 * 3600
    webhook_concurrency: int = 64
    webhook_per_endpoint: int = 8
    webhook_lease_s: float = 60.0
    webhook_poll_s: float = 1.0
    webhook_test_hang_after_send: bool = False  # a test hook: see docs/webhooks.md
    # tokenized accounts (docs/tokens.md, docs/widget.md): vault keys, the widget's demo
    vault_key: str = field(default="", repr=False)  # PAYOUT131_VAULT_KEY; else vault.key
    widget_demo_project: str = "demo"  # /widget/demo mints public tokens for it; "" = off

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'payout131.db').resolve()}"

    @property
    def bank_private_key_path(self) -> Path:
        return self.home / "bank-private.pem"

    @property
    def bank_public_key_path(self) -> Path:
        return self.home / "bank-public.pem"

    @property
    def vault_key_path(self) -> Path:
        return self.home / "vault.key"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            home=Path(env.get("PAYOUT131_HOME", ".payout131")),
            database_url=env.get("PAYOUT131_DATABASE_URL", ""),
            vault_key=env.get("PAYOUT131_VAULT_KEY", ""),
            widget_demo_project=env.get("PAYOUT131_WIDGET_DEMO_PROJECT", "demo"),
        )
        if "PAYOUT131_RAIL" in env:
            settings = replace(settings, rail=env["PAYOUT131_RAIL"])
        if "PAYOUT131_MAX_BODY_BYTES" in env:
            settings = replace(settings, max_body_bytes=int(env["PAYOUT131_MAX_BODY_BYTES"]))
        settings = _rail_settings(settings, env)
        return _webhook_settings(settings, env)


_WEBHOOK_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "PAYOUT131_WEBHOOK_SCHEDULE": ("webhook_schedule", parse_schedule),
    "PAYOUT131_WEBHOOK_JITTER": ("webhook_jitter", float),
    "PAYOUT131_WEBHOOK_TIMEOUT": ("webhook_timeout_s", parse_duration),
    "PAYOUT131_WEBHOOK_HORIZON": ("webhook_horizon_s", parse_duration),
    "PAYOUT131_WEBHOOK_CONCURRENCY": ("webhook_concurrency", int),
    "PAYOUT131_WEBHOOK_PER_ENDPOINT": ("webhook_per_endpoint", int),
    "PAYOUT131_WEBHOOK_LEASE": ("webhook_lease_s", parse_duration),
    "PAYOUT131_WEBHOOK_POLL": ("webhook_poll_s", parse_duration),
    "PAYOUT131_TEST_HANG_AFTER_SEND": ("webhook_test_hang_after_send", lambda v: v == "1"),
}


def _webhook_settings(settings: Settings, env: Mapping[str, str]) -> Settings:
    """The ``PAYOUT131_WEBHOOK_*`` variables; a bad value is a ValueError naming it."""
    changes: dict[str, object] = {}
    for name, (attribute, parse) in _WEBHOOK_ENV.items():
        if name in env:
            try:
                changes[attribute] = parse(env[name])
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    settings = replace(settings, **changes)  # type: ignore[arg-type]
    check_webhook_settings(settings)
    return settings


def check_webhook_settings(settings: Settings) -> None:
    """Refuse settings the dispatcher cannot run with, naming the variable."""
    if settings.webhook_timeout_s <= 0:
        raise ValueError("PAYOUT131_WEBHOOK_TIMEOUT: must be positive")
    if settings.webhook_lease_s <= settings.webhook_timeout_s:
        raise ValueError(
            "PAYOUT131_WEBHOOK_LEASE: must be longer than PAYOUT131_WEBHOOK_TIMEOUT, or a "
            "second worker could send an event while its first attempt is still running"
        )
    if settings.webhook_concurrency < 1 or settings.webhook_per_endpoint < 1:
        raise ValueError("PAYOUT131_WEBHOOK_CONCURRENCY and _PER_ENDPOINT: at least 1")
    if not 0 <= settings.webhook_jitter < 1:
        raise ValueError("PAYOUT131_WEBHOOK_JITTER: a fraction in [0, 1)")
    if settings.webhook_horizon_s <= 0 or settings.webhook_poll_s <= 0:
        raise ValueError("PAYOUT131_WEBHOOK_HORIZON and _POLL: must be positive")
    if not settings.webhook_schedule:
        raise ValueError("PAYOUT131_WEBHOOK_SCHEDULE: at least one attempt")


_RAIL_ENV: dict[str, tuple[str, Callable[[str], float]]] = {
    "PAYOUT131_SIM_LATENCY_MS": ("sim_latency_ms", int),
    "PAYOUT131_SIM_SPREAD_MS": ("sim_spread_ms", int),
    "PAYOUT131_RAIL_POLL_S": ("rail_poll_s", float),
    "PAYOUT131_LEASE_S": ("lease_s", float),
}


def _rail_settings(settings: Settings, env: Mapping[str, str]) -> Settings:
    """The rail and worker variables: whole milliseconds, seconds; none negative."""
    changes: dict[str, float] = {}
    for name, (attribute, parse) in _RAIL_ENV.items():
        if name in env:
            try:
                value = parse(env[name])
            except ValueError:
                raise ValueError(f"{name}: {env[name]!r} is not a number") from None
            if not value >= 0:
                raise ValueError(f"{name}: must not be negative")
            if value == 0 and attribute.endswith("_s"):
                raise ValueError(f"{name}: must be positive")
            changes[attribute] = value
    if settings.rail not in RAILS:
        known = ", ".join(sorted(RAILS))
        raise ValueError(f"PAYOUT131_RAIL: no rail {settings.rail!r}; choose one of {known}")
    return replace(settings, **changes)  # type: ignore[arg-type]

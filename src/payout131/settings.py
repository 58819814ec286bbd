"""Settings, read once at start from ``PAYOUT131_*`` variables and handed down.

Every variable is parsed strictly (ASCII digits; durations like ``30s``, ``5m``, ``2h``)
and checked against its bounds (``VARIABLES``, documented in README.md, "Configuration",
and docs/webhooks.md, docs/rails.md); a bad one is a ValueError naming the variable, its
bounds and what was given, which every command prints as one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from payout131.protocol.validation import whole_number
from payout131.rails import RAILS  # the names only: no rail's code is loaded
from payout131.webhooks.schedule import DEFAULT_SCHEDULE, parse_duration, parse_schedule

__all__ = ["DATABASE_SCHEMES", "VARIABLES", "Settings", "Variable"]

DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with. Secrets stay out of ``repr``."""

    home: Path = Path(".payout131")
    database_url: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 8131
    max_body_bytes: int = 256 * 1024
    header_timeout_s: float = 10.0  # a request's headers must arrive within this
    body_timeout_s: float = 30.0  # and its body within this
    rail: str = "simulator"  # PAYOUT131_RAIL (docs/rails.md)
    # sandbox (docs/sandbox.md): test clocks and forced outcomes exist only in sandbox mode;
    # an advance fails when a step due on the clock has not completed in this long
    mode: str = "sandbox"
    log_format: str = "console"  # PAYOUT131_LOG_FORMAT: or json (docs/operations.md)
    # the operator console at /console/ (docs/console.md): PAYOUT131_CONSOLE; unset, it is
    # on in sandbox mode and off in production until enabled
    console: bool | None = None
    clock_step_timeout_s: float = 120.0
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
    # retention (payout131 purge): how long what is done is kept; payouts, sessions and the
    # ledger are records and are kept for ever
    retain_delivered_s: float = 30 * 24 * 3600.0  # events delivered, with their attempts
    retain_dead_s: float = 90 * 24 * 3600.0  # dead events (an operator may replay them)
    retain_keys_s: float = 30 * 24 * 3600.0  # idempotency keys (PROTOCOL §6: at least 24 h)
    retain_public_tokens_s: float = 7 * 24 * 3600.0  # public tokens, after they expire

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'payout131.db').resolve()}"

    @property
    def console_on(self) -> bool:
        return self.mode == "sandbox" if self.console is None else self.console

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
        """The settings the ``PAYOUT131_*`` variables of ``env`` (default: this process's
        environment) give; ValueError naming the first bad one."""
        env = os.environ if env is None else env
        changes: dict[str, object] = {}
        for variable in VARIABLES:
            if variable.name in env:
                changes[variable.attribute] = variable.read(env[variable.name])
        settings = replace(cls(), **changes)  # type: ignore[arg-type]
        check_webhook_settings(settings)
        check_clock_settings(settings)
        return settings


@dataclass(frozen=True, slots=True)
class Variable:
    """One ``PAYOUT131_*`` variable: the setting it gives and how it is read."""

    name: str
    attribute: str
    parse: Callable[[str], object]
    bounds: str  # in words, for messages and the docs

    def read(self, text: str) -> object:
        try:
            return self.parse(text)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc} ({self.bounds}; got {text[:60]!r})") from None


def _number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        digits = text.strip()
        value = whole_number(digits.removeprefix("-"))
        if value is None:
            raise ValueError("not a whole number")
        value = -value if digits.startswith("-") else value
        if not low <= value <= high:
            raise ValueError("out of its bounds")
        return value

    return parse


def _duration(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = parse_duration(text)
        if not low <= value <= high:
            raise ValueError("out of its bounds")
        return value

    return parse


def _fraction(text: str) -> float:
    value = parse_duration(text)  # a plain number: its digits checked as a duration's are
    if not 0 <= value < 1:
        raise ValueError("not a fraction from 0 up to 1")
    return value


def _rail(text: str) -> str:
    if text not in RAILS:
        raise ValueError(f"no rail {text!r}")
    return text


MODES = ("sandbox", "production")


def _mode(text: str) -> str:
    if text not in MODES:
        raise ValueError(f"no mode {text!r}")
    return text


def _log_format(text: str) -> str:
    if text not in ("console", "json"):
        raise ValueError(f"no log format {text!r}")
    return text


def _database_url(text: str) -> str:
    if text and not text.startswith(DATABASE_SCHEMES):
        raise ValueError("not a database this server runs on")
    return text


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError("not 0 or 1")
    return text == "1"


_DAY = 24 * 3600.0
VARIABLES = (
    Variable("PAYOUT131_HOME", "home", Path, "a directory"),
    Variable(
        "PAYOUT131_DATABASE_URL",
        "database_url",
        _database_url,
        "sqlite:///PATH or postgresql://USER@HOST/DB",
    ),
    Variable("PAYOUT131_VAULT_KEY", "vault_key", str, "Base64 keys, comma-separated"),
    Variable("PAYOUT131_WIDGET_DEMO_PROJECT", "widget_demo_project", str, "a project id"),
    Variable("PAYOUT131_RAIL", "rail", _rail, f"one of {', '.join(sorted(RAILS))}"),
    Variable("PAYOUT131_MODE", "mode", _mode, "sandbox or production"),
    Variable("PAYOUT131_LOG_FORMAT", "log_format", _log_format, "console or json"),
    Variable("PAYOUT131_CONSOLE", "console", _flag, "0 or 1"),
    Variable(
        "PAYOUT131_CLOCK_STEP_TIMEOUT", "clock_step_timeout_s", _duration(1, 3600), "1s to 1h"
    ),
    Variable(
        "PAYOUT131_MAX_BODY_BYTES",
        "max_body_bytes",
        _number(1024, 16 * 1024 * 1024),
        "1024 to 16777216 bytes",
    ),
    Variable("PAYOUT131_HEADER_TIMEOUT", "header_timeout_s", _duration(1, 600), "1s to 10m"),
    Variable("PAYOUT131_BODY_TIMEOUT", "body_timeout_s", _duration(1, 600), "1s to 10m"),
    Variable(
        "PAYOUT131_SIM_LATENCY_MS", "sim_latency_ms", _number(0, 3_600_000), "0 to 3600000 ms"
    ),
    Variable("PAYOUT131_SIM_SPREAD_MS", "sim_spread_ms", _number(0, 3_600_000), "0 to 3600000 ms"),
    Variable("PAYOUT131_RAIL_POLL_S", "rail_poll_s", _duration(0.001, _DAY), "1ms to 1d"),
    Variable("PAYOUT131_LEASE_S", "lease_s", _duration(0.001, _DAY), "1ms to 1d"),
    Variable(
        "PAYOUT131_WEBHOOK_SCHEDULE",
        "webhook_schedule",
        parse_schedule,
        "1 to 100 durations like 0,5s,5m,30m,2h, each at most 30d",
    ),
    Variable("PAYOUT131_WEBHOOK_JITTER", "webhook_jitter", _fraction, "a fraction in [0, 1)"),
    Variable("PAYOUT131_WEBHOOK_TIMEOUT", "webhook_timeout_s", _duration(0.001, 600), "1ms to 10m"),
    Variable(
        "PAYOUT131_WEBHOOK_HORIZON", "webhook_horizon_s", _duration(1, 30 * _DAY), "1s to 30d"
    ),
    Variable("PAYOUT131_WEBHOOK_CONCURRENCY", "webhook_concurrency", _number(1, 4096), "1 to 4096"),
    Variable(
        "PAYOUT131_WEBHOOK_PER_ENDPOINT", "webhook_per_endpoint", _number(1, 4096), "1 to 4096"
    ),
    Variable("PAYOUT131_WEBHOOK_LEASE", "webhook_lease_s", _duration(0.001, _DAY), "1ms to 1d"),
    Variable("PAYOUT131_WEBHOOK_POLL", "webhook_poll_s", _duration(0.001, 3600), "1ms to 1h"),
    Variable("PAYOUT131_TEST_HANG_AFTER_SEND", "webhook_test_hang_after_send", _flag, "0 or 1"),
    Variable(
        "PAYOUT131_RETAIN_DELIVERED",
        "retain_delivered_s",
        _duration(3600, 3650 * _DAY),
        "1h to 3650d",
    ),
    Variable("PAYOUT131_RETAIN_DEAD", "retain_dead_s", _duration(3600, 3650 * _DAY), "1h to 3650d"),
    Variable("PAYOUT131_RETAIN_KEYS", "retain_keys_s", _duration(_DAY, 3650 * _DAY), "1d to 3650d"),
    Variable(
        "PAYOUT131_RETAIN_PUBLIC_TOKENS",
        "retain_public_tokens_s",
        _duration(0, 3650 * _DAY),
        "0 to 3650d",
    ),
)


def check_clock_settings(settings: Settings) -> None:
    """An advance must not take a step whose dead worker's lease has not run out yet for a
    step that keeps failing (docs/sandbox.md)."""
    longest = max(settings.lease_s, settings.webhook_lease_s)
    if settings.clock_step_timeout_s <= longest:
        raise ValueError(
            "PAYOUT131_CLOCK_STEP_TIMEOUT: must be longer than PAYOUT131_LEASE_S and "
            "PAYOUT131_WEBHOOK_LEASE, or an advance could fail on a step that is only "
            "waiting for a dead worker's lease to run out"
        )


def check_webhook_settings(settings: Settings) -> None:
    """Refuse settings the dispatcher cannot run with, naming the variable."""
    if settings.webhook_lease_s <= settings.webhook_timeout_s:
        raise ValueError(
            "PAYOUT131_WEBHOOK_LEASE: must be longer than PAYOUT131_WEBHOOK_TIMEOUT, or a "
            "second worker could send an event while its first attempt is still running"
        )
    if not settings.webhook_schedule:
        raise ValueError("PAYOUT131_WEBHOOK_SCHEDULE: at least one attempt")

"""Fixtures for tests of the bank: a ``Runtime`` on each engine, its app, onboarded partners.

The app is served by uvicorn on a loopback port and called over real HTTP; background work
is run by the test with ``bank.worker.drain()`` so each scenario is deterministic.
Every bank's ledger is checked when its test ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from liveserver import serve
from partner import Partner
from payout131 import projects
from payout131.client import signing
from payout131.clock import ManualClock
from payout131.ledger import accounts, book
from payout131.ledger.check import violations
from payout131.runtime import Runtime
from payout131.settings import Settings
from payout131.storage import schema as t
from payout131.tokens.vault import ensure_key_file
from payout131.webhooks import events
from payout131.webhooks.bank_key import ensure_bank_keys


@pytest.fixture(scope="session")
def partner_keys() -> list[rsa.RSAPrivateKey]:
    """A few 2048-bit partner keys, made once (a key takes tens of milliseconds)."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture
def public_key(tmp_path: Path, partner_keys: list[rsa.RSAPrivateKey]) -> Path:
    """The first partner key's public half in a PEM file, as an operator is handed it."""
    path = tmp_path / "partner.pem"
    path.write_bytes(signing.public_key_pem(partner_keys[0]))
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bank_settings(database_url: str, tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    ensure_bank_keys(home / "bank-private.pem", home / "bank-public.pem")
    ensure_key_file(home / "vault.key")  # the account vault (tokenized accounts)
    return Settings(home=home, database_url=database_url)


@pytest.fixture
def bank(bank_settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    opened = Runtime.open(bank_settings, clock=clock)
    yield opened
    with opened.db.read() as conn:
        problems = violations(conn)
    opened.close()
    assert problems == [], problems


@pytest.fixture
def http(bank: Runtime) -> Iterator[httpx.Client]:
    with serve(bank.app(run_worker=False)) as url, httpx.Client(base_url=url) as client:
        yield client


Onboard = Callable[..., Partner]


@pytest.fixture
def onboard(bank: Runtime, http: httpx.Client, partner_keys: list[rsa.RSAPrivateKey]) -> Onboard:
    """Register a project with its own key and funds; return the partner that plays it."""
    used: list[str] = []

    def make(
        project_id: str = "acme",
        *,
        wallet: int = 0,
        account: int | None = None,
        key_index: int | None = None,
        **fields: Any,
    ) -> Partner:
        key = partner_keys[key_index if key_index is not None else len(used) % len(partner_keys)]
        used.append(project_id)
        now = bank.clock.now()
        fields.setdefault("legal_name", 'ООО "Ромашка"')
        fields.setdefault("inn", "7707083893")
        fields.setdefault("kpp", "773601001")
        secret = fields.pop("webhook_secret", None)
        with bank.db.write() as conn:
            pem = signing.public_key_pem(key).decode()
            projects.add_project(conn, project_id, pem, now, **fields)
            if secret is not None:
                projects.set_webhook_secret(conn, bank.vault, project_id, secret)
            if wallet:
                book.topup_wallet(conn, project_id, wallet, now)
            number = None
            if account is not None:
                number = accounts.open_settlement_account(conn, project_id, now)
                target = accounts.account_id(conn, number)
                assert target is not None
                if account:
                    book.topup(conn, target, account, now)
        partner = Partner(http, project_id, key)
        partner.account = number
        return partner

    return make


def event_bytes(bank: Runtime, session_id: str) -> list[bytes]:
    """The webhook bodies the bank wrote for a session, as the exact bytes it sends."""
    e = t.events
    n = int(session_id.removeprefix("ps_"))
    with bank.db.read() as conn:
        rows = conn.execute(sa.select(e).where(e.c.session_n == n).order_by(e.c.id)).all()
    return [
        events.open_body(bank.vault, r.body, r.body_key_id, r.project_id, r.session_n, r.type)
        for r in rows
    ]


def event_bodies(bank: Runtime, session_id: str) -> list[dict[str, Any]]:
    """The same webhooks, parsed."""
    return [json.loads(body) for body in event_bytes(bank, session_id)]


def available(bank: Runtime, code: str) -> int:
    """The available balance of a ledger account (a settlement number or ``wallet:<id>``)."""
    with bank.db.read() as conn:
        account = accounts.account_id(conn, code)
        assert account is not None
        return accounts.balance(conn, account).available

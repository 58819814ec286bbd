"""X-PARTNER-IDEMPOTENCY-KEY: Runtime 131 semantics by default, replay mode on request."""

from __future__ import annotations

import json

import sqlalchemy as sa

from banking import Onboard
from partner import payout_body
from payout131.runtime import Runtime
from payout131.storage import schema as t


def count(bank: Runtime, table: sa.Table) -> int:
    with bank.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_repeated_key_is_refused_and_not_repeated(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=100_000)
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "order-1"}
    partner.ok("session/init/payout", payout_body(), headers=key)
    description = partner.error(
        "session/init/payout", payout_body(), 400, "idempotency_key_already_exists", headers=key
    )
    assert "already in progress or processed" in description
    assert count(bank, t.payouts) == 1


def test_keys_are_scoped_per_project(bank: Runtime, onboard: Onboard) -> None:
    alice = onboard("alice", wallet=100_000)
    bob = onboard("bob", wallet=100_000)
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "same"}
    alice.ok("session/init/payout", payout_body(), headers=key)
    bob.ok("session/init/payout", payout_body(), headers=key)
    assert count(bank, t.payouts) == 2


def test_a_rejected_request_does_not_use_up_its_key(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=5_000)
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "retry-me"}
    partner.error(
        "session/init/payout", payout_body(10_000), 400, "insufficient_wallet_balance", headers=key
    )
    partner.ok("session/init/payout", payout_body(5_000), headers=key)


def test_replay_mode_returns_the_first_response_byte_for_byte(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(wallet=100_000, idempotency_mode="replay")
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "order-2"}
    raw = json.dumps(payout_body()).encode()
    first = partner.post("session/init/payout", raw=raw, headers=key)
    bank.worker.drain()  # the state moves on; the replay still shows the first answer
    second = partner.post("session/init/payout", raw=raw, headers=key)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert count(bank, t.payouts) == 1
    other = json.dumps(payout_body(20_000)).encode()
    changed = partner.post("session/init/payout", raw=other, headers=key)
    assert changed.status_code == 400
    assert "different request body" in changed.json()["error"]["description"]


def test_bad_keys_are_refused(onboard: Onboard) -> None:
    partner = onboard(wallet=100_000)
    partner.error(
        "session/create",
        {},
        400,
        "invalid_request",
        headers={"X-PARTNER-IDEMPOTENCY-KEY": "x" * 256},
    )


def test_reads_ignore_the_key(onboard: Onboard) -> None:
    partner = onboard(wallet=100_000)
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "read"}
    partner.ok("wallet/balance", {}, headers=key)
    partner.ok("wallet/balance", {}, headers=key)

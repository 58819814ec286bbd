"""The race test: many partners' clients at once against one settlement account.

A third of the payouts go to an account, a third to a phone (Faster Payments) and a third
to a card by its number.

64 clients post payout starts over real HTTP, with repeated idempotency keys, against an
account funded for exactly ``FUNDED`` payouts, while the background worker runs; then they
race ``session/confirm`` against ``session/cancel`` on every accepted session while replaying
the keys that paid. What must hold (docs/reliability.md, "Race test"):

- exactly ``FUNDED`` starts are answered 200 (more distinct keys are tried than the money
  covers, and nothing frees money during the starts), each under a different key;
- every other start is refused with ``insufficient_wallet_balance`` or
  ``idempotency_key_already_exists``; nothing else (no 500, no timeout);
- a key that paid never pays again, even after cancels free money;
- on each session exactly one confirm or cancel wins; the session ends ``accepted`` (payout
  ``succeeded``) if a confirm won and ``cancelled`` (``session_cancelled_by_partner``) if a
  cancel won; the rail received each confirmed payout once;
- the available balance, sampled throughout, never goes below zero, and ends at the funds
  minus the succeeded payouts; no hold is left; ``ledger.check`` passes.

The short form runs in CI; ``PAYOUT131_FULL=1`` runs the full 10,000 attempts.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from banking import Onboard
from partner import Partner
from payout131.client import signing
from payout131.ledger import accounts
from payout131.ledger.check import violations
from payout131.runtime import Runtime
from payout131.storage import schema as t

FULL = os.environ.get("PAYOUT131_FULL") == "1"
ATTEMPTS, FUNDED = (10_000, 5_000) if FULL else (500, 250)
DISTINCT = ATTEMPTS * 4 // 5  # the rest of the attempts repeat one of these keys
CLIENTS = 64
AMOUNT = 10_000  # an ordinary amount: the simulator pays it at once
SEED = int(os.environ.get("PAYOUT131_SEED", "131"))


@dataclass(frozen=True)
class Call:
    """One signed request, ready to send; ``tag`` says what it stands for."""

    method: str
    raw: bytes
    sign: str
    tag: tuple[str, int]
    key: str | None = None


@dataclass
class Answer:
    call: Call
    status: int
    code: str | None
    body: dict[str, Any] = field(repr=False)


def _signed(partner: Partner, method: str, body: Any, tag: tuple[str, int], **kw: Any) -> Call:
    raw = json.dumps(body).encode()
    return Call(method, raw, signing.sign(partner.key, raw), tag, **kw)


async def _send_all(base: str, project: str, calls: list[Call]) -> list[Answer]:
    """Send ``calls`` through ``CLIENTS`` clients, each with its own connection, in order taken."""
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    answers: list[Answer] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            while not queue.empty():
                call = queue.get_nowait()
                headers = {
                    "Content-Type": "application/json",
                    "X-PARTNER-PROJECT": project,
                    "X-PARTNER-SIGN": call.sign,
                }
                if call.key is not None:
                    headers["X-PARTNER-IDEMPOTENCY-KEY"] = call.key
                response = await http.post(
                    f"/api/v1/{call.method}", content=call.raw, headers=headers
                )
                body = response.json()
                code = body["error"]["code"] if body.get("status") == "error" else None
                answers.append(Answer(call, response.status_code, code, body))

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return answers


@contextmanager
def _background(bank: Runtime, account: int) -> Iterator[list[int]]:
    """Run the worker and a balance sampler in threads; yield the sampled available balances."""
    stop = threading.Event()
    samples: list[int] = []

    def work() -> None:
        while not stop.is_set():
            if not bank.worker.run_once():
                bank.worker.wakeup.wait(0.05)  # the API pokes it on start and confirm
                bank.worker.wakeup.clear()

    def sample() -> None:
        while not stop.is_set():
            with bank.db.read() as conn:
                samples.append(accounts.balance(conn, account).available)
            stop.wait(0.01)

    threads = [threading.Thread(target=work), threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    try:
        yield samples
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


PHONE = {"phone": "79161234567", "bank_id": "100000000004", "description": "Выплата"}
CARD = {"type": "bank_card", "bank_card": {"number": "2200000000000004"}}


def _body(partner: Partner, i: int) -> dict[str, Any]:
    """Attempt ``i``'s payout: to an account, a phone (Faster Payments) or a card, in turn."""
    body = partner.rko_body(AMOUNT, metadata={"attempt": i})
    if i % 3:
        body["participant_details"]["recipient"] = {"full_name": "Иванов Иван"}
    if i % 3 == 1:
        fps = {"system_type": "faster_payment_system", "faster_payment_system": PHONE}
        body["payment_method"] = {"type": "bank_account", "bank_account": fps}
    elif i % 3 == 2:
        body["payment_method"] = {"type": "card", "card": CARD}
    return body


def _starts(partner: Partner, rng: random.Random) -> list[Call]:
    """``DISTINCT`` payouts, each under its own key, plus repeats: ``ATTEMPTS`` in all."""
    firsts = [
        _signed(
            partner, "session/init/payout/rko", _body(partner, i), ("start", i), key=f"race-{i}"
        )
        for i in range(DISTINCT)
    ]
    calls = firsts + [rng.choice(firsts) for _ in range(ATTEMPTS - DISTINCT)]
    rng.shuffle(calls)
    return calls


def _races(
    partner: Partner, sessions: dict[str, int], paid: list[Call], rng: random.Random
) -> list[Call]:
    """For every session a confirm and a cancel side by side (sometimes doubled), in random
    order, and every key that paid once more."""
    groups: list[list[Call]] = []
    for session_id, i in sessions.items():
        ref = {"session_id": session_id}
        pair = [
            _signed(partner, "session/confirm", ref, ("confirm", i)),
            _signed(partner, "session/cancel", ref, ("cancel", i)),
        ]
        if rng.random() < 0.2:
            pair.append(rng.choice(pair))
        rng.shuffle(pair)
        groups.append(pair)
    rng.shuffle(groups)
    flat = [call for group in groups for call in group]
    for replay in paid:
        flat.insert(rng.randrange(len(flat) + 1), replay)
    return flat


def _count(bank: Runtime, query: Any) -> int:
    with bank.db.read() as conn:
        return int(conn.execute(query).scalar_one())


def test_payout_race(bank: Runtime, onboard: Onboard) -> None:
    rng = random.Random(SEED)
    funds = FUNDED * AMOUNT
    partner = onboard(account=funds)
    assert partner.account is not None
    with bank.db.read() as conn:
        account = accounts.account_id(conn, partner.account)
    assert account is not None
    base = str(partner.http.base_url)

    with _background(bank, account) as samples:
        starts = asyncio.run(_send_all(base, partner.project, _starts(partner, rng)))
        outcomes = Counter((a.status, a.code) for a in starts)
        assert set(outcomes) <= {
            (200, None),
            (400, "insufficient_wallet_balance"),
            (400, "idempotency_key_already_exists"),
        }, outcomes
        paid = [a for a in starts if a.status == 200]
        assert len(paid) == FUNDED, outcomes
        assert len({a.call.key for a in paid}) == FUNDED  # no key paid twice
        bank.worker.drain()  # every accepted payout waits for its confirm
        sessions = {a.body["session"]["id"]: a.call.tag[1] for a in paid}
        races = _races(partner, sessions, [a.call for a in paid], rng)
        answers = asyncio.run(_send_all(base, partner.project, races))

    bank.worker.drain()
    replays = Counter(a.code for a in answers if a.call.tag[0] == "start")
    assert replays == {"idempotency_key_already_exists": FUNDED}, replays  # even with money free
    winners: dict[int, str] = {}
    for a in answers:
        kind, i = a.call.tag
        if kind == "start":
            continue
        if a.status == 200:
            assert i not in winners, f"two winners on attempt {i}"
            winners[i] = kind
        else:
            assert (a.status, a.code) == (400, "session_wrong_state"), a.body
    assert set(winners) == set(sessions.values())
    confirmed = sum(1 for kind in winners.values() if kind == "confirm")

    p, s = t.payouts, t.sessions
    with bank.db.read() as conn:
        rows = conn.execute(
            sa.select(s.c.status, p.c.status, p.c.error_code, p.c.metadata).join(
                p, p.c.session_n == s.c.n
            )
        ).all()
        assert len(rows) == FUNDED
        for session_status, payout_status, error, metadata in rows:
            i = json.loads(metadata)["attempt"]
            if winners[i] == "confirm":
                assert (session_status, payout_status, error) == ("accepted", "succeeded", None)
            else:
                assert (session_status, payout_status, error) == (
                    "cancelled",
                    "failed",
                    "session_cancelled_by_partner",
                )
        assert accounts.balance(conn, account) == accounts.Balance(funds - confirmed * AMOUNT, 0)
        assert violations(conn) == []
    assert _count(bank, sa.select(sa.func.count()).select_from(s)) == FUNDED
    # a card number is sealed only for a payout that is written: none for a refused start
    cards = sum(1 for a in paid if a.call.tag[1] % 3 == 2)
    assert cards > 0
    assert _count(bank, sa.select(sa.func.count()).select_from(t.card_tokens)) == cards
    sim = t.simulator_transfers
    assert _count(bank, sa.select(sa.func.count()).select_from(sim)) == confirmed
    assert _count(bank, sa.select(sa.func.coalesce(sa.func.max(sim.c.submissions), 1))) == 1
    print(
        f"race: {ATTEMPTS} starts {dict(outcomes)}; {len(answers)} races and replays, "
        f"{confirmed} confirmed, {FUNDED - confirmed} cancelled; "
        f"{len(samples)} balance samples, lowest {min(samples, default=None)}"
    )
    assert samples
    assert min(samples) >= 0
    assert min(samples) == 0  # the money ran out while starts were still coming

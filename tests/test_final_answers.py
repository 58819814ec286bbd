"""A session that can no longer change is answered from what the server kept
(``server/final_answers.py``): the same answer, the same refusals, and never for a session
that can still move."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from banking import Onboard
from partner import payout_body
from payout131.payouts import reads
from payout131.payouts.records import Listed, Payout, Refund, Session
from payout131.runtime import Runtime
from payout131.server.final_answers import LARGEST, FinalAnswers
from payout131.settings import Settings
from payout131.storage import schema as t


@pytest.fixture
def bank_settings(bank_settings: Settings) -> Settings:
    """Production mode: no outcome can be forced, so a paid payout's session is final."""
    return dataclasses.replace(bank_settings, mode="production")


def _tamper(bank: Runtime, session_id: str) -> None:
    """Change a stored session behind the server's back: only a read that skips the
    database still answers what it answered before."""
    with bank.db.write() as conn:
        n = int(session_id.removeprefix("ps_"))
        conn.execute(sa.update(t.sessions).where(t.sessions.c.n == n).values(metadata='"x"'))


def test_a_final_session_is_answered_as_it_was_read(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=20_000, single_request=True)
    other = onboard("other", wallet=1)
    sid = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    bank.worker.drain()
    first = partner.post("session/status", {"session_id": sid})
    assert first.json()["session"]["status"] == "accepted"
    v2 = partner.post("session/status", {"session_id": sid}, version="v2")
    _tamper(bank, sid)
    again = partner.post("session/status", {"session_id": sid})
    assert (again.status_code, again.content) == (200, first.content)
    assert partner.post("session/status", {"session_id": sid}, version="v2").content == v2.content
    assert v2.content != first.content  # each API version's own spelling was kept
    # another project is refused as when the session is read from the database
    other.error("session/status", {"session_id": sid}, 403, "authorization_error")
    partner.error("session/status", {"session_id": "ps_999999"}, 404, "invalid_request")


def test_a_session_that_can_still_move_is_read_every_time(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=50_000)
    sid = partner.ok("session/init/payout/rko", partner.rko_body(10_000))["session"]["id"]
    bank.worker.drain()
    pending = partner.ok("session/status", {"session_id": sid})["session"]
    assert pending["payments"][0]["status"] == "pending"
    partner.ok("session/confirm", {"session_id": sid})
    assert partner.ok("session/status", {"session_id": sid})["session"]["status"] == "in_progress"
    bank.worker.drain()
    assert partner.ok("session/status", {"session_id": sid})["session"]["status"] == "accepted"
    # a payout the rail may still send back (the simulator's "returned" amount) is watched
    watched = partner.ok("session/init/payout/rko", partner.rko_body(10_031))["session"]["id"]
    bank.worker.drain()
    partner.ok("session/confirm", {"session_id": watched})
    bank.worker.drain()
    paid = partner.ok("session/status", {"session_id": watched})["session"]
    assert paid["status"] == "accepted"
    _tamper(bank, watched)
    assert partner.ok("session/status", {"session_id": watched})["session"]["metadata"] == "x"


def _listed(session: str, payout: str | None, work: str | None, refunded: bool) -> Listed:
    s = Session(1, "acme", "v1", True, session, None, None, "{}", None, None, 0, 0)
    if payout is None:
        return Listed(s, ())
    p = Payout(
        1, 1, "acme", payout, 100, "rub", 1, "{}", "{}", None, None, None, None, None,
        work, None, None, None, "simulator", "r", 0, 0, 0, 0,
    )  # fmt: skip
    refunds = (Refund(1, 1, 100, "accepted", 0, 0),) if refunded else ()
    return Listed(s, ((p, refunds),))


@pytest.mark.parametrize(
    ("session", "payout", "work", "refunded", "production", "sandbox"),
    [
        ("accepted", "succeeded", None, False, True, False),  # sandbox: a return can be forced
        ("accepted", "succeeded", None, True, True, True),  # it came back: nothing is left
        ("accepted", "succeeded", "watch", False, False, False),  # the rail may send it back
        ("cancelled", "failed", None, False, True, True),
        ("cancelled", None, None, False, True, True),  # cancelled before it started
        ("in_progress", "pending", "expire", False, False, False),
        ("in_progress", "in_progress", "poll", False, False, False),
        ("error", "in_progress", "poll", False, False, False),
        ("created", None, None, False, False, False),
    ],
)
def test_which_sessions_are_final(
    session: str, payout: str | None, work: str | None, refunded: bool, production: bool,
    sandbox: bool,
) -> None:  # fmt: skip
    found = _listed(session, payout, work, refunded)
    assert reads.final(found, returns_forced=False) is production
    assert reads.final(found, returns_forced=True) is sandbox


def test_the_oldest_answers_go_first_and_none_is_kept_long_or_large() -> None:
    kept = FinalAnswers(returns_forced=False, kept_bytes=20)
    for n in (1, 2, 3):
        found = _listed("cancelled", "failed", None, False)
        found = Listed(found.session._replace(n=n), found.payouts)
        kept.keep(found, "v1", b"answer %d" % n)  # 8 bytes each: two fit in 20
    kept.keep(_listed("in_progress", "pending", "expire", False), "v1", b"open")
    assert len(kept) == 2
    assert kept.get(1, "v1") is None
    assert kept.get(3, "v1") == ("acme", b"answer 3")
    assert kept.get(3, "v2") is None
    final = _listed("cancelled", "failed", None, False)
    kept.keep(final, "v1", b"x" * (LARGEST + 1))  # a partner's metadata made it large
    assert kept.get(1, "v1") is None
    briefly = FinalAnswers(returns_forced=False, kept_for_s=0.0)
    briefly.keep(final, "v1", b"answer")
    assert briefly.get(1, "v1") is None  # read again once it has been kept that long


def test_answers_kept_together_run_out_spread_over_the_second_half_of_their_time() -> None:
    now = [1000.0]
    kept = FinalAnswers(returns_forced=False, kept_for_s=10.0, monotonic=lambda: now[0])
    final = _listed("cancelled", "failed", None, False)
    for n in range(1, 201):
        kept.keep(Listed(final.session._replace(n=n), final.payouts), "v1", b"answer")

    def still_kept() -> int:
        return sum(kept.get(n, "v1") is not None for n in range(1, 201))

    now[0] += 4.99
    assert still_kept() == 200  # none before half the time
    now[0] += 2.5
    assert 40 < still_kept() < 160  # about half: not all at once
    now[0] += 2.52
    assert still_kept() == 0  # none after the whole time

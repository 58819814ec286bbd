"""The proof after a crash test: what the partners were told, what the store holds, what the
rail did and what the receiver saw must all agree.

1. Every call answered 200 left what it said: the session and payout it named exist, with
   that amount; a confirm or cancel answered 200 took effect. A call refused for want of
   money left nothing behind, its key included. Every stored session was asked for.
2. Every payout is in exactly one state, and its hold, ledger transactions and session
   agree with it: ``succeeded`` (hold posted, paid out once), ``failed`` (hold released,
   nothing paid), or legitimately still open: ``pending`` waiting for a confirm nobody sent,
   or ``in_progress`` with its next step not yet due (the rail answers later).
3. The rail received each payout at most once, under the payout's own reference, and only
   payouts that were confirmed (or single-request).
4. Every stored event was acknowledged by the receiver, with the same bytes on every attempt,
   and a session's events arrived in order; the receiver saw no event that was never stored.
5. The ledger checks, and each partner account holds its opening funds minus the payouts that
   succeeded plus refunds, with exactly the open payouts held.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from payout131.ledger.check import violations
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.tools.chaos.load import CARD, Answer
from payout131.tools.chaos.receiver import Delivery

__all__ = ["KINDS", "Record", "Verdict", "verify"]

PARTNER_ENDED = {"session_cancelled_by_partner", "confirm_timeout"}  # never reached the rail
MAKES_PAYOUT = ("session/init/payout", "session/start/payout")
# The kinds of problem the failover figures count (``Verdict.kinds``): an answer or webhook
# the store does not bear out (``lost``), a request or payout done twice (``double``), an
# event never acknowledged (``undelivered``) or sent ahead of an earlier one (``order``);
# everything else is ``other``.
KINDS = ("lost", "double", "undelivered", "order", "other")


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    figures: Counter[str] = field(default_factory=Counter)

    kinds: Counter[str] = field(default_factory=Counter)  # problems by KINDS

    def fail(self, problem: str, kind: str = "other") -> None:
        if len(self.problems) < 200:
            self.problems.append(problem)
        self.figures["problems"] += 1
        self.kinds[kind] += 1


@dataclass
class _Store:
    sessions: dict[str, Any]
    payouts: dict[int, Any]  # by session number
    holds: dict[int, list[Any]]
    paid: Counter[int]  # payout transactions per payout
    refunded: dict[int, int]  # refund amounts per payout
    transfers: dict[str, list[Any]]  # simulator rows per payout id
    events: list[Any]
    accounts: dict[int, Any]
    keys: set[tuple[str, str]]
    ledger_problems: list[str]


def _load(db: Database) -> _Store:
    with db.read() as conn:
        sessions = {f"ps_{r.n}": r for r in conn.execute(sa.select(t.sessions))}
        payouts = {int(r.session_n): r for r in conn.execute(sa.select(t.payouts))}
        holds: dict[int, list[Any]] = defaultdict(list)
        for r in conn.execute(sa.select(t.holds)):
            holds[int(r.payout_n)].append(r)
        x = t.ledger_transactions
        paid: Counter[int] = Counter(
            int(n) for (n,) in conn.execute(sa.select(x.c.payout_n).where(x.c.kind == "payout"))
        )
        refunded = {int(r.payout_n): int(r.amount) for r in conn.execute(sa.select(t.refunds))}
        transfers: dict[str, list[Any]] = defaultdict(list)
        for r in conn.execute(sa.select(t.simulator_transfers)):
            transfers[str(r.payout_id)].append(r)
        events = list(conn.execute(sa.select(t.events).order_by(t.events.c.id)))
        accounts = {int(r.id): r for r in conn.execute(sa.select(t.ledger_accounts))}
        k = t.idempotency_keys
        keys = {(str(p), str(key)) for p, key in conn.execute(sa.select(k.c.project_id, k.c.key))}
        problems = violations(conn)
    return _Store(
        sessions, payouts, holds, paid, refunded, transfers, events, accounts, keys, problems
    )


@dataclass
class Record:
    """What the harness knows apart from the store: the answers the partners got, the
    webhooks the receiver saw, each partner account's opening funds (by ledger code) and the
    projects that confirm their payouts. Saved as ``record.json`` in the run's directory."""

    answers: list[Answer]
    deliveries: list[Delivery]
    opening: dict[str, int]
    two_step: list[str]
    clock_times: dict[str, int] = field(default_factory=dict)  # see ``verify``

    def save(self, path: Path) -> None:
        data = {
            "answers": [dataclasses.asdict(a) for a in self.answers],
            "deliveries": [dataclasses.asdict(d) for d in self.deliveries],
            "opening": self.opening,
            "two_step": self.two_step,
            "clock_times": self.clock_times,
        }
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Record:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            [Answer(**a) for a in data["answers"]],
            [Delivery(**d) for d in data["deliveries"]],
            data["opening"],
            data["two_step"],
            data.get("clock_times", {}),
        )


def verify(
    db: Database, record: Record, now: int, clock_times: Mapping[str, int] | None = None
) -> Verdict:
    """Check a finished run against its store; ``now`` tells due work from later work, or
    for a project on a test clock its clock's time (``clock_times``, else the record's)."""
    verdict = Verdict()
    store = _load(db)
    for problem in store.ledger_problems:
        verdict.fail(f"ledger: {problem}")
    _answers(verdict, store, record.answers)
    times = dict(record.clock_times if clock_times is None else clock_times)
    _payouts(verdict, store, record.answers, set(record.two_step), now, times)
    _rail(verdict, store)
    _events(verdict, store, record.deliveries, now, times)
    _balances(verdict, store, record.opening)
    _no_card_number(verdict, store)
    return verdict


def _no_card_number(verdict: Verdict, store: _Store) -> None:
    """The card number the partners paid is nowhere in the store in clear (PROTOCOL §9):
    not in a session's kept fields, a payout, the simulator's books or a webhook body."""
    kept = {
        "sessions.draft": [str(s.draft) for s in store.sessions.values()],
        "payouts": [f"{p.destination}{p.recipient}" for p in store.payouts.values()],
        "simulator_transfers": [str(r.account) for rows in store.transfers.values() for r in rows],
        "events": [bytes(e.body).decode("utf-8", "replace") for e in store.events],
    }
    for where, texts in kept.items():
        if any(CARD in text for text in texts):
            verdict.fail(f"{where}: holds a card number in clear")


def _chaos_key(row: Any) -> str | None:
    metadata = json.loads(row.metadata) if row.metadata else None
    return metadata.get("chaos") if isinstance(metadata, dict) else None


def _answers(verdict: Verdict, store: _Store, answers: list[Answer]) -> None:
    f = verdict.figures
    sent = {a.body.get("metadata", {}).get("chaos") for a in answers if "metadata" in a.body}
    for a in answers:
        f["calls"] += 1
        f["tries"] += a.tries
        if a.status is None:
            f["calls in doubt"] += 1
            continue
        if a.status != 200:
            _refusal(verdict, store, a)
            continue
        f["calls answered 200"] += 1
        answered = a.session
        if answered is None:  # tokenize
            continue
        row = store.sessions.get(answered["id"])
        if row is None or row.project_id != a.project:
            verdict.fail(
                f"{a.method} {a.key}: answered {answered['id']}, which is not stored", "lost"
            )
            continue
        asked = a.body.get("metadata", {}).get("chaos") if "metadata" in a.body else None
        if asked is not None and _chaos_key(row) != asked:  # its number went to another
            verdict.fail(
                f"{a.method} {a.key}: answered {answered['id']}, which now holds the session "
                f"of {_chaos_key(row)}",
                "lost",
            )
            continue
        payout = store.payouts.get(int(row.n))
        if a.method.startswith(MAKES_PAYOUT):
            amount = a.body["amount_details"]["amount"]
            if payout is None or int(payout.amount) != amount:
                verdict.fail(
                    f"{a.method} {a.key}: {answered['id']} has no payout of {amount}", "lost"
                )
            elif answered["payments"][0]["id"] != f"po_{payout.n}":
                verdict.fail(f"{a.method} {a.key}: answered another payout id")
        elif a.method == "session/confirm" and (
            payout is None or payout.status == "pending" or payout.error_code in PARTNER_ENDED
        ):
            verdict.fail(
                f"confirm of {answered['id']} answered 200 but did not take effect", "lost"
            )
        elif a.method == "session/cancel" and (
            payout is None or payout.error_code != "session_cancelled_by_partner"
        ):
            verdict.fail(f"cancel of {answered['id']} answered 200 but did not take effect", "lost")
    made: Counter[str | None] = Counter()
    for session_id, row in store.sessions.items():
        key = _chaos_key(row)
        made[key] += 1
        if key not in sent:
            verdict.fail(f"{session_id} is stored but no partner asked for it")
    for key, count in made.items():
        if count > 1:
            verdict.fail(f"{count} sessions were made for the one request {key}", "double")


def _refusal(verdict: Verdict, store: _Store, a: Answer) -> None:
    if a.code != "insufficient_wallet_balance":
        verdict.fail(f"{a.method} {a.key}: unexpected answer {a.status} {a.response}")
        return
    verdict.figures["calls refused for funds"] += 1
    if (a.project, a.key) in store.keys:
        verdict.fail(f"{a.method} {a.key}: refused, but its idempotency key was stored")
    key = a.body.get("metadata", {}).get("chaos")
    if a.method.startswith("session/init") and any(
        _chaos_key(row) == key for row in store.sessions.values()
    ):
        verdict.fail(f"{a.method} {a.key}: refused, but a session was stored for it")


def _payouts(
    verdict: Verdict,
    store: _Store,
    answers: list[Answer],
    two_step: set[str],
    now: int,
    times: dict[str, int],
) -> None:
    f = verdict.figures
    decided = {
        a.body["session_id"]
        for a in answers
        if a.status == 200 and a.method in ("session/confirm", "session/cancel")
    }
    for session_n, p in store.payouts.items():
        name, session = f"po_{p.n}", store.sessions[f"ps_{session_n}"]
        holds = store.holds.get(int(p.n), [])
        hold = holds[0].status if len(holds) == 1 else f"{len(holds)} holds"
        paid = store.paid[int(p.n)]
        f["payouts"] += 1
        recipient = json.loads(p.recipient)
        f["payouts to a tokenized account"] += bool(recipient.get("token"))
        f["payouts to a phone"] += bool(recipient.get("phone"))
        f["payouts to a card"] += bool(recipient.get("card_token"))
        if p.status == "succeeded":
            f["payouts succeeded"] += 1
            expected = ("posted", 1, "accepted")
        elif p.status == "failed":
            f[f"payouts failed: {p.error_code}"] += 1
            expected = ("released", 0, "cancelled")
        elif p.status == "pending":
            f["payouts waiting for a confirm"] += 1
            expected = ("active", 0, "in_progress")
            if p.project_id not in two_step or p.work != "expire":
                verdict.fail(f"{name}: pending with work {p.work} in project {p.project_id}")
            if f"ps_{session_n}" in decided:
                verdict.fail(
                    f"{name}: pending although its confirm or cancel was answered 200", "lost"
                )
        else:
            f["payouts still at the rail"] += 1
            expected = ("active", 0, session.status if session.status == "error" else "in_progress")
            due_by = times.get(p.project_id, now)
            if p.work is None or (p.work_at is not None and int(p.work_at) <= due_by):
                verdict.fail(f"{name}: in progress with work {p.work} due and not done")
        if (hold, paid, session.status) != expected:
            kind = "double" if paid > 1 or len(holds) > 1 else "other"
            verdict.fail(
                f"{name} {p.status}: hold {hold}, paid {paid}x, session {session.status}", kind
            )
        if int(p.n) in store.refunded and p.status != "succeeded":
            verdict.fail(f"{name}: refunded but {p.status}")


def _rail(verdict: Verdict, store: _Store) -> None:
    f = verdict.figures
    for p in store.payouts.values():
        name = f"po_{p.n}"
        rows = store.transfers.get(name, [])
        f["rail submissions"] += sum(int(r.submissions) for r in rows)
        f["rail transfers"] += len(rows)
        if len(rows) > 1:
            verdict.fail(f"{name}: the rail holds {len(rows)} transfers", "double")
        if rows and rows[0].reference != p.rail_reference:
            verdict.fail(f"{name}: the rail's transfer is not under the payout's reference")
        decided_by_rail = p.status == "succeeded" or (
            p.status == "failed" and p.error_code not in PARTNER_ENDED
        )
        if decided_by_rail and not rows:
            verdict.fail(f"{name}: {p.status} ({p.error_code}) without reaching the rail")
        if rows and (p.status == "pending" or p.error_code in PARTNER_ENDED):
            verdict.fail(f"{name}: reached the rail but was never confirmed")


def _events(
    verdict: Verdict,
    store: _Store,
    deliveries: list[Delivery],
    now: int,
    times: dict[str, int],
) -> None:
    f = verdict.figures
    by_event: dict[int, list[Delivery]] = defaultdict(list)
    for d in deliveries:
        by_event[d.event_id].append(d)
    stored = {int(e.id): e for e in store.events}
    f["events"] = len(stored)
    f["deliveries"] = len(deliveries)
    f["deliveries answered 500 by the receiver"] = sum(d.answered != 200 for d in deliveries)
    for event_id in by_event.keys() - stored.keys():
        verdict.fail(f"evt_{event_id}: delivered but never stored (an uncommitted change)", "lost")
    acked: dict[int, float] = {}
    for event_id, e in stored.items():
        got = by_event.get(event_id, [])
        oks = [d.at for d in got if d.answered == 200]
        if not oks:
            # written after the server was seen caught up (a rail poll or a confirm timeout
            # falling due later), the server may have stopped before sending it: later work,
            # not lost work; every event written before that moment must have arrived
            if int(e.created_at) <= times.get(e.project_id, now):
                verdict.fail(
                    f"evt_{event_id} ({e.type}, ps_{e.session_n}): never acknowledged",
                    "undelivered",
                )
            else:
                f["events written after the run caught up, not yet sent"] += 1
            continue
        acked[event_id] = min(oks)
        f["events acknowledged more than once"] += len(oks) > 1
        if len({d.digest for d in got}) != 1:
            verdict.fail(f"evt_{event_id}: attempts carried different bytes", "lost")
        if e.status != "delivered":
            verdict.fail(f"evt_{event_id}: acknowledged but stored as {e.status}")
    sessions: dict[int, list[int]] = defaultdict(list)
    for event_id, e in stored.items():
        sessions[int(e.session_n)].append(event_id)
    for session_n, ids in sessions.items():
        for earlier, later in itertools.pairwise(ids):
            first_try = min((d.at for d in by_event.get(later, [])), default=None)
            if earlier in acked and first_try is not None and first_try < acked[earlier]:
                verdict.fail(
                    f"ps_{session_n}: evt_{later} was sent before evt_{earlier} arrived", "order"
                )
        kinds = [stored[i].type for i in ids]
        payout = store.payouts.get(session_n)
        finished = kinds.count("payment_finished")
        if payout is not None and payout.status in ("succeeded", "failed") and finished != 1:
            kind = "double" if finished > 1 else "undelivered"
            verdict.fail(f"ps_{session_n}: {finished} payment_finished events", kind)


def _balances(verdict: Verdict, store: _Store, opening: dict[str, int]) -> None:
    by_code = {str(a.code): a for a in store.accounts.values()}
    for code, funds in opening.items():
        account = by_code[code]
        mine = [p for p in store.payouts.values() if int(p.account_id) == int(account.id)]
        spent = sum(int(p.amount) + int(p.fee) for p in mine if p.status == "succeeded")
        back = sum(store.refunded.get(int(p.n), 0) for p in mine)
        held = sum(
            int(p.amount) + int(p.fee) for p in mine if p.status in ("pending", "in_progress")
        )
        if int(account.balance) != funds - spent + back:
            verdict.fail(
                f"{code}: balance {account.balance}, expected {funds} - {spent} + {back} "
                "(opening funds - succeeded payouts + refunds)"
            )
        if int(account.held) != held:
            verdict.fail(f"{code}: held {account.held}, but open payouts hold {held}")
        verdict.figures["kopecks paid out"] += spent

"""The check step of a two-step payout: its checks passed and its money is held, so it
waits for the partner (``pending``, ``next_action: confirm``) until the project's confirm
timeout, and the partner is told (``ready_to_confirm``).

For a payout from a settlement account (``/rko``) the webhook carries
``confirm_information``: both sides of the transfer, the bank names and correspondent
accounts from the BIK directory. A tokenized recipient's account is opened by the vault
there, the one place it is shown in full, and that webhook is stored sealed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from payout131.directory.bik import BikDirectory
from payout131.ledger import accounts
from payout131.ledger.accounts import BANK_BIK
from payout131.payouts import store
from payout131.payouts.announcements import announce
from payout131.payouts.calls import Context
from payout131.payouts.records import Payout
from payout131.payouts.states import MOVES, Step
from payout131.payouts.store import PayoutChange
from payout131.projects import Project
from payout131.protocol import wire
from payout131.protocol.cards import CardView
from payout131.storage import sql
from payout131.tokens import account_tokens

__all__ = ["confirm_details", "ready_to_confirm"]

CHECK = MOVES["check"]


def ready_to_confirm(
    conn: Connection,
    context: Context,
    payouts: Sequence[Payout],
    projects: Mapping[str, Project],
    now: int,
) -> None:
    """Move the payouts (locked, checked) to ``pending`` and announce ``ready_to_confirm``."""
    if not payouts:
        return
    changes = [
        PayoutChange(p.n, Step.EXPIRE, now + projects[p.project_id].confirm_timeout_s * 1_000_000)
        for p in payouts
    ]
    payout_moves = store.move_payouts(CHECK, changes, now)
    session_moves = store.move_sessions(CHECK, [p.session_n for p in payouts], now)
    paying = {"ids": sorted({p.account_id for p in payouts})}
    found = sql.together(  # benchmarks: one round trip
        conn, [*payout_moves, *session_moves, (accounts.CODES, paying)]
    )
    moved = store.moved(conn, CHECK, payout_moves, found[: len(payout_moves)])
    sessions = store.moved(conn, CHECK, session_moves, found[len(payout_moves) : -1])
    codes = {int(row.id): str(row.code) for row in found[-1]}
    changed = store.listed(sessions, moved)
    extras: dict[int, dict[str, Any]] = {}
    sealed: set[int] = set()
    for listed in changed:
        if not listed.session.rko:
            continue
        ((payout, _),) = listed.payouts
        account = account_tokens.payout_account(conn, context.vault, payout)
        project = projects[payout.project_id]
        details = confirm_details(
            codes[payout.account_id], account, payout, project, context.directory
        )
        extras[listed.session.n] = {"confirm_information": details}
        if wire.loads_field(payout.recipient).get("token"):  # the account in full: sealed
            sealed.add(listed.session.n)
    announce(conn, context.vault, "ready_to_confirm", changed, now, extras, frozenset(sealed))


def confirm_details(
    sender_number: str,
    recipient_account: str | None,
    payout: Payout,
    project: Project,
    directory: BikDirectory,
) -> dict[str, Any]:
    """``confirm_information`` from the paying account's number and the recipient's account."""
    bank = directory.get(BANK_BIK)
    sender = {
        "account_number": sender_number,
        "name": project.legal_name or project.id,
        "bank_name": bank.name if bank else "Bank 131",
        "bik": BANK_BIK,
        "correspondent_account_number": bank.correspondent_account if bank else None,
        "inn": project.inn,
        "kpp": project.kpp,
    }
    stored = wire.loads_field(payout.recipient)
    # tokens are never shown; a card shows its brand and masked number, never the number
    recipient = {k: v for k, v in stored.items() if k not in ("token", "card_token")}
    if "card_token" in stored:
        recipient["masked_number"] = CardView.shown(stored).masked
    else:
        recipient["account_number"] = recipient_account
    # what is not known (an individual's INN, a KPP never given) is left out, never null
    return {
        "account_details": {
            "sender": {k: v for k, v in sender.items() if v is not None},
            "recipient": {k: v for k, v in recipient.items() if v is not None},
        }
    }

"""``payout131 webhooks``: see every event and delivery attempt, replay what failed.

Tables are drawn with rich when stdout is a terminal and printed as tab-separated text
(one header line, then one line per row) otherwise, for ``grep``, ``cut`` and scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from payout131.cli.context import database, settings, write
from payout131.cli.params import IntRange
from payout131.clock import rfc3339_seconds
from payout131.projects import get_project
from payout131.tokens.vault import Vault, VaultError
from payout131.webhooks import history, outbox
from payout131.webhooks.events import open_body

__all__ = ["webhooks"]


def _when(micros: int | None) -> str:
    return "" if micros is None else rfc3339_seconds(micros)


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header, title=title)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    click.echo("\t".join(header))
    for row in rows:
        click.echo("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))


def _event_id(text: str) -> int:
    try:
        return history.parse_event_id(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EVENT_ID") from None


def _next(row: Any) -> str:
    if row.status == "delivered":
        return f"delivered {_when(row.delivered_at)}"
    if row.status == "dead":
        return "dead: replay to send again"
    if row.webhook_url is None:
        return "waits for a webhook URL"
    return f"next attempt {_when(row.next_attempt_at)}"


@click.group()
def webhooks() -> None:
    """Webhook events and their delivery attempts."""


@webhooks.command("list")
@click.option("--project", help="Only this project's events.")
@click.option("--status", type=click.Choice(history.STATUSES), help="Only events in this state.")
@click.option("--limit", type=IntRange(1, 10_000), default=50, show_default=True)
def list_(project: str | None, status: str | None, limit: int) -> None:
    """List the newest events, newest first."""
    with database() as db, db.read() as conn:
        rows = history.list_events(conn, project, status, limit)
    _table(
        "webhook events",
        ("ID", "PROJECT", "SESSION", "TYPE", "STATUS", "ATTEMPTS", "CREATED", "STATE"),
        [
            (
                f"evt_{r.id}",
                r.project_id,
                f"ps_{r.session_n}",
                r.type,
                r.status,
                str(r.attempts),
                _when(r.created_at),
                _next(r),
            )
            for r in rows
        ],
    )


def _result(attempt: Any) -> str:
    if attempt.duration_us is None:
        return "no outcome recorded (the worker stopped before recording)"
    result = f"HTTP {attempt.http_status}" if attempt.http_status is not None else ""
    return "; ".join(part for part in (result, attempt.error or "") if part)


@webhooks.command("show")
@click.argument("event_id")
@click.option("--body", is_flag=True, help="Also print the exact body that is signed and sent.")
def show(event_id: str, body: bool) -> None:
    """Show one event (evt_12 or 12) and every attempt to deliver it."""
    n = _event_id(event_id)
    with database() as db, db.read() as conn:
        event = history.get_event(conn, n)
        if event is None:
            raise click.ClickException(f"no event evt_{n}")
        tried = history.attempts(conn, n)
        behind = history.blocker(conn, n)
    click.echo(f"evt_{event.id}  {event.type}  project {event.project_id}  ps_{event.session_n}")
    click.echo(f"status: {event.status} after {event.attempts} attempt(s); {_next(event)}")
    click.echo(f"created: {_when(event.created_at)}")
    if event.replayed_at is not None:
        click.echo(f"replayed: {_when(event.replayed_at)}")
    if event.webhook_url is None:
        click.echo(
            f"url: none; set one: payout131 project set {event.project_id} --webhook-url URL"
        )
    else:
        click.echo(f"url: {event.webhook_url}")
    if behind is not None and event.status in outbox.WAITING:
        click.echo(f"waiting behind: evt_{behind}, an earlier event of the same session")
    _table(
        f"attempts of evt_{event.id}",
        ("#", "STARTED", "WORKER", "RESULT", "MS", "URL", "RESPONSE"),
        [
            (
                str(a.attempt),
                _when(a.started_at),
                a.worker,
                _result(a),
                "" if a.duration_us is None else str(round(a.duration_us / 1000)),
                a.url,
                a.response or "",
            )
            for a in tried
        ],
    )
    if body:
        click.echo(_opened_body(event).decode("utf-8", "replace"))


def _opened_body(event: Any) -> bytes:
    """tokens: a body showing a tokenized account in full is stored sealed by the vault."""
    conf = settings()
    vault = Vault(conf.vault_key_path, conf.vault_key)
    try:
        return open_body(
            vault, event.body, event.body_key_id, event.project_id, event.session_n, event.type
        )
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None


@webhooks.command("replay")
@click.argument("event_id", required=False)
@click.option("--all-dead", is_flag=True, help="Replay every dead event of --project.")
@click.option("--project", help="The project whose dead events --all-dead replays.")
def replay(event_id: str | None, all_dead: bool, project: str | None) -> None:
    """Send an event again from its first attempt, or every dead event of a project.

    A replayed event starts a new round: the whole schedule, the horizon counted from now.
    It keeps its Webhook-Id, bytes and signature.
    """
    if all_dead == (event_id is not None):
        raise click.UsageError("give either EVENT_ID or --all-dead --project P")
    if all_dead and project is None:
        raise click.UsageError("--all-dead needs --project P")
    if event_id is not None and project is not None:
        raise click.UsageError("--project goes with --all-dead, not with EVENT_ID")
    if event_id is not None:
        n = _event_id(event_id)
        with write() as (conn, now):
            if not outbox.replay(conn, n, now):
                raise click.ClickException(f"no event evt_{n}")
        click.echo(f"evt_{n} will be sent again")
        return
    assert project is not None
    with write() as (conn, now):
        if get_project(conn, project) is None:
            raise click.ClickException(f"no project {project!r}")
        count = outbox.replay_dead(conn, project, now)
    click.echo(f"{count} dead event(s) of {project} will be sent again")

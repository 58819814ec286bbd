"""``payout131 payouts``: find payouts and follow one from its request to its last webhook.

The queries are ``payouts/listing.py``'s, the ones the console runs. Amounts print in
rubles (JSON and CSV keep kopecks, as the wire does); account and card numbers are never
shown: a destination is its kind and its bank.
"""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click

from payout131 import projects
from payout131.cli.context import database
from payout131.cli.params import IntRange
from payout131.cli.payout_sheet import format_rubles
from payout131.clock import rfc3339_seconds
from payout131.payouts import listing
from payout131.payouts.states import PayoutStatus
from payout131.sandbox.clocks import parse_moment

__all__ = ["payouts"]


def _when(micros: int | None) -> str:
    return "" if micros is None else rfc3339_seconds(micros)


def _time(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.group()
def payouts() -> None:
    """Payouts: list them with filters, show one's whole story."""


@payouts.command("list")
@click.option("--project", help="Only this project's payouts.")
@click.option("--status", type=click.Choice([s.value for s in PayoutStatus]))
@click.option("--error", "error", help="Only payouts that failed with this error code.")
@click.option(
    "--since", help="Created at or after this time (RFC 3339, e.g. 2026-12-07T00:00:00Z)."
)
@click.option("--until", help="Created before this time (RFC 3339).")
@click.option("--limit", type=IntRange(1, 10_000), default=50, show_default=True)
@click.option("--before", type=IntRange(1, 2**62), help="The cursor a previous page printed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (amounts in kopecks).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (amounts in kopecks).")
def list_(
    project: str | None,
    status: str | None,
    error: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    before: int | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """The payouts matching every filter given, newest first."""
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    if project is not None and not projects.PROJECT_ID.fullmatch(project):
        raise click.BadParameter(f"{project[:80]!r} is no project id", param_hint="--project")
    if error is not None and not listing.ERROR_CODE.fullmatch(error):
        raise click.BadParameter(
            f"{error[:80]!r}: an error code is lowercase letters, digits and _",
            param_hint="--error",
        )
    start, end = _time(since, "--since"), _time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.UsageError("--since must be earlier than --until")
    where = listing.Filter(project, status, error, start, end)
    with database() as db, db.read() as conn:
        lines, cursor = listing.list_payouts(conn, where, limit, before)
    if as_json:
        found = [line.as_dict() for line in lines]
        click.echo(json.dumps({"payouts": found, "next": cursor}, indent=2))
        return
    if as_csv:
        fields = list(listing.Line.__slots__)
        out = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        out.writeheader()
        out.writerows(line.as_dict() for line in lines)
        if cursor is not None:  # on stderr: the CSV stays a table
            click.echo(f"more: --before {cursor}", err=True)
        return
    for line in lines:
        bank = f" {line.bank}" if line.bank else ""
        failed = f" {line.error}" if line.error else ""
        click.echo(
            f"{line.payout}  {line.session}  {line.project}  {line.status}{failed}  "
            f"{format_rubles(line.amount)} RUB  {line.destination}{bank}  {_when(line.created_at)}"
        )
    if cursor is not None:
        click.echo(f"more: --before {cursor}")


@payouts.command("show")
@click.argument("payout_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (amounts in kopecks).")
def show(payout_id: str, as_json: bool) -> None:
    """A payout (po_…, or its session ps_…) and everything that happened to it, in order."""
    try:
        listing.parse_id(payout_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PAYOUT_ID") from None
    with database() as db, db.read() as conn:
        found = listing.story(conn, payout_id)
    if found is None:
        raise click.ClickException(f"no payout {payout_id}")
    line, moments = found
    if as_json:
        story = [{"at": _when(m.at), "what": m.what, **m.detail} for m in moments]
        click.echo(json.dumps({"payout": line.as_dict(), "story": story}, indent=2))
        return
    click.echo(
        f"{line.payout} ({line.session}, project {line.project}): {line.status}"
        f"{' ' + line.error if line.error else ''}, {format_rubles(line.amount)} RUB "
        f"to {line.destination}{' ' + line.bank if line.bank else ''}"
    )
    for moment in moments:
        click.echo(f"  {_when(moment.at)}  {moment.what:<16} {_detail(moment.detail)}")


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for name, value in detail.items():
        if name == "entries":
            value = ", ".join(f"{e['account']} {format_rubles(e['amount'])}" for e in value)
        elif name in ("amount", "fee") and isinstance(value, int):
            value = f"{format_rubles(value)} RUB"
        if value not in (None, ""):
            parts.append(f"{name}={value}")
    return " ".join(parts)

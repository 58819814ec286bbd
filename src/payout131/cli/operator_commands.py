"""``payout131 operator`` and ``payout131 audit``: who may enter the console, and what
operators did (docs/console.md)."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click
from sqlalchemy.engine import Connection

from payout131.cli.context import database, write
from payout131.cli.params import IntRange
from payout131.clock import SystemClock, rfc3339_seconds
from payout131.console import audit, operators

__all__ = ["audit_group", "operator"]


def cli_operator() -> str:
    """Who a command's audit entries name: ``cli:`` and the user running it."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):  # no such user in this container's passwd
        return "cli"


def _password(name: str) -> str:
    """A password from the terminal (asked twice), or the first line of stdin."""
    if sys.stdin.isatty():
        given: str = click.prompt(
            f"password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        given = sys.stdin.readline().rstrip("\r\n")
    try:
        return operators.check_password(given)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _name(name: str) -> str:
    try:
        return operators.check_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None


@click.group()
def operator() -> None:
    """The console's operators: add, list, set a password, remove."""


def _audited(action: str, name: str, change: Callable[[Connection, int], tuple[Any, Any]]) -> None:
    """``change(conn, now)`` → ``(before, after)``, committed with its audit entry; a
    refusal (ValueError) as one line."""
    with write() as (conn, now):
        try:
            before, after = change(conn, now)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(
            conn,
            operator=cli_operator(),
            action=action,
            at=now,
            target=name,
            before=before,
            after=after,
            address="cli",
        )


@operator.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(operators.ROLES),
    required=True,
    help="viewer reads; admin also acts.",
)
def add(name: str, role: str) -> None:
    """Register an operator; the password is read from the terminal, or stdin's first line."""
    password = _password(_name(name))

    def change(conn: Connection, now: int) -> tuple[Any, Any]:
        operators.add(conn, name, role, password, now)
        return None, {"role": role}

    _audited("operator.add", name, change)
    click.echo(f"operator {name} added ({role})")


@operator.command("password")
@click.argument("name")
def password_(name: str) -> None:
    """Set an operator's password (read like add's); unlocks them and signs them out."""
    password = _password(_name(name))

    def change(conn: Connection, now: int) -> tuple[Any, Any]:
        operators.set_password(conn, name, password)
        return None, None

    _audited("operator.password", name, change)
    click.echo(f"operator {name}: new password set; every sign-in of theirs has ended")


@operator.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove an operator and end their sign-ins (their audit entries stay)."""

    def change(conn: Connection, now: int) -> tuple[Any, Any]:
        return {"role": operators.remove(conn, _name(name)).role}, None

    _audited("operator.remove", name, change)
    click.echo(f"operator {name} removed")


@operator.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """Every operator: role, since when, locked or not."""
    with database() as db, db.read() as conn:
        found = operators.list_operators(conn)
    now = SystemClock().now()
    found = [  # a lock that has ended is no lock
        replace(o, locked_until=None) if o.locked_until and o.locked_until <= now else o
        for o in found
    ]
    if as_json:
        out = [
            {
                "name": o.name,
                "role": o.role,
                "created_at": rfc3339_seconds(o.created_at),
                "locked_until": None if o.locked_until is None else rfc3339_seconds(o.locked_until),
            }
            for o in found
        ]
        click.echo(json.dumps(out, indent=2))
        return
    if not found:
        click.echo("no operators: add one with `payout131 operator add NAME --role admin`")
    for o in found:
        locked = f"  locked until {rfc3339_seconds(o.locked_until)}" if o.locked_until else ""
        click.echo(f"{o.name}  {o.role}  since {rfc3339_seconds(o.created_at)}{locked}")


@click.group("audit")
def audit_group() -> None:
    """What operators did, in the console and with these commands."""


@audit_group.command("list")
@click.option("--operator", "who", help="Only this operator's entries.")
@click.option("--action", help="Only this action (e.g. project.change, webhook.resend).")
@click.option("--limit", type=IntRange(1, 10_000), default=50, show_default=True)
@click.option("--before", type=IntRange(1, 2**62), help="The cursor a previous page printed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_list(
    who: str | None, action: str | None, limit: int, before: int | None, as_json: bool
) -> None:
    """Entries newest first: when, who, what, on what, before and after."""
    with database() as db, db.read() as conn:
        entries, cursor = audit.list_entries(
            conn, limit=limit, before=before, operator=who, action=action
        )
    if as_json:
        out = [{**e.as_dict(), "at": rfc3339_seconds(e.at)} for e in entries]
        click.echo(json.dumps({"entries": out, "next": cursor}, indent=2, ensure_ascii=False))
        return
    for e in entries:
        change = ""
        if e.before is not None or e.after is not None:
            change = f"  {json.dumps(e.before, ensure_ascii=False)} -> "
            change += json.dumps(e.after, ensure_ascii=False)
        click.echo(
            f"{rfc3339_seconds(e.at)}  {e.operator}  {e.action}  {e.target}"
            f"  ({e.address or '-'}){change}"
        )
    if cursor is not None:
        click.echo(f"more: --before {cursor}")

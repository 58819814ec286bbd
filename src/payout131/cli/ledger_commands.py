"""``payout131 account``, ``wallet`` and ``ledger``: money in, and proof that it adds up."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
from sqlalchemy.engine import Connection

from payout131 import projects
from payout131.cli.context import database, write
from payout131.cli.money import KOPECKS_OPTION, amount_in_kopecks, show
from payout131.errors import ApiError
from payout131.ledger import accounts, book
from payout131.ledger.check import violations

__all__ = ["account", "ledger_group", "wallet"]


@click.group()
def account() -> None:
    """Settlement accounts at the bank (BIK 049205131)."""


@account.command("open")
@click.argument("project_id")
@click.option("--number", help="The 20-digit account number; generated when omitted.")
def open_(project_id: str, number: str | None) -> None:
    """Open a ruble settlement account for a project and print its number."""
    with write() as (conn, now):
        if not projects.exists(conn, project_id):
            raise click.ClickException(f"no project {project_id!r}")
        try:
            if number is not None and accounts.account_id(conn, number) is not None:
                raise click.ClickException(f"account {number} already exists")
            number = accounts.open_settlement_account(conn, project_id, now, number)
        except ApiError as exc:
            raise click.BadParameter(exc.description) from None
    click.echo(number)


@account.command("list")
@click.option("--project", help="Only this project's accounts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (amounts in kopecks).")
def list_(project: str | None, as_json: bool) -> None:
    """Every account: the bank's own, each project's wallet and settlement accounts, with
    balance, held and available."""
    if project is not None and not projects.PROJECT_ID.fullmatch(project):
        raise click.BadParameter(f"{project[:80]!r} is no project id", param_hint="--project")
    with database() as db, db.read() as conn:
        found = accounts.list_accounts(conn, project)
    if project is not None and not found:
        raise click.ClickException(f"no project {project!r} (or it has no account)")
    if as_json:
        out = [
            {
                "account": a.code,
                "kind": a.kind,
                "project": a.project_id,
                "balance": a.balance,
                "held": a.held,
                "available": a.balance - a.held,
            }
            for a in found
        ]
        click.echo(json.dumps(out, indent=2))
        return
    for a in found:
        click.echo(
            f"{a.code:<28} {a.kind:<10} {a.project_id or '-':<16} balance {show(a.balance)}  "
            f"held {show(a.held)}  available {show(a.balance - a.held)}"
        )


@account.command("topup")
@click.argument("number")
@click.argument("amount")
@KOPECKS_OPTION
def account_topup(number: str, amount: str, kopecks: bool) -> None:
    """Credit AMOUNT (rubles, e.g. 1500.25) to a settlement account."""
    credit = amount_in_kopecks(amount, kopecks)
    with write() as (conn, now):
        found = accounts.find(conn, [number]).get(number)
        if found is None or found.kind != "settlement":
            raise click.ClickException(f"no settlement account {number[:40]!r} at the bank")
        _credit(conn, found.id, credit, now)
        money = accounts.balance(conn, found.id)
    click.echo(f"{number}: balance {show(money.balance)}, available {show(money.available)}")


def _credit(conn: Connection, account: int, amount: int, now: int) -> None:
    try:
        book.topup(conn, account, amount, now)
    except book.BeyondRange as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def wallet() -> None:
    """The projects' collateral wallets (paid from by payouts without /rko)."""


@wallet.command("topup")
@click.argument("project_id")
@click.argument("amount")
@KOPECKS_OPTION
def wallet_topup(project_id: str, amount: str, kopecks: bool) -> None:
    """Credit AMOUNT (rubles, e.g. 1500.25) to a project's collateral wallet."""
    credit = amount_in_kopecks(amount, kopecks)
    with write() as (conn, now):
        wallet = accounts.account_id(conn, accounts.wallet_code(project_id))
        if wallet is None:
            raise click.ClickException(f"no project {project_id[:64]!r}")
        _credit(conn, wallet, credit, now)
        money = accounts.balance(conn, wallet)
    click.echo(
        f"wallet of {project_id}: credited {show(credit)}, available {show(money.available)}"
    )


@click.group("ledger")
def ledger_group() -> None:
    """The double-entry ledger."""


@ledger_group.command("check")
@click.option(
    "--textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the outcome for Prometheus (node_exporter's textfile collector): "
    "payout131_ledger_check_violations and ..._last_run_timestamp_seconds.",
)
def check(textfile: Path | None) -> None:
    """Recompute every balance from the entries; exit 1 on any violation."""
    if textfile is not None and (not textfile.name or textfile.is_dir()):
        raise click.BadParameter(f"{str(textfile)!r} is not a file name", param_hint="--textfile")
    if textfile is not None and not textfile.parent.is_dir():
        raise click.BadParameter(f"{textfile.parent}: no such directory", param_hint="--textfile")
    with database() as db, db.read() as conn:
        problems = violations(conn)
    if textfile is not None:
        _write_textfile(textfile, len(problems))
    for problem in problems:
        click.echo(f"VIOLATION {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo("ledger ok: every transaction balances and every balance matches its entries")


def _write_textfile(path: Path, problems: int) -> None:
    """The check's outcome in Prometheus' text format, replacing ``path`` whole (the
    collector never reads half a file)."""
    text = (
        "# HELP payout131_ledger_check_violations Violations the last ledger check found.\n"
        "# TYPE payout131_ledger_check_violations gauge\n"
        f"payout131_ledger_check_violations {problems}\n"
        "# HELP payout131_ledger_check_last_run_timestamp_seconds When the last check ran.\n"
        "# TYPE payout131_ledger_check_last_run_timestamp_seconds gauge\n"
        f"payout131_ledger_check_last_run_timestamp_seconds {time.time():.3f}\n"
    )
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise click.ClickException(f"--textfile {path}: {exc.strerror}") from None

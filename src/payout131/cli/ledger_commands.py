"""``payout131 account``, ``wallet`` and ``ledger``: money in, and proof that it adds up."""

from __future__ import annotations

import click

from payout131 import projects
from payout131.cli.context import database, write
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


@account.command("topup")
@click.argument("number")
@click.argument("amount", type=click.IntRange(1))
def account_topup(number: str, amount: int) -> None:
    """Credit AMOUNT kopecks to a settlement account."""
    with write() as (conn, now):
        target = accounts.account_id(conn, number)
        if target is None:
            raise click.ClickException(f"no settlement account {number}")
        book.topup(conn, target, amount, now)
        money = accounts.balance(conn, target)
    click.echo(f"{number}: balance {money.balance}, available {money.available} (kopecks)")


@click.group()
def wallet() -> None:
    """The projects' collateral wallets (paid from by payouts without /rko)."""


@wallet.command("topup")
@click.argument("project_id")
@click.argument("amount", type=click.IntRange(1))
def wallet_topup(project_id: str, amount: int) -> None:
    """Credit AMOUNT kopecks to a project's collateral wallet."""
    with write() as (conn, now):
        try:
            book.topup_wallet(conn, project_id, amount, now)
        except ApiError as exc:
            raise click.ClickException(exc.description) from None
    click.echo(f"wallet of {project_id}: credited {amount} kopecks")


@click.group("ledger")
def ledger_group() -> None:
    """The double-entry ledger."""


@ledger_group.command("check")
def check() -> None:
    """Recompute every balance from the entries; exit 1 on any violation."""
    with database() as db, db.read() as conn:
        problems = violations(conn)
    for problem in problems:
        click.echo(f"VIOLATION {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo("ledger ok: every transaction balances and every balance matches its entries")

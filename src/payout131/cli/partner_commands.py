"""``payout131 partner``: the partner's side on the command line, through the SDK.

Configured like the SDK, by ``PAYOUT131_BASE_URL``, ``PAYOUT131_PROJECT``,
``PAYOUT131_PRIVATE_KEY`` (and ``PAYOUT131_BANK_PUBLIC_KEY``), or the matching options of the
``partner`` group. It speaks PROTOCOL.md only, so it works against Bank 131 as well as a
payout131 server. See docs/sdk.md, "Partner CLI".
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from payout131.cli.batch_journal import Journal, JournalError
from payout131.cli.clock_view import advance_options, echo_clock, one_target
from payout131.cli.money import KOPECKS_OPTION, amount_in_kopecks, show
from payout131.cli.params import FloatRange, IntRange, OutputFile
from payout131.cli.payout_batch import STATUSES, Batch, Options, Result, tally
from payout131.cli.payout_sheet import SheetError, format_rubles, read_sheet
from payout131.client import (
    Amount,
    Bank131Error,
    BankAccount,
    Card,
    Client,
    FasterPayment,
    Recipient,
    Sender,
    Session,
    TokenizedAccount,
    TokenizedCard,
)
from payout131.client.params import Destination
from payout131.client.sandbox import TestClock
from payout131.directory.bik import BikDirectory, load_snapshot
from payout131.protocol.validation import whole_number

__all__ = ["partner"]

T = TypeVar("T")
STOP_AFTER_ENV = "PAYOUT131_TEST_STOP_AFTER_ROWS"
FINAL = ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class Connection:
    """The ``partner`` group's options; the client is made when a command needs it."""

    base_url: str | None
    project: str | None
    private_key: Path | None
    bank_public_key: Path | None
    api_version: str

    def client(self) -> Client:
        missing = [
            f"{flag} (or {env})"
            for flag, env, value in (
                ("--base-url", "PAYOUT131_BASE_URL", self.base_url),
                ("--project", "PAYOUT131_PROJECT", self.project),
                ("--private-key", "PAYOUT131_PRIVATE_KEY", self.private_key),
            )
            if not value
        ]
        if missing:
            raise click.UsageError(f"not configured: {', '.join(missing)}")
        assert self.base_url
        assert self.project
        assert self.private_key
        with _bank_errors():
            return Client(
                base_url=self.base_url,
                project=self.project,
                private_key=self.private_key,
                bank_public_key=self.bank_public_key,
                api_version="v2" if self.api_version == "v2" else "v1",
            )


@contextmanager
def _bank_errors() -> Iterator[None]:
    """An SDK exception as a one-line CLI error (code and description), never a traceback."""
    try:
        yield
    except Bank131Error as exc:
        raise click.ClickException(f"{exc.code}: {exc.description}") from None


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with _bank_errors():
        return fn(*args, **kwargs)


def _client() -> Client:
    found = click.get_current_context().find_object(Connection)
    assert found is not None
    return found.client()


@click.group()
@click.option("--base-url", envvar="PAYOUT131_BASE_URL", show_envvar=True, help="The bank's URL.")
@click.option("--project", envvar="PAYOUT131_PROJECT", show_envvar=True, help="Your project id.")
@click.option(
    "--private-key",
    envvar="PAYOUT131_PRIVATE_KEY",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your RSA private key (PEM) that signs the requests.",
)
@click.option(
    "--bank-public-key",
    envvar="PAYOUT131_BANK_PUBLIC_KEY",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The bank's public key (PEM), for webhooks.",
)
@click.option(
    "--api-version",
    type=click.Choice(["v1", "v2"]),
    default="v1",
    show_default=True,
    help="Session methods under /api/v1 or /api/v2.",
)
@click.pass_context
def partner(
    ctx: click.Context,
    base_url: str | None,
    project: str | None,
    private_key: Path | None,
    bank_public_key: Path | None,
    api_version: str,
) -> None:
    """Pay out as a partner: one payout, a CSV of them, balances, tokens."""
    ctx.obj = Connection(base_url, project, private_key, bank_public_key, api_version)


def _wait_option(seconds: float, text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--wait``: how long a command waits for what the bank tells."""
    return click.option(
        "--wait", default=seconds, show_default=True, type=FloatRange(0, 86_400), help=text
    )


# -- one payout ---------------------------------------------------------------------------


_WHERE = (
    ("--bik/--account", ("bik", "account")),
    ("--token", ("token",)),
    ("--phone/--bank-id", ("phone", "bank_id")),
    ("--card", ("card",)),
    ("--card-token", ("card_token",)),
)


def _card_number(given: str | None) -> str | None:
    """``--card``, or with ``-`` the first line of standard input (so the number stays out of
    the shell's history and the process list)."""
    if given != "-":
        return given
    line = sys.stdin.readline().strip()
    if not line:
        raise click.BadParameter(
            "- reads the card number from standard input: none came", param_hint="--card"
        )
    return line


def _destination(given: dict[str, Any], **ru: Any) -> tuple[Destination, Recipient | None]:
    """The one destination the options name, and the recipient's name where it travels apart
    from it (a phone, a card)."""
    named = [label for label, names in _WHERE if any(given.get(n) for n in names)]
    if len(named) > 1:
        together = " and ".join(named)
        raise click.UsageError(f"give one destination, not both {together}")
    if not named:
        raise click.UsageError(
            "give --bik and --account, --token, --phone and --bank-id, --card or --card-token"
        )
    recipient = Recipient(full_name=ru["full_name"])
    if given.get("card"):
        return Card(given["card"]), recipient
    if given.get("card_token"):
        return TokenizedCard(given["card_token"]), recipient
    if "description" not in ru:
        raise click.UsageError("--purpose is required (every payout but a card's has one)")
    if given.get("phone") or given.get("bank_id"):
        if not (given.get("phone") and given.get("bank_id")):
            raise click.UsageError("--phone pays through Faster Payments: give --bank-id too")
        return FasterPayment(given["phone"], given["bank_id"], ru["description"]), recipient
    if given.get("token"):
        return TokenizedAccount(given["token"], **ru), None
    if not (given.get("bik") and given.get("account")):
        raise click.UsageError("give --bik and --account together")
    return BankAccount(given["bik"], given["account"], **ru), None


@partner.command()
@click.option("--name", "full_name", required=True, help="The recipient's full name.")
@click.option("--bik", help="The recipient's bank (9 digits).")
@click.option("--account", help="The recipient's account (20 digits).")
@click.option("--token", help="An account token (instead of --bik and --account).")
@click.option("--phone", help="A phone to pay through Faster Payments (11 digits from 7).")
@click.option("--bank-id", help="The phone's bank: a Faster Payments member id (12 digits).")
@click.option(
    "--card", help="A card number to pay (14 to 19 digits); - reads it from standard input."
)
@click.option("--card-token", help="A card token from tokenize --card or the widget.")
@click.option("--amount", required=True, help="Rubles with kopecks, e.g. 1500.25.")
@KOPECKS_OPTION
@click.option("--purpose", "description", help="The payment purpose (not for a card).")
@click.option("--inn", help="The recipient's INN (organisations, sole traders).")
@click.option("--kpp", help="The recipient's KPP (organisations).")
@click.option("--single-request", is_flag=True, help="One session/init/payout call.")
@click.option("--rko", is_flag=True, help="Pay from a settlement account (needs --from).")
@click.option("--from", "sender", metavar="ACCOUNT", help="The settlement account to debit.")
@click.option("--no-confirm", is_flag=True, help="Leave a payout that waits for confirmation.")
@click.option("--metadata", help="JSON stored with the payout and echoed back.")
@click.option("--idempotency-key", help="The key of the money-moving call (default: random).")
@_wait_option(120.0, "Seconds to wait for the outcome.")
def pay(
    bik: str | None,
    account: str | None,
    token: str | None,
    phone: str | None,
    bank_id: str | None,
    card: str | None,
    card_token: str | None,
    amount: str,
    kopecks: bool,
    single_request: bool,
    rko: bool,
    sender: str | None,
    no_confirm: bool,
    metadata: str | None,
    idempotency_key: str | None,
    wait: float,
    **ru: Any,
) -> None:
    """Make one payout, wait for its outcome and print it.

    To a bank account (--bik and --account, or --token), a phone through Faster Payments
    (--phone and --bank-id), or a card (--card, or --card-token). Two-step by default:
    session/create, then session/start/payout, so the session id is known before money
    moves. When the payout waits for the partner (next_action: confirm),
    it is confirmed, unless --no-confirm.
    """
    if rko and not sender:
        raise click.UsageError("--rko pays from a settlement account: give --from ACCOUNT")
    ru = {k: v for k, v in ru.items() if v is not None}
    given = {
        "bik": bik,
        "account": account,
        "token": token,
        "phone": phone,
        "bank_id": bank_id,
        "card": _card_number(card),
        "card_token": card_token,
    }
    destination, recipient = _destination(given, **ru)
    paid = amount_in_kopecks(amount, kopecks, "--amount")
    fields: dict[str, Any] = {"destination": destination, "amount": Amount(paid)}
    if recipient is not None:
        fields["recipient"] = recipient
    if sender:
        fields["sender"] = Sender(sender)
    if metadata is not None:
        try:
            fields["metadata"] = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--metadata") from None
    rko = bool(sender)
    with _client() as client:
        if single_request:
            session = _call(client.init_payout, rko=rko, idempotency_key=idempotency_key, **fields)
            click.echo(f"session/init/payout{'/rko' if rko else ''}: {_line(session)}")
        else:
            session = _call(client.create_session, rko=rko)
            click.echo(f"session/create{'/rko' if rko else ''}: {session.id} {session.status}")
            session = _call(
                client.start_payout, session.id, rko=rko, idempotency_key=idempotency_key, **fields
            )
            click.echo(f"session/start/payout{'/rko' if rko else ''}: {_line(session)}")
        session = _watch(client, session, confirm=not no_confirm, wait=wait)
    _outcome(session)


def _watch(
    client: Client, session: Session, *, confirm: bool, wait: float, echo: bool = True
) -> Session:
    """Poll ``session/status`` until the payout is final (confirming it if asked) or waits;
    each change printed unless ``echo`` is off."""
    deadline = time.monotonic() + wait
    seen = _line(session)
    while time.monotonic() < deadline:
        payout = session.payouts[0] if session.payouts else None
        if payout is not None and payout.status in FINAL:
            return session
        if session.next_action == "confirm":
            if not confirm:
                return session
            session = _call(client.confirm, session.id)
            click.echo(f"session/confirm: {_line(session)}")
            continue
        time.sleep(0.25)
        session = _call(client.status, session.id)
        if _line(session) != seen:
            seen = _line(session)
            if echo:
                click.echo(f"session/status: {seen}")
    return session


def _line(session: Session) -> str:
    payout = session.payouts[0] if session.payouts else None
    text = f"{session.id} {session.status}"
    if payout is not None:
        text += f", payout {payout.status}"
    if session.next_action:
        text += f", next_action {session.next_action}"
    return text


def _outcome(session: Session) -> None:
    payout = session.payouts[0] if session.payouts else None
    status = payout.status if payout else session.status
    if status == "succeeded":
        click.echo(f"succeeded: {session.id}")
    elif status == "failed" and payout is not None:
        error = f"{payout.error.code}: {payout.error.description}" if payout.error else "failed"
        raise click.ClickException(f"{session.id} failed: {error}")
    elif session.next_action == "confirm":
        click.echo(f"waiting for confirmation: payout131 partner confirm {session.id} (or cancel)")
    else:
        raise click.ClickException(
            f"{session.id} is still {status}: check later with payout131 partner status "
            f"{session.id}"
        )


# -- sessions -----------------------------------------------------------------------------


def _print_json(answer: dict[str, Any]) -> None:
    """The bank's whole answer (``{"status": "ok", ...}``), as every ``--json`` prints it."""
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))


def _print_session(session: Session, as_json: bool) -> None:
    if as_json:
        _print_json(session.answer)
        return
    click.echo(f"session {session.id}: {session.status}")
    if session.error is not None:  # status error: a trouble the bank is still working out
        click.echo(f"  error: {session.error.code}: {session.error.description}")
    if session.next_action:
        click.echo(f"  next_action: {session.next_action}")
    for payout in session.payouts:
        amount = payout.amount_details
        money = show(amount.amount, amount.currency) if amount else ""
        click.echo(f"  payout {payout.id}: {payout.status} {money}".rstrip())
        if payout.error is not None:
            click.echo(f"    error: {payout.error.code}: {payout.error.description}")


_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the bank's whole answer as JSON."
)


@partner.command()
@click.argument("session_id")
@_json_option
def status(session_id: str, as_json: bool) -> None:
    """Show a session and its payout."""
    with _client() as client:
        _print_session(_call(client.status, session_id), as_json)


@partner.command()
@click.argument("session_id")
@click.option("--idempotency-key", help="Default: random.")
@_json_option
def confirm(session_id: str, idempotency_key: str | None, as_json: bool) -> None:
    """Confirm a payout that waits for the partner (next_action: confirm)."""
    with _client() as client:
        session = _call(client.confirm, session_id, idempotency_key=idempotency_key)
        _print_session(session, as_json)


@partner.command()
@click.argument("session_id")
@click.option("--idempotency-key", help="Default: random.")
@_json_option
def cancel(session_id: str, idempotency_key: str | None, as_json: bool) -> None:
    """Cancel a payout that waits for the partner; its money is released."""
    with _client() as client:
        session = _call(client.cancel, session_id, idempotency_key=idempotency_key)
        _print_session(session, as_json)


@partner.command()
@click.option("--account", metavar="NUMBER", help="A settlement account instead of the wallet.")
@_json_option
def balance(account: str | None, as_json: bool) -> None:
    """Show the wallet's balance, or a settlement account's."""
    with _client() as client:
        if account:
            answer = _call(client.account_balance, account)
            if as_json:
                _print_json(answer.raw)
                return
            money = answer.raw.get("balance", {})
            click.echo(f"account {answer.account_number}: {show(answer.current_balance)}")
            if isinstance(money.get("available_balance"), int):
                click.echo(f"  available: {show(money['available_balance'])}")
            return
        wallets = _call(client.wallet_balance)
        if as_json:
            _print_json(wallets.raw)
            return
        for wallet in wallets.wallets:
            amount = wallet.amount_details
            click.echo(f"wallet {wallet.id}: {show(amount.amount, amount.currency)}")


@partner.command()
@click.option("--bik", help="The bank (9 digits).")
@click.option("--account", help="The account (20 digits).")
@click.option(
    "--card", help="A card number instead (14 to 19 digits); - reads it from standard input."
)
@_json_option
def tokenize(bik: str | None, account: str | None, card: str | None, as_json: bool) -> None:
    """Exchange a bank account (--bik and --account) for a token to pay it by (--token, or a
    CSV's token column), or a card (--card) for a card token (--card-token, card_token)."""
    if card is not None and (bik or account):
        raise click.UsageError("give --bik and --account, or --card, not both")
    card = _card_number(card)
    if card is None and not (bik and account):
        raise click.UsageError("give --bik and --account (or --card)")
    with _client() as client:
        made = _call(client.tokenize_card, card) if card else _call(client.tokenize, bik, account)
    if as_json:
        _print_json(made.raw)
        return
    click.echo(f"token: {made.token}")
    if card:
        click.echo(f"card: {made.data.brand} {made.data.bin}******{made.data.last4}")
    else:
        click.echo(f"masked account: {made.masked_account}")


@partner.command()
@click.option("--phone", required=True, help="The phone (11 digits from 7).")
@click.option("--bank-id", required=True, help="Its bank: a Faster Payments member id.")
@_wait_option(60.0, "Seconds to wait for the bank's answer.")
@_json_option
def verify(phone: str, bank_id: str, wait: float, as_json: bool) -> None:
    """Ask a Faster Payments member who owns a phone, before paying it
    (fps/customer_verification); print the name the bank tells, or why it does not."""
    with _client() as client:
        session = _call(client.verify_customer, phone, bank_id)
        if not as_json:
            click.echo(f"fps/customer_verification: {_line(session)}")
        session = _watch(client, session, confirm=False, wait=wait, echo=not as_json)
    if as_json:
        _print_json(session.answer)
        return
    payout = session.payouts[0] if session.payouts else None
    party = payout.participant_details if payout else None
    found = party.get("recipient") if isinstance(party, dict) else None
    if payout is not None and payout.status == "succeeded" and isinstance(found, dict):
        parts = (found.get(k) for k in ("first_name", "middle_name", "last_name"))
        click.echo(f"found: {' '.join(str(p) for p in parts if p)}")
        return
    _outcome(session)


# -- many payouts -------------------------------------------------------------------------


@partner.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--results",
    type=OutputFile(),
    help="Where the results CSV goes; default FILE.results.csv beside FILE.",
)
@click.option("--rko", is_flag=True, help="Pay from a settlement account (needs --from).")
@click.option("--from", "sender", metavar="ACCOUNT", help="The settlement account to debit.")
@click.option("--no-confirm", is_flag=True, help="Leave payouts that wait for confirmation.")
@click.option("--check", is_flag=True, help="Check the file (and tokens, funds) and stop.")
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=IntRange(1, 64),
    help="Calls in flight at once.",
)
@_wait_option(600.0, "Seconds to wait for outcomes.")
@click.option(
    "--fee-bps",
    type=IntRange(0, 10_000),
    help="The bank's fee per payout in basis points, when the bank does not state it "
    "(payout131 does, in wallet/balance).",
)
@click.option(
    "--fee-fixed",
    help="The bank's fixed fee per payout in rubles (e.g. 15.50), when the bank does not state it.",
)
def batch(
    file: Path,
    results: Path | None,
    rko: bool,
    sender: str | None,
    no_confirm: bool,
    check: bool,
    concurrency: int,
    wait: float,
    fee_bps: int | None,
    fee_fixed: str | None,
) -> None:
    """Pay every row of a CSV: recipient, bik and account (or token, phone and bank_id, card,
    card_token), amount, purpose[, inn, kpp].

    Every row is checked before any money moves, and so are the funds: the amounts with the
    bank's fee on each (as wallet/balance states it, or --fee-bps/--fee-fixed). Progress is
    journaled beside the results
    (RESULTS.journal): run the same command again after an interruption and no row is paid
    twice. Exits 0 when every row succeeded (or, with --no-confirm, waits to be confirmed).
    """
    if rko and not sender:
        raise click.UsageError("--rko pays from a settlement account: give --from ACCOUNT")
    try:
        sheet = read_sheet(file, BikDirectory(load_snapshot()))
    except SheetError as exc:
        _print_problems(exc.problems)
        problems = len(exc.problems)
        raise click.ClickException(f"{file}: {problems} problem(s); nothing was paid") from None
    results = results or file.with_name(file.stem + ".results.csv")
    connection = click.get_current_context().find_object(Connection)
    assert connection is not None
    options = Options(
        rko_from=sender,
        confirm=not no_confirm,
        concurrency=concurrency,
        wait_s=wait,
        stop_after=_stop_after(),
        fee_bps=fee_bps,
        fee_fixed=None
        if fee_fixed is None
        else amount_in_kopecks(fee_fixed, False, "--fee-fixed", zero=True),
    )
    with connection.client() as client:
        try:
            journal = Journal.open(
                results.with_name(results.name + ".journal"),
                sheet.sha256,
                client.settings.project,
                file=str(file),
                base_url=client.settings.base_url,
            )
        except JournalError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            run = Batch(client, sheet, journal, options)
            _preflight(run, check)
            if check:
                return
            _run(run)
            outcome = run.results()
        finally:
            journal.close()
    _write_results(results, outcome)
    _summary(outcome, results)


def _stop_after() -> int | None:
    """The test hook: PAYOUT131_TEST_STOP_AFTER_ROWS=N exits abruptly after N starts."""
    value = os.environ.get(STOP_AFTER_ENV)
    if not value:
        return None
    rows = whole_number(value)
    if rows is None or rows < 1:
        raise click.ClickException(f"{STOP_AFTER_ENV}: a positive number of rows")
    return rows


def _print_problems(problems: list[tuple[int, str]]) -> None:
    table = Table("line", "problem", title="The file cannot be paid", title_justify="left")
    for row, text in problems[:50]:
        table.add_row(str(row) if row else "", text)
    if len(problems) > 50:
        table.add_row("", f"… and {len(problems) - 50} more")
    Console(stderr=True).print(table)


def _preflight(run: Batch, check: bool) -> None:
    """What needs the bank but moves no money: in-flight rows resolved, tokens exist, and the
    funds cover the rows still to pay."""
    with _bank_errors():
        unsure = run.reconcile()
        if unsure:
            click.echo(f"{unsure} row(s) were in flight when a run stopped: looked them up")
        problems = run.check_tokens()
        if problems:
            _print_problems(problems)
            raise click.ClickException(f"{len(problems)} problem(s); nothing was paid")
        needed, available = run.needed(), run.available()
    rows = len(run.sheet.rows)
    click.echo(f"{rows} rows, {show(run.sheet.total)}; still to pay {show(needed)}")
    if needed > available:
        raise click.ClickException(
            f"the {'account' if run.options.rko_from else 'wallet'} has {show(available)}, "
            f"the rows still to pay need {show(needed)}; nothing was paid"
        )
    if check:
        click.echo("the file is ready to pay")


def _run(run: Batch) -> None:
    total = len(run.sheet.rows)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        tasks = {
            "submit": progress.add_task("submitted", total=total),
            "settle": progress.add_task("settled", total=total),
        }
        with _bank_errors():
            run.submit(lambda phase, n: progress.advance(tasks[phase], n))
            run.settle(lambda phase, n: progress.advance(tasks[phase], n))


RESULT_COLUMNS = (
    "line",
    "recipient",
    "payee",
    "amount",
    "status",
    "session_id",
    "error_code",
    "error_description",
    "idempotency_key",
)


def _write_results(path: Path, outcome: list[Result]) -> None:
    """The results CSV, written whole and then renamed into place."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(RESULT_COLUMNS)
        for r in outcome:
            writer.writerow(
                (
                    r.row.number,
                    r.row.recipient,
                    r.row.payee,
                    format_rubles(r.row.amount),
                    r.status,
                    r.session_id or "",
                    r.error_code,
                    r.error_description,
                    r.row.key,
                )
            )
    temporary.replace(path)


def _summary(outcome: list[Result], results: Path) -> None:
    table = Table("status", "rows", "amount, RUB", title="Batch summary", title_justify="left")
    counts = tally(outcome)
    for status_name in STATUSES:
        if status_name in counts:
            rows, kopecks = counts[status_name]
            table.add_row(status_name, str(rows), format_rubles(kopecks))
    Console(soft_wrap=True).print(table)
    click.echo(f"results: {results}")
    unsettled = sum(
        counts.get(name, (0, 0))[0] for name in ("in_progress", "rejected", "not_started")
    )
    if unsettled:
        raise click.ClickException(
            f"{unsettled} row(s) not settled: run the same command again to finish them "
            "(rows already paid are not paid again)"
        )
    if "failed" in counts:
        raise click.ClickException(f"{counts['failed'][0]} payout(s) failed: see {results}")


# -- the sandbox's own calls (docs/sandbox.md) ----------------------------------------------


@partner.group("sandbox")
def sandbox_group() -> None:
    """A payout131 sandbox's own calls: your project's test clock, forced outcomes."""


def _print_clock(clock: TestClock, as_json: bool) -> None:
    echo_clock(clock.raw, (clock.answer or clock.raw) if as_json else None)


@sandbox_group.command("clock")
@_json_option
def sandbox_clock(as_json: bool) -> None:
    """Your project's test clock and what is due on it next."""
    with _client() as client:
        _print_clock(_call(client.sandbox.clock), as_json)


@sandbox_group.command("advance")
@advance_options
@_json_option
def sandbox_advance(by: str | None, to: str | None, next_step: bool, as_json: bool) -> None:
    """Move your project's test clock forward; returns when every step on the way ran."""
    one_target(by, to, next_step)
    with _client() as client:
        clock = _call(client.sandbox.advance, by=by, to=to, next_step=next_step)
    _print_clock(clock, as_json)
    if clock.status == "failed":
        raise click.ClickException(f"{clock.id} failed: {clock.failure}")


def _sandbox_forcer(outcome: str, summary: str) -> None:
    @click.argument("payout_id")
    @_json_option
    def command(payout_id: str, as_json: bool, code: str | None = None) -> None:
        with _client() as client:
            if outcome == "fail":
                forced = _call(client.sandbox.fail, payout_id, code)
            elif outcome == "succeed":
                forced = _call(client.sandbox.succeed, payout_id)
            else:
                forced = _call(client.sandbox.return_payout, payout_id)
        if as_json:
            click.echo(json.dumps(forced.answer or forced.raw, ensure_ascii=False, indent=2))
        else:
            click.echo(f"{forced.payout_id}: {summary}")

    command.__doc__ = f"Make a payout of yours waiting at the simulator {summary}, now."
    if outcome == "fail":
        command = click.option(
            "--code", help="The rail's error (e.g. account_not_found; default operation_rejected)."
        )(command)
    sandbox_group.command(outcome)(command)


_sandbox_forcer("succeed", "succeed")
_sandbox_forcer("fail", "fail with --code")
_sandbox_forcer("return", "come back (a return)")

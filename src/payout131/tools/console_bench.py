"""``payout131 console-bench``: how fast the operator console and the list commands answer
on a large store (docs/console.md, "How fast").

Per engine it makes a fresh bank (PostgreSQL: a private durable cluster), preloads it with
``--payouts`` payouts spread over 30 days (the shape of a busy partner base: most paid,
1 % failed with three codes, the newest 0.1 % pending, a few on a rare bank; each with its
session, hold, ledger transaction, webhook event and attempt, and recorded call), starts
``payout131 serve``, signs in an operator over HTTP and times every console page a few
times, then the queries behind ``payouts list`` and ``payouts show`` in-process, and the
commands themselves (whose time includes Python's start).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import click
import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.cli.params import IntRange, OutputFile
from payout131.storage import schema as t
from payout131.tools.chaos.processes import answers_health, free_port, stop

__all__ = ["console_bench"]

DAY_US = 86_400_000_000
PROJECTS = [f"partner{i:02d}" for i in range(1, 21)]
BANKS = ["044525974", "044525225", "044525593", "044525187", "044030653"]
RARE_BANK = "049205131"  # 1 payout in 10,000
FAILURES = ("account_not_found", "operation_rejected", "provider_timeout")
PASSWORD = "console bench password"  # noqa: S105 (the bench's own operator, in a temp home)
REPEAT = 5
TARGET_MS = 300.0


def _rows(n: int, now: int, seed: int) -> Iterator[dict[str, Any]]:
    """The payouts to preload, oldest first, each a dict of what its rows need."""
    rng = random.Random(seed)  # noqa: S311 (amounts for a benchmark, not secrets)
    start = now - 30 * DAY_US
    step = 30 * DAY_US // n
    for i in range(1, n + 1):
        created = start + i * step
        roll = rng.random()
        if i > n - n // 1000:
            status, error = "pending", None
        elif roll < 0.01:
            status, error = "failed", FAILURES[i % 3]
        else:
            status, error = "succeeded", None
        bank = RARE_BANK if i % 10_000 == 0 else BANKS[i % len(BANKS)]
        yield {
            "n": i,
            "project": PROJECTS[i % len(PROJECTS)],
            "amount": rng.randrange(10_000, 10_000_000),
            "status": status,
            "error": error,
            "bank": bank,
            "at": created,
        }


# what PostgreSQL's ledger triggers would have kept, had they not been off for the preload
_BALANCES = """UPDATE ledger_accounts a SET
    balance = (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e WHERE e.account_id = a.id),
    held = (SELECT COALESCE(SUM(h.amount), 0) FROM holds h
            WHERE h.account_id = a.id AND h.status = 'active')"""


def preload(db_url: str, home: Path, n: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """Fill a fresh bank with ``n`` payouts; what the timings look for."""
    from payout131 import projects
    from payout131.client import signing
    from payout131.clock import SystemClock
    from payout131.console import operators
    from payout131.ledger import accounts, book
    from payout131.storage import Database

    db = Database(db_url)
    now = SystemClock().now()
    made = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = signing.public_key_pem(made).decode()
    started = time.monotonic()
    try:
        with db.write() as conn:
            for project in PROJECTS:
                projects.add_project(conn, project, key, now, webhook_url="http://127.0.0.1:9/")
                book.topup_wallet(conn, project, 10**15, now)
            operators.add(conn, "bench", "admin", PASSWORD, now)
            wallets = {p: accounts.account_id(conn, accounts.wallet_code(p)) for p in PROJECTS}
            payouts_account = accounts.account_id(conn, accounts.PAYOUTS)
            first_tx = int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(t.ledger_transactions.c.id), 0))
                ).scalar_one()
            )
        chunk: list[dict[str, Any]] = []
        done = 0
        for row in _rows(n, now, seed=131):
            chunk.append(row)
            if len(chunk) == 20_000:
                _write(db, chunk, wallets, payouts_account, first_tx)
                done += len(chunk)
                chunk = []
                if done % 200_000 == 0:
                    echo(f"  {done:,} payouts preloaded ({time.monotonic() - started:.0f} s)")
        if chunk:
            _write(db, chunk, wallets, payouts_account, first_tx)
        if db.dialect == "postgresql":
            with db.write() as conn:
                conn.exec_driver_sql(_BALANCES)
                for table, (column, sequence) in {
                    "sessions": ("n", "sessions_n_seq"),
                    "payouts": ("n", "payouts_n_seq"),
                    "ledger_transactions": ("id", "ledger_transaction_ids"),
                    "events": ("id", "events_id_seq"),
                }.items():
                    conn.exec_driver_sql(
                        f"SELECT setval('{sequence}', (SELECT max({column}) FROM {table}))"  # noqa: S608
                    )
                conn.exec_driver_sql("ANALYZE")
    finally:
        db.dispose()
    return {"preload_s": round(time.monotonic() - started, 1), "now": now}


def _write(
    db: Any,
    chunk: list[dict[str, Any]],
    wallets: dict[str, int | None],
    payouts_account: int | None,
    first_tx: int,
) -> None:
    sessions, payouts, holds, entries, transactions, events, attempts, calls = (
        [], [], [], [], [], [], [], []
    )  # fmt: skip
    posted, released = [], []
    for r in chunk:
        n, at, project = r["n"], r["at"], r["project"]
        done = r["status"] != "pending"
        finished = at + 2_000_000
        session_status = {"succeeded": "accepted", "failed": "cancelled"}.get(
            r["status"], "in_progress"
        )
        sessions.append({
            "n": n, "project_id": project, "api_version": "v1", "rko": False,
            "status": session_status, "created_at": at, "updated_at": finished,
            "error_code": r["error"],
        })  # fmt: skip
        recipient = json.dumps({"bik": r["bank"], "account_last4": f"{n % 10_000:04d}"})
        payouts.append({
            "n": n, "session_n": n, "project_id": project, "status": r["status"],
            "amount": r["amount"], "currency": "rub", "account_id": wallets[project],
            "destination": json.dumps({"type": "bank_account"}), "recipient": recipient,
            "error_code": r["error"], "rail": "simulator", "rail_reference": f"sim-{n}",
            "created_at": at, "updated_at": finished, "finished_at": finished if done else None,
            "work": None, "work_at": None,  # the worker leaves the store as loaded
        })  # fmt: skip
        holds.append({
            "account_id": wallets[project], "payout_n": n, "amount": r["amount"],
            "status": "active", "created_at": at,
        })  # fmt: skip
        if r["status"] == "succeeded":
            posted.append({"n": n, "at": finished})
            tx = first_tx + n
            entries += [
                {"transaction_id": tx, "account_id": wallets[project], "amount": -r["amount"]},
                {"transaction_id": tx, "account_id": payouts_account, "amount": r["amount"]},
            ]
            transactions.append(
                {"id": tx, "kind": "payout", "payout_n": n, "memo": "", "created_at": finished}
            )
        elif r["status"] == "failed":
            released.append({"n": n, "at": finished})
        if done:
            dead = n % 1000 == 7
            events.append({
                "id": n, "project_id": project, "session_n": n, "type": "payment_finished",
                "body": b'{"type":"payment_finished","session":{"id":"ps_%d"}}' % n,
                "status": "dead" if dead else "delivered", "attempts": 1,
                "next_attempt_at": finished, "created_at": finished,
                "delivered_at": None if dead else finished + 30_000,
            })  # fmt: skip
            attempts.append({
                "event_id": n, "attempt": 1, "worker": "bench", "url": "http://127.0.0.1:9/",
                "started_at": finished, "duration_us": 30_000,
                "http_status": None if dead else 200,
                "error": "connect: refused" if dead else None, "response": None if dead else "ok",
            })  # fmt: skip
        calls.append({
            "session_n": n, "project_id": project, "method": "session/init/payout",
            "version": "v1", "idempotency_key": f"order-{n}", "status": 200, "at": at,
        })  # fmt: skip
    with db.write() as conn:
        if db.dialect == "postgresql":  # its triggers keep balances row by row: summed after
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(t.sessions.insert(), sessions)
        conn.execute(t.payouts.insert(), payouts)
        conn.execute(t.holds.insert(), holds)
        h = t.holds
        for resolved, status in ((posted, "posted"), (released, "released")):
            if resolved:
                conn.execute(
                    h.update()
                    .where(h.c.payout_n == sa.bindparam("n"))
                    .values(status=status, resolved_at=sa.bindparam("at")),
                    resolved,
                )
        if entries:
            conn.execute(t.ledger_entries.insert(), entries)
            conn.execute(t.ledger_transactions.insert(), transactions)
        if events:
            conn.execute(t.events.insert(), events)
            conn.execute(t.webhook_attempts.insert(), attempts)
        conn.execute(t.session_calls.insert(), calls)


def _iso(micros: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(micros / 1e6))


def _pages(n: int, now: int) -> list[tuple[str, str]]:
    """``(what, path)`` of every console page timed."""
    middle = n // 2
    early, yesterday = _iso(now - 29 * DAY_US), _iso(now - DAY_US)
    wallet = "/console/accounts/wallet:partner07"
    return [
        ("overview", "/console/"),
        ("payouts, newest", "/console/payouts"),
        ("payouts of a project", "/console/payouts?project=partner07"),
        ("payouts, failed", "/console/payouts?status=failed"),
        ("payouts, by error code", "/console/payouts?error=provider_timeout"),
        ("payouts, a project's pending", "/console/payouts?project=partner07&status=pending"),
        ("payouts, the last hour", f"/console/payouts?since={_iso(now - 3_600_000_000)}"),
        ("payouts, until 29 days ago", f"/console/payouts?until={early}"),
        ("payouts, an amount range", "/console/payouts?min=50000&max=50100"),
        ("payouts, a rare bank", f"/console/payouts?bank={RARE_BANK}"),
        ("payouts, half-way down", f"/console/payouts?before={middle}"),
        ("payouts CSV, a project's failed", "/console/payouts.csv?project=partner07&status=failed"),
        ("a payout's story", f"/console/payouts/ps_{middle}"),
        ("webhooks", "/console/webhooks"),
        ("webhooks, dead", "/console/webhooks?status=dead"),
        ("a webhook", f"/console/webhooks/evt_{middle}"),
        ("projects", "/console/projects"),
        ("a project", "/console/projects/partner07"),
        ("accounts", "/console/accounts"),
        ("a wallet's entries", wallet),
        ("a wallet's entries, 29 days ago", f"{wallet}?until={early}"),
        ("a wallet's statement CSV, one day",
         f"{wallet}/statement.csv?since={_iso(now - 2 * DAY_US)}&until={yesterday}"),
        ("audit log", "/console/audit"),
        ("sandbox", "/console/sandbox"),
    ]  # fmt: skip


def _time(fn: Callable[[], Any], repeat: int = REPEAT) -> tuple[float, float]:
    """Median and worst of ``repeat`` runs, in milliseconds (after one to warm up)."""
    fn()
    spans = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        spans.append((time.perf_counter() - began) * 1000)
    return statistics.median(spans), max(spans)


def measure(
    url: str, env: dict[str, str], db_url: str, n: int, now: int, repeat: int = REPEAT
) -> list[dict[str, Any]]:
    from payout131.payouts import listing
    from payout131.storage import Database

    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        page = http.get("/console/login")
        token = page.text.split('name="form_token" value="', 1)[1].split('"', 1)[0]
        signed = http.post(
            "/console/login",
            data={"form_token": token, "name": "bench", "password": PASSWORD, "next": "/"},
        )
        if signed.status_code != 303:
            raise click.ClickException(f"could not sign in: HTTP {signed.status_code}")
        for what, path in _pages(n, now):

            def get(path: str = path) -> None:
                answer = http.get(path)
                if answer.status_code != 200:
                    raise click.ClickException(f"{path}: HTTP {answer.status_code}")

            median, worst = _time(get, repeat)
            out.append({"what": what, "kind": "page", "median_ms": median, "max_ms": worst})
    db = Database(db_url)
    try:
        filters = [
            ("payouts list", listing.Filter()),
            ("payouts list --status failed", listing.Filter(status="failed")),
            ("payouts list --error provider_timeout", listing.Filter(error="provider_timeout")),
            ("payouts list --project P --status pending",
             listing.Filter(project="partner07", status="pending")),
            ("payouts list --until (29 days ago)", listing.Filter(until=now - 29 * DAY_US)),
        ]  # fmt: skip
        queries: list[tuple[str, Callable[[Any], Any]]] = [
            (what, partial(listing.list_payouts, where=where)) for what, where in filters
        ]
        queries.append(("payouts show", partial(listing.story, text=f"ps_{n // 2}")))
        for what, query in queries:

            def run(query: Callable[[Any], Any] = query) -> None:
                with db.read() as conn:
                    query(conn)

            median, worst = _time(run, repeat)
            out.append({"what": what, "kind": "query", "median_ms": median, "max_ms": worst})
    finally:
        db.dispose()
    payout131 = str(Path(sys.executable).with_name("payout131"))
    for what, args in (
        ("payout131 payouts list --status failed", ["payouts", "list", "--status", "failed"]),
        ("payout131 payouts show", ["payouts", "show", f"ps_{n // 2}"]),
        ("payout131 payouts list --help (start-up)", ["payouts", "list", "--help"]),
    ):

        def command(args: list[str] = args) -> None:
            subprocess.run([payout131, *args], env=env, check=True, capture_output=True)

        median, worst = _time(command, repeat)
        out.append({"what": what, "kind": "command", "median_ms": median, "max_ms": worst})
    return out


@contextmanager
def _bank(engine: str, workdir: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{workdir / 'home' / 'payout131.db'}"
        return
    from payout131.tools.bench.cluster import DurableCluster

    with DurableCluster() as cluster:
        yield cluster.url()


@contextmanager
def _served(env: dict[str, str], port: int) -> Iterator[str]:
    payout131 = str(Path(sys.executable).with_name("payout131"))
    server = subprocess.Popen(
        [payout131, "serve", "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not answers_health(url, server, 60):
            raise click.ClickException("payout131 serve did not start")
        yield url
    finally:
        stop(server, 30)


@click.command("console-bench")
@click.option(
    "--engine",
    "engines",
    type=click.Choice(["sqlite", "postgresql"]),
    multiple=True,
    help="The store to measure (again for both; default both).",
)
@click.option(
    "--payouts",
    type=IntRange(1_000, 10_000_000),
    default=1_000_000,
    show_default=True,
    help="How many payouts to preload.",
)
@click.option(
    "--repeat",
    type=IntRange(1, 50),
    default=REPEAT,
    show_default=True,
    help="Times each page is asked for (after one to warm up).",
)
@click.option("--json", "json_path", type=OutputFile(), help="Also write the figures here.")
def console_bench(
    engines: tuple[str, ...], payouts: int, repeat: int, json_path: Path | None
) -> None:
    """Time every console page and list command on a store of --payouts payouts.

    Each figure is the median (and worst) of --repeat requests after one to warm up; a page or
    query over 300 ms is marked. Preloading a million payouts takes a few minutes.
    """
    from payout131.cli.setup import initialise
    from payout131.settings import Settings

    report: dict[str, Any] = {"payouts": payouts, "engines": {}}
    for engine in engines or ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory(prefix="payout131-console-bench-") as scratch:
            workdir = Path(scratch)
            with _bank(engine, workdir) as db_url:
                home = workdir / "home"
                initialise(Settings(home=home, database_url=db_url), demo=False)
                click.echo(f"{engine}: preloading {payouts:,} payouts", err=True)
                facts = preload(db_url, home, payouts, lambda line: click.echo(line, err=True))
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("PAYOUT131_")},
                    "PAYOUT131_HOME": str(home),
                    "PAYOUT131_DATABASE_URL": db_url,
                }
                with _served(env, free_port()) as url:
                    figures = measure(url, env, db_url, payouts, facts["now"], repeat)
            report["engines"][engine] = {"preload_s": facts["preload_s"], "figures": figures}
            click.echo(f"\n{engine}, {payouts:,} payouts (preloaded in {facts['preload_s']} s)")
            click.echo(f"  {'what':<44} {'median ms':>10} {'max ms':>8}")
            for f in figures:
                over = "  over 300 ms" if f["kind"] != "command" and f["max_ms"] > TARGET_MS else ""
                click.echo(f"  {f['what']:<44} {f['median_ms']:>10.1f} {f['max_ms']:>8.1f}{over}")
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")

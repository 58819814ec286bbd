"""``payout131 partner batch`` against a real ``payout131 serve``: a sheet interrupted half
way, rerun, and every row paid exactly once.

SQLite pays 1,000 rows, interrupted at row 500. PostgreSQL proves the same with 200 rows
interrupted at row 100: on this workplace's shared two-core machines its 1,000 rows took
about two minutes, well over the minute this test may take.

The interruption is the CLI's test hook ``PAYOUT131_TEST_STOP_AFTER_ROWS``: after that many
payout starts are answered, and before the journal records the last, the process ends with
``os._exit`` (no cleanup, as if killed), leaving up to ``--concurrency`` rows in flight. The
wallet holds exactly the sheet's total, so a rerun that paid an in-flight row again, or
counted it as unpaid, would fail.
"""

from __future__ import annotations

import csv
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.cli import main
from payout131.cli.payout_batch import STOP_EXIT_CODE
from payout131.ledger.accounts import wallet_code
from payout131.protocol.validation import generate_account
from payout131.storage import Database
from payout131.storage import schema as t
from served import PAYOUT131, Served, serve

ROWS = {"sqlite": 1_000, "postgresql": 200}  # PostgreSQL: fewer rows, to stay near a minute
BIK = "044525974"
SAFE_KOPECKS = ("00", "10", "25", "50", "75", "99")  # none is a simulator scenario
ORGANISATION_IDS = ("7707083893", "773601001")  # INN, KPP


def sheet(path: Path, rows: int) -> int:
    """Write a payout sheet of ``rows`` rows; return its total in kopecks."""
    total = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["recipient", "bik", "account", "amount", "purpose", "inn", "kpp"])
        for i in range(rows):
            rubles, kopecks = 100 + i % 900, SAFE_KOPECKS[i % len(SAFE_KOPECKS)]
            total += rubles * 100 + int(kopecks)
            purpose = f"Выплата по договору № {i + 1}. НДС не облагается"
            if i % 10 == 0:  # an organisation: INN and KPP required
                account = generate_account(BIK, "40702810", i)
                money = f"{rubles}.{kopecks}"
                writer.writerow(['ООО "Вектор"', BIK, account, money, purpose, *ORGANISATION_IDS])
            else:
                account = generate_account(BIK, "40817810", i)
                name = f"Иванов Иван Иванович {i}"
                writer.writerow([name, BIK, account, f"{rubles}.{kopecks}", purpose, "", ""])
    return total


def partner_env(served: Served, key: Path, **extra: str) -> dict[str, str]:
    return served.env | {
        "PAYOUT131_BASE_URL": served.url,
        "PAYOUT131_PROJECT": "acme",
        "PAYOUT131_PRIVATE_KEY": str(key),
        **extra,
    }


def batch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAYOUT131, "partner", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_a_thousand_rows_interrupted_and_rerun_are_each_paid_once(
    tmp_path: Path, database_url: str, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    rows_in_sheet = ROWS[database_url.split(":")[0].split("+")[0]]
    stop = rows_in_sheet // 2
    file = tmp_path / "payouts.csv"
    total = sheet(file, rows_in_sheet)
    funds = total  # exactly: the rerun must count the in-flight rows as paid, not pay them
    with serve(tmp_path, database_url) as served:
        # single-request: no confirm step, so three calls a row (the confirm path is tested
        # on a smaller sheet below) and the test stays well under a minute
        key = served.register("acme", partner_keys[0], wallet=funds, single_request=True)
        env = partner_env(served, key)

        first = batch(env | {"PAYOUT131_TEST_STOP_AFTER_ROWS": str(stop)}, str(file))
        assert first.returncode == STOP_EXIT_CODE, first.stdout + first.stderr
        journal = tmp_path / "payouts.results.csv.journal"
        entries = [json.loads(line) for line in journal.read_text().splitlines()]
        started = {e["row"] for e in entries if e.get("started")}
        sessions = {e["row"] for e in entries if "session" in e}
        assert stop - 10 <= len(started) < stop  # the last start and any in flight: unrecorded
        assert len(sessions) > len(started)
        assert not (tmp_path / "payouts.results.csv").exists()

        second = batch(env, str(file))
        assert second.returncode == 0, second.stdout + second.stderr
        assert "were in flight when a run stopped" in second.stdout

        with (tmp_path / "payouts.results.csv").open(encoding="utf-8") as results:
            rows = list(csv.DictReader(results))
        assert len(rows) == rows_in_sheet
        assert Counter(row["status"] for row in rows) == {"succeeded": rows_in_sheet}
        assert len({row["session_id"] for row in rows}) == rows_in_sheet
        assert len({row["idempotency_key"] for row in rows}) == rows_in_sheet

        # all done: a third run (in-process, to spare a start-up) sends nothing again
        third = CliRunner().invoke(main, ["partner", "batch", str(file)], env=env)
        assert third.exit_code == 0, third.output
        assert "still to pay 0.00 RUB" in third.output

        assert served.ledger_problems() == []
    paid_once(database_url, rows, total, funds)


def paid_once(database_url: str, rows: list[dict[str, str]], total: int, funds: int) -> None:
    count = len(rows)
    """One payout per row in the database, each to its row's account and amount."""
    db = Database(database_url)
    try:
        with db.read() as conn:
            payouts = conn.execute(
                sa.select(t.payouts.c.session_n, t.payouts.c.amount, t.payouts.c.status)
            ).all()
            session_rows = conn.execute(sa.select(t.sessions.c.n, t.sessions.c.metadata)).all()
            wallet = conn.execute(
                sa.select(t.ledger_accounts.c.balance).where(
                    t.ledger_accounts.c.code == wallet_code("acme")
                )
            ).scalar_one()
    finally:
        db.dispose()
    assert len(payouts) == count
    assert {p.status for p in payouts} == {"succeeded"}
    assert sum(p.amount for p in payouts) == total
    row_of = {n: json.loads(metadata)["row"] for n, metadata in session_rows}
    paid_rows = Counter(row_of[p.session_n] for p in payouts)
    assert set(paid_rows.values()) == {1}  # no row paid twice
    assert len(paid_rows) == count
    by_line = {int(row["line"]): row for row in rows}
    for p in payouts:
        amount = by_line[row_of[p.session_n]]["amount"]
        assert p.amount == int(amount.replace(".", ""))
    assert len(session_rows) - count <= 8  # at most the in-flight creates left empty sessions
    assert int(wallet) == funds - total

"""``payout131 console-bench``, run small on SQLite so that it never rots (no thresholds):
the preload makes a store every page can show, and every page and command it times
answered (a page that did not answer 200 stops the command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from payout131.cli.setup import initialise
from payout131.ledger.check import violations
from payout131.settings import Settings
from payout131.storage import Database, numbers
from payout131.storage import schema as t
from payout131.tools import console_bench

PAYOUT131 = Path(sys.executable).with_name("payout131")


def test_console_bench_times_every_page_on_a_preloaded_store(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUT131_")}
    done = subprocess.run(
        [str(PAYOUT131), "console-bench", "--engine", "sqlite", "--payouts", "2000",
         "--repeat", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=240, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())["engines"]["sqlite"]["figures"]
    pages = [f["what"] for f in figures if f["kind"] == "page"]
    assert pages == [what for what, _ in console_bench._pages(2000, 0)]
    assert {f["kind"] for f in figures} == {"page", "query", "command"}
    assert "a payout's story" in done.stdout


def test_the_preload_keeps_the_ledger_whole(tmp_path: Path, database_url: str) -> None:
    """On both engines (PostgreSQL's preload turns the ledger's triggers off and sums the
    balances after): the ledger checks, and the bank numbers its next rows past the
    preloaded ones."""
    url = database_url
    initialise(Settings(home=tmp_path, database_url=url), demo=False)
    console_bench.preload(url, tmp_path, 3000, lambda line: None)
    db = Database(url)
    try:
        with db.write() as conn:  # a new event gets a number of its own
            conn.execute(
                t.events.insert().values(
                    project_id="partner01", session_n=1, type="payment_finished", body=b"{}",
                    next_attempt_at=0, created_at=0,
                )
            )  # fmt: skip
            assert numbers.draw(conn, {"payouts": 1})["payouts"][0] > 3000
        with db.read() as conn:
            assert violations(conn) == []
            count = conn.execute(sa.text("SELECT count(*) FROM payouts")).scalar_one()
            failed = conn.execute(
                sa.text("SELECT count(*) FROM payouts WHERE status = 'failed'")
            ).scalar_one()
    finally:
        db.dispose()
    assert count == 3000
    assert 0 < failed < 100

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

from payout131.ledger.check import violations
from payout131.storage import Database
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
    assert len(pages) == len(console_bench._pages(2000, 0))
    assert all(f["median_ms"] > 0 for f in figures)
    assert "overview" in done.stdout


def test_the_preload_keeps_the_ledger_whole(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'payout131.db'}"
    from payout131.cli.setup import initialise
    from payout131.settings import Settings

    initialise(Settings(home=tmp_path, database_url=url), demo=False)
    console_bench.preload(url, tmp_path, 3000, lambda line: None)
    db = Database(url)
    try:
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
